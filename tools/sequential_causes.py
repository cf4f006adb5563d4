"""Sequential editing beyond notebook 04: which ingredient of ASAM causes its locality leak, and the development
edits its calibrated option was chosen on.

    python -m tools.sequential_causes                (--split report; make sequential-causes runs both)
    python -m tools.sequential_causes --split dev

Both run the sequential study of notebook 04 (VQA, standard tier): T edits without rollback, every earlier edit
re-evaluated at each checkpoint, seed ``--seeds[i]`` running ``--edits[i]`` edits.

``--split report`` (:func:`cause_editors`): each setting changes one ingredient of paper-faithful ASAM (LAR replaced
by random variants, no RCSL, the patch keys and biases frozen, a smaller radius, only the question's tokens moved),
on the same cases per seed as notebook 04's sequential runs (3 seeds, the first to T = 100); paired differences to
ASAM. ``--split dev`` (:func:`calibration_editors`): the development edits (every development case the base model
knows, 48, on 3 seeds) on which :data:`asam_lib.editors.asam.SEQUENTIAL_OPTION` was chosen: Patch, paper-faithful ASAM,
the option and the calibration settings it was chosen among; paired differences to Patch.

Each writes the mean per (setting, T, metric) with a 95% interval from the crossed bootstrap over seeds and edits,
and each setting's paired difference to the reference on the same (seed, edit, T), as
``results/<table>_summary.csv`` and ``results/<table>_paired.csv`` (:data:`STUDIES`) with a provenance sidecar that
names this command (:func:`asam_lib.common.provenance.command_source`): ``make test`` reports them stale once
``asam_lib`` or this file changes, until ``make sequential-causes`` rewrites them. The per-edit rows (about
3 MB per study) go to ``build/sequential_causes/``. ``--out DIR`` writes all three into DIR instead (an
exploratory run; ``results/`` untouched).

Not part of ``make figures``: at their default sizes the two are 1,200 and 720 sequential edits (docs/development.md
gives their time).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from asam_lib.common import paths, provenance
from asam_lib.editors.editing import Editor
from asam_lib.evaluation.harness import save_table
from asam_lib.evaluation.summaries import paired_differences, primary_rows, summary_over_edits
from asam_lib.experiments.ablations import CALIBRATION_CANDIDATES, SEQUENTIAL_CAUSES, editors
from asam_lib.experiments.study import Job, run_jobs, split_timings

TOOL = "tools/sequential_causes.py"
RERUN = "make sequential-causes"
SHOWN = ["Rel", "TI-Gen", "T-Loc", "I-Loc"]


def cause_editors() -> dict[str, Editor]:
    """Paper-faithful ASAM (the reference) and the settings that each change one ingredient of it
    (:data:`asam_lib.experiments.ablations.SEQUENTIAL_CAUSES`)."""
    return editors(SEQUENTIAL_CAUSES)


def calibration_editors() -> dict[str, Editor]:
    """Patch (the reference), paper-faithful ASAM, this companion's option for sequential editing and the
    calibrations it was chosen among (:data:`asam_lib.experiments.ablations.CALIBRATION_CANDIDATES`)."""
    return editors(CALIBRATION_CANDIDATES)


@dataclass(frozen=True)
class Study:
    """One ``--split`` of this command: the world's edits it draws (``split``), its settings, the one every other
    is paired with, the default edits per seed and checkpoints, and the stem of its tables in ``results/``."""

    split: str
    editors: Callable[[], dict[str, Editor]]
    reference: str
    edits: tuple[int, ...]
    checkpoints: tuple[int, ...]
    table: str


STUDIES = {
    "report": Study("report", cause_editors, "ASAM", (100, 50, 50), (10, 25, 50, 100), "sequential_causes"),
    "dev": Study("dev", calibration_editors, "Patch", (48, 48, 48), (10, 25, 48), "sequential_calibration_dev"),
}


def jobs(seeds: list[int], edits: list[int], checkpoints: list[int], settings: list[str], split="report") -> list[Job]:
    """One sequential job per (seed, setting) of ``STUDIES[split]``, its reference included; seed ``seeds[i]``
    runs ``edits[i]`` edits."""
    study = STUDIES[split]
    editors = study.editors()
    unknown = sorted(set(settings) - set(editors))
    if unknown:
        raise SystemExit(f"unknown setting(s) {unknown} for --split {split}; choose from {sorted(editors)}")
    if len(edits) != len(seeds):
        raise SystemExit(f"--edits gives {len(edits)} counts for {len(seeds)} seeds: give one per seed")
    return [
        Job(
            f"sequential {split}",
            "vqa",
            seed,
            n,
            {name: editors[name]},
            mode="sequential",
            checkpoints=tuple(t for t in checkpoints if t <= n),
            split=split,
            hard_strength=0.0,
        )
        for seed, n in zip(seeds, edits)
        for name in [study.reference, *[s for s in settings if s != study.reference]]
    ]


def summarise(rows: pd.DataFrame, reference: str = "ASAM") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(means with intervals per setting, T and metric; paired differences of each setting to ``reference``)."""
    primary = primary_rows(rows)
    summary = summary_over_edits(primary, by=("method", "T", "metric"))
    pairs = [(name, reference) for name in primary.method.unique() if name != reference]
    paired = paired_differences(primary, pairs, by=("T", "metric")) if pairs else pd.DataFrame()
    return summary, paired


