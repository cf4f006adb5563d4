"""The editing methods: the editor interface and shared edit loop (FT-L), LoRA, Patch, GRACE, LAR, RCSL, ASAM, the
registry of methods (``methods``), hyper-parameter overrides (``hparams``) and the per-step trace of an edit. Imports
``common``, ``mllm`` and ``data``."""
