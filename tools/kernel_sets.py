"""Run the suite, or regenerate the part of the results that drifts, the way another CPU would.

CPUs round differently: PyTorch's ATen, oneDNN and MKL each pick their kernels by the instruction set they find,
so the same seed gives the same numbers on one kind of CPU but not bit for bit on another (an AMD EPYC and an
Intel Xeon, both with AVX-512, already differ). On one machine the choices can be forced down to what older or
other CPUs run (:data:`KERNEL_SETS`), which is how a float knife edge shows up before it meets another CPU:

    python -m tools.kernel_sets test                  (make test-isa)   unit tests under each forced kernel set
    python -m tools.kernel_sets drift                 (make kernel-drift)  notebook 04's sequential study under
                                                                        each kernel set, compared, claims checked

``drift`` reruns notebook 04's sequential study (:func:`asam_lib.experiments.study.sequential_study_jobs`, at the sizes
``notebooks/figures.yaml`` gives notebook 04), the part of the results that moves most between CPUs (800
edits applied one after another: a rounding difference early in a run is carried through every later edit).
For each kernel set it writes a copy of ``results/`` with the three sequential tables replaced by that run's
(``build/kernel-drift/<set>/results/``), runs ``tests/test_claims.py`` on that copy, and compares each table
with the committed one at the README's rounding (3 decimals). The comparison goes to
``results/cross_cpu/kernel_drift.csv`` (with a sidecar naming the commit, the CPU and the kernel sets), from
which the README's reproducibility section is written.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from asam_lib.common import paths

KERNEL_SETS: dict[str, dict[str, str]] = {
    # what this CPU picks by itself
    "native": {},
    # AVX2 everywhere: what a CPU without AVX-512 (many AMD Zen 2/3 and older Intel machines) runs
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    # no vectorised ATen kernels, oneDNN at SSE4.1, MKL in its conditional-numerical-reproducibility mode
    "default": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "COMPATIBLE"},
}
SEQUENTIAL_TABLES = ("04_sequential", "04_sequential_summary", "04_sequential_targets")
README_DECIMALS = 3
DRIFT_TABLE = paths.RESULTS / "cross_cpu" / "kernel_drift.csv"
VALUE_COLUMNS = ("value", "mean", "ci_low", "ci_high", "measured")


def environment(kernel_set: str) -> dict[str, str]:
    """This process's environment with ``kernel_set``'s switches set (and the others' removed)."""
    if kernel_set not in KERNEL_SETS:
        raise SystemExit(f"unknown kernel set {kernel_set!r}: choose from {', '.join(KERNEL_SETS)}")
    switches = {name for values in KERNEL_SETS.values() for name in values}
    env = {k: v for k, v in os.environ.items() if k not in switches}
    return env | KERNEL_SETS[kernel_set]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what :mod:`platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def run_tests(kernel_sets: list[str], pytest_args: list[str]) -> int:
    """The unit tests once under each kernel set; 0 if every run passed."""
    failed = []
    for name in kernel_sets:
        print(f"\n=== unit tests, kernel set {name}: {KERNEL_SETS[name] or 'as the CPU picks'} ===", flush=True)
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", *pytest_args]
        if subprocess.run(command, env=environment(name), cwd=paths.REPO_ROOT).returncode:
            failed.append(name)
    print(f"\nunit tests under {len(kernel_sets)} kernel set(s); failed under: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


def figures_parameters(notebook: str = "04_edit_and_evaluate") -> dict:
    """The parameters ``make figures`` passes to ``notebook``."""
    return yaml.safe_load((paths.NOTEBOOKS / "figures.yaml").read_text())[notebook]


def sequential_tables(committed: Path, workers: int) -> dict[str, pd.DataFrame]:
    """Notebook 04's sequential study, rerun in this process's kernels: its three tables as notebook 04 saves them
    (the calibrated option's targets are judged with the committed single-edit comparison, which they read)."""
    from asam_lib.evaluation.harness import tidy
    from asam_lib.experiments.study import run_jobs, sequential_study_jobs, split_timings
    from asam_lib.experiments.study_tables import sequential_tables as summarised

    p = figures_parameters()
    jobs = sequential_study_jobs(
        p["seeds"], p["n_sequential"], p["n_sequential_every_seed"], p["checkpoints"], p["firing_probe"]
    )
    rows, _ = run_jobs(jobs, workers=workers)
    sequential = tidy(split_timings(rows)[0])
    paired = pd.read_csv(committed / "04_ablations_paired.csv")
    summary, targets = summarised(sequential, paired, p["checkpoints"], p["n_sequential_every_seed"], "ASAM calibrated")
    return dict(zip(SEQUENTIAL_TABLES, (sequential, tidy(summary), tidy(targets))))


def largest_moves(committed: Path, regenerated: Path, tables=SEQUENTIAL_TABLES) -> pd.DataFrame:
    """Per table: rows compared, rows whose value moves at the README's rounding, the largest move there, and the
    row where it is. Rows are matched on every non-value column."""
    out = []
    for name in tables:
        a, b = (pd.read_csv(folder / f"{name}.csv") for folder in (committed, regenerated))
        values = [c for c in a.columns if _is_value(a[c])]
        keys = [c for c in a.columns if c not in values and c not in VALUE_COLUMNS and c != "met"]
        numeric_keys = [c for c in keys if pd.api.types.is_numeric_dtype(a[c])]  # T: 50.0 in one, 50 in another
        a, b = a.astype(dict.fromkeys(numeric_keys, float)), b.astype(dict.fromkeys(numeric_keys, float))
        if a[keys].duplicated().any():  # e.g. one row per unit member with nothing that names the member
            out.append(
                {
                    "table": name,
                    "rows": len(a),
                    "rows_unmatched": 0,
                    "rows_moved": None,
                    "largest_move": None,
                    "where": "not compared: no columns name a single row",
                    "verdicts_changed": 0,
                }
            )
            continue
        merged = a.merge(b, on=keys, suffixes=("_committed", "_here"), how="outer", indicator=True)
        unmatched = int((merged["_merge"] != "both").sum())
        merged = merged[merged["_merge"] == "both"]
        moves = (
            pd.concat(
                [
                    (merged[f"{c}_here"].round(README_DECIMALS) - merged[f"{c}_committed"].round(README_DECIMALS)).abs()
                    for c in values
                ],
                axis=1,
            ).max(axis=1)
            if values
            else pd.Series(0.0, index=merged.index)
        )
        worst = merged.loc[moves.idxmax()] if len(moves) and moves.max() > 0 else None
        where = (
            ", ".join(f"{k} {worst[k]}" for k in [k for k in keys if k in NAMING] or keys[:3])
            if worst is not None
            else ""
        )
        verdicts = int((merged["met_committed"] != merged["met_here"]).sum()) if "met_committed" in merged else 0
        out.append(
            {
                "table": name,
                "rows": len(merged),
                "rows_unmatched": unmatched,
                "rows_moved": int((moves > 0).sum()),
                "largest_move": round(float(moves.max()) if len(moves) else 0.0, README_DECIMALS),
                "where": where,
                "verdicts_changed": verdicts,
            }
        )
    return pd.DataFrame(out)


NAMING = ("method", "comparison", "variants", "T", "eps", "metric", "target")  # what "where" says of a row
KEY_FLOATS = ("T", "edit_index", "eps", "distance", "seed")  # float columns that name a row rather than measure it


def _is_value(column: pd.Series) -> bool:
    """A measured column: a float column other than those of :data:`KEY_FLOATS`, or one of :data:`VALUE_COLUMNS`
    that holds numbers (every other column names the row)."""
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return False
    return column.name in VALUE_COLUMNS or (pd.api.types.is_float_dtype(column) and column.name not in KEY_FLOATS)


def claims_hold(results: Path) -> bool:
    """Whether ``tests/test_claims.py`` passes on the tables in ``results``."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_claims.py"]
    env = dict(os.environ, ASAM_RESULTS=str(results))
    return subprocess.run(command, env=env, cwd=paths.REPO_ROOT).returncode == 0


def drift(kernel_sets: list[str], out: Path, workers: int, table: Path, reuse: bool = False) -> int:
    """Rerun the sequential study under each kernel set, compare, check the claims; write ``table``. ``reuse``:
    take each set's sequential tables from an earlier run under ``out`` and compare them with today's ``results/``
    (after ``make figures`` has rewritten it) instead of rerunning."""
    committed = paths.RESULTS
    rows = []
    for name in kernel_sets:
        folder = out / name / "results"
        saved = {t: pd.read_csv(folder / f"{t}.csv") for t in SEQUENTIAL_TABLES} if reuse else {}
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(committed, folder, ignore=shutil.ignore_patterns("cross_cpu"))
        seconds = float("nan")
        if reuse:
            for t, frame in saved.items():
                frame.to_csv(folder / f"{t}.csv", index=False)
        else:
            print(
                f"\n=== sequential study, kernel set {name}: {KERNEL_SETS[name] or 'as the CPU picks'} ===", flush=True
            )
            start = time.perf_counter()
            command = [sys.executable, "-m", "tools.kernel_sets", "sequential", "--into", str(folder)]
            run = [*command, "--workers", str(workers)]
            subprocess.run(run, env=environment(name), cwd=paths.REPO_ROOT, check=True)
            seconds = time.perf_counter() - start
        holds = claims_hold(folder)
        moves = largest_moves(committed, folder).assign(kernel_set=name, claims_hold=holds, seconds=seconds)
        print(moves.to_string(index=False), flush=True)
        rows.append(moves)
    result = pd.concat(rows, ignore_index=True)
    if table.exists():  # rows of other labels (e.g. a whole run compared by compare()) stay
        kept = pd.read_csv(table)
        result = pd.concat([kept[~kept.kernel_set.isin(kernel_sets)], result], ignore_index=True)
    table.parent.mkdir(parents=True, exist_ok=True)
    result.round({"seconds": 0}).to_csv(table, index=False)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=paths.REPO_ROOT)
    fields = {
        "made_by": "python -m tools.kernel_sets drift (make kernel-drift)",
        "commit": commit.stdout.strip(),
        "cpu": cpu_model(),
        "compared_with": "results/ as committed at that commit",
        "date": time.strftime("%Y-%m-%d"),
    }
    update_sidecar(table, fields, {"kernel_sets": {name: KERNEL_SETS[name] for name in kernel_sets}})
    ran = result[result.kernel_set.isin(kernel_sets)].groupby("kernel_set").claims_hold.first()
    print(f"\n{table}: the claims hold under {int(ran.sum())} of {len(kernel_sets)} kernel set(s)")
    return 0 if result.claims_hold.all() else 1


def update_sidecar(table: Path, fields: dict, merged: dict[str, dict]) -> None:
    """Write ``table``'s sidecar ``<table>.json``: its earlier content, ``fields`` set, and each dict of ``merged``
    merged into the one of that name (so drift's and compare's rows each keep their description)."""
    path = table.with_suffix(".json")
    sidecar = (json.loads(path.read_text()) if path.exists() else {}) | {"table": table.stem, **fields}
    for name, entries in merged.items():
        sidecar.setdefault(name, {}).update(entries)
    path.write_text(json.dumps(sidecar, indent=1) + "\n")


def compare(old: Path, new: Path, label: str, table: Path) -> int:
    """Compare every table of ``new`` with the same table in ``old`` (a whole run, e.g. ``make figures`` on this
    CPU against the tables another CPU committed), check the claims on ``new``, and put the rows in ``table``
    under ``label`` (replacing that label's rows)."""
    names = sorted(p.stem for p in old.glob("*.csv") if (new / p.name).exists())
    moves = largest_moves(old, new, tables=names).assign(kernel_set=label, claims_hold=claims_hold(new), seconds=None)
    print(moves.to_string(index=False))
    if table.exists():
        kept = pd.read_csv(table)
        moves = pd.concat([kept[kept.kernel_set != label], moves], ignore_index=True)
    table.parent.mkdir(parents=True, exist_ok=True)
    moves.to_csv(table, index=False)
    whole_run = f"every table of {new} against {old}, on {cpu_model()}"
    update_sidecar(table, {}, {"kernel_sets": {label: KERNEL_SETS.get(label, {})}, "whole_runs": {label: whole_run}})
    return 0 if moves.claims_hold.all() else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    test = sub.add_parser("test", help="the unit tests under each kernel set")
    test.add_argument("--sets", nargs="+", default=["avx2", "default"], choices=list(KERNEL_SETS))
    test.add_argument("pytest_args", nargs=argparse.REMAINDER, help="passed on to pytest")
    run = sub.add_parser("drift", help="notebook 04's sequential study under each kernel set, compared")
    run.add_argument("--sets", nargs="+", default=["avx2", "default"], choices=list(KERNEL_SETS))
    run.add_argument("--out", type=Path, default=paths.BUILD / "kernel-drift")
    run.add_argument("--table", type=Path, default=DRIFT_TABLE)
    run.add_argument("--workers", type=int, default=2)
    run.add_argument("--reuse", action="store_true", help="compare the sequential tables of an earlier run under --out")
    both = sub.add_parser("compare", help="every table of one run against another's, under a label")
    both.add_argument("--old", type=Path, required=True, help="results folder to compare with (e.g. another CPU's)")
    both.add_argument("--new", type=Path, default=paths.RESULTS)
    both.add_argument("--label", required=True, help='the kernel-set column of these rows, e.g. "native"')
    both.add_argument("--table", type=Path, default=DRIFT_TABLE)
    one = sub.add_parser("sequential", help="(internal) the sequential study in this process's kernels")
    one.add_argument("--into", type=Path, required=True, help="a results folder whose sequential tables to replace")
    one.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    if args.command == "test":
        return run_tests(args.sets, args.pytest_args)
    if args.command == "drift":
        return drift(args.sets, args.out, args.workers, args.table, args.reuse)
    if args.command == "compare":
        return compare(args.old, args.new, args.label, args.table)
    for name, table in sequential_tables(args.into, args.workers).items():
        table.to_csv(args.into / f"{name}.csv", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
