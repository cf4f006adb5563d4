"""load_pretrained: any supported architecture from a local folder, and clear errors otherwise."""

import importlib.util
import json

import pytest
import torch

from asam_lib.architectures import UnsupportedArchitecture
from asam_lib.model import load_pretrained
from asam_lib.prompting import PromptEncoder

NEEDS_VIDEO_PROCESSOR = {"LlavaOnevisionForConditionalGeneration", "Qwen2VLForConditionalGeneration"}


def test_a_saved_checkpoint_loads_with_its_class_processor_and_dtype(tiny_arch, small_world, tmp_path, monkeypatch):
    tiny_arch.model.save_pretrained(tmp_path)
    if tiny_arch.name in NEEDS_VIDEO_PROCESSOR and importlib.util.find_spec("torchvision") is None:
        # Saving/loading these processors needs their video processor, which needs torchvision (not in
        # the CPU environment): the model half of load_pretrained is still tested.
        monkeypatch.setattr("asam_lib.model.AutoProcessor.from_pretrained", lambda folder: tiny_arch.processor)
    else:
        tiny_arch.processor.save_pretrained(tmp_path)
    model, processor = load_pretrained(tmp_path)
    assert type(model) is type(tiny_arch.model) and not model.training
    assert processor.chat_template == tiny_arch.processor.chat_template
    items = [(small_world.phrasings("home", heldout=False)[0].render(), "red", small_world.image(0, "eval", 0))]
    batch, again = PromptEncoder(tiny_arch.processor).batch(items), PromptEncoder(processor).batch(items)
    assert torch.equal(batch.input_ids, again.input_ids)
    with torch.no_grad():
        torch.testing.assert_close(model(**again.model_inputs()).logits, tiny_arch.model(**batch.model_inputs()).logits)
    half, _ = load_pretrained(tmp_path, dtype="bfloat16")
    assert next(half.parameters()).dtype == torch.bfloat16


def test_a_missing_folder_or_config_says_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model folder at .*nowhere"):
        load_pretrained(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="holds no config.json"):
        load_pretrained(tmp_path)


def test_an_unsupported_checkpoint_lists_the_supported_architectures(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(UnsupportedArchitecture, match="unsupported architecture GPT2LMHeadModel .*config.json.*supported: LlavaForConditionalGeneration"):
        load_pretrained(tmp_path)
