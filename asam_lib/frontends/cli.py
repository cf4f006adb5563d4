"""The command line: ``python -m asam_lib study --model DIR --data FILE.json --out DIR [--set PATH=VALUE]``.

Runs :func:`asam_lib.experiments.mmedit_study.run_study` on a local checkpoint folder and an MMEdit-format JSON file,
with a progress bar per method, in one process or as one of many (``torchrun``, ``accelerate launch``, a SLURM
array with ``--shard``: :mod:`asam_lib.frontends.launch`); ``python -m asam_lib merge --out DIR`` writes the tables.
Interrupt it at any time (Ctrl-C) and run the same command again: finished edits are skipped. Every input
is checked before the model loads (:mod:`asam_lib.frontends.preflight`): a bad option, path, record or image, an
unsupported model or a missing requirement stops it with one line saying what is wrong and how to fix it
(exit status 2), before anything in ``--out`` is touched.

``--set PATH=VALUE`` (repeatable) changes one setting of every chosen editor that has it, by its dotted path in
the editor's frozen configs (``lar.eps``, ``settings.lambda_rank``, ``config.lr``;
:func:`asam_lib.editors.methods.build`); ``--hparams FILE.yaml`` gives a method's settings in one EasyEdit-layout file
(:mod:`asam_lib.editors.hparams`). Both are recorded in ``study.json``, so a resumed run with other settings is refused.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from asam_lib.data.formats import load_benchmark
from asam_lib.data.records import RecordError, decode_images
from asam_lib.editors import methods
from asam_lib.editors.hparams import HParamsError, load_hparams, method_overrides
from asam_lib.experiments.mmedit_study import StudyConfig, StudyError, run_study, write_tables
from asam_lib.experiments.resume import ResumeError, check_settings, folder_lock, settings_folder, study_settings
from asam_lib.frontends.launch import launcher_shard, process_device_map, shard
from asam_lib.frontends.preflight import (
    InputError,
    check_device_map,
    check_generality,
    check_layer,
    check_out,
    check_processor,
    check_sequential,
)
from asam_lib.mllm.architectures import UnsupportedArchitecture
from asam_lib.mllm.model import CheckpointError, checkpoint_architecture, load_pretrained
from asam_lib.mllm.prompting import PromptEncoder


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors on one line (exit status 2), like every other input error."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


SWITCH = {"auto": None, "on": True, "off": False}  # a memory option of the edit loop (asam_lib.mllm.memory)


def integer(minimum: int):
    """An argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value

    return parse


