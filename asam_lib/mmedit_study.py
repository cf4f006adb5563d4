"""A study on any supported model and an MMEdit-format file, resumable edit by edit (what
``python -m asam_lib study`` runs).

Each record becomes an edit case: its four-member knowledge unit (:func:`asam_lib.units.unit_from_record`),
its own ``loc`` / ``m_loc`` items as locality *evaluation* items, and locality *support* items (given to
the editor) drawn from the ``loc`` / ``m_loc`` items of records that are not edited, so the two never
overlap.

Progress is written to ``out/progress/<method>.jsonl``, one line per finished edit (its tidy rows, or the
error that stopped it), flushed to disk before the next edit starts. A rerun with the same model, data
and settings skips every edit already on disk, keyed by (record, seed, editor config); an interrupted
run therefore loses at most the edit in progress. ``out/study.json`` records which model and data the
folder belongs to. At the end, ``edits.csv`` (all rows) and ``summary.csv`` (mean and 95% CI per
method, metric and protocol) are written as :func:`asam_lib.harness.save_table` writes every table.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import pandas as pd
from tqdm.auto import tqdm

from asam_lib.architectures import language_layers
from asam_lib.editing import FTL, EditError, EditRequest, Editor
from asam_lib.asam import ASAM
from asam_lib.harness import EditCase, edit_and_evaluate, editor_config, known_records, run_sequential, save_table, summarize
from asam_lib.lora import LoRA
from asam_lib.metrics import locality_reference
from asam_lib.patch import Patch
from asam_lib.prompting import Item, PromptEncoder
from asam_lib.records import EditRecord
from asam_lib.seeding import numpy_rng
from asam_lib.units import unit_from_record, with_latent_distances

EDITORS: dict[str, type[Editor]] = {"FT-L": FTL, "LoRA": LoRA, "Patch": Patch, "ASAM": ASAM}


class StudyError(RuntimeError):
    """A study that cannot start or continue (the message says why and what to do)."""


@dataclass(frozen=True)
class StudyConfig:
    """What a study edits. ``n_edits=None`` edits every record; ``layer=None`` edits the middle language
    layer; ``steps``/``lr`` = None keep each editor's default (chosen for the embedded model);
    ``sequential`` lists the T at which a sequential run re-evaluates (empty: single edits only)."""

    methods: tuple[str, ...] = ("FT-L", "LoRA", "Patch")
    task: str = "vqa"
    n_edits: int | None = None
    seed: int = 0
    layer: int | None = None
    steps: int | None = None
    lr: float | None = None
    n_support: int = 4
    known_only: bool = False
    sequential: tuple[int, ...] = ()

    def __post_init__(self):
        unknown = [m for m in self.methods if m not in EDITORS]
        if unknown or not self.methods:
            raise StudyError(f"unknown method(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(EDITORS)}")


def build_editors(model, config: StudyConfig) -> dict[str, Editor]:
    """One editor per method, at the study's edit layer."""
    n_layers = len(language_layers(model))
    layer = n_layers // 2 if config.layer is None else config.layer
    if not 0 <= layer < n_layers:
        raise StudyError(f"--layer {layer} is out of range: the model has {n_layers} language layers (0-{n_layers - 1})")
    editors = {}
    for method in config.methods:
        editor = EDITORS[method]()
        changes = {"layer": layer, "steps": config.steps, "lr": config.lr}
        changes = {k: v for k, v in changes.items() if v is not None}
        editor.config = replace(editor.config, **changes)
        editors[method] = editor
    return editors


def locality_items(record: EditRecord) -> list[Item]:
    """A record's text (``loc``) and image (``m_loc``) locality items, where it has them."""
    items: list[Item] = []
    if record.loc and record.loc_ans:
        items.append((record.loc, record.loc_ans, None))
    if record.m_loc_path and record.m_loc_q and record.m_loc_a:
        items.append((record.m_loc_q, record.m_loc_a, record.image("m_loc")))
    return items


