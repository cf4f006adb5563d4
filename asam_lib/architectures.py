"""Where things are in each supported architecture, found by name rather than hard-coded paths.

``language_layers(model)`` gives the decoder blocks of the language model; ``edit_layer_mlp(model, l)``
the FFN of block ``l`` (with ``gate_proj``/``up_proj``/``down_proj`` for Llama-style FFNs).
"""

from __future__ import annotations

import torch

# model class name -> dotted path of the language model's decoder blocks
LANGUAGE_LAYERS = {
    "LlavaForConditionalGeneration": "model.language_model.layers",
}


def language_layers(model) -> torch.nn.ModuleList:
    """The language model's decoder blocks of a supported architecture."""
    arch = type(model).__name__
    if arch not in LANGUAGE_LAYERS:
        raise ValueError(
            f"unsupported architecture {arch}; supported: {', '.join(sorted(LANGUAGE_LAYERS))}. "
            "To add one, map its class name to the dotted path of its decoder blocks in "
            "asam_lib.architectures.LANGUAGE_LAYERS."
        )
    return model.get_submodule(LANGUAGE_LAYERS[arch])


def edit_layer_mlp(model, layer: int) -> torch.nn.Module:
    """The FFN of language block ``layer``."""
    layers = language_layers(model)
    if not 0 <= layer < len(layers):
        raise ValueError(f"edit layer {layer} is out of range: the model has {len(layers)} language layers (0-{len(layers) - 1})")
    return layers[layer].mlp
