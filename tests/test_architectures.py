"""The architecture registry on tiny random models of every supported architecture: blocks, FFNs and
image tokens found by name, and exact forward passes from joint embeddings."""

import pytest
import torch

from asam_lib.editors.editing import FTL, forward_embeds, joint_embeddings
from asam_lib.editors.lora import LoRASettings
from asam_lib.mllm.architectures import (
    ARCHITECTURES,
    UnsupportedArchitecture,
    architecture,
    edit_layer_mlp,
    image_token_mask,
    language_layers,
)
from asam_lib.mllm.prompting import PromptEncoder

from tiny_models import BUILDERS


def _items(world):
    q = world.phrasings("home", heldout=False)[0].render()
    t = world.phrasings("food", heldout=False, text=True)[0].render(f"the {world.text_entities[0].name}")
    image = world.image(0, "eval", 0)
    return [
        (q, world.entities[0].facts["home"], image.resize((16, 16))),
        (t, world.text_entities[0].facts["food"], None),
        (q, world.entities[1].caption, image.resize((32, 16))),
    ]


def test_every_registered_architecture_has_a_tiny_test_model():
    assert set(BUILDERS) == set(ARCHITECTURES)


def test_blocks_ffn_and_image_tokens_are_found_by_name(tiny_arch, small_world):
    model, processor = tiny_arch.model, tiny_arch.processor
    assert len(language_layers(model)) == 2
    mlp = edit_layer_mlp(model, 1)
    assert all(isinstance(getattr(mlp, name), torch.nn.Linear) for name in architecture(model).ffn_projections)
    assert set(FTL().modules) | set(LoRASettings().modules) <= set(architecture(model).ffn_projections)
    encoder = PromptEncoder(processor)
    items = _items(small_world)
    batch = encoder.batch(items)
    for i, (question, _, image) in enumerate(items):
        prompt = encoder.prompt_text(question, image is not None)
        expected = (
            processor(text=prompt, images=image, return_tensors="pt").input_ids
            if image is not None
            else torch.zeros(1, 0)
        )
        assert image_token_mask(model, batch.input_ids[i : i + 1]).sum() == (expected == processor.image_token_id).sum()


def test_an_out_of_range_layer_names_the_range(tiny_arch):
    with pytest.raises(ValueError, match="edit layer 5 is out of range: the model has 2 language layers"):
        edit_layer_mlp(tiny_arch.model, 5)


def test_an_unknown_architecture_lists_the_supported_ones_and_how_to_add_one():
    with pytest.raises(UnsupportedArchitecture) as caught:
        language_layers(torch.nn.Linear(2, 2))
    message = str(caught.value)
    assert "unsupported architecture Linear" in message and "Qwen2VLForConditionalGeneration" in message
    assert "register an Architecture" in message


def test_forward_from_joint_embeddings_equals_the_model_forward(tiny_arch, small_world):
    model = tiny_arch.model
    batch = PromptEncoder(tiny_arch.processor).batch(_items(small_world))
    with torch.no_grad():
        direct = model(**batch.model_inputs()).logits
        embeds = joint_embeddings(model, batch)
        again = forward_embeds(model, embeds, batch)
        plain = model(inputs_embeds=embeds, attention_mask=batch.attention_mask).logits
    assert embeds.shape[:2] == batch.input_ids.shape
    torch.testing.assert_close(again, direct, rtol=1e-5, atol=1e-5)
    if tiny_arch.name == "Qwen2VLForConditionalGeneration":  # without its M-RoPE positions the forward is wrong
        assert not torch.allclose(plain, direct, atol=1e-3)