def choose_records(records: Sequence[EditRecord], n_edits: int | None, seed: int) -> tuple[list[EditRecord], list[EditRecord]]:
    """``(edited, pool)``: ``n_edits`` records drawn with ``seed`` (all if None), in file order, and the
    rest, whose locality items serve as support items."""
    if n_edits is None or n_edits >= len(records):
        return list(records), []
    chosen = set(numpy_rng(seed, "study-cases").choice(len(records), size=n_edits, replace=False).tolist())
    return [r for i, r in enumerate(records) if i in chosen], [r for i, r in enumerate(records) if i not in chosen]


def case_from_record(record: EditRecord, pool: Sequence[EditRecord], n_support: int, seed: int) -> EditCase:
    """The edit case of ``record``; support items come from up to ``n_support`` records of ``pool``."""
    unit = unit_from_record(record)
    rng = numpy_rng(seed, "study-support", record.index)
    drawn = rng.choice(len(pool), size=min(n_support, len(pool)), replace=False).tolist() if pool else []
    support = [item for i in sorted(drawn) for item in locality_items(pool[i])]
    request = EditRequest(record.src, record.alt, unit.anchor.image, support, name=f"{record.task}-{record.index}")
    return EditCase(record, unit, request, locality_items(record))


def prefix_cases(model, encoder: PromptEncoder, records: Sequence[EditRecord], n_edits: int, seed: int, n_support: int = 4) -> list[EditCase]:
    """The first ``n_edits`` cases of a seeded order of ``records`` for notebook 04's study: the first half of
    the order are the records that may be edited, the second half the pool of locality support items (never
    edited), so the first ``n`` cases are the same whatever ``n_edits`` asks for (like
    :func:`asam_lib.harness.build_cases`). Unit members carry latent distances at the middle language layer."""
    order = numpy_rng(seed, "study-prefix-cases").permutation(len(records)).tolist()
    half = (len(records) + 1) // 2
    candidates, pool = [records[i] for i in order[:half]], [records[i] for i in order[half:]]
    if n_edits > len(candidates):
        raise StudyError(f"{n_edits} edits asked for, but {len(records)} records give only {len(candidates)} (half of them are the support pool)")
    layer = len(language_layers(model)) // 2
    cases = [case_from_record(r, pool, n_support, seed) for r in candidates[:n_edits]]
    return [replace(c, unit=with_latent_distances(model, encoder, c.unit, layer)) for c in cases]


class Progress:
    """The per-edit progress file of one method: finished keys, and appending one line per edit."""

    def __init__(self, path: Path):
        self.path = path
        self.lines: list[dict] = []
        if path.exists():
            text = path.read_text().splitlines()
            for n, line in enumerate(text, start=1):
                try:
                    self.lines.append(json.loads(line))
                except json.JSONDecodeError:
                    if n < len(text):  # only the last line can be cut short by an interruption
                        raise StudyError(f"{path}: line {n} is not valid JSON; delete that line (its edit will be redone)") from None

    @staticmethod
    def key(case: str, seed: int, config: str, kind: str = "single") -> tuple:
        return (kind, case, seed, config)

    def done(self) -> set[tuple]:
        return {self.key(x["case"], x["seed"], x["config"], x.get("kind", "single")) for x in self.lines}

    def append(self, entry: dict) -> None:
        """Write one finished edit to disk (flushed and synced) before anything else happens."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.lines.append(entry)


def check_manifest(out: Path, identity: dict) -> None:
    """Refuse to mix studies: an existing ``out/study.json`` must name the same model, data and task."""
    path = Path(out) / "study.json"
    if path.exists():
        before = json.loads(path.read_text())
        if before != identity:
            changed = ", ".join(f"{k}: {before.get(k)!r} -> {v!r}" for k, v in identity.items() if before.get(k) != v)
            raise StudyError(f"{out} holds a study of other inputs ({changed}); pass a new --out or delete {out}")


def summary_with_counts(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`asam_lib.harness.summarize` plus ``n_edits``: how many edits (all seeds) each mean is taken over. A
    metric a record cannot measure (T-Gen without its ``rephrase``) is left out for that edit, not counted."""
    by = ["method", "metric", "protocol"]
    counts = table.dropna(subset=["value"]).groupby(by).size().rename("n_edits").reset_index()
    summary = summarize(table).merge(counts, on=by, how="left")
    summary["n_edits"] = summary["n_edits"].fillna(0).astype(int)
    return summary


