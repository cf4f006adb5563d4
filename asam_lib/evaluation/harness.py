"""The edit-and-evaluate harness: choose counterfactual edit cases, run editors, write tidy tables.

A case is an edit request the base model *knew* (it answers ``pred`` on the edit input) with a new target
``alt`` that differs. Each case carries its knowledge unit, locality *support* items (given to the
editor) and locality *evaluation* items (only measured); the two come from disjoint entity pools
(:func:`asam_lib.data.benchmark.locality_pools`).

Two modes:
- ``run_single``: every edit starts from the base model and is rolled back exactly afterwards.
- ``run_sequential``: edits accumulate; after T = 1, 5, 10, ... edits, every earlier edit is re-evaluated.

Results are tidy rows ``(method, config, seed, task, case, metric, protocol, value)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from asam_lib.common import paths, provenance
from asam_lib.common.progress import tqdm
from asam_lib.common.seeding import numpy_rng
from asam_lib.data.benchmark import exported_benchmark, locality_pools
from asam_lib.data.case_cache import cached
from asam_lib.data.records import EditRecord, load_records
from asam_lib.data.units import (
    KnowledgeUnit,
    member_items,
    unit_from_record,
    unit_from_world,
    with_known,
    with_latent_distances,
)
from asam_lib.data.world import EVAL_STREAM, RELATIONS, World
from asam_lib.editors.editing import Editor, EditRequest, UneditedPasses
from asam_lib.editors.patch import patch_firing, stacked_patches
from asam_lib.evaluation.metrics import (
    TEACHER_FORCED,
    LocalityReference,
    evaluate_edit,
    fixed_evaluation_inputs,
    generation_rows,
    locality_reference,
    probe_rows,
)
from asam_lib.evaluation.summaries import ci95
from asam_lib.mllm.forward import FixedInputs
from asam_lib.mllm.generation import PROTOCOL as GENERATION
from asam_lib.mllm.model import config_hash
from asam_lib.mllm.prompting import Item, PromptEncoder, score_items

SUPPORT_STREAM = "support"  # images of support-pool entities used while editing


@dataclass(frozen=True)
class HarnessConfig:
    """What an experiment edits and measures. Defaults reproduce the committed figures."""

    task: str = "vqa"
    n_edits: int = 50
    n_support: int = 4  # locality support items per modality given to the editor
    n_locality: int = 8  # locality evaluation items per modality
    n_memory: int = 32  # memory items per modality (support pool) an intrinsic patch must stay silent on
    unit_text: int = 8  # evaluated members per kind of the knowledge unit
    unit_image: int = 8
    unit_both: int = 16
    hard_strength: float = 2.0  # image transform strength of the hard tier's members (data.units); 0: no hard tier
    split: str = "report"  # which edits: "report" (every reported table), "dev" (choosing defaults) or "all"


@dataclass
class EditCase:
    """One edit: its record, its knowledge ``unit`` (standard tier), the request an editor sees, the locality
    evaluation items, and the units of the other evaluation tiers: ``hard_unit`` (None if not built) and
    ``binary_unit``, the record's own four members as MMEdit measures them (one rephrased question, one other
    image). Every unit's members carry ``known`` (the unedited model answers them)."""

    record: EditRecord
    unit: KnowledgeUnit
    request: EditRequest
    locality: list[Item]
    hard_unit: KnowledgeUnit | None = None
    binary_unit: KnowledgeUnit | None = None

    def tiers(self) -> dict[str, KnowledgeUnit]:
        """Tier name -> unit, for every tier this case has (``standard`` first)."""
        units = {"standard": self.unit, "hard": self.hard_unit, "binary": self.binary_unit}
        return {tier: unit for tier, unit in units.items() if unit is not None}

    def __repr__(self) -> str:
        change = f"{self.unit.old_answer!r} -> {self.unit.new_answer!r}"
        return f"EditCase({self.request.name}: {change}, {len(self.unit)} unit members)"


