"""Edit requests in the MMEdit schema: loading, validation and lazy images.

One loader serves the embedded world's exported files and the real MMEdit E-VQA / E-IC JSON files (and the
shared fields of VLKEB's and MMKE-Bench's, whose additions :mod:`asam_lib.data.formats` reads), which look like::

    {"src": "What is in the image?", "pred": "dog", "alt": "cat", "rephrase": "...",
     "image": "val2014/COCO_val2014_000000000042.jpg", "image_rephrase": "...",
     "loc": "nq question: ...", "loc_ans": "...", "m_loc": "...jpg", "m_loc_q": "...", "m_loc_a": "..."}

Images are checked for existence when the file is loaded and read only when asked for
(:meth:`EditRecord.image`); :func:`decode_images` decodes every one up front (the command line does, so a
corrupt file stops it before the model loads). Every problem raises a :class:`RecordError` naming the file, the record
index, the field and what to do.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from PIL import Image, UnidentifiedImageError

TASKS = ("vqa", "caption")
TEXT_FIELDS = ("src", "alt", "pred", "rephrase", "loc", "loc_ans", "m_loc_q", "m_loc_a")
IMAGE_FIELDS = ("image", "image_rephrase", "m_loc")
REQUIRED = ("src", "alt", "image")


class RecordError(ValueError):
    """A record that cannot be used, with the file, record index, field and the fix in its message."""

    def __init__(self, source: str, index: int, field_name: str, problem: str, fix: str):
        self.source, self.index, self.field, self.problem, self.fix = source, index, field_name, problem, fix
        super().__init__(f"{source}: record {index}: field {field_name!r}: {problem} ({fix})")

    def __reduce__(self):  # so that it crosses from a worker process to the notebook intact
        return type(self), (self.source, self.index, self.field, self.problem, self.fix)


class MalformedRecord(RecordError):
    """A missing field, a value of the wrong type, or an empty required value."""


class MissingImage(RecordError):
    """An image path that does not exist under the image root, or a file that is not an image."""


@dataclass(frozen=True)
class Probe:
    """A question with its own expected answer after the edit, reported as ``metric``: VLKEB's portability
    (``Port``, a question about the edited entity whose answer follows from the new fact), MMKE-Bench's
    reliability questions (``T-Rel``, ``I-Rel``, ``I-Gen-QA``). ``image_field``: which of the record's images it
    is asked on (``image`` or ``image_rephrase``; "" for a text-only question). Filled in by
    :mod:`asam_lib.data.formats`."""

    metric: str
    question: str
    answer: str
    image_field: str = ""


@dataclass
class EditRecord:
    """One edit request. Text fields are strings ("" when absent); image fields are paths relative to
    ``image_root`` ("" when absent); ``extra`` keeps fields outside the schema (the world's ``entity``,
    ``relation``, VLKEB's ``port_new``, MMKE-Bench's ``knowledge_type``, ...); ``probes``: the format's further
    questions (:class:`Probe`)."""

    index: int
    task: str
    src: str
    alt: str
    pred: str
    rephrase: str
    loc: str
    loc_ans: str
    m_loc_q: str
    m_loc_a: str
    image_path: str
    image_rephrase_path: str
    m_loc_path: str
    image_root: Path
    source: str = "<memory>"
    extra: dict = field(default_factory=dict)
    probes: tuple[Probe, ...] = ()

    def probe_items(self) -> list[tuple[str, tuple[str, str, Image.Image | None]]]:
        """``(metric, (question, answer, image))`` of every probe, images read."""
        return [
            (p.metric, (p.question, p.answer, self.image(p.image_field) if p.image_field else None))
            for p in self.probes
        ]

    def image(self, which: str = "image") -> Image.Image:
        """Read one of ``image``, ``image_rephrase``, ``m_loc`` as an RGB image (lazily)."""
        if which not in IMAGE_FIELDS:
            raise ValueError(f"unknown image field {which!r}; use one of {IMAGE_FIELDS}")
        rel = getattr(self, f"{which}_path")
        if not rel:
            raise MissingImage(self.source, self.index, which, "the record has no such image", "add it to the record")
        path = self.image_root / rel
        try:
            with Image.open(path) as img:
                return img.convert("RGB")
        except FileNotFoundError:
            raise MissingImage(
                self.source, self.index, which, f"{rel} -> {path} not found", "set image_root=..."
            ) from None
        except (UnidentifiedImageError, OSError) as err:
            raise MissingImage(
                self.source, self.index, which, f"{path} is not a readable image ({err})", "replace or remove the file"
            ) from None

    def __repr__(self) -> str:
        return f"EditRecord({self.index}, {self.task}: {self.src!r} [{self.image_path}] {self.pred!r} -> {self.alt!r})"


def text_value(value: object, source: str, index: int, name: str) -> str:
    """A field's text, stripped; a list of one string counts as that string (some MMEdit files wrap single
    answers in a list)."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        value = value[0]
    if not isinstance(value, str):
        raise MalformedRecord(
            source, index, name, f"expected a string, got {type(value).__name__} {value!r}", "fix the value's type"
        )
    return value.strip()


