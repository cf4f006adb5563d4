"""The ASAM editor: a base intrinsic editor + LAR variants + RCSL + asymmetric gradient flow.

ASAM edits with the base editor's parameters (Patch by default, FT-L selectable) and its loop, but
minimises (docs/method.md, "The loss")

    L = CE(anchor -> y_new) + lambda_adv * mean_k CE(variant_k -> y_new) + lambda_rank * L_rank(H)
        + lambda_loc * KL(p_edit || p_pre) on locality support items  (+ the base editor's own terms)

- the K variants come from LAR (:mod:`asam_lib.lar`) against the *current* edited model, refreshed every
  ``LARConfig.refresh`` editing steps so they chase the edit; the "no LAR" ablation uses random variants of
  the same norm (:func:`asam_lib.lar.noise_variants`);
- H stacks the edit layer's output at the answer-predicting position for the anchor and its variants,
  computed in the same batched forward as the CE terms; the anchor row is detached (asymmetric flow,
  switchable in :class:`asam_lib.rcsl.RCSLConfig`). Where H is read is ``RCSLConfig.site``: the block
  output (default), what the edit adds to it, the FFN's intermediate activations, or Patch's neurons.

ASAM owns its :class:`~asam_lib.editing.EditConfig` (layer, steps, learning rate, stopping loss) and builds
its base editor with that same config, so the two never disagree; it reaches the base only through the
editor interface (``install`` and ``extra_losses``). Its variants' terms extend :meth:`Editor.edit_losses`,
so every term the shared loop adds (locality, the base editor's own) is ASAM's too.
Rollback, the NaN guard and the sequential mode are the shared loop's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from asam_lib.architectures import edit_layer_mlp, language_layers
from asam_lib.editing import EditConfig, EditContext, Editor, edited_forward, unedited_forward
from asam_lib.hooks import module_io
from asam_lib.lar import (
    LARConfig,
    Variants,
    adversarial_variants,
    answer_ce_per_row,
    forward_variants,
    noise_variants,
    repeat_batch,
)
from asam_lib.patch import Patch
from asam_lib.prompting import Batch
from asam_lib.rcsl import RCSLConfig, rcsl_loss

VARIANT_SOURCES = ("lar", "noise")


@dataclass(frozen=True)
class ASAMSettings:
    """Weights of ASAM's terms and the ablation switches. Defaults reproduce the committed figures."""

    lambda_adv: float = 1.0  # weight of the variants' CE
    lambda_rank: float = 1.0  # weight of L_rank (0 = the "no RCSL" ablation)
    variants: str = "lar"  # "lar", or "noise" for the "no LAR" ablation
    stop_on_variants: bool = True  # stop early only once the variants' CE is below stop_loss too

    def __post_init__(self):
        if self.variants not in VARIANT_SOURCES:
            raise ValueError(f"ASAMSettings.variants = {self.variants!r}; choose one of {VARIANT_SOURCES}")


def representation_site(model, layer: int, site: str) -> tuple[torch.nn.Module, str]:
    """The module whose ``"input"`` or ``"output"`` holds RCSL's rows at ``site`` (:data:`asam_lib.rcsl.SITES`)."""
    if site in ("block_output", "edit_delta"):
        return language_layers(model)[layer], "output"
    name, which = {"ffn_hidden": ("down_proj", "input"), "patch_keys": ("activation", "output")}[site]
    found = [m for n, m in edit_layer_mlp(model, layer).named_modules() if n.rsplit(".", 1)[-1] == name]
    if not found:
        raise ValueError(
            f"RCSL site {site!r} needs a module named {name!r} in the FFN of layer {layer} "
            f"({'Patch as the base editor' if site == 'patch_keys' else 'a gated FFN'}); choose another RCSLConfig.site"
        )
    return found[0], which


