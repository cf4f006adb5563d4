"""The ASAM editor: a base intrinsic editor + LAR variants + RCSL + asymmetric gradient flow.

ASAM edits with the base editor's parameters (Patch by default, FT-L selectable) and its loop, but
minimises (docs/method.md, "The loss")

    L = CE(anchor -> y_new) + lambda_adv * mean_k CE(variant_k -> y_new) + lambda_rank * L_rank(H)
        + lambda_loc * KL(p_edit || p_pre) on locality support items  (+ the base editor's own terms)

- the K variants come from LAR (:mod:`asam_lib.editors.lar`) against the *current* edited model, refreshed every
  ``LARConfig.refresh`` editing steps so they chase the edit; the "no LAR" ablation uses random variants of
  the same norm (:func:`asam_lib.editors.lar.noise_variants`);
- H stacks the edit layer's output at the answer-predicting position for the anchor and its variants,
  computed in the same batched forward as the CE terms; the anchor row is detached (asymmetric flow,
  switchable in :class:`asam_lib.editors.rcsl.RCSLConfig`). Where H is read is ``RCSLConfig.site``: the block
  output (default), what the edit adds to it, the FFN's intermediate activations, or Patch's neurons.

ASAM owns its :class:`~asam_lib.editors.editing.EditConfig` (layer, steps, learning rate, stopping loss) and builds
its base editor with that same config, so the two never disagree; it reaches the base only through the
editor interface (``install`` and ``extra_losses``). Its variants' terms extend :meth:`Editor.edit_losses`,
so every term the shared loop adds (locality, the base editor's own) is ASAM's too.
Rollback, the NaN guard and the sequential mode are the shared loop's.

Beyond the paper (this companion's addition, off by default): ``ASAMSettings.calibrate_bias`` re-places each
patch neuron's threshold after training so that it fires on the edit input and its variants but on none of the
memory states, with a margin (:func:`asam_lib.editors.patch.calibrate_patch`). It keeps ASAM's locality when edits
accumulate (sequential editing); see :class:`ASAMSettings`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from dataclasses import replace as replaced

import torch

from asam_lib.editors.editing import (
    COMPANION,
    EditConfig,
    EditContext,
    Editor,
    Installed,
    edited_forward,
    unedited_forward,
)
from asam_lib.editors.lar import (
    LARConfig,
    Variants,
    adversarial_variants,
    answer_ce_per_row,
    forward_variants,
    noise_variants,
)
from asam_lib.editors.patch import Patch, answer_span, calibrate_patch, stacked_patches
from asam_lib.editors.rcsl import RCSLConfig, rcsl_loss
from asam_lib.mllm.architectures import edit_layer_mlp, language_layers
from asam_lib.mllm.forward import FixedInputs, lower_blocks_skipped
from asam_lib.mllm.hooks import module_input, module_io
from asam_lib.mllm.prompting import Batch

VARIANT_SOURCES = ("lar", "noise")
EDIT_ROWS = {"off": 0, "input": 1, "cover": None}  # ASAMSettings.calibrate_edits: rows of an edit's cover used


@dataclass(frozen=True)
class ASAMSettings:
    """Weights of ASAM's terms and the ablation switches. Defaults reproduce the committed figures.

    The ``calibrate_*`` fields are this companion's addition for sequential editing, not the paper's, and off by
    default (docs/method.md, "Calibrated thresholds"; measured in notebook 04, section 6).

    ``calibrate_bias``: after an edit is trained, move each patch neuron's threshold to ``calibration_margin`` of
    the way from the highest state it must stay silent on to the lowest of the states it must cover (the edit input
    and its current variants), and scale its value so that its output on the edit input is unchanged
    (:func:`asam_lib.editors.patch.calibrate_patch`; Patch base only). Why: training the keys and biases on LAR's
    variants widens the region where each neuron fires, and ASAM's larger values (needed to carry the variants) turn
    weak firings on unrelated inputs into changed answers. In one edit the leak is small; in sequential editing the
    leaks of every earlier patch add up and later inputs trigger earlier patches.

    Which states must stay silent: with ``calibrate_memory`` the edit's own memory states; with
    ``calibrate_edits`` ("input", or "cover": their inputs and variants) the earlier edits', and every earlier patch
    is in turn calibrated silent on the new edit's (rolling the new edit back restores the earlier patches as they
    were). Without ``calibrate_memory``, a single edit from the unedited model is exactly default ASAM's: there is
    no earlier edit to separate from. :data:`SEQUENTIAL_OPTION` is the setting notebook 04 reports, chosen on the
    development split; its cost is sequential generality on some edit sets (a patch silent on many other edits'
    inputs, which share question templates with its own unit, covers fewer of its unit's members).
    """

    lambda_adv: float = 1.0  # weight of the variants' CE
    lambda_rank: float = 1.0  # weight of L_rank (0 = the "no RCSL" ablation)
    variants: str = "lar"  # "lar", or "noise" for the "no LAR" ablation
    stop_on_variants: bool = True  # stop early only once the variants' CE is below stop_loss too
    calibrate_bias: bool = field(default=False, metadata=COMPANION)  # re-place thresholds after training (above)
    calibration_margin: float = field(default=0.5, metadata=COMPANION)  # 0: just above the memory; 1: at the cover
    calibrate_memory: bool = field(default=True, metadata=COMPANION)  # calibrate against the edit's memory states
    calibrate_edits: str = field(default="off", metadata=COMPANION)  # "off", "input" or "cover" (see above)

    def __post_init__(self):
        for name in ("lambda_adv", "lambda_rank"):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"ASAMSettings.{name} = {getattr(self, name)}; choose a weight >= 0 (0 switches the term off)"
                )
        if self.variants not in VARIANT_SOURCES:
            raise ValueError(f"ASAMSettings.variants = {self.variants!r}; choose one of {VARIANT_SOURCES}")
        if self.calibrate_edits not in EDIT_ROWS:
            raise ValueError(
                f"ASAMSettings.calibrate_edits = {self.calibrate_edits!r}; choose one of {tuple(EDIT_ROWS)}"
            )
        if not 0.0 <= self.calibration_margin <= 1.0:
            raise ValueError(f"ASAMSettings.calibration_margin = {self.calibration_margin}; choose a value in [0, 1]")


# This companion's option for edits that accumulate (notebook 04, section 6; docs/method.md, "Calibrated
# thresholds"): each new patch silent on the earlier edits' inputs and each earlier patch on the new one's, with no
# calibration against the edit's own memory, so that a single edit from the unedited model is exactly ASAM's.
SEQUENTIAL_OPTION = ASAMSettings(
    calibrate_bias=True, calibrate_memory=False, calibrate_edits="input", calibration_margin=0.0
)


def representation_site(model, layer: int, site: str) -> tuple[torch.nn.Module, str]:
    """The module whose ``"input"`` or ``"output"`` holds RCSL's rows at ``site``
    (:data:`asam_lib.editors.rcsl.SITES`)."""
    if site in ("block_output", "edit_delta"):
        return language_layers(model)[layer], "output"
    name, which = {"ffn_hidden": ("down_proj", "input"), "patch_keys": ("activation", "output")}[site]
    found = [m for n, m in edit_layer_mlp(model, layer).named_modules() if n.rsplit(".", 1)[-1] == name]
    if not found:
        raise ValueError(
            f"RCSL site {site!r} needs a module named {name!r} in the FFN of layer {layer} "
            f"({'Patch as the base editor' if site == 'patch_keys' else 'a gated FFN'}); choose another RCSLConfig.site"
        )
    return found[-1], which  # the outermost: in sequential editing, the newest patch (which runs every patch's neurons)


def edit_layer_representations(
    model,
    layer: int,
    anchor_embeds: torch.Tensor,
    batch: Batch,
    delta: torch.Tensor,
    block: int | None = None,
    site: str = "block_output",
    originals: dict[str, torch.Tensor] | None = None,
    fixed: FixedInputs | None = None,
    window: bool = False,
    with_ce: bool = True,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """One batched forward of the anchor and its K variants (perturbations ``delta`` (K, L, d), see
    :func:`asam_lib.editors.lar.forward_variants`): the CE of the new target per row, (K+1,), and H (K+1, d), the
    representation at ``site`` (:data:`asam_lib.editors.rcsl.SITES`; default the output of language block ``layer``)
    at the answer-predicting position (row 0: the anchor). ``edit_delta`` subtracts the unedited model's
    block output (``originals``: the unedited values of the trained parameters), from one more forward.
    ``fixed``: these rows' hidden states entering block ``layer`` (:func:`variant_inputs`), so that the forward
    runs from there: the same values, without the blocks below, which no edit changes. ``window``: logits only
    where the CE reads them (:meth:`asam_lib.mllm.forward.FixedInputs.loss_logits`). ``with_ce=False``: H only, from a
    forward that stops after block ``layer`` (the CE is None; not for the last layer)."""
    if fixed is None:
        fixed = variant_inputs(model, layer, anchor_embeds, batch, delta, block)
    rows = fixed.batch
    position = int(batch.answer_start[0]) - 1
    module, which = representation_site(model, layer, site)
    ce = None
    with module_io(module, which) as captured:
        if with_ce:
            ce = answer_ce_per_row(*fixed.loss_logits(model, window))
        else:  # stops at the block above, keeping the graph through block `layer`
            module_input(language_layers(model)[layer + 1], lambda: fixed.logits(model), grad=True)
    H = captured["y"][:, position]
    if site == "edit_delta":
        with torch.no_grad(), module_io(module, which) as before, lower_blocks_skipped(model, layer):
            unedited_forward(model, originals)(fixed.hidden, rows)
        H = H - before["y"][:, position]
    return ce, H


def variant_inputs(
    model, layer: int, anchor_embeds: torch.Tensor, batch: Batch, delta: torch.Tensor, block: int | None = None
) -> FixedInputs:
    """The anchor (row 0) and its K variants ``delta`` (K, L, d) as a batch of K+1 rows, with their hidden states
    entering block ``layer`` (:class:`asam_lib.mllm.forward.FixedInputs`): fixed while the variants are, since no
    edit changes the blocks below ``layer``."""
    delta = torch.cat([torch.zeros_like(delta[:1]), delta])
    rows = batch.repeat(len(delta))
    hidden = module_input(
        language_layers(model)[layer],
        lambda: forward_variants(model, edited_forward(model), anchor_embeds, delta, rows, block),
    )
    return FixedInputs(rows, layer, hidden)


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
        if settings.calibrate_bias and not isinstance(self.base, Patch):
            raise ValueError(f"ASAMSettings.calibrate_bias needs a Patch base (got {type(self.base).__name__})")
        self.lar, self.rcsl, self.settings = lar, rcsl, settings

    def with_config(self, config: EditConfig) -> ASAM:
        return ASAM(self.base, self.lar, self.rcsl, self.settings, config)

    def __repr__(self) -> str:
        return f"ASAM(base={self.base!r}, {self.lar}, {self.rcsl}, {self.settings})"

    def install(self, model, context: EditContext) -> Installed:
        installed = self.base.install(model, context)
        if not self.settings.calibrate_bias:
            return installed
        base_finalize, base_undo = installed.finalize, installed.undo
        saved: list[tuple[torch.nn.Module, torch.Tensor, torch.Tensor]] = []  # earlier patches before this edit

        def finalize():
            if self.settings.calibrate_edits != "off":
                for p in stacked_patches(model, self.config.layer)[:-1]:
                    saved.append((p, p.bias.detach().clone(), p.value.detach().clone()))
            self.calibrate(model, context)
            return base_finalize()

        def undo():
            base_undo()
            with torch.no_grad():
                for p, bias, value in saved:
                    p.bias.copy_(bias)
                    p.value.copy_(value)

        return replaced(installed, finalize=finalize, undo=undo)

    def calibrate(self, model, context: EditContext) -> torch.Tensor:
        """After training (``ASAMSettings.calibrate_bias``): re-place the patch's thresholds between the memory
        states and the edit input with its latest variants (:func:`asam_lib.editors.patch.calibrate_patch`); with
        ``ASAMSettings.calibrate_edits``, also between this patch and the earlier edits' inputs (kept on each
        patch as ``edit_cover``), both ways. Returns this patch's threshold shifts (n,)."""
        state, anchor = context.editor_state, context.anchor
        delta = context.anchor_embeds.new_zeros((0, *context.anchor_embeds.shape[1:]))
        if context.variants is not None:
            delta = context.variants.delta
        delta = torch.cat([torch.zeros_like(context.anchor_embeds), delta.to(context.anchor_embeds.dtype)])
        rows = anchor.repeat(len(delta))
        x = module_input(
            edit_layer_mlp(model, self.config.layer),
            lambda: forward_variants(model, edited_forward(model), context.anchor_embeds, delta, rows, self.lar.block),
        )
        cover = answer_span(x, anchor)
        s, patch = self.settings, state.patch
        rows = EDIT_ROWS[s.calibrate_edits]  # of an edit's cover (input, then variants); None: all
        earlier = [p for p in stacked_patches(model, self.config.layer) if p is not patch and p.edit_cover is not None]
        silent = [state.memory_x] if s.calibrate_memory else []
        if rows != 0:
            silent += [p.edit_cover[:rows].flatten(0, 1) for p in earlier]
            for p in earlier:  # each earlier patch stays silent on this edit's input (and variants)
                calibrate_patch(p, p.edit_cover, cover[:rows].flatten(0, 1), s.calibration_margin)
            patch.edit_cover = cover.detach()
        if not silent:
            return torch.zeros_like(patch.bias)
        return calibrate_patch(patch, cover, torch.cat(silent), s.calibration_margin)

    def variants(self, model, context: EditContext) -> Variants:
        """Fresh variants of the edit input against the current edited model."""
        if self.settings.variants == "noise":
            return noise_variants(model, context.anchor_embeds, context.anchor, self.lar, context.generator)
        unedited = unedited_forward(model, context.originals)
        return adversarial_variants(
            model,
            edited_forward(model),
            unedited,
            context.anchor_embeds,
            context.anchor,
            self.lar,
            context.generator,
            trace_last=False,  # the loop's own forward of the variants follows
            shared_below=self.config.layer,  # both models are the same below the edit layer
            window=context.memory.loss_logits,
        )

    def edit_losses(self, model, context: EditContext, step: int) -> dict[str, torch.Tensor]:
        """The edit input's CE, the variants' CE and L_rank(H), from one batched forward of anchor and variants."""
        if step % self.lar.refresh == 0:
            context.variants = self.variants(model, context)
            context.variant_inputs = variant_inputs(
                model, self.config.layer, context.anchor_embeds, context.anchor, context.variants.delta, self.lar.block
            )
        rows, size = len(context.variant_inputs.batch), context.memory.micro_batch
        grouped = 0 < size < rows and self.config.layer + 1 < len(language_layers(model))
        ce, H = edit_layer_representations(
            model,
            self.config.layer,
            context.anchor_embeds,
            context.anchor,
            context.variants.delta,
            self.lar.block,
            self.rcsl.site,
            context.originals,
            context.variant_inputs,
            context.memory.loss_logits,
            with_ce=not grouped,
        )
        if grouped:
            ce = self.accumulated_ce(model, context.variant_inputs, size, context.memory.loss_logits)
        s = self.settings
        terms = {"edit": ce[0], "adversarial": s.lambda_adv * ce[1:].mean()}
        if s.lambda_rank > 0:
            terms["rank"] = s.lambda_rank * rcsl_loss(H[0], H[1:], self.rcsl)
        return terms

    def accumulated_ce(self, model, fixed: FixedInputs, size: int, window: bool) -> torch.Tensor:
        """The CE of the new target per row of the edit input and its variants, (K+1,), in groups of ``size`` rows
        (``EditConfig.micro_batch``): each group's share of the edit and adversarial terms is backpropagated here,
        its gradients accumulated on the trained parameters, so the terms come back without a graph (the rank term,
        from the rows' representations at the edit layer, keeps its own)."""
        rows = len(fixed.batch)
        weights = torch.full((rows,), self.settings.lambda_adv / (rows - 1), device=fixed.hidden.device)
        weights[0] = 1.0
        ces = []
        for lo in range(0, rows, size):
            hi = min(lo + size, rows)
            ce = answer_ce_per_row(*fixed.rows(model, lo, hi).loss_logits(model, window))
            (ce * weights[lo:hi]).sum().backward()
            ces.append(ce.detach())
        return torch.cat(ces)

    def extra_losses(self, model, context: EditContext, step: int) -> dict[str, torch.Tensor]:
        return self.base.extra_losses(model, context, step)

    def done(self, terms: dict[str, torch.Tensor]) -> bool:
        stop = self.config.stop_loss
        if self.settings.stop_on_variants and self.settings.lambda_adv > 0:
            return terms["edit"].item() < stop and terms["adversarial"].item() / self.settings.lambda_adv < stop
        return terms["edit"].item() < stop
