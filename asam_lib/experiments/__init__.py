"""The studies: notebook 02's LAR experiments, notebook 04's jobs on worker processes, the ablation and
sensitivity catalogues, and the resumable study on any checkpoint and MMEdit file. Imports the layers below."""
