"""Shared fixtures: a small world, a tiny randomly initialised embedded model, and tiny random models of
every supported real architecture (fast, no checkpoint)."""

from __future__ import annotations

import pytest
import torch

from asam_lib.data.world import World, WorldConfig
from asam_lib.mllm.model import ModelConfig, build_model, build_processor
from asam_lib.mllm.prompting import PromptEncoder
from asam_lib.mllm.tokenizer import build_tokenizer

from helpers import ModelState, models_in
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


@pytest.fixture(autouse=True)
def shared_models_unchanged(request):
    """After each test, every model that a session- or module-scoped fixture of the test holds is bit-identical
    to its state before the test; if not, it is put back (so one failing test cannot make later ones fail) and
    *this* test fails, naming what changed."""
    shared = {}
    for name in request.fixturenames:
        definitions = request._fixturemanager.getfixturedefs(name, request.node) or ()
        if definitions and definitions[-1].scope != "function":
            for model in models_in(request.getfixturevalue(name)):
                shared.setdefault(id(model), (name, ModelState(model), model))
    yield
    left = []
    for name, state, model in shared.values():
        found = state.differences(model)
        if found:
            state.restore()
            left.append(f"{name}: {'; '.join(found[:3])}{' ...' if len(found) > 3 else ''}")
    if left:
        pytest.fail(f"{request.node.nodeid} left a shared model changed (now restored): " + " | ".join(left))
