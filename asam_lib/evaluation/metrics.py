"""Edit metrics, each tagged with the protocol that computed it.

Reliability, generality and unit consistency are computed on the new target, teacher-forced, under two
protocols: ``token_acc`` (share of target tokens that are the argmax) and ``exact`` (all of them are,
which is the same event as greedy decoding producing the target).

- ``Rel``: the anchor (the edit input itself).
- ``T-Gen`` / ``I-Gen`` / ``TI-Gen``: the unit's ``eval`` members of kind ``text`` / ``image`` / ``both``.
- ``Unit``: unit consistency, all ``eval`` members of the unit together.

When the unit's members carry ``known`` (:func:`asam_lib.data.units.with_known`), each of these also has an
``exact_known`` row: the exact-match share over the members the *unedited* model answered correctly (NaN
when there are none), the primary number of the hard tier.

Locality compares the edited model with the unedited one on unrelated items (text-only for ``T-Loc``,
other entities' images for ``I-Loc``):

- ``answer_span`` (default): share of the answer-span positions whose argmax token is unchanged.
- ``easyedit_topk`` (EasyEdit-compatible): element-wise agreement of the top-k token ids at every
  position of the sequence, k = 1 for text and k = 10 for image locality, as in EasyEdit's multimodal
  evaluation. It is dominated by prompt and image positions, so it reads higher than ``answer_span``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from asam_lib.data.units import KnowledgeUnit
from asam_lib.mllm.forward import FixedInputs
from asam_lib.mllm.generation import PROTOCOL as GENERATION
from asam_lib.mllm.generation import generation_scores
from asam_lib.mllm.prompting import Item, PromptEncoder, answer_logits, answer_targets, score_items

GEN_NAMES = {"anchor": "Rel", "text": "T-Gen", "image": "I-Gen", "both": "TI-Gen"}
EASYEDIT_TOPK = {"T-Loc": 1, "I-Loc": 10}


@dataclass
class LocalityReference:
    """The unedited model's answers on locality items: per item, the answer-span argmax ``(n,)`` and the
    top-k ids at every real position ``(L, k)``; ``kind`` is ``T-Loc`` or ``I-Loc``."""

    items: list[Item]
    kinds: list[str]
    span_argmax: list[torch.Tensor]
    topk: list[torch.Tensor]


def _logits(model, encoder: PromptEncoder, items: Sequence[Item]):
    batch = encoder.batch(items)
    with torch.no_grad():
        return model(**batch.model_inputs()).logits, batch


def _topk_per_item(logits, batch, kinds) -> list[torch.Tensor]:
    lengths = batch.attention_mask.sum(1).tolist()
    return [logits[i, : lengths[i]].topk(EASYEDIT_TOPK[k], -1).indices for i, k in enumerate(kinds)]


def locality_reference(model, encoder: PromptEncoder, items: Sequence[Item]) -> LocalityReference:
    """Record the unedited model's behaviour on locality items (call before editing)."""
    kinds = ["I-Loc" if image is not None else "T-Loc" for _, _, image in items]
    logits, batch = _logits(model, encoder, items)
    spans = [lg.argmax(-1) for lg in answer_logits(logits, batch)]
    return LocalityReference(list(items), kinds, spans, _topk_per_item(logits, batch, kinds))


def evaluated_members(unit: KnowledgeUnit) -> list:
    """The members a unit is evaluated on: its anchor and its ``eval`` members."""
    return [m for m in unit.members if m.kind == "anchor" or m.split == "eval"]


def evaluation_items(unit: KnowledgeUnit, reference: LocalityReference | None) -> list[Item]:
    """The items of one evaluation, in the order :func:`evaluate_edit` reads them: the unit's evaluated members
    with its new answer, then the locality items of ``reference``."""
    unit_items = [(m.question, unit.new_answer, m.image) for m in evaluated_members(unit)]
    return unit_items + (list(reference.items) if reference is not None else [])


def fixed_evaluation_inputs(
    model, encoder: PromptEncoder, unit: KnowledgeUnit, reference: LocalityReference | None, layer: int
) -> FixedInputs:
    """The batch of one evaluation with its hidden states entering block ``layer``, for :func:`evaluate_edit`'s
    ``fixed`` while edits change block ``layer`` or above only."""
    return FixedInputs.from_batch(model, encoder.batch(evaluation_items(unit, reference)), layer)


def _mean(values: list[float]) -> float:
    return float(sum(values) / len(values)) if values else float("nan")