def _locality_items(
    world: World, rng: np.random.Generator, text_pool, image_pool, n: int, stream: str, exclude: int
) -> list[Item]:
    relations = list(RELATIONS)
    items: list[Item] = []
    for _ in range(n):
        t = world.text_entities[int(rng.choice(text_pool))]
        rel = relations[int(rng.integers(len(relations)))]
        qs = world.phrasings(rel, heldout=False, text=True)
        items.append((qs[int(rng.integers(len(qs)))].render(f"the {t.name}"), t.facts[rel], None))
    for _ in range(n):
        e = world.entities[int(rng.choice([i for i in image_pool if i != exclude]))]
        rel = relations[int(rng.integers(len(relations)))]
        qs = world.phrasings(rel, heldout=False)
        items.append(
            (qs[int(rng.integers(len(qs)))].render(), e.facts[rel], world.image(e.index, stream, int(rng.integers(64))))
        )
    return items


def known_records(model, encoder: PromptEncoder, records: Sequence[EditRecord]) -> list[EditRecord]:
    """Records whose edit input the model answers with ``pred`` (exact match): facts it knew."""
    scores = score_items(model, encoder, [(r.src, r.pred, r.image("image")) for r in records])
    return [r for r, s in zip(records, scores) if s["exact"] == 1.0 and r.alt != r.pred]


SPLITS = ("report", "dev", "all")
DEV_ENTITY_EVERY = 4  # every 4th image entity's facts are the development split


