"""Benchmarks, measured here rather than in timed tests: ``python -m tools.bench [pretraining|edits]``.

- ``pretraining``: wall time, held-out accuracies against their targets, and peak resident memory.
- ``edits``: per method, on the same cases, one torch thread, in this process: wall seconds per edit (median over
  ``--repeats`` rounds over the cases, the methods interleaved), optimiser steps and forward passes per edit (exact
  counts), and the time relative to Patch, ASAM's base editor (the paper's claim as a threshold: <= 3x,
  :data:`asam_lib.evaluation.summaries.TARGETS`). Written to ``results/bench/edit_cost.csv`` with a sidecar naming the
  machine (CPU, cores, threads, torch, date, commit); plus a LAR call at the defaults and its growth with K and T,
  printed.

A forward pass is one pass through the edit block in an editor's training loop (a batch of K variants counts once;
LAR's search is included), and a step one optimiser step: :class:`asam_lib.editors.editing.EditHandle`'s counts, the
same as notebook 04's ``04_steps.csv``. The counts are the first round's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from asam_lib.common import paths, provenance
from asam_lib.common.progress import tqdm
from asam_lib.data.pretrain import TARGETS, pretrain
from asam_lib.evaluation.harness import save_table
from tools.kernel_sets import cpu_model

EDIT_COST = "edit_cost"  # results/bench/edit_cost.csv and its sidecar edit_cost.json
BASE = "Patch"  # the editor ASAM's time is measured against


def peak_memory_gb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def bench_pretraining() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        paths.CACHE = Path(tmp) / "cache"  # cold start: images are rendered, nothing is reused
        start = time.perf_counter()
        out = pretrain(out_dir=Path(tmp) / "model")
        seconds = time.perf_counter() - start
        meta = json.loads((out / "asam_meta.json").read_text())
    return {
        "seconds": seconds,
        "peak_gb": peak_memory_gb(),
        "accuracy": meta["accuracy"],
        "vision": meta["vision_accuracy"],
    }


def git_commit() -> str:
    """The checkout's commit, with ``-dirty`` when tracked files differ from it ("unknown" outside git)."""
    try:
        git = ["git", "-C", str(paths.REPO_ROOT)]
        commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
        dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit.strip() + ("-dirty" if dirty.stdout.strip() else "")


def machine(note: str = "") -> dict:
    """Where a timing ran: CPU model, logical cores, torch version and threads, UTC date, commit, and ``note``."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "note": note,
    }


@dataclass(frozen=True)
class EditTiming:
    """One method's edits of one task's cases: ``seconds`` per edit of each pass over the cases (one per repeat),
    and the first round's optimiser ``steps`` and ``forward_passes`` summed over its ``n_edits`` edits."""

    task: str
    method: str
    seconds: tuple[float, ...]
    steps: int
    forward_passes: int
    n_edits: int


def edit_cost_table(timings: Sequence[EditTiming]) -> pd.DataFrame:
    """One row per task and method: ``seconds_per_edit`` (median over repeats), ``steps_per_edit`` and
    ``forward_passes_per_edit`` (exact counts over the edits), ``n_edits``, ``repeats``, and
    ``seconds_vs_patch``, the time per edit relative to :data:`BASE`'s on the same task."""
    table = pd.DataFrame(
        [
            {
                "task": t.task,
                "method": t.method,
                "seconds_per_edit": statistics.median(t.seconds),
                "steps_per_edit": t.steps / t.n_edits,
                "forward_passes_per_edit": t.forward_passes / t.n_edits,
                "n_edits": t.n_edits,
                "repeats": len(t.seconds),
            }
            for t in timings
        ]
    )
    base = table[table.method == BASE].set_index("task").seconds_per_edit
    missing = sorted(set(table.task) - set(base.index))
    if missing:
        raise ValueError(f"edit_cost_table: no {BASE} timing for task(s) {missing}; time {BASE} with the others")
    return table.assign(seconds_vs_patch=table.seconds_per_edit / table.task.map(base))


def write_edit_cost(table: pd.DataFrame, where: dict, folder: Path | None = None) -> Path:
    """Write ``table`` as ``edit_cost.csv`` (rounded and sorted, :func:`asam_lib.evaluation.harness.save_table`) in
    ``folder`` (default ``results/bench``) and its sidecar ``edit_cost.json``: the file's hash and ``where``
    (:func:`machine`)."""
    path = save_table(table, EDIT_COST, folder or paths.RESULTS / "bench")
    provenance.write_sidecar([path], {"table": EDIT_COST, "made_by": "make bench-edits", "machine": where})
    return path


