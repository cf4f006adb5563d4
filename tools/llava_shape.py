"""Randomly initialised checkpoints with LLaVA-1.5's shapes, built here (nothing downloaded), for the memory
measurements of the edit loop (``tools/bench_memory.py`` on the CPU, ``tools/gpu_memory.py`` on a GPU).

Every shape keeps what sets the sequence length: a CLIP tower on 336-pixel images with 14-pixel patches, so
576 image tokens per image item ("default" feature selection drops the CLS token; feature layer -2), and
LLaVA-1.5's vocabulary of 32,064 logits per position. The tokenizer is the embedded world's (a few hundred
words; the vocabulary's other rows are never produced as inputs, only as logits), so the embedded world's
MMEdit-format records (:func:`asam_lib.data.benchmark.export_mmedit`) are valid inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import LlavaForConditionalGeneration

from asam_lib.data.benchmark import export_mmedit
from asam_lib.data.world import World
from asam_lib.mllm.model import ModelConfig, build_processor, llava_config
from asam_lib.mllm.tokenizer import build_tokenizer


@dataclass(frozen=True)
class Shape:
    """The sizes of a LLaVA-1.5-style model (``model``: the Llama language model and the CLIP tower, whose FFN is
    4x its width as in CLIP ViT-L) and its number of logits per position, ``vocab``."""

    model: ModelConfig
    vocab: int = 32064


def _shape(text: tuple[int, int, int, int], vision: tuple[int, int, int], vocab: int = 32064) -> Shape:
    """From (hidden, layers, heads, FFN) of the language model and (hidden, layers, heads) of the vision tower, on
    336-pixel images in 14-pixel patches (576 image tokens)."""
    sizes = dict(zip(("text_hidden", "text_layers", "text_heads", "text_intermediate"), text))
    sizes |= dict(zip(("vision_hidden", "vision_layers", "vision_heads"), vision))
    return Shape(ModelConfig(image_size=336, patch_size=14, max_positions=4096, **sizes), vocab)


SHAPES = {
    "llava-1.5-7b": _shape((4096, 32, 32, 11008), (1024, 24, 16)),  # 7.06 B parameters
    "scaled": _shape((128, 8, 4, 344), (64, 2, 2)),  # the CPU benchmark's: LLaVA-1.5's sequences, 1/32 its width
    "tiny": _shape((32, 4, 2, 64), (32, 1, 2), vocab=512),  # the tests': seconds on one CPU core
}


def build(shape: Shape, dtype: torch.dtype = torch.float32, device: str = "cpu", seed: int = 0):
    """``(model, processor)``: a random LLaVA of ``shape`` in ``dtype`` on ``device`` (initialised there), in eval
    mode, with the embedded world's tokenizer."""
    tokenizer = build_tokenizer(World().all_words())
    processor = build_processor(tokenizer, shape.model)
    config = llava_config(tokenizer, shape.model, max(shape.vocab, len(tokenizer)), feature_layer=-2)
    torch.manual_seed(seed)
    with torch.device(device):  # initialised in ``dtype`` on the device: 7 B parameters never pass through float32
        model = LlavaForConditionalGeneration._from_config(config, dtype=dtype)
    return model.eval(), processor


def write_assets(shape: Shape, folder: Path, dtype: torch.dtype = torch.float32, device: str = "cpu") -> Path:
    """Save a random checkpoint of ``shape`` (with its processor) to ``folder/model`` and the embedded world's
    VQA records in the MMEdit format to ``folder/data``; returns the records' JSON file."""
    model, processor = build(shape, dtype, device)
    model.save_pretrained(folder / "model")
    processor.save_pretrained(folder / "model")
    del model
    return export_mmedit(World(), folder / "data", "vqa")
