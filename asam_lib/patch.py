"""Patch: intrinsic key-value memory added to the FFN of the edit layer (T-Patcher, UniKE's intrinsic
branch).

``n`` new neurons are appended to the FFN of layer l: new keys are rows of ``gate_proj``/``up_proj``, new
values are columns of ``down_proj``. For a Llama-style gated FFN the patched block computes

    FFN'(x) = FFN(x) + V · ( act(K_g x) * (K_u x) ),      K_g, K_u: (n, d),  V: (d, n)

Besides the shared edit and locality losses, T-Patcher's two margin losses keep the patch selective:
an activation loss (the new neurons fire on the edit input, activation >= ``act_margin``) and a memory loss
(they stay silent, |activation| <= ``mem_margin``, on every position of the locality support items, whose
FFN inputs are computed once since they do not depend on the patch).

Keys start at the edit input's hidden state h (at the answer-predicting position) scaled to
``h / |h|^2`` (T-Patcher), so the new neurons fire on the edit input, with a little seeded noise to break
the symmetry; values start at zero, so the patch is an exact no-op before training. Only the patch is
trained. Rollback puts the original FFN module back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from asam_lib.architectures import edit_layer_mlp, replace_edit_layer_mlp
from asam_lib.editing import EditConfig, Editor, forward_embeds
from asam_lib.hooks import module_input
from asam_lib.prompting import Batch


class PatchedMLP(torch.nn.Module):
    """A Llama-style FFN with ``n`` extra key-value neurons (see the module docstring)."""

    def __init__(self, mlp: torch.nn.Module, key: torch.Tensor, n: int, gate_scale: float, noise: float):
        super().__init__()
        self.mlp = mlp
        self.act_fn = mlp.act_fn
        d = key.shape[-1]
        unit = key / key.pow(2).sum().clamp_min(1e-12)
        jitter = noise * torch.randn(n, d).to(key) * unit.norm()
        self.key_gate = torch.nn.Parameter(gate_scale * unit.expand(n, d) + jitter)
        self.key_up = torch.nn.Parameter(unit.expand(n, d) + jitter)
        self.value = torch.nn.Parameter(torch.zeros(d, n).to(key))

    def neuron_activations(self, x: torch.Tensor) -> torch.Tensor:
        """Activations of the new neurons: (..., n)."""
        return self.act_fn(x @ self.key_gate.T) * (x @ self.key_up.T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x) + self.neuron_activations(x) @ self.value.T


def ffn_inputs(model, embeds: torch.Tensor, batch: Batch, layer: int) -> torch.Tensor:
    """The input of the FFN of ``layer`` for ``batch``'s joint embeddings ``embeds``: (B, L, d)."""
    return module_input(edit_layer_mlp(model, layer), lambda: forward_embeds(model, embeds, batch))


@dataclass(frozen=True)
class PatchSettings:
    """Patch-specific knobs."""

    n_neurons: int = 4
    gate_scale: float = 3.0  # initial gate pre-activation on the edit input (act(3) ~ 2.9 for SiLU)
    key_noise: float = 0.05  # relative seeded noise on the keys
    lambda_act: float = 0.0  # weight of the activation loss: new neurons must fire on the edit input ...
    act_margin: float = 1.0  # ... with activation >= act_margin
    lambda_mem: float = 0.0  # weight of the memory loss: they must stay silent on memory inputs ...
    mem_margin: float = 0.1  # ... with |activation| <= mem_margin


class Patch(Editor):
    """Patch editor: train only new FFN neurons at the edit layer."""

    name = "Patch"

    def __init__(self, config: EditConfig = EditConfig(lr=5e-2), settings: PatchSettings = PatchSettings()):
        super().__init__(config)
        self.settings = settings

    def install(self, model, context):
        layer = self.config.layer
        anchor_x = ffn_inputs(model, context.anchor_embeds, context.anchor, layer)
        self._edit_x = anchor_x[0, int(context.anchor.answer_start[0]) - 1 : int(context.anchor.answer_start[0]) - 1 + int(context.anchor.answer_len[0])]
        self._memory_x = None
        if context.locality is not None:
            loc_x = ffn_inputs(model, context.locality_embeds, context.locality, layer)
            self._memory_x = loc_x[context.locality.attention_mask.bool()]
        key = self._edit_x[0]
        s = self.settings
        patched = PatchedMLP(edit_layer_mlp(model, layer), key, s.n_neurons, s.gate_scale, s.key_noise)
        original = replace_edit_layer_mlp(model, layer, patched)
        self._patch = patched

        def undo() -> None:
            replace_edit_layer_mlp(model, layer, original)

        return [patched.key_gate, patched.key_up, patched.value], undo, lambda: None

    def extra_losses(self, model, context, step):
        s, patch = self.settings, self._patch
        terms = {}
        if s.lambda_act > 0:
            terms["activation"] = s.lambda_act * torch.relu(s.act_margin - patch.neuron_activations(self._edit_x)).mean()
        if s.lambda_mem > 0 and self._memory_x is not None:
            terms["memory"] = s.lambda_mem * torch.relu(patch.neuron_activations(self._memory_x).abs() - s.mem_margin).mean()
        return terms
