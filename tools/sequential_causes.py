"""Why paper-faithful ASAM loses locality in sequential editing: its ablations, edit after edit.

    python -m tools.sequential_causes --seeds 0 1 2 --edits 100 50 50    (make sequential-causes)

Each setting changes one ingredient of ASAM (:func:`cause_editors`: LAR replaced by random variants, no RCSL, the
patch keys and biases frozen, a smaller radius, only the question's tokens moved) and runs the sequential study of
notebook 04 with it (VQA, standard tier, the same cases per seed as notebook 04's sequential runs): T edits without
rollback, every earlier edit re-evaluated at each checkpoint. It writes, under ``--out`` (default
``build/sequential_causes/``), the per-edit rows, the mean per (setting, T, metric) with a 95% interval from the
crossed bootstrap over seeds and edits, and each setting's paired difference to ASAM on the same (seed, edit, T).

Not part of ``make figures``: at its default size (3 seeds, the first to T = 100) it is 1,200 ASAM edits, 11
minutes on 2 cores, on top of notebook 04's own sequential study. Its numbers are therefore in no README
table; the command reproduces them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from asam_lib.common import paths
from asam_lib.editors import methods
from asam_lib.editors.editing import Editor
from asam_lib.evaluation.summaries import paired_differences, primary_rows, summary_over_edits
from asam_lib.experiments.ablations import ablation_editors, sensitivity_editors
from asam_lib.experiments.study import Job, run_jobs, split_timings

REFERENCE = "ASAM"
SHOWN = ["Rel", "TI-Gen", "T-Loc", "I-Loc"]


def cause_editors() -> dict[str, Editor]:
    """Paper-faithful ASAM (the reference) and the settings that each change one ingredient of it: notebook 04's
    own ablation and sensitivity editors where it has them, and two of this study's own."""
    ablation, sensitivity = ablation_editors(), sensitivity_editors()
    return {
        **{name: ablation[name] for name in (REFERENCE, "without LAR", "without RCSL")},
        "keys frozen": methods.build(REFERENCE, {"base.settings.key_lr_scale": 0.0}),
        "eps=0.1": sensitivity["eps=0.1"],
        "question tokens only": methods.build(REFERENCE, {"lar.roles": "question"}),
    }


def jobs(seeds: list[int], edits: list[int], checkpoints: list[int], settings: list[str]) -> list[Job]:
    """One sequential job per (seed, setting); seed ``seeds[i]`` runs ``edits[i]`` edits."""
    editors = cause_editors()
    unknown = sorted(set(settings) - set(editors))
    if unknown:
        raise SystemExit(f"unknown setting(s) {unknown}; choose from {sorted(editors)}")
    if len(edits) != len(seeds):
        raise SystemExit(f"--edits gives {len(edits)} counts for {len(seeds)} seeds: give one per seed")
    return [
        Job(
            "sequential causes",
            "vqa",
            seed,
            n,
            {name: editors[name]},
            mode="sequential",
            checkpoints=tuple(t for t in checkpoints if t <= n),
            hard_strength=0.0,
        )
        for seed, n in zip(seeds, edits)
        for name in [REFERENCE, *[s for s in settings if s != REFERENCE]]
    ]


def summarise(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(means with intervals per setting, T and metric; paired differences of each setting to ASAM)."""
    primary = primary_rows(rows)
    summary = summary_over_edits(primary, by=("method", "T", "metric"))
    pairs = [(name, REFERENCE) for name in primary.method.unique() if name != REFERENCE]
    paired = paired_differences(primary, pairs, by=("T", "metric")) if pairs else pd.DataFrame()
    return summary, paired


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--edits", type=int, nargs="+", default=[100, 50, 50], help="edits per seed, in order")
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[10, 25, 50, 100])
    parser.add_argument("--settings", nargs="+", default=[s for s in cause_editors() if s != REFERENCE])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=paths.BUILD / "sequential_causes")
    args = parser.parse_args(argv)
    todo = jobs(args.seeds, args.edits, args.checkpoints, args.settings)
    start = time.perf_counter()
    rows, _ = split_timings(run_jobs(todo, workers=args.workers)[0])
    summary, paired = summarise(rows)
    out = paths.ensure(args.out)
    rows.to_csv(out / "rows.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    paired.to_csv(out / "paired.csv", index=False)
    means = summary[summary.metric.isin(SHOWN)].pivot_table(index=["T", "method"], columns="metric", values="mean")
    print(f"{len(todo)} sequential runs in {time.perf_counter() - start:.0f} s; tables in {out}")
    print("\nmean over seeds and edits:\n" + means[SHOWN].round(3).to_string())
    if len(paired):
        shown = paired[paired.metric.isin(SHOWN)].assign(
            cell=lambda t: t.apply(lambda r: f"{r.mean_diff:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]", axis=1)
        )
        table = shown.pivot_table(index=["T", "comparison"], columns="metric", values="cell", aggfunc="first")
        print("\npaired difference to ASAM [95% CI over seeds and edits]:\n" + table[SHOWN].to_string())


if __name__ == "__main__":
    main(sys.argv[1:])
