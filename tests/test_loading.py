"""load_pretrained: any supported architecture from a local folder, and clear errors otherwise."""

import json

import pytest
import torch

from asam_lib.mllm.architectures import UnsupportedArchitecture
from asam_lib.mllm.model import load_pretrained
from asam_lib.mllm.prompting import PromptEncoder

from tiny_models import TORCHVISION

NEEDS_VIDEO_PROCESSOR = {"LlavaOnevisionForConditionalGeneration", "Qwen2VLForConditionalGeneration"}


def _items(world):
    return [(world.phrasings("home", heldout=False)[0].render(), "red", world.image(0, "eval", 0))]


def test_a_saved_checkpoint_loads_with_its_class_weights_and_dtype(tiny_arch, small_world, tmp_path, monkeypatch):
    tiny_arch.model.save_pretrained(tmp_path)
    monkeypatch.setattr(
        "asam_lib.mllm.model.AutoProcessor.from_pretrained", lambda folder: None
    )  # the model half only: the processor's test is below
    model, _ = load_pretrained(tmp_path)
    assert type(model) is type(tiny_arch.model) and not model.training
    batch = PromptEncoder(tiny_arch.processor).batch(_items(small_world))
    with torch.no_grad():
        torch.testing.assert_close(model(**batch.model_inputs()).logits, tiny_arch.model(**batch.model_inputs()).logits)
    half, _ = load_pretrained(tmp_path, dtype="bfloat16")
    assert next(half.parameters()).dtype == torch.bfloat16


def test_a_saved_processor_loads_and_encodes_prompts_and_images_as_the_original(tiny_arch, small_world, tmp_path):
    if tiny_arch.name in NEEDS_VIDEO_PROCESSOR and not TORCHVISION:
        pytest.skip(
            f"the processor of a saved {tiny_arch.name} loads with its video processor, which needs torchvision: the "
            "real-checkpoint extra (docs/real_checkpoints.md), not installable beside the pinned CPU torch"
        )
    tiny_arch.model.save_pretrained(tmp_path)
    tiny_arch.processor.save_pretrained(tmp_path)
    _, processor = load_pretrained(tmp_path)
    assert processor is not tiny_arch.processor and processor.chat_template == tiny_arch.processor.chat_template
    original, loaded = (PromptEncoder(p).batch(_items(small_world)) for p in (tiny_arch.processor, processor))
    assert torch.equal(loaded.input_ids, original.input_ids) and torch.equal(loaded.answer_start, original.answer_start)
    torch.testing.assert_close(loaded.model_inputs()["pixel_values"], original.model_inputs()["pixel_values"])


def test_a_missing_folder_or_config_says_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model folder at .*nowhere"):
        load_pretrained(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="holds no config.json"):
        load_pretrained(tmp_path)


def test_an_unsupported_checkpoint_lists_the_supported_architectures(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(
        UnsupportedArchitecture,
        match="unsupported architecture GPT2LMHeadModel .*config.json.*supported: LlavaForConditionalGeneration",
    ):
        load_pretrained(tmp_path)
