"""Benchmarks, measured here rather than in timed tests: ``python -m tools.bench [pretraining|edits]``.

- ``pretraining``: wall time, held-out accuracies against their targets, and peak resident memory.
- ``edits``: seconds per edit of every method on the same cases, one torch thread, in this process, and
  ASAM's time relative to its base editor (the issue's budget: <= 3x); plus a LAR call at the defaults and
  its growth with K and T.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import torch

from asam_lib.common import paths
from asam_lib.data.pretrain import TARGETS, pretrain


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


def bench_edits(n_edits: int = 12, seed: int = 0) -> None:
    from asam_lib.common.seeding import torch_generator
    from asam_lib.data.pretrain import base_model_folder
    from asam_lib.data.world import World
    from asam_lib.editors import methods
    from asam_lib.editors.editing import edited_forward, joint_embeddings, unedited_forward
    from asam_lib.editors.lar import LARConfig, adversarial_variants
    from asam_lib.editors.patch import Patch
    from asam_lib.evaluation.harness import HarnessConfig, build_cases
    from asam_lib.mllm.model import load_model
    from asam_lib.mllm.prompting import PromptEncoder

    torch.set_num_threads(1)
    model, processor = load_model(base_model_folder())
    encoder = PromptEncoder(processor)
    for task in ("vqa", "caption"):
        cases = build_cases(model, encoder, World(), HarnessConfig(task=task, n_edits=n_edits), seed=seed)
        per_edit = {}
        for name, editor in methods.editors().items():
            start = time.perf_counter()
            for case in cases:
                editor.edit(model, encoder, case.request, seed=seed).restore()
            per_edit[name] = (time.perf_counter() - start) / len(cases)
        print(
            f"{task}: seconds per edit over {len(cases)} edits: "
            + ", ".join(f"{k} {v:.3f}" for k, v in per_edit.items())
            + f"; ASAM / Patch = {per_edit['ASAM'] / per_edit['Patch']:.2f}x (budget 3x)"
        )
    case = cases[0]
    batch = encoder.batch([case.request.anchor_item])
    embeds = joint_embeddings(model, batch)
    handle = Patch().edit(model, encoder, case.request, seed=seed)
    edited, unedited = edited_forward(model), unedited_forward(model, handle.originals)
    print("milliseconds per LAR call (K variants, T PGD steps):")
    for k in (1, 4, 16):
        row = []
        for steps in (1, 4, 8):
            start = time.perf_counter()
            for _ in range(3):
                adversarial_variants(
                    model, edited, unedited, embeds, batch, LARConfig(k=k, steps=steps), torch_generator(seed, "bench")
                )
            row.append(f"T={steps}: {1000 * (time.perf_counter() - start) / 3:6.0f}")
        print(f"  K={k:2d}  " + "  ".join(row))
    handle.restore()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", choices=["pretraining", "edits"], default="pretraining")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.what == "edits":
        bench_edits()
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
