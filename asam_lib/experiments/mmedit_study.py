"""A study on any supported model and an MMEdit-format file, resumable edit by edit (what
``python -m asam_lib study`` runs).

Each record becomes an edit case: its four-member knowledge unit (:func:`asam_lib.data.units.unit_from_record`),
its own ``loc`` / ``m_loc`` items as locality *evaluation* items, and locality *support* items (given to
the editor) drawn from the ``loc`` / ``m_loc`` items of records that are not edited, so the two never
overlap.

Progress is written to ``out/progress/<method>.jsonl``, one line per attempt at an edit (its tidy rows, or
the error that stopped it), synced to disk before the next edit starts; ``out/study.json`` records the
settings the folder belongs to (:mod:`asam_lib.experiments.resume`). A rerun with the same settings skips every
finished edit and tries the failed ones again; an interrupted run loses at most the edit in progress. At
the end, ``edits.csv`` (all rows), ``summary.csv`` (mean and 95% CI per method, metric and protocol, and
the number of edits behind each mean) and ``sequential.csv`` are written from every finished edit of every
method in the folder, as :func:`asam_lib.evaluation.harness.save_table` writes every table.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import pandas as pd
from tqdm.auto import tqdm

from asam_lib.common.seeding import numpy_rng
from asam_lib.data.records import EditRecord
from asam_lib.data.units import unit_from_record, with_latent_distances
from asam_lib.editors import methods
from asam_lib.editors.editing import EditError, Editor, EditRequest, with_changes
from asam_lib.evaluation.harness import (
    EditCase,
    edit_and_evaluate,
    editor_config,
    known_records,
    run_sequential,
    save_table,
    summarize,
)
from asam_lib.evaluation.metrics import locality_reference
from asam_lib.experiments import resume
from asam_lib.mllm.architectures import language_layers
from asam_lib.mllm.prompting import Item, PromptEncoder


class StudyError(RuntimeError):
    """A study that cannot start or continue (the message says why and what to do)."""


@dataclass(frozen=True)
class StudyConfig:
    """What a study edits. ``n_edits=None`` edits every record; ``layer=None`` edits the middle language
    layer; ``steps``/``lr`` = None keep each editor's default (chosen for the embedded model);
    ``sequential`` lists the T at which a sequential run re-evaluates (empty: single edits only);
    ``overrides``: per method, dotted overrides of its editor's settings (:func:`asam_lib.editors.methods.build`, e.g.
    from a hyper-parameter file or ``--set``, :func:`asam_lib.editors.hparams.method_overrides`), applied before
    ``layer`` / ``steps`` / ``lr``; ``generation``: also score
    by generation (protocol ``generation_exact``, :mod:`asam_lib.mllm.generation`) beside teacher forcing.

    ``checkpoint_blocks``, ``loss_logits``, ``micro_batch``: the edit loop's memory options for every editor
    (:class:`asam_lib.editors.editing.EditConfig`; None: on where the model is large); they leave the results as they
    are, so they are not among the study's settings and a study may resume with others."""

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
    overrides: dict[str, dict[str, object]] = field(default_factory=dict)
    generation: bool = False
    checkpoint_blocks: bool | None = None
    loss_logits: bool | None = None
    micro_batch: int | None = None

    def __post_init__(self):
        unknown = [m for m in self.methods if m not in methods.METHODS]
        if unknown or not self.methods:
            raise StudyError(
                f"unknown method(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(methods.names())}"
            )


