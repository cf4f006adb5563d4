"""Knowledge units: every input that expresses the same fact as the edit input.

A unit's members are (question, image) pairs tagged by how they differ from the edit input:
``anchor`` (the edit input itself), ``text`` (a paraphrase, same image), ``image`` (another image of the
entity, same question) and ``both``. Each member is in the ``support`` split (what an editor may see;
by default only the anchor) or the ``eval`` split (never seen while editing). Each member carries its
distance from the anchor: ``text_distance`` (number of template parts that differ; 0-3) and
``image_distance`` (RMS difference of the render parameters, in units of their ranges).

Generality of an edit is the share of ``eval`` members predicted as the new target; T-Gen, I-Gen and
TI-Gen are its ``text``, ``image`` and ``both`` slices.

Two evaluation tiers of the same fact (:data:`TIERS`, :func:`unit_from_world`):

- ``standard``: other images of the entity drawn like the pretraining images (transform strength 1), and
  other phrasings of the relation (training and held-out combinations);
- ``hard`` [reconstruction: this companion's, not the paper's]: images drawn at ``hard_strength`` times the
  pretraining ranges (default 2: larger shifts, scales, rotations, hue, brightness, background and noise,
  clipped to valid values), and only held-out phrasings whose *core* differs from the edit question's. The
  shipped model saw every core phrasing in pretraining (in other combinations); a core held out of
  pretraining altogether would need a retrained model. The unedited model fails on some hard members, so
  metrics are also reported over the members it answers correctly (:attr:`Member.known`,
  :func:`with_known`): an edit cannot be expected to generalise to an input on which the fact itself is not
  recognised.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from PIL import Image

from asam_lib.common.seeding import numpy_rng
from asam_lib.data.records import EditRecord
from asam_lib.data.render import param_distance
from asam_lib.data.world import EVAL_STREAM, Question, World
from asam_lib.mllm.architectures import edit_layer_mlp
from asam_lib.mllm.hooks import module_input
from asam_lib.mllm.prompting import answer_positions, score_items

KINDS = ("anchor", "text", "image", "both")
TIERS = ("standard", "hard")
HARD_STREAM = "hard"  # the hard tier's images: a stream of their own, drawn at hard_strength


@dataclass(frozen=True)
class Member:
    """One input of a knowledge unit."""

    question: str
    image: Image.Image | None = field(repr=False)
    kind: str
    split: str
    text_distance: float
    image_distance: float
    latent_distance: float = float("nan")  # set by with_latent_distances
    known: bool | None = None  # the unedited model answers it with the old answer (set by with_known)


@dataclass
class KnowledgeUnit:
    """The unit of one edit request: the anchor plus its text / image / both variants."""

    src: str
    old_answer: str
    new_answer: str
    members: list[Member]
    name: str = ""

    def select(self, kind: str | None = None, split: str | None = None) -> list[Member]:
        """Members of one kind and/or split (None = any)."""
        return [m for m in self.members if (kind is None or m.kind == kind) and (split is None or m.split == split)]

    @property
    def anchor(self) -> Member:
        return self.select("anchor")[0]

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={len(self.select(k))}" for k in KINDS)
        return f"KnowledgeUnit({self.name or self.src!r}: {self.old_answer!r} -> {self.new_answer!r}; {counts})"


def unit_from_record(record: EditRecord) -> KnowledgeUnit:
    """The four-member unit of an MMEdit record: anchor, text (rephrase), image (image_rephrase), both."""
    image, other = record.image("image"), record.image("image_rephrase") if record.image_rephrase_path else None
    members = [Member(record.src, image, "anchor", "support", 0.0, 0.0)]
    if record.rephrase:
        members.append(Member(record.rephrase, image, "text", "eval", 1.0, 0.0))
    if other is not None:
        members.append(Member(record.src, other, "image", "eval", 0.0, 1.0))
    if record.rephrase and other is not None:
        members.append(Member(record.rephrase, other, "both", "eval", 1.0, 1.0))
    return KnowledgeUnit(record.src, record.pred, record.alt, members, name=f"record {record.index}")


def _find_phrasing(world: World, relation: str, text: str) -> Question:
    for q in world.phrasings(relation):
        if q.render() == text:
            return q
    raise ValueError(f"{text!r} is not a phrasing of relation {relation!r} in this world")


def unit_from_world(
    world: World,
    record: EditRecord,
    n_text: int = 8,
    n_image: int = 8,
    n_both: int = 16,
    seed: int = 0,
    tier: str = "standard",
    hard_strength: float = 2.0,
) -> KnowledgeUnit:
    """The large unit of a world edit request (a record exported by :mod:`asam_lib.data.benchmark`).

    ``text`` members: other phrasings of the relation with the anchor image; ``image`` members: other
    images of the entity with the anchor question; ``both``: other phrasings with other images. Sizes are
    capped by ``n_*`` (seeded subsample). ``tier``: ``"standard"`` (held-out images of the evaluation
    stream, every other phrasing) or ``"hard"`` (images at ``hard_strength``, held-out phrasings with another
    core; see the module docstring). The anchor is the same in both tiers.
    """
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}; choose one of {TIERS}")
    entity, relation = record.extra.get("entity"), record.extra.get("relation")
    if entity is None or relation is None:
        raise ValueError(
            f"record {record.index} has no 'entity'/'relation' fields: use unit_from_record for MMEdit data"
        )
    rng = numpy_rng(seed, "unit", entity, relation, *(() if tier == "standard" else (tier,)))
    anchor_q = _find_phrasing(world, relation, record.src)
    anchor_index = int(record.image_path.rsplit("_", 1)[1].split(".")[0])
    anchor_params = world.image_params(entity, EVAL_STREAM, anchor_index)
    anchor_image = world.image(entity, EVAL_STREAM, anchor_index)
    others_q = [q for q in world.phrasings(relation) if q != anchor_q]
    image_ids = [k for k in range(anchor_index + 1, anchor_index + 1 + max(n_image, n_both))]
    stream, strength = (EVAL_STREAM, None) if tier == "standard" else (HARD_STREAM, hard_strength)
    if tier == "hard":
        others_q = [q for q in others_q if q.heldout and q.parts[1] != anchor_q.parts[1]]

    def pick(pool: list, n: int) -> list:
        return [pool[i] for i in sorted(rng.choice(len(pool), size=min(n, len(pool)), replace=False))]

    def image_member(k: int):
        return world.image(entity, stream, k, strength=strength), param_distance(
            world.image_params(entity, stream, k, strength), anchor_params
        )

    members = [Member(record.src, anchor_image, "anchor", "support", 0.0, 0.0)]
    for q in pick(others_q, n_text):
        members.append(Member(q.render(), anchor_image, "text", "eval", float(q.paraphrase_distance(anchor_q)), 0.0))
    for k in image_ids[:n_image]:
        img, dist = image_member(k)
        members.append(Member(record.src, img, "image", "eval", 0.0, dist))
    for q in pick(others_q, n_both):
        img, dist = image_member(image_ids[int(rng.integers(len(image_ids)))])
        members.append(Member(q.render(), img, "both", "eval", float(q.paraphrase_distance(anchor_q)), dist))
    ent = world.entities[entity]
    suffix = "" if tier == "standard" else f" ({tier} tier)"
    return KnowledgeUnit(record.src, record.pred, record.alt, members, name=f"{ent.caption} / {relation}{suffix}")


def member_items(members: list[Member], answer: str) -> list[tuple[str, str, Image.Image | None]]:
    """``(question, answer, image)`` items of ``members`` for scoring with one answer."""
    return [(m.question, answer, m.image) for m in members]


def with_latent_distances(model, encoder, unit: KnowledgeUnit, layer: int) -> KnowledgeUnit:
    """A copy of ``unit`` whose members carry ``latent_distance``: the cosine distance between their
    input to the FFN of ``layer`` and the anchor's, at the answer-predicting position, in ``model``."""
    batch = encoder.batch(member_items(unit.members, unit.old_answer))
    inputs = module_input(edit_layer_mlp(model, layer), lambda: model(**batch.model_inputs()))
    states = answer_positions(inputs, batch)
    distances = 1 - torch.nn.functional.cosine_similarity(states, states[0:1].expand_as(states), dim=-1)
    members = [replace(m, latent_distance=float(d)) for m, d in zip(unit.members, distances.clamp_min(0))]
    return KnowledgeUnit(unit.src, unit.old_answer, unit.new_answer, members, unit.name)


def with_known(model, encoder, unit: KnowledgeUnit) -> KnowledgeUnit:
    """A copy of ``unit`` whose members carry ``known``: whether ``model`` (the unedited one) answers each
    with the unit's old answer (exact match)."""
    with torch.no_grad():
        scores = score_items(model, encoder, member_items(unit.members, unit.old_answer))
    members = [replace(m, known=s["exact"] == 1.0) for m, s in zip(unit.members, scores)]
    return KnowledgeUnit(unit.src, unit.old_answer, unit.new_answer, members, unit.name)
