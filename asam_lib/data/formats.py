"""The public multimodal editing benchmarks' file formats, read into :class:`~asam_lib.data.records.EditRecord` s.

MMEdit (E-VQA / E-IC), VLKEB and MMKE-Bench share MMEdit's flat record (``src, pred, alt, rephrase, image,
image_rephrase, loc, loc_ans, m_loc, m_loc_q, m_loc_a``), read and checked by
:func:`asam_lib.data.records.load_records`; what each adds becomes the record's :class:`~asam_lib.data.records.Probe` s,
questions with answers of their own, measured after the edit:

- **VLKEB** (``eval_multihop.json``): ``port_new: [{"port_type": "2-hop", "Q&A": {"Question": ..., "Answer":
  ...}}, ...]``, portability: a question about the edited entity, asked on its image, whose answer follows
  from the new fact. Reported as ``Port`` (VLKEB's k-hop portability; the hop is in the probe's metric,
  ``Port 2-hop``). The edit-one-hop file's ``port_edit_q`` form needs a second edit first and is refused.
- **MMKE-Bench** (``data_json/{entity,visual,user}/eval.json``): ``knowledge_type`` (``entity_level``,
  ``visual_knowledge``, ``user_specific``; kept as a column of the results) and reliability questions:
  ``rel_1`` / ``rel_2`` text-only (``T-Rel``), ``m_rel_1`` / ``m_rel_2`` on the image (``I-Rel``) and on the
  rephrased image (``I-Gen-QA``); ``visual_knowledge`` has one of each (``rel``, ``m_rel``) and asks
  ``image_rephrase_question`` on the rephrased image. Answer keys come in two spellings (``rel_ans_1`` and
  ``rel_1_ans``); both are read. An optional ``port_new`` is read as VLKEB's.

:func:`load_benchmark` detects the format from the fields (``knowledge_type``: MMKE-Bench, else ``port_new``:
VLKEB, else MMEdit). Every problem is a :class:`~asam_lib.data.records.MalformedRecord` naming the file, the record,
the field and the fix, raised before any model loads.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from asam_lib.data.records import EditRecord, MalformedRecord, Probe, load_records, text_value

FORMATS = ("mmedit", "vlkeb", "mmke")
PORTABILITY = "Port"
KNOWLEDGE_TYPES = ("entity_level", "visual_knowledge", "user_specific")
PROBE_METRICS = ("T-Rel", "I-Rel", "I-Gen-QA", PORTABILITY)


def detect_format(records: list[EditRecord]) -> str:
    """``"mmke"`` if any record has ``knowledge_type``, else ``"vlkeb"`` if any has ``port_new``, else ``"mmedit"``."""
    if any("knowledge_type" in r.extra for r in records):
        return "mmke"
    return "vlkeb" if any("port_new" in r.extra for r in records) else "mmedit"


def _field(record: EditRecord, *names: str) -> str:
    """The first of ``names`` the record has (the spellings of one field), as non-empty text."""
    for name in names:
        if name in record.extra:
            value = text_value(record.extra[name], record.source, record.index, name)
            if not value:
                raise MalformedRecord(record.source, record.index, name, "is empty", "give a non-empty value")
            return value
    spellings = " or ".join(repr(n) for n in names)
    raise MalformedRecord(
        record.source, record.index, names[0], "missing", f"a {_kind(record)} record needs {spellings}"
    )


def _kind(record: EditRecord) -> str:
    return str(record.extra.get("knowledge_type", "VLKEB"))


def portability_probes(record: EditRecord) -> tuple[Probe, ...]:
    """The record's ``port_new`` questions (none without the field)."""
    entries = record.extra.get("port_new")
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise MalformedRecord(
            record.source, record.index, "port_new", f"expected a list, got {type(entries).__name__}", "fix its type"
        )
    probes = []
    for k, entry in enumerate(entries):
        where = f"port_new[{k}]"
        if isinstance(entry, dict) and "port_edit_q" in entry:
            raise MalformedRecord(
                record.source,
                record.index,
                where,
                "is VLKEB's edit-one-hop form, which needs a second edit before the question",
                "use eval_multihop.json (port_new entries with 'Q&A')",
            )
        qa = entry.get("Q&A") if isinstance(entry, dict) else None
        if not isinstance(qa, dict) or "Question" not in qa or "Answer" not in qa:
            raise MalformedRecord(
                record.source, record.index, where, "has no 'Q&A' with 'Question' and 'Answer'", "fix the entry"
            )
        question = text_value(qa["Question"], record.source, record.index, f"{where}['Q&A']['Question']")
        answer = text_value(qa["Answer"], record.source, record.index, f"{where}['Q&A']['Answer']")
        if not (question and answer):
            raise MalformedRecord(record.source, record.index, where, "has an empty question or answer", "fill it")
        hop = str(entry.get("port_type", "")).strip()
        probes.append(Probe(f"{PORTABILITY} {hop}".strip(), question, answer, "image"))
    return tuple(probes)


def mmke_probes(record: EditRecord) -> tuple[Probe, ...]:
    """MMKE-Bench's reliability questions of the record, by its ``knowledge_type``, and its portability."""
    kind = record.extra.get("knowledge_type")
    if kind not in KNOWLEDGE_TYPES:
        raise MalformedRecord(
            record.source, record.index, "knowledge_type", f"unknown value {kind!r}", f"use one of {KNOWLEDGE_TYPES}"
        )
    if not record.image_rephrase_path:
        raise MalformedRecord(
            record.source, record.index, "image_rephrase", "missing", "MMKE-Bench asks I-Gen on the rephrased image"
        )
    if kind == "visual_knowledge":
        m_answer = _field(record, "m_rel_ans")
        probes = [
            Probe("T-Rel", _field(record, "rel"), _field(record, "rel_ans")),
            Probe("I-Rel", _field(record, "m_rel"), m_answer, "image"),
            Probe("I-Gen-QA", _field(record, "image_rephrase_question"), m_answer, "image_rephrase"),
        ]
    else:
        probes = []
        for k in (1, 2):
            probes.append(Probe("T-Rel", _field(record, f"rel_{k}"), _field(record, f"rel_ans_{k}", f"rel_{k}_ans")))
        for k in (1, 2):
            question, answer = _field(record, f"m_rel_{k}"), _field(record, f"m_rel_ans_{k}", f"m_rel_{k}_ans")
            probes += [Probe("I-Rel", question, answer, "image"), Probe("I-Gen-QA", question, answer, "image_rephrase")]
    return tuple(probes) + portability_probes(record)


PROBES = {"mmedit": lambda record: (), "vlkeb": portability_probes, "mmke": mmke_probes}


def load_benchmark(
    path: str | Path, image_root: str | Path | None = None, task: str = "vqa", check_images: bool = True
) -> list[EditRecord]:
    """The records of an MMEdit, VLKEB or MMKE-Bench file (detected, :func:`detect_format`), each with its
    format's probes; checked as :func:`asam_lib.data.records.load_records` checks MMEdit files."""
    records = load_records(path, image_root, task, check_images)
    probes = PROBES[detect_format(records)]
    return [replace(r, probes=probes(r)) for r in records]