def build_editors(model, config: StudyConfig) -> dict[str, Editor]:
    """One editor per method, at the study's edit layer (``config.layer``, else the method's overridden one, else
    the middle language layer)."""
    n_layers = len(language_layers(model))
    editors = {}
    for name in config.methods:
        overrides = config.overrides.get(name, {})
        layer = config.layer if config.layer is not None else overrides.get("config.layer", n_layers // 2)
        if not 0 <= layer < n_layers:
            raise StudyError(
                f"--layer {layer} is out of range: the model has {n_layers} language layers (0-{n_layers - 1})"
            )
        given = {
            "layer": layer,
            "steps": config.steps,
            "lr": config.lr,
            "checkpoint_blocks": config.checkpoint_blocks,
            "loss_logits": config.loss_logits,
            "micro_batch": config.micro_batch,
        }
        changes = {k: v for k, v in given.items() if v is not None}
        editors |= with_changes({name: methods.build(name, overrides)}, changes)
    return editors


def locality_items(record: EditRecord) -> list[Item]:
    """A record's text (``loc``) and image (``m_loc``) locality items, where it has them."""
    items: list[Item] = []
    if record.loc and record.loc_ans:
        items.append((record.loc, record.loc_ans, None))
    if record.m_loc_path and record.m_loc_q and record.m_loc_a:
        items.append((record.m_loc_q, record.m_loc_a, record.image("m_loc")))
    return items


def choose_records(
    records: Sequence[EditRecord], n_edits: int | None, seed: int
) -> tuple[list[EditRecord], list[EditRecord]]:
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


def prefix_cases(
    model, encoder: PromptEncoder, records: Sequence[EditRecord], n_edits: int, seed: int, n_support: int = 4
) -> list[EditCase]:
    """The first ``n_edits`` cases of a seeded order of ``records`` for notebook 04's study: the first half of
    the order are the records that may be edited, the second half the pool of locality support items (never
    edited), so the first ``n`` cases are the same whatever ``n_edits`` asks for (like
    :func:`asam_lib.evaluation.harness.build_cases`). Unit members carry latent distances at the middle language
    layer."""
    order = numpy_rng(seed, "study-prefix-cases").permutation(len(records)).tolist()
    half = (len(records) + 1) // 2
    candidates, pool = [records[i] for i in order[:half]], [records[i] for i in order[half:]]
    if n_edits > len(candidates):
        raise StudyError(
            f"{n_edits} edits asked for, but {len(records)} records give only {len(candidates)} (half of them are "
            "the support pool)"
        )
    layer = len(language_layers(model)) // 2
    cases = [case_from_record(r, pool, n_support, seed) for r in candidates[:n_edits]]
    return [replace(c, unit=with_latent_distances(model, encoder, c.unit, layer)) for c in cases]


RECORD_COLUMNS = ("knowledge_type",)  # record fields that become columns of edits.csv and summary.csv


def record_columns(record: EditRecord) -> dict[str, str]:
    """The :data:`RECORD_COLUMNS` the record has (MMKE-Bench's ``knowledge_type``)."""
    return {name: str(record.extra[name]) for name in RECORD_COLUMNS if name in record.extra}


def summary_with_counts(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`asam_lib.evaluation.harness.summarize` plus ``n_edits``: how many edits (all seeds) each mean is taken
    over. A metric a record cannot measure (T-Gen without its ``rephrase``) is left out for that edit, not counted. With
    :data:`RECORD_COLUMNS` in the table, one row per value of them too (MMKE-Bench's knowledge types)."""
    by = ["method", "metric", "protocol", *[c for c in RECORD_COLUMNS if c in table]]
    counts = table.dropna(subset=["value"]).groupby(by).size().rename("n_edits").reset_index()
    summary = summarize(table, by=by).merge(counts, on=by, how="left")
    summary["n_edits"] = summary["n_edits"].fillna(0).astype(int)
    return summary


def write_tables(out: Path) -> pd.DataFrame:
    """``edits.csv``, ``summary.csv`` (and ``sequential.csv``) from every finished edit of every method in
    ``out``; return the summary. Failed edits are counted per method on the console, not in the tables."""
    latest = resume.latest_entries(out)
    rows = [row for (_, kind, _, _), e in latest.items() if kind == "single" and "rows" in e for row in e["rows"]]
    sequential_rows = [
        row for (_, kind, _, _), e in latest.items() if kind == "sequential" and "rows" in e for row in e["rows"]
    ]
    for method in sorted({key[0] for key in latest}):
        failed = [e for key, e in latest.items() if key[0] == method and "error" in e]
        finished = sum(1 for key, e in latest.items() if key[0] == method and key[1] == "single" and "rows" in e)
        if failed:
            tqdm.write(
                f"{method}: {finished} edit(s) finished, {len(failed)} failed (first: {failed[0]['error']}); "
                f"fix the cause and rerun to retry them, see the error lines in {out / 'progress'}"
            )
    if not rows:
        raise StudyError(f"every edit failed; see the error lines in {out / 'progress'}")
    table = pd.DataFrame(rows)
    save_table(table, "edits", out)
    summary = summary_with_counts(table)
    save_table(summary, "summary", out)
    if sequential_rows:
        save_table(
            summarize(pd.DataFrame(sequential_rows), by=("method", "T", "metric", "protocol")), "sequential", out
        )
    return summary


def run_study(
    model,
    encoder: PromptEncoder,
    records: Sequence[EditRecord],
    config: StudyConfig,
    out: str | Path,
    settings: dict,
    inputs: dict | None = None,
    shard: tuple[int, int] = (0, 1),
) -> pd.DataFrame:
    """Run (or resume) the study and write the tables of every finished edit in ``out``; return the summary.

    ``settings``: :func:`asam_lib.experiments.resume.study_settings` of the study, checked against and kept in
    ``out/study.json`` with ``inputs`` (the paths, for people). Runs with other seeds or methods into the same
    folder add up; an edit that failed before is tried again. ``shard = (i, n)``: edit only every n-th record
    from the i-th (sequential editing, which cannot be split, runs in shard 0), as one of n processes; the
    last of them to finish writes tables that hold every shard's edits."""
    out = Path(out)
    resume.check_settings(out, settings)
    editors = build_editors(model, config)
    if config.known_only:
        records = known_records(model, encoder, records)
    edited, pool = choose_records(records, config.n_edits, config.seed)
    if not edited:
        raise StudyError("no records to edit (with --known-only: the model answers none of them with their 'pred')")
    if config.sequential and max(config.sequential) > len(edited):
        raise StudyError(
            f"--sequential {max(config.sequential)}: only {len(edited)} records are edited (with --known-only: the "
            "ones the model "
            "knows); pass smaller checkpoints"
        )
    with resume.folder_lock(out):
        resume.record_settings(out, settings, inputs or {})
        resume.check_editor_configs(out, {method: editor_config(editor) for method, editor in editors.items()})
    finished = {key for key, e in resume.latest_entries(out).items() if "rows" in e}
    mine = edited[shard[0] :: shard[1]]
    for method, editor in editors.items():
        progress = resume.Progress(resume.progress_path(out, method, shard), method)
        todo = [r for r in mine if (method, "single", f"{r.task}-{r.index}", config.seed) not in finished]
        for record in tqdm(todo, desc=f"{method} (seed {config.seed})", initial=len(mine) - len(todo), total=len(mine)):
            try:  # a record the model cannot take (missing image, untokenisable text) fails alone
                case = case_from_record(record, pool, config.n_support, config.seed)
                reference = locality_reference(model, encoder, case.locality) if case.locality else None
                rows = edit_and_evaluate(
                    model,
                    encoder,
                    method,
                    editor,
                    case,
                    reference,
                    config.seed,
                    config.task,
                    probes=record.probe_items(),
                    generation=config.generation,
                )
                entry = {"rows": [{**row, **record_columns(record)} for row in rows]}
            except (EditError, ValueError) as err:
                entry = {"error": str(err)}
            progress.append({"case": f"{record.task}-{record.index}", "seed": config.seed, **entry})
        name = f"T={','.join(map(str, config.sequential))}"
        if config.sequential and shard[0] == 0 and (method, "sequential", name, config.seed) not in finished:
            cases = [case_from_record(r, pool, config.n_support, config.seed) for r in edited[: max(config.sequential)]]
            table = run_sequential(model, encoder, method, editor, cases, config.seed, config.sequential, config.task)
            progress.append({"kind": "sequential", "case": name, "seed": config.seed, "rows": table.to_dict("records")})
    with resume.folder_lock(out):
        return write_tables(out)
