"""asam_lib: the library behind the ASAM companion notebooks.

Modules, one idea each:
    paths      absolute paths of the repository (figures, results, cache, checkpoint)
    cache      artefacts shared by processes: built under a lock, written atomically
    seeding    one ``seed_everything`` and explicit generators
    render     the procedural image renderer of the embedded world
    world      entities, facts, question templates, splits, MMEdit export
    records    MMEdit-schema edit requests: loading and validation
    tokenizer  the word-level tokenizer of the embedded model
    model      the tiny LLaVA (CLIP vision tower + Llama) and its processor; load_pretrained for real checkpoints
    prompting  prompts, batches with answer masks, teacher-forced predictions
    pretrain   the deterministic pretraining curriculum and the model cache
    benchmark  counterfactual edit requests of the world, locality pools, MMEdit export
    units      knowledge units and their members' distances from the edit input
    architectures  the registry of supported architectures: language model, blocks, FFNs, image tokens
    hooks      module hooks that always remove themselves
    editing    the editor interface, the shared edit loop, FT-L
    lora, patch    the LoRA and Patch (T-Patcher) editors
    lar, rcsl, asam    LAR variants, the RCSL objective, the ASAM editor
    methods    the registry of methods (editor, name, colour, role) and the list of metrics
    metrics    Rel, T-Gen, I-Gen, TI-Gen, unit consistency, T-Loc, I-Loc with their protocols
    harness    edit cases, single and sequential runs, tidy tables, confidence intervals
    workers    independent jobs on worker processes; a failure names its job
    study      notebook 04's jobs
    ablations  ASAM with one ingredient changed: ablations and the sensitivity grid
    summaries  targets, ablation tables, gap closure, consistency against distance
    lar_study  notebook 02's experiments on LAR variants
    rcsl_study, rcsl_plots  notebook 03's experiments on the RCSL objective, and its figures
    playground the function behind notebook 05's widgets: one edit, measured before and after, rolled back
    precision  half-precision models edited with float32 numerics (solve, SVD, losses, Adam)
    mmedit_study  a resumable study on any supported checkpoint and an MMEdit-format file
    preflight  every input of the study checked before the model loads
    resume     a study folder's settings and progress files: resume you can trust
    launch     many processes on one study: shards and devices (torchrun, accelerate, SLURM arrays)
    cli        the command line: ``python -m asam_lib study ...`` and ``merge``
    parameters notebook parameters checked against their types
    notebook   a notebook's setup in one call: seed, plot style, parameter checks, provenance, logging, show
    plots      one plotting style for every figure
    provenance content hashes and the library fingerprint in figures' sidecars

The tooling around the library (notebook runners, README tables, reproducibility and browser checks,
benchmarks) lives in ``tools/``, outside the package whose code shapes the figures.
"""

__version__ = "0.1.0"
