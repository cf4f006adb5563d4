"""The embedded benchmark: counterfactual edit requests drawn from the world, exported in the MMEdit
schema (JSON + PNG files) so that :func:`asam_lib.data.records.load_records` reads it like real MMEdit data.

Locality items come from two disjoint pools: ``support`` (what an editor may use while editing) and
``eval`` (what locality is measured on). Text locality pools are disjoint sets of text entities; image
locality pools are disjoint sets of image entities.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asam_lib.common import cache, paths
from asam_lib.common.seeding import numpy_rng
from asam_lib.data.formats import KNOWLEDGE_TYPES
from asam_lib.data.world import EVAL_STREAM, RELATIONS, World
from asam_lib.mllm.model import config_hash


@dataclass(frozen=True)
class LocalityPools:
    """Entity indices of the locality pools (text entities and image entities)."""

    text_support: tuple[int, ...]
    text_eval: tuple[int, ...]
    image_support: tuple[int, ...]
    image_eval: tuple[int, ...]


def locality_pools(world: World) -> LocalityPools:
    """Split text and image entities in halves, seeded: support vs evaluation locality pools."""
    rng = numpy_rng(world.config.seed, "locality-pools")
    text = rng.permutation(len(world.text_entities)).tolist()
    image = rng.permutation(len(world.entities)).tolist()
    t, i = len(text) // 2, len(image) // 2
    return LocalityPools(
        tuple(sorted(text[:t])), tuple(sorted(text[t:])), tuple(sorted(image[:i])), tuple(sorted(image[i:]))
    )


def image_file(entity: int, index: int, stream: str = EVAL_STREAM) -> str:
    """Relative path of an exported world image."""
    return f"images/{stream}/e{entity:03d}_{index:03d}.png"


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def edit_requests(world: World, task: str = "vqa") -> list[dict]:
    """One counterfactual MMEdit record per (entity, relation) for ``vqa``, per entity for ``caption``.

    ``src`` is a training phrasing, ``rephrase`` a held-out one; ``image`` and ``image_rephrase`` are
    held-out images; ``alt`` differs from the true answer ``pred``; locality items come from the
    evaluation pools. Extra fields ``entity``/``relation`` let the world rebuild the full unit.
    """
    pools = locality_pools(world)
    rng = numpy_rng(world.config.seed, "requests", task)
    relations = list(RELATIONS) if task == "vqa" else ["caption"]
    if task not in ("vqa", "caption"):
        raise ValueError(f"unknown task {task!r}; use 'vqa' or 'caption'")
    records = []
    for ent in world.entities:
        for rel in relations:
            truth = world.answer(ent, rel)
            if rel == "caption":
                alt = _pick(rng, [e.caption for e in world.entities if e.caption != truth])
            else:
                alt = _pick(rng, [a for a in world.candidate_answers(rel) if a != truth])
            loc_ent = world.text_entities[_pick(rng, pools.text_eval)]
            loc_rel = _pick(rng, list(RELATIONS))
            m_ent = world.entities[_pick(rng, [i for i in pools.image_eval if i != ent.index])]
            m_rel = _pick(rng, list(RELATIONS))
            records.append(
                {
                    "src": _pick(rng, world.phrasings(rel, heldout=False)).render(),
                    "pred": truth,
                    "alt": alt,
                    "rephrase": _pick(rng, world.phrasings(rel, heldout=True)).render(),
                    "image": image_file(ent.index, 0),
                    "image_rephrase": image_file(ent.index, 1),
                    "loc": _pick(rng, world.phrasings(loc_rel, heldout=False, text=True)).render(f"the {loc_ent.name}"),
                    "loc_ans": world.answer(loc_ent, loc_rel),
                    "m_loc": image_file(m_ent.index, 0),
                    "m_loc_q": _pick(rng, world.phrasings(m_rel, heldout=False)).render(),
                    "m_loc_a": world.answer(m_ent, m_rel),
                    "task": task,
                    "entity": ent.index,
                    "relation": rel,
                }
            )
    return records


def export_mmedit(world: World, out_dir: str | Path, task: str = "vqa", images_per_entity: int = 2) -> Path:
    """Write ``{task}.json`` and the PNG files it names under ``out_dir``; return the JSON path. Every file
    is written atomically, so a process reading the images of another task (they share the images) never
    sees a half-written file."""
    return _export(world, Path(out_dir), f"{task}.json", edit_requests(world, task), images_per_entity)


def _export(world: World, out_dir: Path, name: str, records: list[dict], images_per_entity: int = 2) -> Path:
    """Write the world's images and ``records`` as ``out_dir/name``; return the JSON path."""
    for ent in world.entities:
        for k in range(images_per_entity):
            image = world.image(ent.index, EVAL_STREAM, k)
            cache.write_atomically(out_dir / image_file(ent.index, k), lambda tmp: image.save(tmp, format="PNG"))
    text = json.dumps(records, indent=1) + "\n"
    return cache.write_atomically(out_dir / name, lambda tmp: tmp.write_text(text))


