"""Where things are in each supported architecture, found by name rather than hard-coded paths.

One :class:`Architecture` per model class (the name in a checkpoint's ``config.json`` ``architectures``)
says where the language model and its decoder blocks are, what the FFN of a block and its projections
are called, which config field holds the image placeholder token, and what else the language model
needs when it is run from joint input embeddings (Qwen2-VL: its 3-D M-RoPE positions).

``language_layers(model)`` gives the decoder blocks of the language model; ``edit_layer_mlp(model, l)``
the FFN of block ``l`` (with ``gate_proj``/``up_proj``/``down_proj`` for Llama-style FFNs).

To add an architecture, register an :class:`Architecture` in :data:`ARCHITECTURES` with its class name
and paths (``print(model)`` shows them), then add its tiny random config to ``tests/tiny_models.py``
so the end-to-end tests cover it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


def _no_extra_inputs(model, batch) -> dict[str, torch.Tensor]:
    return {}


def _mrope_positions(model, batch) -> dict[str, torch.Tensor]:
    """Qwen2-VL's M-RoPE positions ``(3, B, L)``, from the model's own ``get_rope_index``.

    Without them a forward from ``inputs_embeds`` would use 1-D positions (or the ``rope_deltas`` left
    over from the model's previous call), not the 3-D positions of the image tokens."""
    if "image_grid_thw" in batch.extra:
        positions, _ = model.model.get_rope_index(
            batch.input_ids,
            batch.extra["mm_token_type_ids"],
            image_grid_thw=batch.extra["image_grid_thw"],
            attention_mask=batch.attention_mask,
        )
    else:  # text only: what the model uses when it is given input_ids
        b, length = batch.input_ids.shape
        positions = torch.arange(length, device=batch.input_ids.device).view(1, 1, -1).expand(3, b, -1)
    return {"position_ids": positions}


@dataclass(frozen=True)
class Architecture:
    """Where things are in one model class. Paths are dotted attribute paths from the top-level model.

    ``language_model``: the module that receives ``inputs_embeds`` (projected image tokens + text
    embeddings); ``layers``: its decoder blocks; ``ffn``: the FFN attribute of a block, whose projections
    are ``ffn_projections`` (gate, up, down); ``image_token``: the config field holding the image
    placeholder token id; ``embeds_inputs(model, batch)``: extra keyword inputs the model needs when run
    from ``inputs_embeds`` instead of ``input_ids`` + pixels; ``processor_needs_torchvision``: loading the
    checkpoint's processor imports torchvision (its video processor does)."""

    name: str
    language_model: str = "model.language_model"
    layers: str = "model.language_model.layers"
    ffn: str = "mlp"
    ffn_projections: tuple[str, str, str] = ("gate_proj", "up_proj", "down_proj")
    image_token: str = "image_token_id"
    embeds_inputs: Callable[[object, object], dict[str, torch.Tensor]] = _no_extra_inputs
    processor_needs_torchvision: bool = False


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("LlavaForConditionalGeneration"),  # LLaVA-1.5 (and the embedded model)
        Architecture("LlavaNextForConditionalGeneration"),  # LLaVA-NeXT (LLaVA-1.6)
        Architecture("LlavaOnevisionForConditionalGeneration", processor_needs_torchvision=True),  # LLaVA-OneVision
        Architecture(
            "Qwen2VLForConditionalGeneration", embeds_inputs=_mrope_positions, processor_needs_torchvision=True
        ),
    )
}


class UnsupportedArchitecture(ValueError):
    """A model class the registry does not know, with the supported ones and how to add one."""

    def __init__(self, found: str, where: str = "the model"):
        self.found, self.where = found, where
        super().__init__(
            f"unsupported architecture {found} ({where}); supported: {', '.join(sorted(ARCHITECTURES))}. "
            "To add one, register an Architecture with its class name and the dotted paths of its language "
            "model, decoder blocks and FFN in asam_lib.mllm.architectures.ARCHITECTURES."
        )

    def __reduce__(self):  # so that it crosses from a worker process intact
        return type(self), (self.found, self.where)


def architecture(model) -> Architecture:
    """The registry entry of ``model``'s class."""
    name = type(model).__name__
    if name not in ARCHITECTURES:
        raise UnsupportedArchitecture(name)
    return ARCHITECTURES[name]


def language_model(model) -> torch.nn.Module:
    """The language model of a supported architecture (it receives ``inputs_embeds``)."""
    return model.get_submodule(architecture(model).language_model)


def language_layers(model) -> torch.nn.ModuleList:
    """The language model's decoder blocks of a supported architecture."""
    return model.get_submodule(architecture(model).layers)


def _block(model, layer: int) -> torch.nn.Module:
    layers = language_layers(model)
    if not 0 <= layer < len(layers):
        raise ValueError(
            f"edit layer {layer} is out of range: the model has {len(layers)} language layers (0-{len(layers) - 1})"
        )
    return layers[layer]


def edit_layer_mlp(model, layer: int) -> torch.nn.Module:
    """The FFN of language block ``layer``."""
    return getattr(_block(model, layer), architecture(model).ffn)


def replace_edit_layer_mlp(model, layer: int, module: torch.nn.Module) -> torch.nn.Module:
    """Put ``module`` in place of the FFN of language block ``layer``; return the FFN it replaced."""
    block, name = _block(model, layer), architecture(model).ffn
    original = getattr(block, name)
    setattr(block, name, module)
    return original


def image_token_mask(model, input_ids: torch.Tensor) -> torch.Tensor:
    """Which positions of ``input_ids`` ``(B, L)`` hold image tokens: a bool mask ``(B, L)``."""
    return input_ids == getattr(model.config, architecture(model).image_token)