def in_split(record: EditRecord, split: str) -> bool:
    """Whether a world record belongs to ``split``: ``"dev"`` holds the facts of every
    :data:`DEV_ENTITY_EVERY`-th image entity (defaults are chosen on them), ``"report"`` the others (every
    reported table), ``"all"`` both. The two splits edit disjoint facts."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    dev = record.extra["entity"] % DEV_ENTITY_EVERY == DEV_ENTITY_EVERY - 1
    return split == "all" or dev == (split == "dev")


def build_cases(
    model,
    encoder: PromptEncoder,
    world: World,
    config: HarnessConfig,
    seed: int,
    layer: int = 2,
    start: int = 0,
    known: Sequence[EditRecord] | None = None,
    cache: Path | None = None,
) -> list[EditCase]:
    """Counterfactual cases of known facts, drawn with ``seed``: cases ``start`` to ``config.n_edits`` of one
    seeded order of the known records (``known``: the result of :func:`known_records` if already computed).
    Each case depends only on its record and ``seed`` (its own random streams), so the first ``n`` cases are
    the same whatever ``n_edits`` asks for: a study on 24 edits uses the first 24 cases of a study on 50.
    ``cache``: a folder of cases built with this same unedited ``model``
    (:func:`asam_lib.data.case_cache.cases_folder`), where each case is read if some process built it, else kept once
    built."""
    records = (
        known
        if known is not None
        else known_records(model, encoder, load_records(exported_benchmark(world, config.task)))
    )
    records = [r for r in records if in_split(r, config.split)]
    order = numpy_rng(seed, "cases", config.task).permutation(len(records))[start : config.n_edits]
    pools = locality_pools(world)
    return [world_case(model, encoder, world, config, records[int(i)], seed, layer, pools, cache) for i in order]


def world_case(
    model,
    encoder: PromptEncoder,
    world: World,
    config: HarnessConfig,
    record: EditRecord,
    seed: int,
    layer: int = 2,
    pools=None,
    cache: Path | None = None,
) -> EditCase:
    """The edit case of one world record (its ``alt`` is the new target): the knowledge unit with latent
    distances at ``layer``, locality support, evaluation and memory items, each from a random stream of
    its own (seed, record), so a case never depends on which other cases are built; the hard tier's unit if
    ``config.hard_strength`` > 0. ``cache``: see :func:`build_cases` (the case and its hard unit are kept
    apart, so a case asked for without its hard tier is the same case)."""
    key = {
        "world": config_hash(world.config, "world"),
        "task": config.task,
        "seed": seed,
        "layer": layer,
        "record": [record.index, record.src, record.pred, record.alt, record.image_path],
        "sizes": [config.unit_text, config.unit_image, config.unit_both],
        "items": [config.n_support, config.n_locality, config.n_memory],
    }
    case = cached(
        cache,
        {"part": "case", **key},
        lambda: _standard_case(model, encoder, world, config, record, seed, layer, pools),
    )
    if config.hard_strength > 0:
        hard = cached(
            cache,
            {"part": "hard", **key, "hard_strength": config.hard_strength},
            lambda: _hard_unit(model, encoder, world, config, record, seed, layer),
        )
        case = replace(case, hard_unit=hard)
    return case


def _hard_unit(model, encoder, world, config, record, seed, layer) -> KnowledgeUnit:
    sizes = (config.unit_text, config.unit_image, config.unit_both)
    hard = unit_from_world(world, record, *sizes, seed, tier="hard", hard_strength=config.hard_strength)
    return with_known(model, encoder, with_latent_distances(model, encoder, hard, layer))


def _standard_case(model, encoder, world, config, record, seed, layer, pools) -> EditCase:
    """:func:`world_case` without the hard tier."""
    pools = pools or locality_pools(world)
    sizes = (config.unit_text, config.unit_image, config.unit_both)
    unit = with_known(
        model, encoder, with_latent_distances(model, encoder, unit_from_world(world, record, *sizes, seed), layer)
    )
    binary = with_known(model, encoder, unit_from_record(record))
    entity = record.extra["entity"]

    def draw(stream: str, text_pool, image_pool, n: int, images: str) -> list[Item]:
        return _locality_items(
            world, numpy_rng(seed, stream, config.task, record.index), text_pool, image_pool, n, images, entity
        )

    support = draw("support", pools.text_support, pools.image_support, config.n_support, SUPPORT_STREAM)
    locality = draw("locality", pools.text_eval, pools.image_eval, config.n_locality, EVAL_STREAM)
    memory = draw("memory", pools.text_support, pools.image_support, config.n_memory, SUPPORT_STREAM)
    request = EditRequest(
        record.src, record.alt, unit.anchor.image, support, name=f"{config.task}-{record.index}", memory=memory
    )
    return EditCase(record, unit, request, locality, None, binary)


def _settings(value: object) -> object:
    """A dataclass setting as a dict for :func:`editor_config`, without the fields this companion adds beyond
    the paper (field metadata ``companion``, e.g. ``ASAMSettings.calibrate_bias``) while they are at their
    default: adding such an option leaves the hashes of today's editors, and the committed tables, as they are.
    The edit loop's memory options (field metadata ``memory``, :class:`asam_lib.editors.editing.EditConfig`) are left
    out at any value: they change what a step keeps, not its results, so a study can resume with others."""
    if not hasattr(value, "__dataclass_fields__"):
        return value
    plain = asdict(value)
    for f in fields(value):
        if f.metadata.get("memory") or (f.metadata.get("companion") and getattr(value, f.name) == f.default):
            del plain[f.name]
    return plain


def editor_config(editor: Editor) -> str:
    """A short hash of everything that configures ``editor``."""
    return config_hash(type(editor).__name__, {k: _settings(v) for k, v in vars(editor).items()})


class EvaluationInputs:
    """What every evaluation of the same cases reuses: each case's locality reference (the unedited model's
    answers, :meth:`reference`) and its evaluation batches as :class:`~asam_lib.mllm.forward.FixedInputs` (:meth:`get`),
    built on first use and reused by every later evaluation (the other editors of :func:`run_single`, each
    checkpoint of :func:`run_sequential`, and other runs on the same case objects, as the study's jobs in one worker),
    so that only the blocks from the edit layer up run again. Batches are kept per (case, tier, edit layer): valid
    while every edit changes its edit layer or above only, as every editor here does.

    ``keep`` (default: when the model is on the CPU, where compute is what is scarce): keep the batches; without
    it each evaluation builds its own (the same numbers), so that a large checkpoint on a GPU does not hold the
    hidden states of every case in device memory."""

    def __init__(self, model, encoder: PromptEncoder, keep: bool | None = None):
        self.model, self.encoder = model, encoder
        self.keep = next(model.parameters()).device.type == "cpu" if keep is None else keep
        self._inputs: dict[tuple[int, str, int], tuple[EditCase, FixedInputs]] = {}
        self._references: dict[int, tuple[EditCase, LocalityReference]] = {}

    def reference(self, case: EditCase) -> LocalityReference:
        """The unedited model's answers on ``case``'s locality items: the first call must come before any edit."""
        if id(case) not in self._references:  # the case is kept with its entry, so its id stays its own
            self._references[id(case)] = (case, locality_reference(self.model, self.encoder, case.locality))
        return self._references[id(case)][1]

    def get(self, case: EditCase, tier: str, reference: LocalityReference | None, layer: int) -> FixedInputs:
        """The fixed inputs of ``case``'s ``tier`` (with ``reference``'s locality items) at ``layer``."""
        key = (id(case), tier, layer)
        if key in self._inputs:
            return self._inputs[key][1]
        fixed = fixed_evaluation_inputs(self.model, self.encoder, case.tiers()[tier], reference, layer)
        if self.keep:
            self._inputs[key] = (case, fixed)
        return fixed

    def __len__(self) -> int:
        return len(self._inputs)


def edit_and_evaluate(
    model,
    encoder: PromptEncoder,
    method: str,
    editor: Editor,
    case: EditCase,
    reference,
    seed: int,
    task: str = "vqa",
    members: list | None = None,
    unedited: UneditedPasses | None = None,
    inputs: EvaluationInputs | None = None,
    probes: Sequence[tuple[str, Item]] = (),
    generation: bool = False,
) -> list[dict]:
    """Tidy rows of one edit from the current model, rolled back afterwards: every metric plus a
    ``seconds`` metric (time of the edit), a ``steps`` metric (optimiser steps it took) and, for editors of the
    shared loop, a ``forward passes`` metric (passes through the edit block in that loop, LAR's search included:
    :attr:`asam_lib.editors.editing.EditHandle.forward_passes`). ``members``, if a list, receives per-member rows;
    ``unedited``: see :meth:`asam_lib.editors.editing.Editor.edit`; ``inputs``: the evaluation batches kept between
    edits of the same cases (:class:`EvaluationInputs`). ``probes``: questions with their own answers measured on the
    edited model too (:func:`asam_lib.evaluation.metrics.probe_rows`, e.g. VLKEB's portability); ``generation``: also
    the ``generation_exact`` protocol of the standard unit and the probes."""
    with editor.edit(model, encoder, case.request, seed=seed, unedited=unedited) as handle:
        metrics, member_rows = evaluate_tiers(model, encoder, case, reference, inputs, editor.config.layer)
        protocols = (*TEACHER_FORCED, GENERATION) if generation else TEACHER_FORCED
        extra = probe_rows(model, encoder, probes, protocols) if probes else []
        extra += generation_rows(model, encoder, case.unit) if generation else []
        metrics += [{"tier": "standard", **row} for row in extra]
    base = {"method": method, "config": editor_config(editor), "seed": seed, "task": task, "case": case.request.name}
    if members is not None:
        members += [{**base, **m} for m in member_rows if m["tier"] != "binary"]
    rows = [{**base, **m} for m in metrics] + [
        {**base, "tier": "standard", "metric": "seconds", "protocol": "wall", "value": handle.seconds},
        {**base, "tier": "standard", "metric": "steps", "protocol": "count", "value": float(handle.steps)},
    ]
    if handle.forward_passes is not None:
        passes = float(handle.forward_passes)
        rows.append({**base, "tier": "standard", "metric": "forward passes", "protocol": "count", "value": passes})
    return rows


def evaluate_tiers(
    model,
    encoder: PromptEncoder,
    case: EditCase,
    reference,
    inputs: EvaluationInputs | None = None,
    layer: int | None = None,
) -> tuple[list[dict], list[dict]]:
    """Metric rows and per-member rows of the current (edited) model on every tier of ``case``, each row
    tagged with its ``tier``. Reliability and locality belong to the standard tier (they do not depend on
    the unit), so the other tiers report generality and unit consistency only. With ``inputs`` (and the edit
    ``layer``), the evaluation batches come from there (:class:`EvaluationInputs`): the same numbers."""
    rows, member_rows = [], []
    for tier, unit in case.tiers().items():
        tier_members: list[dict] = []
        standard = tier == "standard"
        tier_reference = reference if standard else None
        fixed = None if inputs is None else inputs.get(case, tier, tier_reference, layer)
        metrics = evaluate_edit(model, encoder, unit, tier_reference, tier_members, fixed)
        rows += [{"tier": tier, **m} for m in metrics if standard or m["metric"] != "Rel"]
        member_rows += [{"tier": tier, **m} for m in tier_members]
    return rows, member_rows


def run_single(
    model,
    encoder: PromptEncoder,
    editors: dict[str, Editor],
    cases: Sequence[EditCase],
    seed: int,
    task: str = "vqa",
    members: list | None = None,
    inputs: EvaluationInputs | None = None,
) -> pd.DataFrame:
    """Each editor on each case from the base model, rolled back after each edit. Adds a ``seconds``
    metric (time per edit), a ``steps`` and a ``forward passes`` metric (see :func:`edit_and_evaluate`).
    ``members``, if a list, receives per-member rows for distance curves; ``inputs``: kept evaluation inputs of
    these cases (:class:`EvaluationInputs`; default: new ones for this run)."""
    rows = []
    inputs = EvaluationInputs(model, encoder) if inputs is None else inputs
    references = [inputs.reference(c) for c in cases]  # on the base model, before any edit
    unedited = [
        UneditedPasses() for _ in cases
    ]  # every edit starts from the base model: editors share its forward passes
    for method, editor in editors.items():
        for case, reference, pre in zip(tqdm(cases, desc=f"{method} (seed {seed})", leave=False), references, unedited):
            rows += edit_and_evaluate(model, encoder, method, editor, case, reference, seed, task, members, pre, inputs)
    return pd.DataFrame(rows)


def run_sequential(
    model,
    encoder: PromptEncoder,
    method: str,
    editor: Editor,
    cases: Sequence[EditCase],
    seed: int,
    checkpoints: Sequence[int] = (1, 5, 10, 20, 50),
    task: str = "vqa",
    firing_probe: int = 0,
    inputs: EvaluationInputs | None = None,
) -> pd.DataFrame:
    """Apply the cases' edits one after another (no rollback in between); after ``T`` edits for each
    ``T`` in ``checkpoints``, re-evaluate every edit made so far. All edits are rolled back at the end.

    ``firing_probe`` > 0 (editors that add patches, :func:`asam_lib.editors.patch.stacked_patches`): at every
    checkpoint, also where the patches fire (:func:`firing_rows`) on the first ``firing_probe`` cases.
    ``inputs``: kept evaluation inputs of these cases (:class:`EvaluationInputs`; default: new ones for this run),
    whose batches below the edit layer serve every checkpoint."""
    inputs = EvaluationInputs(model, encoder) if inputs is None else inputs
    references = [inputs.reference(c) for c in cases]  # on the base model, before any edit
    tag = editor_config(editor)
    handles, rows = [], []
    try:
        for t, case in enumerate(
            tqdm(cases[: max(checkpoints)], desc=f"{method} sequential (seed {seed})", leave=False), start=1
        ):
            handles.append(editor.edit(model, encoder, case.request, seed=seed))
            if t not in checkpoints:
                continue
            for age, (old, reference) in enumerate(zip(cases[:t], references[:t])):
                base = {
                    "method": method,
                    "config": tag,
                    "seed": seed,
                    "task": task,
                    "case": old.request.name,
                    "tier": "standard",
                    "T": t,
                    "edit_index": age,
                }
                fixed = inputs.get(old, "standard", reference, editor.config.layer)
                rows += [{**base, **m} for m in evaluate_edit(model, encoder, old.unit, reference, fixed=fixed)]
            if firing_probe > 0:
                base = {"method": method, "config": tag, "seed": seed, "task": task, "tier": "standard", "T": t}
                probe = cases[: min(t, firing_probe)]
                rows += [
                    {**base, **m} for m in firing_rows(model, encoder, probe, cases[:firing_probe], editor.config.layer)
                ]
    finally:
        for handle in reversed(handles):
            handle.restore()
    return pd.DataFrame(rows)


FIRING_METRICS = ("misfire rate", "own patch fires")  # the rows of firing_rows


def firing_rows(
    model, encoder: PromptEncoder, edited: Sequence[EditCase], unrelated: Sequence[EditCase], layer: int
) -> list[dict]:
    """Where the patches at ``layer`` fire (:func:`asam_lib.editors.patch.patch_firing`, answer-predicting positions),
    for a model edited by one patch per case, in order (``edited``: the first of those cases, patch ``i``
    made by ``edited[i]``; later edits may have added more). Rows (``case``, ``edit_index``, ``metric``,
    ``protocol``, ``value``):

    - ``misfire rate`` (protocol ``unrelated``; one row per case of ``unrelated``, whose locality evaluation
      items are inputs no edit was about): the share of (item, patch) pairs where the patch fires. An item's
      expected number of firing patches is this rate times the number of patches, so misfires add up as
      edits accumulate.
    - ``own patch fires`` (protocol ``unit``; one row per edited case): the share of that case's standard
      unit members (anchor included) on which its own patch fires: how much of the unit the edit covers.

    None on a model without patches (GRACE, FT-L, LoRA)."""
    n_patches = len(stacked_patches(model, layer))
    if n_patches == 0:
        return []
    if n_patches < len(edited):
        raise ValueError(f"firing_rows: {n_patches} patch(es) at layer {layer} for {len(edited)} edits (one each)")
    rows = []
    for case in unrelated:
        fires = patch_firing(model, encoder, case.locality, layer) > 0
        rows.append(
            {
                "case": case.request.name,
                "metric": "misfire rate",
                "protocol": "unrelated",
                "value": float(fires.float().mean()),
            }
        )
    for index, case in enumerate(edited):
        fires = patch_firing(model, encoder, member_items(case.unit.members, case.unit.new_answer), layer)[:, index] > 0
        rows.append(
            {
                "case": case.request.name,
                "edit_index": index,
                "metric": "own patch fires",
                "protocol": "unit",
                "value": float(fires.float().mean()),
            }
        )
    return rows


def summarize(results: pd.DataFrame, by: Sequence[str] = ("method", "metric", "protocol")) -> pd.DataFrame:
    """Per-seed means, then mean and 95% CI across seeds, per ``by`` group."""
    per_seed = results.groupby([*by, "seed"], as_index=False)["value"].mean()
    out = []
    for keys, group in per_seed.groupby(list(by)):
        mean, lo, hi = ci95(group["value"].tolist())
        out.append({**dict(zip(by, keys)), "mean": mean, "ci_low": lo, "ci_high": hi, "n_seeds": len(group)})
    return pd.DataFrame(out)


def tidy(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` as :func:`save_table` writes it: floats rounded to 6 decimals, rows sorted by every column
    but the values. Plots drawn from ``tidy(table)`` are the plots drawn from the saved CSV (seaborn's
    bootstrap depends on the order of the rows and rounding can move a bar by a pixel)."""
    out = table.copy()
    for col in out.select_dtypes("float").columns:
        out[col] = out[col].round(6)
    out = out.sort_values([c for c in out.columns if c not in ("value", "mean", "ci_low", "ci_high")], kind="stable")
    return out.reset_index(drop=True)


def save_table(table: pd.DataFrame, name: str, folder: Path | None = None, source: dict | None = None) -> Path:
    """Write ``table`` to ``results/name.csv`` sorted and rounded (:func:`tidy`), so a re-run writes the same bytes.

    After :func:`asam_lib.common.provenance.declare` (a notebook's setup cell), also writes the sidecar ``name.json``
    that figures get: the notebook, its parameters, the hash of its code and of the library. ``source`` (a command
    of ``tools/``: :func:`asam_lib.common.provenance.command_source`) is recorded instead when given.
    """
    folder = paths.ensure(folder or paths.RESULTS)
    path = folder / f"{name}.csv"
    tidy(table).to_csv(path, index=False)
    source = source or provenance.declared()
    if source is not None:
        provenance.write_sidecar([path], {"table": name, **source})
    return path
