"""The edit loop's memory options (asam_lib.mllm.memory) change what a step keeps, not what it computes: on the CPU in
float32, every registered editor gives the same weights, losses and answers with and without each of them."""

from dataclasses import replace

import pytest
import torch

from asam_lib.editors import methods
from asam_lib.editors.editing import EditConfig, EditError, mean_answer_ce
from asam_lib.mllm.architectures import language_layers
from asam_lib.mllm.forward import FixedInputs
from asam_lib.mllm.memory import LoopMemory, checkpointed_blocks, is_large, loss_window
from asam_lib.mllm.prompting import PromptEncoder, answer_logits

from helpers import changed_weights, make_request, weights
from tiny_models import build

ARCHITECTURES = ("LlavaForConditionalGeneration", "Qwen2VLForConditionalGeneration")
# Edit layer 0 of 2: block 1 sits above it (recomputed with checkpoint_blocks); 4 steps with every term active.
OFF = EditConfig(layer=0, steps=4, lr=0.05, stop_loss=0.0, checkpoint_blocks=False, loss_logits=False, micro_batch=0)
OPTIONS = {
    "checkpoint_blocks": replace(OFF, checkpoint_blocks=True),
    "loss_logits": replace(OFF, loss_logits=True),
    "micro_batch": replace(OFF, micro_batch=1),
    "all": replace(OFF, checkpoint_blocks=True, loss_logits=True, micro_batch=1),
}
# Checkpointing recomputes the same operations on the same inputs: bit-identical. The window and micro-batches run
# the same rows through matrix products of other shapes (and sum the gradients of the groups in another order), so
# their float32 results agree up to rounding: after 4 Adam steps the weights differed by at most 5e-7 of their
# largest value on an AMD EPYC; 1e-4 relative leaves a margin of two orders of magnitude for other CPUs, while a
# lost row (one of the two support items left out) moves them by 0.1 to 1.6 of their largest value.
TOLERANCE = {"rtol": 1e-4, "atol": 1e-6}


@pytest.fixture(scope="module")
def models(small_world):
    """architecture -> the tiny float32 model and its encoder, built on first use."""
    cache = {}

    def get(name):
        if name not in cache:
            tiny = build(name, small_world.all_words())
            cache[name] = tiny.model, PromptEncoder(tiny.processor)
        return cache[name]

    return get


def edited(model, encoder, request, method: str, config: EditConfig):
    """The weights after one edit, its per-step losses and the edited model's logits on the edit input; the
    model is restored before returning."""
    batch = encoder.batch([request.anchor_item])
    handle = methods.method(method).editor(config).edit(model, encoder, request)
    try:
        with torch.no_grad():
            logits = model(**batch.model_inputs()).logits
        return weights(model), handle.losses, logits
    finally:
        handle.restore()


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("method", methods.names())
def test_every_editor_gives_the_same_edit_with_each_memory_option(method, option, architecture, models, small_world):
    model, encoder = models(architecture)
    request = make_request(small_world)
    before = weights(model)
    plain_weights, plain_losses, plain_logits = edited(model, encoder, request, method, OFF)
    option_weights, option_losses, option_logits = edited(model, encoder, request, method, OPTIONS[option])
    assert not changed_weights(model, before)
    assert plain_weights.keys() == option_weights.keys()
    assert [step.keys() for step in plain_losses] == [step.keys() for step in option_losses]
    if option == "checkpoint_blocks":
        assert not [k for k in plain_weights if not torch.equal(plain_weights[k], option_weights[k])]
        assert plain_losses == option_losses
        assert torch.equal(plain_logits, option_logits)
        return
    for k in plain_weights:
        torch.testing.assert_close(option_weights[k], plain_weights[k], **TOLERANCE)
    for plain, other in zip(plain_losses, option_losses):
        assert other == pytest.approx(plain, rel=1e-4, abs=1e-6)
    torch.testing.assert_close(option_logits, plain_logits, **TOLERANCE)
    batch = encoder.batch([request.anchor_item])
    for plain, other in zip(answer_logits(plain_logits, batch), answer_logits(option_logits, batch)):
        assert torch.equal(plain.argmax(-1), other.argmax(-1))  # the same answer


def test_the_loss_window_gives_the_losses_of_every_position(tiny_parts, tiny_encoder, small_world):
    model, _ = tiny_parts
    request = make_request(small_world)
    batch = tiny_encoder.batch([request.anchor_item, *request.locality_support])  # answers at different positions
    fixed = FixedInputs.from_batch(model, batch, 1)
    with torch.no_grad():
        full = fixed.logits(model)
        window_logits, window = fixed.loss_logits(model, window=True)
    positions, _ = loss_window(batch)
    assert window_logits.shape[1] == positions.shape[1] < full.shape[1]
    assert torch.allclose(mean_answer_ce(window_logits, window), mean_answer_ce(full, batch), rtol=1e-6, atol=1e-7)
    for a, b in zip(answer_logits(window_logits, window), answer_logits(full, batch)):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_checkpointed_blocks_keep_less_and_put_the_forwards_back(tiny_parts, tiny_encoder, small_world):
    model, _ = tiny_parts
    batch = tiny_encoder.batch([make_request(small_world).anchor_item])
    fixed = FixedInputs.from_batch(model, batch, 0)
    weight = language_layers(model)[0].mlp.down_proj.weight

    def saved_bytes(enabled: bool) -> int:
        sizes = []

        def pack(t):
            sizes.append(t.numel() * t.element_size())
            return t

        flags = [(p, p.requires_grad) for p in model.parameters()]
        model.requires_grad_(False)
        weight.requires_grad_(True)  # as in an edit: only the edit layer trains
        try:
            with checkpointed_blocks(model, 0, enabled), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                fixed.logits(model).sum()
        finally:
            for p, flag in flags:  # the shared model as it was
                p.requires_grad_(flag)
        return sum(sizes)

    assert saved_bytes(True) < saved_bytes(False)
    assert all("forward" not in vars(block) for block in language_layers(model))


def test_memory_options_are_on_by_default_only_for_large_models(tiny_parts):
    model, _ = tiny_parts
    assert not is_large(model)
    assert LoopMemory.resolve(model, None, None, None) == LoopMemory(False, False, 0)
    assert LoopMemory.resolve(model, True, True, 3) == LoopMemory(True, True, 3)
    with pytest.raises(ValueError, match="micro_batch = -1"):
        EditConfig(micro_batch=-1)


def test_gradient_traces_refuse_micro_batches(tiny_parts, tiny_encoder, small_world):
    model, _ = tiny_parts
    editor = methods.method("FT-L").editor(replace(OFF, micro_batch=1))
    before = weights(model)
    with pytest.raises(EditError, match="micro_batch=0"):
        editor.edit(model, tiny_encoder, make_request(small_world), trace_gradients=True)
    assert not changed_weights(model, before)


def test_with_changes_sets_memory_options_on_every_editor_and_keeps_their_hash():
    from asam_lib.editors.editing import with_changes
    from asam_lib.evaluation.harness import editor_config

    editors = methods.editors()
    assert with_changes(editors, {}) is editors
    changed = with_changes(editors, {"checkpoint_blocks": True, "micro_batch": 2})
    assert [e.config.checkpoint_blocks for e in changed.values()] == [True] * len(editors)
    assert changed["ASAM"].base.config.micro_batch == 2  # ASAM builds its base with its own config
    assert {n: editor_config(e) for n, e in changed.items()} == {n: editor_config(e) for n, e in editors.items()}
    assert {n: e.config.lr for n, e in changed.items()} == {n: e.config.lr for n, e in editors.items()}