def positive_number(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number above 0")
    return value


def checkpoints(text: str) -> tuple[int, ...]:
    """An argparse type: comma-separated T >= 1 (sorted, each once), e.g. ``1,5,10``."""
    parse = integer(1)
    return tuple(sorted({parse(t.strip()) for t in text.split(",") if t.strip()}))


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m asam_lib", description="The ASAM companion on real checkpoints and MMEdit data.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("study", help="edit every record with each method, evaluate, write results tables (resumable)")
    s.add_argument(
        "--model",
        type=Path,
        required=True,
        help="checkpoint folder (holds config.json), e.g. a snapshot of llava-hf/llava-1.5-7b-hf",
    )
    s.add_argument(
        "--data",
        type=Path,
        required=True,
        help="MMEdit, VLKEB or MMKE-Bench JSON file (a list of records; the format is read from its fields)",
    )
    s.add_argument(
        "--image-root",
        type=Path,
        default=None,
        help="folder the records' image paths are relative to (default: the JSON file's folder)",
    )
    s.add_argument(
        "--out", type=Path, required=True, help="results folder (study.json, progress/, edits.csv, summary.csv)"
    )
    s.add_argument(
        "--out-per-settings",
        action="store_true",
        help="write into a subfolder of --out named after the settings, so runs with other settings never meet",
    )
    s.add_argument(
        "--task",
        choices=("vqa", "caption"),
        default="vqa",
        help="task of records without a 'task' field (E-VQA: vqa, E-IC: caption)",
    )
    s.add_argument(
        "--methods",
        default=None,
        help=f"comma-separated editors among {', '.join(methods.names())} "
        "(default: the --hparams file's alg_name, else all of them)",
    )
    s.add_argument(
        "--hparams",
        type=Path,
        default=None,
        help="hyper-parameter file in EasyEdit's layout, e.g. hparams/ASAM/llava-1.5-7b.yaml: its alg_name's editor "
        "takes its settings (--set, --layer, --steps, --lr still win)",
    )
    s.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="change one setting of every editor that has it, by its dotted path, e.g. --set lar.eps=0.1 "
        "--set settings.lambda_rank=10 (repeatable; recorded in study.json; docs/method.md, 'Changing a setting')",
    )
    s.add_argument(
        "--n-edits", type=integer(1), default=None, help="edit this many records, drawn with --seed (default: all)"
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--layer", type=integer(0), default=None, help="language layer to edit (default: the middle one)")
    s.add_argument(
        "--steps", type=integer(1), default=None, help="optimiser steps per edit (default: each editor's own)"
    )
    s.add_argument(
        "--lr", type=positive_number, default=None, help="learning rate of every editor (default: each editor's own)"
    )
    s.add_argument(
        "--n-support", type=integer(0), default=4, help="records whose locality items are given to the editor"
    )
    s.add_argument("--known-only", action="store_true", help="edit only records the model answers with their 'pred'")
    s.add_argument(
        "--sequential",
        type=checkpoints,
        default=(),
        help="also run sequential editing, re-evaluating after T edits, e.g. 1,5,10",
    )
    s.add_argument(
        "--allow-missing-generality",
        action="store_true",
        help="edit records without 'rephrase' / 'image_rephrase' (their T-Gen / I-Gen / TI-Gen are left out; "
        "summary.csv counts the edits behind each metric)",
    )
    s.add_argument(
        "--generation",
        action="store_true",
        help="also score by generation (protocol generation_exact: the greedy answer equals the target) beside "
        "teacher forcing",
    )
    s.add_argument(
        "--checkpoint-blocks",
        choices=tuple(SWITCH),
        default="auto",
        help="recompute the blocks above the edit layer in the backward pass instead of keeping their activations "
        "(auto: on for models of 0.5 B parameters or more)",
    )
    s.add_argument(
        "--loss-logits",
        choices=tuple(SWITCH),
        default="auto",
        help="make logits only at the positions a loss reads (auto: on for models of 0.5 B parameters or more)",
    )
    s.add_argument(
        "--micro-batch",
        type=integer(0),
        default=None,
        help="locality support items (and ASAM's variants) per forward and backward pass, gradients accumulated "
        "(0: all at once; default: 2 on models of 0.5 B parameters or more, else all at once)",
    )
    s.add_argument(
        "--dtype", default="float32", choices=("float32", "bfloat16", "float16", "auto"), help="weights' dtype"
    )
    s.add_argument(
        "--device-map",
        default=None,
        help="from_pretrained's device_map, e.g. auto or cuda:0 "
        "(default: the CPU; under torchrun / accelerate with GPUs: cuda:LOCAL_RANK)",
    )
    s.add_argument(
        "--shard",
        type=shard,
        default=None,
        help="edit only share i of n of the records, e.g. $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT "
        "(default: RANK/WORLD_SIZE under torchrun or accelerate, else 0/1)",
    )
    m = sub.add_parser(
        "merge", help="write the tables of a study folder from every finished edit of every process (no model needed)"
    )
    m.add_argument("--out", type=Path, required=True, help="the study's results folder")
    return p


def study(args: argparse.Namespace) -> None:
    hparams = load_hparams(args.hparams) if args.hparams else None
    chosen = args.methods or (hparams.alg_name if hparams else ",".join(methods.names()))
    chosen = tuple(m.strip() for m in chosen.split(",") if m.strip())
    known = all(m in methods.METHODS for m in chosen)  # else StudyConfig names the unknown ones
    overrides = method_overrides(chosen, hparams, args.set) if known else {}  # every setting checked before loading
    config = StudyConfig(
        methods=chosen,
        task=args.task,
        n_edits=args.n_edits,
        seed=args.seed,
        layer=args.layer,
        steps=args.steps,
        lr=args.lr,
        n_support=args.n_support,
        known_only=args.known_only,
        sequential=args.sequential,
        overrides=overrides,
        generation=args.generation,
        checkpoint_blocks=SWITCH[args.checkpoint_blocks],
        loss_logits=SWITCH[args.loss_logits],
        micro_batch=args.micro_batch,
    )
    image_root = args.image_root or args.data.parent
    check_out(args.out)
    device_map = process_device_map(args.device_map)
    check_device_map(device_map)
    check_processor(args.model, checkpoint_architecture(args.model))
    check_layer(args.model, args.layer)
    if args.layer is None:
        given = "--set config.layer" if any(a.startswith("config.layer=") for a in args.set) else None
        for changes in overrides.values():
            if "config.layer" in changes:
                check_layer(args.model, changes["config.layer"], given or f"layers: [...] in {args.hparams}:")
    records = load_benchmark(args.data, args.image_root, args.task)
    check_generality(records, args.allow_missing_generality)
    check_sequential(args.sequential, min(args.n_edits or len(records), len(records)))
    decode_images(records)
    settings = study_settings(args.model, args.data, image_root, args.dtype, config)
    out = settings_folder(args.out, settings) if args.out_per_settings else args.out
    check_settings(out, settings)
    inputs = {
        "model": str(args.model.resolve()),
        "data": str(args.data.resolve()),
        "image_root": str(image_root.resolve()),
    }
    model, processor = load_pretrained(args.model, dtype=args.dtype, device_map=device_map)
    summary = run_study(
        model,
        PromptEncoder(processor, device=model.device),
        records,
        config,
        out,
        settings,
        inputs,
        args.shard or launcher_shard(),
    )
    print(summary.to_string(index=False))
    print(f"tables written to {out} (from every edit finished there so far)")


def merge(args: argparse.Namespace) -> None:
    if not list((args.out / "progress").glob("*.jsonl")):
        raise StudyError(f"{args.out} holds no progress files (progress/*.jsonl): pass the --out of a study")
    with folder_lock(args.out):
        summary = write_tables(args.out)
    print(summary.to_string(index=False))
    print(f"tables written to {args.out}")


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as stop:  # --help, or an option argparse refused (already printed on one line)
        return int(stop.code or 0)
    try:
        {"study": study, "merge": merge}[args.command](args)
    except (
        FileNotFoundError,
        CheckpointError,
        RecordError,
        UnsupportedArchitecture,
        StudyError,
        InputError,
        ResumeError,
        HParamsError,
    ) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"interrupted: finished edits are kept under {args.out}; run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    return 0