def parse_record(
    raw: object, index: int, image_root: Path, task: str, source: str, check_images: bool = True
) -> EditRecord:
    """Validate one raw JSON object and turn it into an :class:`EditRecord`."""
    if not isinstance(raw, dict):
        raise MalformedRecord(
            source,
            index,
            "<record>",
            f"expected a JSON object, got {type(raw).__name__}",
            "each record must be an object",
        )
    record_task = raw.get("task", task)
    if record_task not in TASKS:
        raise MalformedRecord(source, index, "task", f"unknown task {record_task!r}", f"use one of {TASKS}")
    for name in REQUIRED:
        if name not in raw:
            raise MalformedRecord(source, index, name, "missing", "every record needs src, alt and image")
    values = {name: text_value(raw.get(name, ""), source, index, name) for name in TEXT_FIELDS + IMAGE_FIELDS}
    for name in REQUIRED:
        if not values[name]:
            raise MalformedRecord(source, index, name, "is empty", "give a non-empty value or drop the record")
    if check_images:
        for name in IMAGE_FIELDS:
            rel = values[name]
            if rel and not (image_root / rel).is_file():
                raise MissingImage(
                    source,
                    index,
                    name,
                    f"{rel} -> {image_root / rel} not found",
                    "set image_root=... to the folder the paths are relative to",
                )
    extra = {k: v for k, v in raw.items() if k not in TEXT_FIELDS + IMAGE_FIELDS + ("task",)}
    return EditRecord(
        index=index,
        task=record_task,
        src=values["src"],
        alt=values["alt"],
        pred=values["pred"],
        rephrase=values["rephrase"],
        loc=values["loc"],
        loc_ans=values["loc_ans"],
        m_loc_q=values["m_loc_q"],
        m_loc_a=values["m_loc_a"],
        image_path=values["image"],
        image_rephrase_path=values["image_rephrase"],
        m_loc_path=values["m_loc"],
        image_root=image_root,
        source=source,
        extra=extra,
    )


def load_records(
    path: str | Path, image_root: str | Path | None = None, task: str = "vqa", check_images: bool = True
) -> list[EditRecord]:
    """Load and validate an MMEdit-schema JSON file (a list of records).

    ``image_root`` defaults to the JSON file's folder; ``task`` applies to records without a ``task``
    field (MMEdit's own files have none: E-VQA is ``vqa``, E-IC is ``caption``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no MMEdit file at {path} (check the path)")
    root = Path(image_root) if image_root is not None else path.parent
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise MalformedRecord(
            str(path), -1, "<file>", f"not valid JSON ({err})", "the file must hold a JSON list of records"
        ) from None
    if not isinstance(raw, list):
        raise MalformedRecord(
            str(path),
            -1,
            "<file>",
            f"expected a JSON list, got {type(raw).__name__}",
            "the file must hold a JSON list of records",
        )
    return [parse_record(r, i, root, task, str(path), check_images) for i, r in enumerate(raw)]


def decode_images(records: Sequence[EditRecord], workers: int | None = None) -> None:
    """Decode every image the records name, each file once (threads: decoding releases the GIL); raise the
    :class:`MissingImage` of the first record, in file order, whose image does not decode."""
    first_use: dict[Path, tuple[EditRecord, str]] = {}
    for record in records:
        for name in IMAGE_FIELDS:
            rel = getattr(record, f"{name}_path")
            if rel:
                first_use.setdefault(record.image_root / rel, (record, name))

    def decode(use: tuple[EditRecord, str]) -> MissingImage | None:
        try:
            use[0].image(use[1])
        except MissingImage as err:
            return err
        return None

    with ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:
        failures = [err for err in pool.map(decode, first_use.values()) if err is not None]
    if failures:
        raise failures[0]