def check_edits(rows: pd.DataFrame, seeds: list[int], edits: list[int], split: str) -> None:
    """Every seed reached its last checkpoint: a split with fewer edits than asked for is an error naming it."""
    reached = rows.groupby("seed")["case"].nunique()
    short = [(s, n, int(reached.get(s, 0))) for s, n in zip(seeds, edits) if reached.get(s, 0) < n]
    if short:
        seed, asked, found = short[0]
        raise SystemExit(f"--edits asks seed {seed} for {asked} edits; the {split} split has {found}: ask for fewer")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=sorted(STUDIES), default="report", help="which study (module docstring)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--edits", type=int, nargs="+", help="edits per seed, in order (default: the split's)")
    parser.add_argument("--checkpoints", type=int, nargs="+", help="T values (default: the split's)")
    parser.add_argument("--settings", nargs="+", help="settings besides the reference (default: all of the split's)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, help="an exploratory run's folder (default: results/ and build/)")
    args = parser.parse_args(argv)
    study = STUDIES[args.split]
    edits, checkpoints = args.edits or list(study.edits), args.checkpoints or list(study.checkpoints)
    settings = args.settings or [s for s in study.editors() if s != study.reference]
    todo = jobs(args.seeds, edits, checkpoints, settings, args.split)
    start = time.perf_counter()
    rows, _ = split_timings(run_jobs(todo, workers=args.workers)[0])
    check_edits(rows, args.seeds, edits, args.split)
    summary, paired = summarise(rows, study.reference)
    arguments = {"split": args.split, "seeds": args.seeds, "edits": edits, "checkpoints": checkpoints}
    source = provenance.command_source(TOOL, {**arguments, "settings": settings}, RERUN)
    tables = args.out or paths.RESULTS
    save_table(summary, f"{study.table}_summary", tables, source)
    save_table(paired, f"{study.table}_paired", tables, source)
    save_table(rows, f"{study.table}_rows", args.out or paths.BUILD / "sequential_causes", source)
    means = summary[summary.metric.isin(SHOWN)].pivot_table(index=["T", "method"], columns="metric", values="mean")
    print(f"{len(todo)} sequential runs in {time.perf_counter() - start:.0f} s; tables {study.table}_* in {tables}")
    print("\nmean over seeds and edits:\n" + means[SHOWN].round(3).to_string())
    if len(paired):
        shown = paired[paired.metric.isin(SHOWN)].assign(
            cell=lambda t: t.apply(lambda r: f"{r.mean_diff:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]", axis=1)
        )
        table = shown.pivot_table(index=["T", "comparison"], columns="metric", values="cell", aggfunc="first")
        print(f"\npaired difference to {study.reference} [95% CI over seeds and edits]:\n" + table[SHOWN].to_string())


if __name__ == "__main__":
    main(sys.argv[1:])