def _other_phrasing(
    world: World, rng: np.random.Generator, relation: str, taken: set[str], text: bool = False, ref: str = ""
):
    """A phrasing of ``relation`` (text-only ones name ``ref``) not in ``taken``, which it joins."""
    options = [
        q.render(ref) if text else q.render()
        for held in (True, False)
        for q in world.phrasings(relation, heldout=held, text=text)
    ]
    fresh = [o for o in options if o not in taken] or options
    choice = _pick(rng, fresh)
    taken.add(choice)
    return choice


def vlkeb_requests(world: World) -> list[dict]:
    """The world's E-VQA records in VLKEB's multi-hop layout: each with ``port_new`` holding one question
    (``port_type`` ``"1-hop"``) whose answer is the new one. The world has no facts about answers, so there is no
    true second hop: the question is the edited fact in a phrasing the record does not use, on its image, and
    the number it gives is a generality number, not portability (docs/benchmarks.md)."""
    rng = numpy_rng(world.config.seed, "vlkeb")
    records = edit_requests(world, "vqa")
    for r in records:
        question = _other_phrasing(world, rng, r["relation"], {r["src"], r["rephrase"]})
        r["port_new"] = [{"port_type": "1-hop", "Q&A": {"Question": question, "Answer": r["alt"]}}]
    return records


def mmke_requests(world: World) -> list[dict]:
    """The world's E-VQA records in MMKE-Bench's layout: ``knowledge_type`` in turn by entity, text-only
    reliability questions that name the entity (``rel_1`` / ``rel_2``, or ``rel``), questions on its image
    (``m_rel_*``), ``image_rephrase_question`` and ``one_hop_img`` for ``visual_knowledge``, every answer the new
    one, and the answer keys in both of MMKE-Bench's spellings (``rel_ans_1`` on even records, ``rel_1_ans`` on
    odd ones)."""
    rng = numpy_rng(world.config.seed, "mmke")
    records = edit_requests(world, "vqa")
    for i, r in enumerate(records):
        entity, relation, answer = world.entities[r["entity"]], r["relation"], r["alt"]
        kind = KNOWLEDGE_TYPES[entity.index % len(KNOWLEDGE_TYPES)]
        taken = {r["src"], r["rephrase"]}
        r["knowledge_type"] = kind
        if kind != "entity_level":
            r["one_hop_img"] = r["image_rephrase"]
        if kind == "visual_knowledge":
            r["rel"] = _other_phrasing(world, rng, relation, taken, text=True, ref=f"the {entity.name}")
            r["rel_ans"] = answer
            r["m_rel"] = _other_phrasing(world, rng, relation, taken)
            r["m_rel_ans"] = answer
            r["image_rephrase_question"] = _other_phrasing(world, rng, relation, taken)
            continue
        for k in (1, 2):
            r[f"rel_{k}"] = _other_phrasing(world, rng, relation, taken, text=True, ref=f"the {entity.name}")
            r[f"rel_ans_{k}" if i % 2 == 0 else f"rel_{k}_ans"] = answer
            r[f"m_rel_{k}"] = _other_phrasing(world, rng, relation, taken)
            r[f"m_rel_ans_{k}" if i % 2 == 0 else f"m_rel_{k}_ans"] = answer
    return records


EXPORTS = {"mmedit": lambda world: edit_requests(world, "vqa"), "vlkeb": vlkeb_requests, "mmke": mmke_requests}


def export_format(world: World, out_dir: str | Path, fmt: str) -> Path:
    """Write the world's E-VQA records in benchmark format ``fmt`` (``mmedit``, ``vlkeb`` or ``mmke``) as
    ``out_dir/{fmt}.json`` with the images it names; return the JSON path."""
    if fmt not in EXPORTS:
        raise ValueError(f"unknown format {fmt!r}; use one of {tuple(EXPORTS)}")
    return _export(world, Path(out_dir), f"{fmt}.json", EXPORTS[fmt](world))


def exported_benchmark(world: World, task: str = "vqa") -> Path:
    """The world's MMEdit JSON for ``task`` in the cache (exported on first use, by one process at a time)."""
    folder = paths.CACHE / "benchmark" / config_hash(world.config, "benchmark-v1")
    json_path = folder / f"{task}.json"
    if not json_path.exists():
        with cache.building(folder):
            if not json_path.exists():
                export_mmedit(world, folder, task)
    return json_path
