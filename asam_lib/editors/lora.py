"""LoRA on the FFN of the edit layer, with ``peft``'s LoRA layer; merged into the weights after the edit
so that the edited model is a plain model again (and rollback is a copy of the saved weights)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from peft import LoraConfig
from peft.tuners.lora import Linear as LoraLinear

from asam_lib.editors.editing import EditConfig, Editor, Installed, parameter_names, snapshot
from asam_lib.mllm.architectures import edit_layer_mlp


@dataclass(frozen=True)
class LoRASettings:
    """LoRA-specific knobs."""

    rank: int = 4
    alpha: int = 8
    modules: tuple[str, ...] = ("gate_proj", "up_proj", "down_proj")


class LoRA(Editor):
    """LoRA editor: low-rank updates of the edit layer's FFN projections, merged after training."""

    name = "LoRA"

    def __init__(self, config: EditConfig = EditConfig(lr=2e-2), settings: LoRASettings = LoRASettings()):
        super().__init__(config)
        self.settings = settings

    def install(self, model, context):
        mlp = edit_layer_mlp(model, self.config.layer)
        s = self.settings
        lora_config = LoraConfig(r=s.rank, lora_alpha=s.alpha, lora_dropout=0.0, target_modules=list(s.modules))
        bases = {name: getattr(mlp, name) for name in s.modules}
        undo_weights, merged_originals = snapshot(model, [b.weight for b in bases.values()])
        wrapped = {
            name: LoraLinear(base, "edit", lora_config, r=s.rank, lora_alpha=s.alpha) for name, base in bases.items()
        }
        for name, module in wrapped.items():
            setattr(mlp, name, module)
        params = [p for m in wrapped.values() for n, p in m.named_parameters() if "lora_" in n]
        for p in params:
            p.requires_grad_(True)

        def unwrap() -> None:
            for name, base in bases.items():
                setattr(mlp, name, base)

        def undo() -> None:
            unwrap()
            undo_weights()

        def finalize() -> dict:
            for module in wrapped.values():
                module.merge()
            unwrap()
            return merged_originals

        lora_b = [p for m in wrapped.values() for n, p in m.named_parameters() if "lora_B" in n]
        training_originals = dict(zip(parameter_names(model, lora_b), [torch.zeros_like(p) for p in lora_b]))
        return Installed(params, undo, training_originals, finalize)