def edit_layer_representations(
    model,
    layer: int,
    anchor_embeds: torch.Tensor,
    batch: Batch,
    delta: torch.Tensor,
    block: int | None = None,
    site: str = "block_output",
    originals: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One batched forward of the anchor and its K variants (perturbations ``delta`` (K, L, d), see
    :func:`asam_lib.lar.forward_variants`): the CE of the new target per row, (K+1,), and H (K+1, d), the
    representation at ``site`` (:data:`asam_lib.rcsl.SITES`; default the output of language block ``layer``)
    at the answer-predicting position (row 0: the anchor). ``edit_delta`` subtracts the unedited model's
    block output (``originals``: the unedited values of the trained parameters), from one more forward."""
    delta = torch.cat([torch.zeros_like(delta[:1]), delta])
    rows = repeat_batch(batch, len(delta))
    position = int(batch.answer_start[0]) - 1
    module, which = representation_site(model, layer, site)
    with module_io(module, which) as captured:
        ce = answer_ce_per_row(forward_variants(model, edited_forward(model), anchor_embeds, delta, rows, block), rows)
    H = captured["y"][:, position]
    if site == "edit_delta":
        with torch.no_grad(), module_io(module, which) as before:
            forward_variants(model, unedited_forward(model, originals), anchor_embeds, delta, rows, block)
        H = H - before["y"][:, position]
    return ce, H


class ASAM(Editor):
    """ASAM on top of ``base`` (see the module docstring)."""

    name = "ASAM"

    def __init__(
        self,
        base: Editor | None = None,
        lar: LARConfig = LARConfig(),
        rcsl: RCSLConfig = RCSLConfig(),
        settings: ASAMSettings = ASAMSettings(),
        config: EditConfig | None = None,
    ):
        """``base``: the intrinsic editor ASAM trains (default Patch); ``config``: ASAM's loop settings
        (default: the base editor's), with which the base editor is built."""
        base = Patch() if base is None else base
        super().__init__(base.config if config is None else config)
        self.base = base.with_config(self.config)
        if lar.block is not None and lar.block >= self.config.layer:
            raise ValueError(
                f"LARConfig.block = {lar.block} must be below the edit layer {self.config.layer}: variants must pass "
                "through the edit"
            )
        self.lar, self.rcsl, self.settings = lar, rcsl, settings

    def with_config(self, config: EditConfig) -> ASAM:
        return ASAM(self.base, self.lar, self.rcsl, self.settings, config)

    def __repr__(self) -> str:
        return f"ASAM(base={self.base!r}, {self.lar}, {self.rcsl}, {self.settings})"

    def install(self, model, context: EditContext):
        return self.base.install(model, context)

    def variants(self, model, context: EditContext) -> Variants:
        """Fresh variants of the edit input against the current edited model."""
        if self.settings.variants == "noise":
            return noise_variants(model, context.anchor_embeds, context.anchor, self.lar, context.generator)
        unedited = unedited_forward(model, context.originals)
        return adversarial_variants(
            model, edited_forward(model), unedited, context.anchor_embeds, context.anchor, self.lar, context.generator
        )

    def edit_losses(self, model, context: EditContext, step: int) -> dict[str, torch.Tensor]:
        """The edit input's CE, the variants' CE and L_rank(H), from one batched forward of anchor and variants."""
        if step % self.lar.refresh == 0:
            context.variants = self.variants(model, context)
        ce, H = edit_layer_representations(
            model,
            self.config.layer,
            context.anchor_embeds,
            context.anchor,
            context.variants.delta,
            self.lar.block,
            self.rcsl.site,
            context.originals,
        )
        s = self.settings
        terms = {"edit": ce[0], "adversarial": s.lambda_adv * ce[1:].mean()}
        if s.lambda_rank > 0:
            terms["rank"] = s.lambda_rank * rcsl_loss(H[0], H[1:], self.rcsl)
        return terms

    def extra_losses(self, model, context: EditContext, step: int) -> dict[str, torch.Tensor]:
        return self.base.extra_losses(model, context, step)

    def done(self, terms: dict[str, torch.Tensor]) -> bool:
        stop = self.config.stop_loss
        if self.settings.stop_on_variants and self.settings.lambda_adv > 0:
            return terms["edit"].item() < stop and terms["adversarial"].item() / self.settings.lambda_adv < stop
        return terms["edit"].item() < stop
