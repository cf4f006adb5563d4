"""Shared fixtures: a small world, a tiny randomly initialised embedded model, and tiny random models of
every supported real architecture (fast, no checkpoint)."""

from __future__ import annotations

import pytest
import torch

from asam_lib.model import ModelConfig, build_model, build_processor
from asam_lib.prompting import PromptEncoder
from asam_lib.tokenizer import build_tokenizer
from asam_lib.world import World, WorldConfig

from tiny_models import BUILDERS, TinyModel, build

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def small_world() -> World:
    return World(WorldConfig(n_entities=6, n_text_entities=4))


@pytest.fixture(scope="session")
def tiny_parts(small_world):
    """(model, processor) of a tiny random LLaVA over the small world's vocabulary."""
    tokenizer = build_tokenizer(small_world.all_words())
    config = ModelConfig(
        vision_hidden=32,
        vision_layers=1,
        vision_heads=2,
        text_hidden=32,
        text_layers=2,
        text_heads=2,
        text_intermediate=64,
    )
    return build_model(tokenizer, config, seed=0), build_processor(tokenizer, config)


@pytest.fixture(scope="session")
def tiny_encoder(tiny_parts) -> PromptEncoder:
    return PromptEncoder(tiny_parts[1])


@pytest.fixture(scope="session", params=list(BUILDERS))
def tiny_arch(request, small_world) -> TinyModel:
    """A tiny random model of each supported architecture, with its processor and chat template."""
    return build(request.param, small_world.all_words())
