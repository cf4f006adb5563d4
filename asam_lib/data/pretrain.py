"""Deterministic pretraining of the embedded LLaVA on the world, and the base-model cache.

The curriculum has two stages (the README says why):

1. **Vision stage.** The CLIP vision tower alone learns to see the world: auxiliary heads on its mean
   patch feature (the feature LLaVA passes on, ``vision_feature_layer=-1``) classify shape, colour,
   pattern and entity identity. Signal that reaches the tower only through the language model is too
   weak to learn shape and pattern in minutes; direct supervision is not. The heads are dropped.
2. **Language stage.** The vision tower is frozen; the projector and the Llama model learn the facts
   from VQA, caption and text-only questions (training phrasings only, pretraining images only).

The result is saved with ``save_pretrained`` under a folder keyed by the hash of every config that
changes it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from asam_lib.common import cache, paths
from asam_lib.common.progress import tqdm
from asam_lib.common.seeding import numpy_rng, seed_everything
from asam_lib.data.render import COLOURS, PATTERNS, SHAPES
from asam_lib.data.world import EVAL_STREAM, PRETRAIN_STREAM, RELATIONS, World, WorldConfig
from asam_lib.mllm.model import ModelConfig, build_model, build_processor, config_hash, load_model
from asam_lib.mllm.prompting import PromptEncoder, score_items
from asam_lib.mllm.tokenizer import build_tokenizer


@dataclass(frozen=True)
class PretrainConfig:
    """The optimiser and curriculum. Defaults reproduce the committed checkpoint."""

    seed: int = 0
    images_per_entity: int = 768
    vision_steps: int = 3000
    vision_batch: int = 128
    vision_lr: float = 2e-3
    lm_steps: int = 3000
    lm_batch: int = 64
    lm_lr: float = 2e-3
    share_caption: float = 0.15
    share_text: float = 0.3
    weight_decay: float = 0.01
    warmup_steps: int = 100


def _schedule(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, total - warmup))))


def image_bank(world: World, encoder: PromptEncoder, stream: str, per_entity: int) -> torch.Tensor:
    """Processed images ``(n_entities * per_entity, 3, H, W)``, entity-major, cached on disk."""
    key = config_hash(world.config, stream, per_entity, "bank-v1")
    path = paths.ensure(paths.CACHE / "banks") / f"{stream}-{key}.pt"
    if path.exists():
        return torch.load(path)
    images = [
        world.image(e, stream, i)
        for e in range(len(world.entities))
        for i in tqdm(range(per_entity), desc=f"rendering {stream} images of entity {e}", leave=False)
    ]
    bank = torch.cat([encoder.pixel_values(images[lo : lo + 512]) for lo in range(0, len(images), 512)])
    cache.write_atomically(path, lambda tmp: torch.save(bank, tmp))
    return bank


def _vision_features(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """Mean of the patch features LLaVA uses (CLS dropped): (N, vision_hidden)."""
    out = model.model.vision_tower(pixel_values, output_hidden_states=True)
    return out.hidden_states[model.config.vision_feature_layer][:, 1:].mean(1)


VISION_HEADS = ("shape", "colour", "pattern", "entity")


def _vision_labels(world: World, per_entity: int) -> torch.Tensor:
    """(n_entities * per_entity, 4) labels of an entity-major bank, columns as ``VISION_HEADS``."""
    rows = [
        [SHAPES.index(e.shape), list(COLOURS).index(e.colour), PATTERNS.index(e.pattern), e.index]
        for e in world.entities
    ]
    return torch.tensor(rows).repeat_interleave(per_entity, 0)


@torch.no_grad()
def _head_accuracy(model, heads, bank: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    feats = torch.cat([_vision_features(model, bank[lo : lo + 512]) for lo in range(0, len(bank), 512)])
    return {
        name: (h(feats).argmax(-1) == labels[:, k]).float().mean().item()
        for k, (name, h) in enumerate(zip(VISION_HEADS, heads))
    }


def train_vision(
    model, world: World, bank: torch.Tensor, config: PretrainConfig, eval_bank: torch.Tensor | None = None
):
    """Stage 1: supervise the vision tower with attribute and identity heads.

    Returns the loss curve and, if ``eval_bank`` (held-out images, entity-major) is given, the heads'
    accuracy on it."""
    labels = _vision_labels(world, bank.shape[0] // len(world.entities))
    d = model.config.vision_config.hidden_size
    heads = torch.nn.ModuleList(
        [torch.nn.Linear(d, n) for n in (len(SHAPES), len(COLOURS), len(PATTERNS), len(world.entities))]
    )
    params = list(model.model.vision_tower.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=config.vision_lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)
    model.train()
    losses = []
    for step in tqdm(range(config.vision_steps), desc="vision stage"):
        for group in opt.param_groups:
            group["lr"] = config.vision_lr * _schedule(step, config.vision_steps, config.warmup_steps)
        idx = torch.randint(0, bank.shape[0], (config.vision_batch,), generator=gen)
        feats = _vision_features(model, bank[idx])
        loss = sum(F.cross_entropy(h(feats), labels[idx, k]) for k, h in enumerate(heads))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    if eval_bank is None:
        return losses, {}
    return losses, _head_accuracy(
        model, heads, eval_bank, _vision_labels(world, eval_bank.shape[0] // len(world.entities))
    )


def _training_items(world: World, bank: torch.Tensor, rng: np.random.Generator, n: int, config: PretrainConfig):
    per_entity = bank.shape[0] // len(world.entities)
    relations = list(RELATIONS)
    items = []
    for _ in range(n):
        u = rng.random()
        if u < config.share_text:
            ent = world.text_entities[rng.integers(len(world.text_entities))]
            rel = relations[rng.integers(len(relations))]
            qs = world.phrasings(rel, heldout=False, text=True)
            items.append((qs[rng.integers(len(qs))].render(f"the {ent.name}"), world.answer(ent, rel), None))
            continue
        ent = world.entities[rng.integers(len(world.entities))]
        rel = "caption" if u < config.share_text + config.share_caption else relations[rng.integers(len(relations))]
        qs = world.phrasings(rel, heldout=False)
        image = bank[ent.index * per_entity + rng.integers(per_entity)]
        items.append((qs[rng.integers(len(qs))].render(), world.answer(ent, rel), image))
    return items


def train_language(
    model, world: World, encoder: PromptEncoder, bank: torch.Tensor, config: PretrainConfig
) -> list[float]:
    """Stage 2: frozen vision tower; projector + language model learn the facts. Returns the loss curve."""
    for p in model.model.vision_tower.parameters():
        p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lm_lr, weight_decay=config.weight_decay)
    rng = numpy_rng(config.seed, "lm-stage")
    model.train()
    losses = []
    for step in tqdm(range(config.lm_steps), desc="language stage"):
        for group in opt.param_groups:
            group["lr"] = config.lm_lr * _schedule(step, config.lm_steps, config.warmup_steps)
        batch = encoder.batch(_training_items(world, bank, rng, config.lm_batch, config))
        loss = model(**batch.model_inputs(), labels=batch.labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    return losses


def knowledge_report(
    model, encoder: PromptEncoder, world: World, images_per_entity: int = 4, seed: int = 0
) -> dict[str, float]:
    """Exact-match accuracy of the model on the world, by split.

    ``image_heldout``: held-out images, training phrasings; ``paraphrase_heldout``: pretraining images,
    held-out phrasings; ``both_heldout``: both held out; ``text``: text-only facts, training phrasings;
    ``text_paraphrase``: text-only facts, held-out phrasings; ``caption_*`` likewise for captions.
    """
    rng = numpy_rng(seed, "knowledge-report")
    slices: dict[str, list] = {
        k: []
        for k in (
            "image_heldout",
            "paraphrase_heldout",
            "both_heldout",
            "caption_image_heldout",
            "caption_paraphrase_heldout",
            "text",
            "text_paraphrase",
        )
    }
    for ent in world.entities:
        for rel in [*RELATIONS, "caption"]:
            prefix = "caption_" if rel == "caption" else ""
            train_q, held_q = world.phrasings(rel, heldout=False), world.phrasings(rel, heldout=True)
            for k in range(images_per_entity):
                eval_img = world.image(ent.index, EVAL_STREAM, k)
                train_img = world.image(ent.index, PRETRAIN_STREAM, int(rng.integers(1000)))
                answer = world.answer(ent, rel)
                slices[prefix + "image_heldout"].append(
                    (train_q[rng.integers(len(train_q))].render(), answer, eval_img)
                )
                slices[prefix + "paraphrase_heldout"].append(
                    (held_q[rng.integers(len(held_q))].render(), answer, train_img)
                )
                if not prefix:
                    slices["both_heldout"].append((held_q[rng.integers(len(held_q))].render(), answer, eval_img))
    for ent in world.text_entities:
        for rel in RELATIONS:
            for held, key in ((False, "text"), (True, "text_paraphrase")):
                for q in world.phrasings(rel, heldout=held, text=True):
                    slices[key].append((q.render(f"the {ent.name}"), world.answer(ent, rel), None))
    return {k: float(np.mean([s["exact"] for s in score_items(model, encoder, items)])) for k, items in slices.items()}


TARGETS = {"image_heldout": 0.95, "paraphrase_heldout": 0.93, "text": 0.97}


def model_key(world_config: WorldConfig, model_config: ModelConfig, pretrain_config: PretrainConfig) -> str:
    """The cache key of a base model: every parameter that changes it."""
    return config_hash(world_config, model_config, pretrain_config, "base-model-v1")


def pretrain(
    world_config: WorldConfig = WorldConfig(),
    model_config: ModelConfig = ModelConfig(),
    pretrain_config: PretrainConfig = PretrainConfig(),
    out_dir: str | Path | None = None,
) -> Path:
    """Pretrain the base model from scratch and save it (model, processor, ``asam_meta.json``)."""
    seed_everything(pretrain_config.seed)
    world = World(world_config)
    tokenizer = build_tokenizer(world.all_words())
    processor = build_processor(tokenizer, model_config)
    encoder = PromptEncoder(processor)
    model = build_model(tokenizer, model_config, seed=pretrain_config.seed)
    start = time.perf_counter()
    bank = image_bank(world, encoder, PRETRAIN_STREAM, pretrain_config.images_per_entity)
    eval_bank = image_bank(world, encoder, EVAL_STREAM, 8)
    vision_losses, vision_accuracy = train_vision(model, world, bank, pretrain_config, eval_bank)
    lm_losses = train_language(model, world, encoder, bank, pretrain_config)
    seconds = time.perf_counter() - start
    report = knowledge_report(model, encoder, world)
    key = model_key(world_config, model_config, pretrain_config)
    out = Path(out_dir) if out_dir else paths.CACHE / "models" / key
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    meta = {
        "key": key,
        "world_config": asdict(world_config),
        "model_config": asdict(model_config),
        "pretrain_config": asdict(pretrain_config),
        "pretrain_seconds": round(seconds, 1),
        "accuracy": {k: round(v, 4) for k, v in report.items()},
        "vision_accuracy": {k: round(v, 4) for k, v in vision_accuracy.items()},
        "targets": TARGETS,
        "final_losses": {
            "vision": round(float(np.mean(vision_losses[-50:])), 4),
            "language": round(float(np.mean(lm_losses[-50:])), 4),
        },
    }
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    cache.write_atomically(out / "asam_meta.json", lambda tmp: tmp.write_text(text))  # last: marks the folder complete
    return out


def base_model_folder(
    world_config: WorldConfig = WorldConfig(),
    model_config: ModelConfig = ModelConfig(),
    pretrain_config: PretrainConfig = PretrainConfig(),
) -> Path:
    """The folder of the base model for these configs: the shipped checkpoint when its key matches,
    else the cache, pretraining into it first if it is missing."""
    key = model_key(world_config, model_config, pretrain_config)
    shipped = paths.CHECKPOINTS / "base"
    meta = shipped / "asam_meta.json"
    if meta.exists() and json.loads(meta.read_text())["key"] == key:
        return shipped
    cached = paths.CACHE / "models" / key
    if not (cached / "asam_meta.json").exists():
        with cache.building(cached):
            if not (cached / "asam_meta.json").exists():
                pretrain(world_config, model_config, pretrain_config, cached)
    return cached


def base_model(world_config: WorldConfig = WorldConfig(), **configs):
    """``(model, processor)`` of the base model pretrained on the world of ``world_config``."""
    return load_model(base_model_folder(world_config, **configs))


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Pretrain the embedded LLaVA on the world from scratch.")
    parser.add_argument("--out", type=Path, required=True, help="folder to save the model into")
    args = parser.parse_args(argv)
    out = pretrain(out_dir=args.out)
    print((out / "asam_meta.json").read_text())


if __name__ == "__main__":
    main()
