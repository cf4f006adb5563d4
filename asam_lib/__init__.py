"""asam_lib: the library behind the ASAM companion notebooks.

Modules, one idea each:
    paths      absolute paths of the repository (figures, results, cache, checkpoint)
    seeding    one ``seed_everything`` and explicit generators
    render     the procedural image renderer of the embedded world
    world      entities, facts, question templates, splits, MMEdit export
    records    MMEdit-schema edit requests: loading and validation
    tokenizer  the word-level tokenizer of the embedded model
    model      the tiny LLaVA (CLIP vision tower + Llama) and its processor
    prompting  prompts, batches with answer masks, teacher-forced predictions
    pretrain   the deterministic pretraining curriculum and the model cache
    plots      one plotting style for every figure
"""

__version__ = "0.1.0"
