"""Many processes on one study: which share of the edits this process takes, and on which device.

``torchrun --nproc_per_node N -m asam_lib study ...`` and ``accelerate launch -m asam_lib study ...`` start N
processes and tell each its ``RANK`` among ``WORLD_SIZE`` (and its ``LOCAL_RANK`` on its machine); a SLURM
array passes ``--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`` instead. Process ``i`` of ``n`` edits
every ``n``-th record from the ``i``-th into progress files of its own, on ``cuda:LOCAL_RANK`` when there is
a GPU; no process waits for another, and the last to finish writes the tables
(:func:`asam_lib.experiments.mmedit_study.run_study`), or ``python -m asam_lib merge --out DIR`` does.
"""

from __future__ import annotations

import argparse
import os

import torch


def shard(text: str) -> tuple[int, int]:
    """An argparse type: ``i/n``, this process's share of the edits (0 <= i < n)."""
    try:
        i, n = (int(t) for t in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not i/n (e.g. 0/4)") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"{text}: i/n needs 0 <= i < n")
    return i, n


def launcher_shard() -> tuple[int, int]:
    """``(RANK, WORLD_SIZE)`` as torchrun and accelerate set them, else ``(0, 1)``."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def process_device_map(device_map: str | None) -> str | None:
    """``device_map``, or under a launcher on a machine with GPUs ``cuda:LOCAL_RANK`` (one GPU per process)."""
    if device_map is None and "LOCAL_RANK" in os.environ and torch.cuda.is_available():
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device_map
