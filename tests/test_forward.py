"""Forward passes from the edit layer up (asam_lib.mllm.forward.FixedInputs): the same logits as a full forward, before
and after edits, on every architecture; the skipped blocks always come back; and every registered editor leaves
the blocks below its edit layer as they were, which is what makes the stored hidden states valid."""

import pandas as pd
import pytest
import torch

from asam_lib.data.pretrain import base_model
from asam_lib.data.world import World
from asam_lib.editors import methods
from asam_lib.editors.editing import EditConfig
from asam_lib.editors.patch import Patch
from asam_lib.evaluation.harness import EvaluationInputs, HarnessConfig, build_cases, evaluate_tiers
from asam_lib.evaluation.metrics import locality_reference
from asam_lib.mllm.architectures import language_layers
from asam_lib.mllm.forward import FixedInputs, forward_embeds, joint_embeddings, lower_blocks_skipped
from asam_lib.mllm.prompting import PromptEncoder

from helpers import make_request

SMALL = dict(n_edits=2, n_support=2, n_locality=2, unit_text=2, unit_image=2, unit_both=2)


def _items(world):
    question = world.phrasings("home", heldout=False)[0].render()
    text = world.phrasings("food", heldout=False, text=True)[0].render(f"the {world.text_entities[0].name}")
    return [
        (question, world.entities[0].facts["home"], world.image(0, "eval", 0)),
        (text, world.text_entities[0].facts["food"], None),
        (question, world.entities[1].facts["home"], world.image(1, "eval", 1)),
    ]


@pytest.mark.parametrize("layer", [0, 1])
def test_logits_from_the_edit_layer_are_those_of_the_full_forward(tiny_parts, tiny_encoder, small_world, layer):
    model = tiny_parts[0]
    batch = tiny_encoder.batch(_items(small_world))
    with torch.no_grad():
        full = model(**batch.model_inputs()).logits
        from_batch = FixedInputs.from_batch(model, batch, layer)
        from_embeds = FixedInputs.from_embeds(model, joint_embeddings(model, batch), batch, layer)
        assert torch.equal(from_batch.logits(model), full)
        assert torch.equal(from_embeds.logits(model), forward_embeds(model, joint_embeddings(model, batch), batch))
    assert from_batch.hidden.shape == (*batch.input_ids.shape, model.config.text_config.hidden_size)
    assert "from block" in repr(from_batch)


def test_every_architecture_runs_from_its_edit_layer(tiny_arch, small_world):
    model = tiny_arch.model
    batch = PromptEncoder(tiny_arch.processor).batch(_items(small_world))
    with torch.no_grad():
        full = model(**batch.model_inputs()).logits
        fixed = FixedInputs.from_batch(model, batch, 1).logits(model)
    torch.testing.assert_close(fixed, full, rtol=1e-5, atol=1e-5)


def test_stored_inputs_stay_valid_after_an_edit_at_their_layer(tiny_parts, tiny_encoder, small_world):
    model = tiny_parts[0]
    batch = tiny_encoder.batch(_items(small_world))
    fixed = FixedInputs.from_batch(model, batch, 1)
    handle = Patch(EditConfig(layer=1, steps=5, lr=0.1)).edit(model, tiny_encoder, make_request(small_world))
    try:
        with torch.no_grad():
            edited = model(**batch.model_inputs()).logits
            assert torch.equal(fixed.logits(model), edited)
    finally:
        handle.restore()
    assert not torch.equal(edited, fixed.logits(model).detach())  # the edit changed them; the stored inputs follow


def test_the_skipped_blocks_come_back_even_after_an_error(tiny_parts):
    model = tiny_parts[0]
    blocks = list(language_layers(model))
    with pytest.raises(RuntimeError, match="inside"):
        with lower_blocks_skipped(model, 2):
            assert all(type(b).__name__ == "_PassThrough" for b in language_layers(model))
            raise RuntimeError("inside")
    assert list(language_layers(model)) == blocks


@pytest.mark.parametrize("name", methods.names())
def test_no_editor_changes_a_block_below_its_edit_layer(tiny_parts, tiny_encoder, small_world, name):
    model = tiny_parts[0]
    batch = tiny_encoder.batch(_items(small_world))
    editor = methods.method(name).editor(EditConfig(layer=1, steps=3, lr=0.1))
    before = FixedInputs.from_batch(model, batch, 1).hidden
    handle = editor.edit(model, tiny_encoder, make_request(small_world))
    try:
        assert torch.equal(FixedInputs.from_batch(model, batch, 1).hidden, before)
    finally:
        handle.restore()


def test_kept_evaluation_inputs_give_the_same_metrics():
    model, processor = base_model()
    encoder = PromptEncoder(processor)
    cases = build_cases(model, encoder, World(), HarnessConfig(**SMALL), seed=0)
    layer = Patch().config.layer
    inputs = EvaluationInputs(model, encoder)
    handle = Patch().edit(model, encoder, cases[0].request)
    try:
        for case in cases:
            reference = locality_reference(model, encoder, case.locality)
            fresh, kept, again = (
                [pd.DataFrame(rows) for rows in evaluate_tiers(model, encoder, case, reference, *kept_inputs)]
                for kept_inputs in [(), (inputs, layer), (inputs, layer)]
            )
            assert all(f.equals(k) and k.equals(a) for f, k, a in zip(fresh, kept, again))  # NaN == NaN here
    finally:
        handle.restore()
    assert len(inputs) == sum(len(case.tiers()) for case in cases)


def test_evaluation_inputs_need_not_be_kept():
    model, processor = base_model()
    encoder = PromptEncoder(processor)
    cases = build_cases(model, encoder, World(), HarnessConfig(**SMALL), seed=0)
    kept, fresh = EvaluationInputs(model, encoder), EvaluationInputs(model, encoder, keep=False)
    assert kept.keep and not fresh.keep  # kept by default on the CPU
    reference = kept.reference(cases[0])
    first, again = kept.get(cases[0], "standard", reference, 2), fresh.get(cases[0], "standard", reference, 2)
    assert torch.equal(first.hidden, again.hidden) and len(kept) == 1 and len(fresh) == 0
    assert kept.get(cases[0], "standard", reference, 2) is first