def time_pass(model, encoder, cases, editor, seed: int) -> tuple[float, int, int]:
    """Edit every case with ``editor`` and roll it back: (seconds per edit, optimiser steps summed, forward passes
    through the edit block in the training loop summed: :attr:`asam_lib.editors.editing.EditHandle.forward_passes`,
    as notebook 04 counts them)."""
    steps = passes = 0
    start = time.perf_counter()
    for case in cases:
        with editor.edit(model, encoder, case.request, seed=seed) as handle:
            steps += handle.steps
            passes += handle.forward_passes  # every editor of the registry counts them
    seconds = (time.perf_counter() - start) / len(cases)
    return seconds, steps, passes


def time_methods(model, encoder, cases, editors: dict, task: str, repeats: int, seed: int) -> list[EditTiming]:
    """:func:`time_pass` of every editor, ``repeats`` rounds with the editors interleaved (a burst of load on a
    shared machine falls on one round of every method rather than on all rounds of one), and the counts of the
    first round."""
    rounds = [
        {name: time_pass(model, encoder, cases, editor, seed) for name, editor in editors.items()}
        for _ in tqdm(range(repeats), desc=f"timing {task} edits, rounds")
    ]
    return [
        EditTiming(task, name, tuple(r[name][0] for r in rounds), *rounds[0][name][1:], len(cases)) for name in editors
    ]


def bench_edits(n_edits: int = 12, repeats: int = 3, seed: int = 0, folder: Path | None = None, note: str = "") -> Path:
    """Time every method's edits on both tasks (:func:`time_methods`), write :func:`edit_cost_table` with its
    machine (:func:`write_edit_cost`), print ASAM's ratio to Patch per task, then the LAR call's growth with K and
    T. Returns the table's path."""
    from asam_lib.data.pretrain import base_model_folder
    from asam_lib.data.world import World
    from asam_lib.editors import methods
    from asam_lib.editors.editing import edited_forward, joint_embeddings, unedited_forward
    from asam_lib.editors.patch import Patch
    from asam_lib.evaluation.harness import HarnessConfig, build_cases
    from asam_lib.evaluation.summaries import TARGETS as CLAIM
    from asam_lib.experiments.lar_study import lar_call_times
    from asam_lib.mllm.model import load_model
    from asam_lib.mllm.prompting import PromptEncoder

    torch.set_num_threads(1)
    where = machine(note)  # the commit and date as the timing starts
    model, processor = load_model(base_model_folder())
    encoder = PromptEncoder(processor)
    timings = []
    for task in ("vqa", "caption"):
        cases = build_cases(model, encoder, World(), HarnessConfig(task=task, n_edits=n_edits), seed=seed)
        timings += time_methods(model, encoder, cases, methods.editors(), task, repeats, seed)
    table = edit_cost_table(timings)
    path = write_edit_cost(table, where, folder)
    print(table.round(3).to_string(index=False))
    for task, row in table[table.method == "ASAM"].set_index("task").iterrows():
        print(f"{task}: ASAM / {BASE} = {row.seconds_vs_patch:.2f}x (budget {CLAIM.max_time_ratio:g}x)")
    print(f"written: {path} and its sidecar")
    case = cases[0]
    batch = encoder.batch([case.request.anchor_item])
    embeds = joint_embeddings(model, batch)
    with Patch().edit(model, encoder, case.request, seed=seed) as handle:
        edited, unedited = edited_forward(model), unedited_forward(model, handle.originals)
        calls = [lar_call_times(model, edited, unedited, embeds, batch, (1, 4, 16), (1, 4, 8), seed) for _ in range(3)]
    print("milliseconds per LAR call (rows: K variants, columns: T PGD steps; mean of 3 calls):")
    print((sum(calls) / len(calls)).round(0).to_string())
    return path


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", choices=["pretraining", "edits"], default="pretraining")
    parser.add_argument("--n-edits", type=positive_int, default=12, help="edits: cases per task")
    parser.add_argument("--repeats", type=positive_int, default=3, help="edits: passes over the cases (median)")
    parser.add_argument("--note", default="", help="edits: a note for the sidecar (e.g. other jobs ran)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.what == "edits":
        bench_edits(args.n_edits, args.repeats, note=args.note)
        return
    r = bench_pretraining()
    print(f"pretraining (cold, images rendered): {r['seconds'] / 60:.1f} min, peak memory {r['peak_gb']:.2f} GB")
    for name, value in r["accuracy"].items():
        target = TARGETS.get(name)
        mark = "" if target is None else f"  (target >= {target:.0%}: {'met' if value >= target else 'MISSED'})"
        print(f"  {name:28s} {value:7.2%}{mark}")
    print("  vision heads on held-out images: " + ", ".join(f"{k} {v:.2%}" for k, v in r["vision"].items()))


if __name__ == "__main__":
    main()
