"""What is edited and measured: the embedded world and its renderer, the pretraining of the embedded model on it,
MMEdit-schema records and the field's other file formats, the embedded benchmark, knowledge units and the edit cases
kept on disk. Imports ``common`` and ``mllm``."""
