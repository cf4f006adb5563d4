"""Randomly initialised checkpoints with LLaVA-1.5's shapes, built here (nothing downloaded), for the memory
measurements of the edit loop (``tools/bench_memory.py`` on the CPU, ``tools/gpu_memory.py`` on a GPU).

Every shape keeps what sets the sequence length: a CLIP tower on 336-pixel images with 14-pixel patches, so
576 image tokens per image item ("default" feature selection drops the CLS token; feature layer -2), and
LLaVA-1.5's vocabulary of 32,064 logits per position. The tokenizer is the embedded world's (a few hundred
words; the vocabulary's other rows are never produced as inputs, only as logits), so the embedded world's
MMEdit-format records (:func:`asam_lib.benchmark.export_mmedit`) are valid inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from asam_lib.benchmark import export_mmedit
from asam_lib.model import ModelConfig, build_processor
from asam_lib.tokenizer import IMAGE, build_tokenizer
from asam_lib.world import World


@dataclass(frozen=True)
class Shape:
    """The sizes of a LLaVA-1.5-style model: Llama language model and CLIP vision tower."""

    text_hidden: int
    text_layers: int
    text_heads: int
    text_intermediate: int
    vision_hidden: int
    vision_layers: int
    vision_heads: int
    vision_intermediate: int
    vocab: int = 32064
    image_size: int = 336
    patch_size: int = 14

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2


SHAPES = {
    "llava-1.5-7b": Shape(4096, 32, 32, 11008, 1024, 24, 16, 4096),  # 7.06 B parameters
    "scaled": Shape(128, 8, 4, 344, 64, 2, 2, 256),  # the CPU benchmark's: LLaVA-1.5's sequences, 1/32 its width
    "tiny": Shape(32, 4, 2, 64, 32, 1, 2, 64, vocab=512),  # the tests': seconds on one CPU core
}


def build(shape: Shape, dtype: torch.dtype = torch.float32, device: str = "cpu", seed: int = 0):
    """``(model, processor)``: a random LLaVA of ``shape`` in ``dtype`` on ``device`` (initialised there), in eval
    mode, with the embedded world's tokenizer."""
    tokenizer = build_tokenizer(World().all_words())
    processor = build_processor(tokenizer, ModelConfig(image_size=shape.image_size, patch_size=shape.patch_size))
    vision = CLIPVisionConfig(
        hidden_size=shape.vision_hidden,
        intermediate_size=shape.vision_intermediate,
        num_hidden_layers=shape.vision_layers,
        num_attention_heads=shape.vision_heads,
        image_size=shape.image_size,
        patch_size=shape.patch_size,
        projection_dim=shape.vision_hidden,
    )
    text = LlamaConfig(
        vocab_size=max(shape.vocab, len(tokenizer)),
        hidden_size=shape.text_hidden,
        intermediate_size=shape.text_intermediate,
        num_hidden_layers=shape.text_layers,
        num_attention_heads=shape.text_heads,
        num_key_value_heads=shape.text_heads,
        max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE),
        image_seq_length=shape.image_tokens,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    with torch.device(device):
        model = LlavaForConditionalGeneration(config).to(dtype)
    return model.eval(), processor


def write_assets(shape: Shape, folder: Path, dtype: torch.dtype = torch.float32, device: str = "cpu") -> Path:
    """Save a random checkpoint of ``shape`` (with its processor) to ``folder/model`` and the embedded world's
    VQA records in the MMEdit format to ``folder/data``; returns the records' JSON file."""
    model, processor = build(shape, dtype, device)
    model.save_pretrained(folder / "model")
    processor.save_pretrained(folder / "model")
    del model
    return export_mmedit(World(), folder / "data", "vqa")