def evaluate_edit(
    model,
    encoder: PromptEncoder,
    unit: KnowledgeUnit,
    reference: LocalityReference | None,
    member_rows: list | None = None,
    fixed: FixedInputs | None = None,
) -> list[dict]:
    """All metrics of the current (edited) model for one unit: rows ``{metric, protocol, value}``.

    If ``member_rows`` is a list, one row per evaluated member (kind, distances, exact) is appended to it,
    for generality-vs-distance curves. ``fixed``: the batch of :func:`evaluation_items` as
    :class:`~asam_lib.mllm.forward.FixedInputs` (:func:`fixed_evaluation_inputs`), when the same unit is evaluated
    again and again (several editors, sequential checkpoints): the same numbers, from the edit layer up."""
    members = evaluated_members(unit)
    if fixed is None:
        logits, batch = _logits(model, encoder, evaluation_items(unit, reference))
    else:
        if len(fixed.batch) != len(members) + (len(reference.items) if reference is not None else 0):
            raise ValueError(f"evaluate_edit: fixed inputs of {len(fixed.batch)} items are not this unit's evaluation")
        with torch.no_grad():
            logits, batch = fixed.logits(model), fixed.batch
    preds = [lg.argmax(-1) for lg in answer_logits(logits, batch)]
    targets = answer_targets(batch)
    rows = []
    hits = [(p == t).float() for p, t in zip(preds[: len(members)], targets[: len(members)])]
    with_known = all(m.known is not None for m in members)
    for kind, name in [*GEN_NAMES.items(), (None, "Unit")]:
        chosen = [(m, h) for m, h in zip(members, hits) if m.kind == kind or (kind is None and m.kind != "anchor")]
        rows.append({"metric": name, "protocol": "token_acc", "value": _mean([h.mean().item() for _, h in chosen])})
        rows.append({"metric": name, "protocol": "exact", "value": _mean([float(h.all()) for _, h in chosen])})
        if with_known:
            known = [float(h.all()) for m, h in chosen if m.known]
            rows.append({"metric": name, "protocol": "exact_known", "value": _mean(known)})
    if member_rows is not None:
        for m, h in zip(members, hits):
            member_rows.append(
                {
                    "kind": m.kind,
                    "text_distance": m.text_distance,
                    "image_distance": m.image_distance,
                    "latent_distance": m.latent_distance,
                    "known": m.known,
                    "exact": float(h.all()),
                }
            )
    if reference is not None:
        n = len(members)
        loc_logits, loc_batch = logits[n:], batch.rows(slice(n, None))
        post_topk = _topk_per_item(loc_logits, loc_batch, reference.kinds)
        for name in ("T-Loc", "I-Loc"):
            idx = [i for i, k in enumerate(reference.kinds) if k == name]
            span = [(preds[n + i] == reference.span_argmax[i]).float().mean().item() for i in idx]
            topk = [(post_topk[i] == reference.topk[i]).float().mean().item() for i in idx]
            rows.append({"metric": name, "protocol": "answer_span", "value": _mean(span)})
            rows.append({"metric": name, "protocol": "easyedit_topk", "value": _mean(topk)})
    return rows


TEACHER_FORCED = ("token_acc", "exact")


def probe_rows(
    model, encoder: PromptEncoder, probes: Sequence[tuple[str, Item]], protocols: Sequence[str] = TEACHER_FORCED
) -> list[dict]:
    """Rows ``{metric, protocol, value}`` of questions with their own answers (``probes``: ``(metric, item)``, e.g.
    VLKEB's portability, :meth:`asam_lib.data.records.EditRecord.probe_items`): per metric, the mean over its probes of
    each of ``protocols``: ``token_acc`` / ``exact`` (teacher forced) and ``generation_exact``
    (:mod:`asam_lib.mllm.generation`)."""
    items = [item for _, item in probes]
    scores: list[dict] = [{} for _ in items]
    if set(TEACHER_FORCED) & set(protocols):
        for score, forced in zip(scores, score_items(model, encoder, items)):
            score.update(forced)
    if GENERATION in protocols:
        for score, generated in zip(scores, generation_scores(model, encoder, items)):
            score.update(generated)
    by_metric: dict[str, list[dict]] = {}
    for (metric, _), score in zip(probes, scores):
        by_metric.setdefault(metric, []).append(score)
    return [
        {"metric": metric, "protocol": protocol, "value": _mean([s[protocol] for s in group])}
        for metric, group in by_metric.items()
        for protocol in protocols
    ]


def generation_rows(model, encoder: PromptEncoder, unit: KnowledgeUnit) -> list[dict]:
    """``generation_exact`` rows of ``Rel`` / ``T-Gen`` / ``I-Gen`` / ``TI-Gen``: the unit's evaluated members, each
    generating its answer (the teacher-forced protocols of the same members: :func:`evaluate_edit`)."""
    probes = [(GEN_NAMES[m.kind], (m.question, unit.new_answer, m.image)) for m in evaluated_members(unit)]
    return probe_rows(model, encoder, probes, (GENERATION,))
