# asam-companion. Recipes call the environment's own Python (make cannot activate an environment).
# On a fresh clone, `make figures` and `make test` are the whole set-up: both create .venv if missing.

VENV      ?= .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
QUIET     := TQDM_DISABLE=1 HF_HUB_DISABLE_PROGRESS_BARS=1

.DEFAULT_GOAL := help
.PHONY: help env figures check-repro checked-outputs lint test test-unit test-isa test-notebooks test-browser kernel-drift stress model bench bench-edits bench-memory sequential-causes lab clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

env: $(STAMP) ## Create the local environment (.venv) from requirements.txt
	@echo "environment ready: $(PY)"

figures: $(STAMP) ## Run every notebook headless (papermill), regenerate figures/ and results/, then the README's tables
	$(QUIET) $(PY) -m tools.run_notebooks $(NOTEBOOKS)
	$(PY) -m tools.readme_tables

check-repro: $(STAMP) ## Run every notebook's quick configuration twice into build/ and compare sha256 of all files
	$(QUIET) $(PY) -m tools.repro $(NOTEBOOKS)

checked-outputs: $(STAMP) ## Store in the notebooks the outputs nbval compares (cells marked # NBVAL_CHECK_OUTPUT)
	$(QUIET) $(PY) -m tools.run_notebooks --checked-outputs $(NOTEBOOKS)

lint: $(STAMP) ## ruff: lint and format check of the library, tools, tests and notebooks (settings in pyproject.toml)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: lint test-unit test-notebooks ## The linter, unit tests, then every notebook under nbval (quick configuration)

test-unit: $(STAMP) ## Unit tests of asam_lib
	$(PY) -m pytest -q tests

test-isa: $(STAMP) ## Unit tests under the CPU kernels another CPU would pick (AVX2, and no vectorised kernels); not in make test
	$(QUIET) $(PY) -m tools.kernel_sets test

kernel-drift: $(STAMP) ## Notebook 04's sequential study under each kernel set, compared with results/ and its claims checked (about 25 min per set)
	$(QUIET) $(PY) -m tools.kernel_sets drift
	$(PY) -m tools.readme_tables

test-notebooks: $(STAMP) ## Run every notebook under nbval: assertions, and the outputs of # NBVAL_CHECK_OUTPUT cells
	$(QUIET) $(PY) -m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env --nbval-cell-timeout=900 \
		--nbval-sanitize-with notebooks/nbval_sanitize.cfg $(NOTEBOOKS)

test-browser: $(STAMP) ## Open every notebook in JupyterLab in headless Chromium, run the playground and press Edit; screenshots to build/browser/ (not in make test)
	$(QUIET) $(PY) -m tools.browser_check $(NOTEBOOKS) --edit notebooks/05_playground.ipynb

STRESS_RUNS     ?= 30
STRESS_NOTEBOOK ?= notebooks/04_edit_and_evaluate.ipynb
stress: $(STAMP) ## Run notebook 04 under nbval 30 times, each with an empty cache, and print the pass count (not in make test)
	$(PY) tools/stress.py $(STRESS_NOTEBOOK) --runs $(STRESS_RUNS)

model: $(STAMP) ## Retrain the shipped base model from scratch into checkpoints/base
	$(PY) -m asam_lib.data.pretrain --out checkpoints/base

bench: $(STAMP) ## Time pretraining and report held-out accuracy and peak memory
	$(PY) -m tools.bench pretraining

bench-edits: $(STAMP) ## Time an edit of every method (one thread): results/bench/edit_cost.csv; and a LAR call as K and T grow
	$(QUIET) $(PY) -m tools.bench edits

bench-memory: $(STAMP) ## Bytes an edit step keeps for backward, with and without the memory options, on a scaled LLaVA-1.5 shape (CPU, a few minutes)
	$(QUIET) $(PY) -m tools.bench_memory

SEQUENTIAL_SPLITS ?= report dev
sequential-causes: $(STAMP) ## Sequential study of ASAM's ablations (report edits) and of the calibrated option's choice (development edits) into results/; not in make figures
	for split in $(SEQUENTIAL_SPLITS); do $(QUIET) $(PY) -m tools.sequential_causes --split $$split || exit 1; done
	$(PY) -m tools.readme_tables

lab: $(STAMP) ## Open JupyterLab on the notebooks
	$(PY) -m jupyter lab notebooks/

clean: ## Remove executed notebooks and caches of Python (keeps .venv and .cache)
	rm -rf build .pytest_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
