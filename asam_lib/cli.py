"""The command line: ``python -m asam_lib study --model DIR --data FILE.json --out DIR``.

Runs :func:`asam_lib.mmedit_study.run_study` on a local checkpoint folder and an MMEdit-format JSON file, with
a progress bar per method. Interrupt it at any time and run the same command again: finished edits are
skipped. A bad path, a malformed file or an unsupported model stops it with one line saying what is
wrong and how to fix it (exit status 2), before anything in ``--out`` is touched.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asam_lib import methods
from asam_lib.architectures import UnsupportedArchitecture
from asam_lib.model import CheckpointError, checkpoint_architecture, load_pretrained
from asam_lib.prompting import PromptEncoder
from asam_lib.records import RecordError, load_records
from asam_lib.mmedit_study import StudyConfig, StudyError, check_manifest, run_study


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(t) for t in text.split(",") if t)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m asam_lib", description="The ASAM companion on real checkpoints and MMEdit data.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("study", help="edit every record with each method, evaluate, write results tables (resumable)")
    s.add_argument("--model", type=Path, required=True, help="checkpoint folder (holds config.json), e.g. a snapshot of llava-hf/llava-1.5-7b-hf")
    s.add_argument("--data", type=Path, required=True, help="MMEdit-format JSON file (a list of records)")
    s.add_argument("--image-root", type=Path, default=None, help="folder the records' image paths are relative to (default: the JSON file's folder)")
    s.add_argument("--out", type=Path, required=True, help="results folder (progress/, edits.csv, summary.csv)")
    s.add_argument("--task", choices=("vqa", "caption"), default="vqa", help="task of records without a 'task' field (E-VQA: vqa, E-IC: caption)")
    s.add_argument("--methods", default=",".join(methods.names()), help=f"comma-separated editors among {', '.join(methods.names())}")
    s.add_argument("--n-edits", type=int, default=None, help="edit this many records, drawn with --seed (default: all)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--layer", type=int, default=None, help="language layer to edit (default: the middle one)")
    s.add_argument("--steps", type=int, default=None, help="optimiser steps per edit (default: each editor's own)")
    s.add_argument("--lr", type=float, default=None, help="learning rate of every editor (default: each editor's own)")
    s.add_argument("--n-support", type=int, default=4, help="records whose locality items are given to the editor")
    s.add_argument("--known-only", action="store_true", help="edit only records the model answers with their 'pred'")
    s.add_argument("--sequential", type=_ints, default=(), help="also run sequential editing, re-evaluating after T edits, e.g. 1,5,10")
    s.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16", "auto"), help="weights' dtype")
    s.add_argument("--device-map", default=None, help="from_pretrained's device_map, e.g. auto or cuda:0 (default: CPU)")
    return p


def study(args: argparse.Namespace) -> None:
    config = StudyConfig(methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()), task=args.task, n_edits=args.n_edits,
                         seed=args.seed, layer=args.layer, steps=args.steps, lr=args.lr, n_support=args.n_support, known_only=args.known_only,
                         sequential=args.sequential)
    image_root = args.image_root or args.data.parent
    identity = {"model": str(args.model.resolve()), "data": str(args.data.resolve()), "image_root": str(image_root.resolve())}
    checkpoint_architecture(args.model)  # every input is checked before the model loads
    records = load_records(args.data, args.image_root, args.task)
    check_manifest(args.out, {**identity, "task": config.task})
    model, processor = load_pretrained(args.model, dtype=args.dtype, device_map=args.device_map)
    summary = run_study(model, PromptEncoder(processor, device=model.device), records, config, args.out, identity)
    print(summary.to_string(index=False))
    print(f"tables written to {args.out}")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        study(args)
    except (FileNotFoundError, CheckpointError, RecordError, UnsupportedArchitecture, StudyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
