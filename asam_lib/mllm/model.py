"""The embedded MLLM: a real ``LlavaForConditionalGeneration`` with a tiny CLIP vision tower and a tiny
Llama language model, plus its ``LlavaProcessor`` (word-level tokenizer + CLIP image processor).

Nothing here is specific to the tiny size: the same classes, ``save_pretrained`` and ``from_pretrained``
serve a real LLaVA checkpoint; :func:`load_pretrained` loads any supported architecture from a folder.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import transformers
from transformers import (
    AutoProcessor,
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from asam_lib.mllm.architectures import ARCHITECTURES, UnsupportedArchitecture
from asam_lib.mllm.tokenizer import IMAGE


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the tiny LLaVA. Defaults reproduce the committed checkpoint."""

    image_size: int = 32
    patch_size: int = 8
    vision_hidden: int = 96
    vision_layers: int = 3
    vision_heads: int = 4
    text_hidden: int = 128
    text_layers: int = 4
    text_heads: int = 4
    text_intermediate: int = 512
    max_positions: int = 160

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def n_image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2


def build_processor(tokenizer: PreTrainedTokenizerFast, config: ModelConfig) -> LlavaProcessor:
    """A ``LlavaProcessor`` whose image processor resizes to ``config.image_size`` (no crop change)."""
    size = config.image_size
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}, do_convert_rgb=True
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=config.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )


def llava_config(
    tokenizer: PreTrainedTokenizerFast, config: ModelConfig, vocab_size: int | None = None, feature_layer: int = -1
) -> LlavaConfig:
    """The ``LlavaConfig`` of a LLaVA with ``config``'s sizes over ``tokenizer``. ``vocab_size``: logits beyond the
    tokenizer's ids (default: as many as it has); ``feature_layer``: the vision layer whose features are projected
    (LLaVA-1.5: -2; the embedded model: -1)."""
    vision = CLIPVisionConfig(
        hidden_size=config.vision_hidden,
        intermediate_size=4 * config.vision_hidden,
        num_hidden_layers=config.vision_layers,
        num_attention_heads=config.vision_heads,
        image_size=config.image_size,
        patch_size=config.patch_size,
        projection_dim=config.vision_hidden,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer) if vocab_size is None else vocab_size,
        hidden_size=config.text_hidden,
        intermediate_size=config.text_intermediate,
        num_hidden_layers=config.text_layers,
        num_attention_heads=config.text_heads,
        num_key_value_heads=config.text_heads,
        max_position_embeddings=config.max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    return LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE),
        image_seq_length=config.n_image_tokens,
        vision_feature_select_strategy="default",
        vision_feature_layer=feature_layer,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_model(
    tokenizer: PreTrainedTokenizerFast, config: ModelConfig, seed: int = 0
) -> LlavaForConditionalGeneration:
    """A randomly initialised tiny LLaVA (deterministic under ``seed``)."""
    llava = llava_config(tokenizer, config)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(llava)
    model.eval()
    return model


def config_hash(*parts: object) -> str:
    """A short stable hash of configs (dataclasses or JSON-able objects), for cache keys and results."""

    def plain(obj: object) -> object:
        return asdict(obj) if hasattr(obj, "__dataclass_fields__") else obj

    blob = json.dumps([plain(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def load_model(folder: str | Path) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """Load a saved model and processor exactly like a hub checkpoint (float32, eval mode)."""
    folder = Path(folder)
    if not (folder / "config.json").exists():
        raise FileNotFoundError(
            f"no model at {folder}: config.json is missing (run `make model` or pass a model folder)"
        )
    model = LlavaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32)
    processor = LlavaProcessor.from_pretrained(folder)
    model.eval()
    return model, processor


class CheckpointError(ValueError):
    """A checkpoint folder whose config.json cannot be read."""


def checkpoint_architecture(folder: str | Path) -> str:
    """The supported model class named by ``folder/config.json`` (read without loading any weights)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no model folder at {folder} (pass the folder of a downloaded checkpoint, the one holding config.json)"
        )
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{folder} holds no config.json: it is not a saved model (pass the checkpoint folder itself, not its "
            "parent)"
        )
    try:
        names = json.loads(config_path.read_text()).get("architectures") or []
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{config_path} is not valid JSON ({err}): re-download the checkpoint") from None
    known = [n for n in names if n in ARCHITECTURES]
    if not known:
        raise UnsupportedArchitecture(", ".join(names) or "none named", f"config.json of {folder}")
    return known[0]


def load_pretrained(folder: str | Path, dtype: str | torch.dtype = "float32", device_map: str | dict | None = None):
    """``(model, processor)`` of any supported checkpoint in a local folder (a hub snapshot, e.g. of
    ``llava-hf/llava-1.5-7b-hf`` or ``Qwen/Qwen2-VL-7B-Instruct``), in eval mode.

    The class comes from ``config.json``'s ``architectures`` and must be in
    :data:`asam_lib.mllm.architectures.ARCHITECTURES`. ``dtype``: ``"float32"``, ``"bfloat16"``, ``"float16"``
    or ``"auto"`` (the checkpoint's own); ``device_map``: passed to ``from_pretrained`` (``"auto"`` spreads
    a large model over the GPUs; None keeps it on the CPU).
    """
    model_class = getattr(transformers, checkpoint_architecture(folder))
    dtype = dtype if isinstance(dtype, torch.dtype) or dtype == "auto" else getattr(torch, dtype)
    model = model_class.from_pretrained(folder, dtype=dtype, device_map=device_map)
    model.eval()
    return model, AutoProcessor.from_pretrained(folder)
