"""Run the numbered notebooks headless with papermill: ``python -m asam_lib.run_notebooks NB...``.

Each notebook runs with kernel ``python3``, absolute paths, a per-cell timeout and the full-run
parameters of ``notebooks/figures.yaml`` (the notebooks' own defaults are the quick configuration that
nbval runs). Executed copies go to ``build/executed/``; figures and results are written by the notebooks
themselves. A failing notebook stops the run with the notebook and the cell named; at the end a summary
table says what ran and how long it took.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import papermill as pm
import yaml

from asam_lib import paths

CELL_TIMEOUT_S = 1800


def full_run_parameters(notebook: Path) -> dict:
    """The parameters ``make figures`` passes to ``notebook`` (from notebooks/figures.yaml)."""
    config = yaml.safe_load((paths.NOTEBOOKS / "figures.yaml").read_text()) or {}
    return dict(config.get(notebook.stem, {}))


def run(notebook: Path) -> float:
    """Execute one notebook; return its wall time in seconds."""
    out = paths.ensure(paths.BUILD / "executed") / notebook.name
    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(notebook),
            str(out),
            parameters=full_run_parameters(notebook),
            kernel_name="python3",
            cwd=str(paths.NOTEBOOKS),
            execution_timeout=CELL_TIMEOUT_S,
            progress_bar=False,
        )
    except pm.PapermillExecutionError as err:
        raise SystemExit(
            f"\n{notebook.name} failed in cell {err.exec_count} ({err.ename}: {err.evalue}).\n"
            f"The partly executed notebook is {out}."
        ) from None
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
    timings = []
    for nb in args.notebooks:
        print(f"running {nb.name} ...", flush=True)
        timings.append((nb.name, run(nb.resolve())))
    figures = sorted(p.name for p in paths.FIGURES.glob("*.png"))
    print("\nnotebook                         seconds")
    for name, seconds in timings:
        print(f"{name:32s} {seconds:7.0f}")
    print(f"{'total':32s} {sum(s for _, s in timings):7.0f}")
    print(f"\n{len(figures)} figures in {paths.FIGURES}: {', '.join(figures)}")


if __name__ == "__main__":
    main(sys.argv[1:])
