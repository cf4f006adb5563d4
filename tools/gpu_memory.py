"""Peak GPU memory and seconds per step of every editor, through the command line, on a random checkpoint with
LLaVA-1.5-7B's shapes built here (``tools/llava_shape.py``; nothing downloaded):
``python -m tools.gpu_memory --device cuda:0``.

It writes the checkpoint (initialised on the device, saved in ``--dtype``) and the embedded world's VQA records in
the MMEdit format under ``--folder``, then runs ``python -m asam_lib study`` once per editor in this process
(``--n-edits`` edits, ``--n-support`` support records, the middle layer), and prints, per editor, the peak of
``torch.cuda.max_memory_allocated()`` over its study and its seconds per optimiser step (from the study's
``edits.csv``: the edits' seconds over their steps). Options after ``--`` go to every study, e.g.
``-- --checkpoint-blocks off --loss-logits off --micro-batch 0`` for today's loop without the memory options.

``--shape tiny --device cpu`` runs the same path in seconds on a CPU (the tests do; no peak memory there).
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

import pandas as pd
import torch

from asam_lib.editors import methods
from asam_lib.frontends.cli import main as cli_main
from tools.llava_shape import SHAPES, write_assets

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def measure(
    model: Path, data: Path, out: Path, method: str, device: str, dtype: str, n_edits: int, n_support: int, extra=()
) -> dict:
    """One editor's study through the command line: ``{"method", "peak_gib", "s_per_step", "steps_per_edit",
    "edits", "wall_s"}`` (``peak_gib`` None off a GPU)."""
    cuda = device.startswith("cuda")
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    argv = ["study", "--model", str(model), "--data", str(data), "--out", str(out), "--methods", method]
    argv += ["--n-edits", str(n_edits), "--n-support", str(n_support), "--dtype", dtype]
    argv += ["--device-map", device] if device != "cpu" else []
    start = time.perf_counter()
    status = cli_main([*argv, *extra])
    if status != 0:
        raise SystemExit(f"the study of {method} stopped with status {status}: {' '.join(argv)}")
    edits = pd.read_csv(out / "edits.csv")
    seconds = edits[edits.metric == "seconds"].value.sum()
    steps = edits[edits.metric == "steps"]
    return {
        "method": method,
        "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None,
        "s_per_step": seconds / steps.value.sum(),
        "steps_per_edit": steps.value.mean(),
        "edits": len(steps),
        "wall_s": time.perf_counter() - start,
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.gpu_memory", description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=tuple(SHAPES), default="llava-1.5-7b")
    p.add_argument("--device", default="cuda:0", help="cuda:N, or cpu (with --shape tiny)")
    p.add_argument("--dtype", choices=tuple(DTYPES), default="bfloat16")
    p.add_argument("--methods", default=",".join(methods.names()))
    p.add_argument("--n-edits", type=int, default=2)
    p.add_argument("--n-support", type=int, default=4)
    p.add_argument("--folder", type=Path, default=Path("build/gpu_memory"), help="checkpoint, records and studies")
    p.add_argument("--report", type=Path, default=None, help="also write the rows as JSON here")
    p.add_argument("study_options", nargs="*", help="after --: options given to every study")
    return p


def run(argv: list[str] | None = None) -> list[dict]:
    args = parser().parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: this machine has no CUDA device (use --device cpu --shape tiny)")
    shape = SHAPES[args.shape]
    start = time.perf_counter()
    data = write_assets(shape, args.folder, DTYPES[args.dtype], args.device)
    print(f"checkpoint {args.shape} ({shape}) and records written in {time.perf_counter() - start:.0f} s", flush=True)
    rows = []
    for method in args.methods.split(","):
        out = args.folder / "studies" / method
        rows.append(
            measure(
                args.folder / "model",
                data,
                out,
                method,
                args.device,
                args.dtype,
                args.n_edits,
                args.n_support,
                args.study_options,
            )
        )
        print(json.dumps(rows[-1]), flush=True)
    device = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU"
    print(f"\n{args.shape}, {args.dtype}, {device}, options: {' '.join(args.study_options) or 'defaults'}")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.report:
        args.report.write_text(json.dumps({"device": device, "shape": args.shape, "rows": rows}, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    run()
