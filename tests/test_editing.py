"""Editors: exact rollback, determinism, and clear errors that leave the model untouched."""

import pytest
import torch

from asam_lib.editors.editing import (
    FTL,
    EditConfig,
    EditError,
    forward_embeds,
    joint_embeddings,
    unedited_forward,
)
from asam_lib.editors.grace import GRACE
from asam_lib.editors.lora import LoRA
from asam_lib.editors.patch import Patch

from helpers import changed_weights, make_request, weights

EDITORS = {"FT-L": FTL, "LoRA": LoRA, "Patch": Patch, "GRACE": GRACE}


def _logits(model, encoder, request):
    batch = encoder.batch([request.anchor_item])
    with torch.no_grad():
        return model(**batch.model_inputs()).logits


@pytest.mark.parametrize("name", EDITORS)
def test_an_edit_changes_the_model_and_restore_is_bit_exact(name, small_world, tiny_parts, tiny_encoder):
    model, _ = tiny_parts
    before = weights(model)
    request = make_request(small_world)
    logits_before = _logits(model, tiny_encoder, request)
    handle = EDITORS[name](EditConfig(layer=1, steps=5, lr=0.05, stop_loss=0.0)).edit(model, tiny_encoder, request)
    assert handle.steps == 5 and len(handle.losses) == 5
    assert not torch.equal(_logits(model, tiny_encoder, request), logits_before)
    handle.restore()
    assert not changed_weights(model, before)
    assert all(p.requires_grad for p in model.parameters())
    assert torch.equal(_logits(model, tiny_encoder, request), logits_before)


def test_the_edited_model_context_restores_even_when_its_block_raises(small_world, tiny_parts, tiny_encoder):
    model, _ = tiny_parts
    before = weights(model)
    request = make_request(small_world)
    with pytest.raises(RuntimeError, match="inside the block"):
        with Patch(EditConfig(layer=1, steps=3, stop_loss=0.0)).edit(model, tiny_encoder, request) as handle:
            assert changed_weights(model, before), "the model is edited inside the block"
            raise RuntimeError("inside the block")
    assert handle.restored and not changed_weights(model, before)


@pytest.mark.parametrize("name", EDITORS)
def test_sequential_edits_roll_back_in_reverse(name, small_world, tiny_parts, tiny_encoder):
    model, _ = tiny_parts
    before = weights(model)
    editor = EDITORS[name](EditConfig(layer=1, steps=3, stop_loss=0.0))
    first = editor.edit(model, tiny_encoder, make_request(small_world, name="first"))
    second = editor.edit(
        model, tiny_encoder, make_request(small_world, target=small_world.entities[2].facts["home"], name="second")
    )
    second.restore()
    first.restore()
    assert not changed_weights(model, before)


@pytest.mark.parametrize("name", EDITORS)
def test_the_same_seed_gives_the_same_edit(name, small_world, tiny_parts, tiny_encoder):
    model, _ = tiny_parts
    editor, request = EDITORS[name](EditConfig(layer=1, steps=4, stop_loss=0.0)), make_request(small_world)
    results = []
    for _ in range(2):
        handle = editor.edit(model, tiny_encoder, request, seed=3)
        results.append(_logits(model, tiny_encoder, request))
        handle.restore()
    assert torch.equal(results[0], results[1])


@pytest.mark.parametrize("name", ["LoRA", "Patch"])  # their adapter / keys start from seeded noise (FT-L has none)
def test_another_seed_gives_another_edit(name, small_world, tiny_parts, tiny_encoder):
    model, _ = tiny_parts
    editor, request = EDITORS[name](EditConfig(layer=1, steps=4, stop_loss=0.0)), make_request(small_world)
    results = []
    for seed in (3, 4):
        handle = editor.edit(model, tiny_encoder, request, seed=seed)
        results.append(_logits(model, tiny_encoder, request))
        handle.restore()
    assert not torch.equal(results[0], results[1])


class _NaNEditor(FTL):
    def extra_losses(self, model, context, step):
        return {"poison": torch.tensor(float("nan"))} if step == 2 else {}


def test_a_nan_loss_raises_and_leaves_the_base_weights_untouched(small_world, tiny_parts, tiny_encoder):
    model, _ = tiny_parts
    before = weights(model)
    with pytest.raises(EditError, match="test-request: non-finite poison loss at step 2"):
        _NaNEditor(EditConfig(layer=1, steps=5, stop_loss=0.0)).edit(model, tiny_encoder, make_request(small_world))
    assert not changed_weights(model, before)


@pytest.mark.parametrize(
    "kwargs, config, message",
    [
        ({"target": " "}, EditConfig(layer=1), "test-request: answer ' ' tokenises to nothing"),
        ({"image": "photo.jpg"}, EditConfig(layer=1), "test-request: item 0 .* image is a str"),
        ({}, EditConfig(layer=7), "test-request: edit layer 7 is out of range"),
    ],
)
def test_bad_requests_name_the_request_and_the_cause(kwargs, config, message, small_world, tiny_parts, tiny_encoder):
    model, _ = tiny_parts
    before = weights(model)
    with pytest.raises(EditError, match=message):
        Patch(config).edit(model, tiny_encoder, make_request(small_world, **kwargs))
    assert not changed_weights(model, before)


@pytest.mark.parametrize("name", EDITORS)
def test_unedited_forward_runs_the_unedited_model_without_touching_the_weights(
    name, small_world, tiny_parts, tiny_encoder
):
    model, _ = tiny_parts
    request = make_request(small_world)
    batch = tiny_encoder.batch([request.anchor_item])
    embeds = joint_embeddings(model, batch)
    with torch.no_grad():
        clean = forward_embeds(model, embeds, batch)
    handle = EDITORS[name](EditConfig(layer=1, steps=5, lr=0.05, stop_loss=0.0)).edit(model, tiny_encoder, request)
    edited_state = weights(model)
    try:
        with torch.no_grad():
            assert not torch.equal(forward_embeds(model, embeds, batch), clean)
            assert torch.allclose(unedited_forward(model, handle.originals)(embeds, batch), clean, atol=1e-5)
        assert not changed_weights(model, edited_state)
    finally:
        handle.restore()