def run_study(model, encoder: PromptEncoder, records: Sequence[EditRecord], config: StudyConfig, out: str | Path, identity: dict) -> pd.DataFrame:
    """Run (or resume) the study and write its tables under ``out``; return the summary table.

    ``identity`` names the model and data (kept in ``out/study.json``). Runs with other seeds into the
    same folder add up: the tables hold every seed finished so far with the current editor configs."""
    out, identity = Path(out), {**identity, "task": config.task}
    check_manifest(out, identity)
    editors = build_editors(model, config)
    if config.known_only:
        records = known_records(model, encoder, records)
    edited, pool = choose_records(records, config.n_edits, config.seed)
    if not edited:
        raise StudyError("no records to edit (with --known-only: the model answers none of them with their 'pred')")
    if config.sequential and max(config.sequential) > len(edited):
        raise StudyError(f"--sequential {max(config.sequential)}: only {len(edited)} records are edited (with --known-only: the ones the model "
                         "knows); pass smaller checkpoints")
    if not (out / "study.json").exists():
        out.mkdir(parents=True, exist_ok=True)
        (out / "study.json").write_text(json.dumps(identity, indent=1) + "\n")
    rows: list[dict] = []
    sequential_rows: list[dict] = []
    for method, editor in editors.items():
        progress = Progress(out / "progress" / f"{method}.jsonl")
        tag, done = editor_config(editor), progress.done()
        todo = [r for r in edited if Progress.key(f"{r.task}-{r.index}", config.seed, tag) not in done]
        for record in tqdm(todo, desc=f"{method} (seed {config.seed})", initial=len(edited) - len(todo), total=len(edited)):
            try:  # a record the model cannot take (missing image, untokenisable text) fails alone
                case = case_from_record(record, pool, config.n_support, config.seed)
                reference = locality_reference(model, encoder, case.locality) if case.locality else None
                entry = {"rows": edit_and_evaluate(model, encoder, method, editor, case, reference, config.seed, config.task)}
            except (EditError, ValueError) as err:
                entry = {"error": str(err)}
            progress.append({"case": f"{record.task}-{record.index}", "seed": config.seed, "config": tag, **entry})
        if config.sequential:
            key = Progress.key(f"T={','.join(map(str, config.sequential))}", config.seed, tag, "sequential")
            if key not in progress.done():
                cases = [case_from_record(r, pool, config.n_support, config.seed) for r in edited[: max(config.sequential)]]
                table = run_sequential(model, encoder, method, editor, cases, config.seed, config.sequential, config.task)
                progress.append({"kind": "sequential", "case": key[1], "seed": config.seed, "config": tag, "rows": table.to_dict("records")})
        for entry in progress.lines:
            if entry["config"] == tag and "rows" in entry:
                (sequential_rows if entry.get("kind") == "sequential" else rows).extend(entry["rows"])
        failed = [e for e in progress.lines if e["config"] == tag and "error" in e]
        if failed:
            tqdm.write(f"{method}: {len(failed)} edit(s) failed, see {progress.path} (first: {failed[0]['error']})")
    if not rows:
        raise StudyError(f"every edit failed; see the error lines in {out / 'progress'}")
    table = pd.DataFrame(rows)
    save_table(table, "edits", out)
    summary = summary_with_counts(table)
    save_table(summary, "summary", out)
    if sequential_rows:
        save_table(summarize(pd.DataFrame(sequential_rows), by=("method", "T", "metric", "protocol")), "sequential", out)
    return summary
