"""asam_lib: the library behind the ASAM companion notebooks.

Its folders are its layers, lowest first; a module imports only from its own layer and the ones below
(``tests/test_layers.py`` checks it). Each folder's ``__init__`` says what it holds.

    common       paths, cache, seeding, progress, provenance, notebook parameters
    mllm         the model whatever its checkpoint: architectures, the embedded LLaVA, prompts, forward passes
    data         the embedded world, records and formats, the benchmark, knowledge units, cases
    editors      the editor interface, FT-L, LoRA, Patch, GRACE, LAR, RCSL, ASAM and their registry
    evaluation   metrics, the harness that runs editors on cases, summaries with intervals
    experiments  the studies of the notebooks and on any checkpoint, the ablation and sensitivity catalogues
    figures      the plotting style and the playground
    frontends    the command line and EasyEdit's front door

The tooling around the library (notebook runners, README tables, reproducibility and browser checks,
benchmarks) lives in ``tools/``, outside the package whose code shapes the figures.
"""

__version__ = "0.1.0"

LAYERS = ("common", "mllm", "data", "editors", "evaluation", "experiments", "figures", "frontends")
