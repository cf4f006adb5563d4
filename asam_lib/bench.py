"""Benchmarks, measured here rather than in timed tests: ``python -m asam_lib.bench``.

Pretraining: wall time, held-out accuracies against their targets, and peak resident memory.
"""

from __future__ import annotations

import json
import resource
import tempfile
import time
from pathlib import Path

import torch

from asam_lib import paths
from asam_lib.pretrain import TARGETS, pretrain


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
    return {"seconds": seconds, "peak_gb": peak_memory_gb(), "accuracy": meta["accuracy"], "vision": meta["vision_accuracy"]}


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    r = bench_pretraining()
    print(f"pretraining (cold, images rendered): {r['seconds'] / 60:.1f} min, peak memory {r['peak_gb']:.2f} GB")
    for name, value in r["accuracy"].items():
        target = TARGETS.get(name)
        mark = "" if target is None else f"  (target >= {target:.0%}: {'met' if value >= target else 'MISSED'})"
        print(f"  {name:28s} {value:7.2%}{mark}")
    print("  vision heads on held-out images: " + ", ".join(f"{k} {v:.2%}" for k, v in r["vision"].items()))


if __name__ == "__main__":
    main()
