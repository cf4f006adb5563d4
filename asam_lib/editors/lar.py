"""LAR: Latent Adversarial Robustification - adversarial yet coherent variants of the edit input.

The paper perturbs the edit input in the model's *joint latent space* and looks for variants on which the
edit fails but whose meaning is unchanged. The details below are our reconstruction (docs/method.md, "LAR
threat model"); each is a field of :class:`LARConfig`.

Latent space. ``z`` is the language model's input sequence (projected image tokens and text embeddings,
``inputs_embeds``), ``(L, d)``; with ``LARConfig.block = b`` it is instead the hidden state after language
block ``b`` (a forward hook adds the perturbation there).

Threat model. A variant is ``z + delta`` with, at every position ``p`` of the role mask ``M`` (image tokens,
question tokens or both; never the answer), a per-position bound relative to the token's norm

    |delta_p| <= eps * |z_p|,      delta_p = 0 outside M.

Objective. The adversary ascends

    J(delta) = CE(f_edit(z + delta), y_new) - mu * KL( p_pre(. | z + delta) || p_pre(. | z) )

where ``f_edit`` is the current (edited) model and ``p_pre`` the unedited model's next-token distribution at
the answer-predicting positions: the edit should fail on the variant (first term) while the unedited model
still reads the variant like the clean input (second term, *coherence*). Projected gradient ascent: ``T``
steps of size ``alpha * eps * |z_p|`` along the per-position normalised gradient, each followed by the
projection onto the bound. ``K`` variants start from ``K`` seeded random points of the ball and are
computed in one batch of ``K`` rows (one forward/backward per step and model, whatever ``K``).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from asam_lib.mllm.architectures import language_layers
from asam_lib.mllm.forward import forward_embeds, lower_blocks_skipped
from asam_lib.mllm.hooks import module_input, module_output
from asam_lib.mllm.memory import loss_window
from asam_lib.mllm.precision import at_least_float32
from asam_lib.mllm.prompting import Batch

ROLES = ("image", "question", "both")

Forward = Callable[..., torch.Tensor]  # (joint embeddings (K, L, d), batch[, positions kept]) -> logits (K, L, V)


@dataclass(frozen=True)
class LARConfig:
    """LAR hyper-parameters. Defaults reproduce the committed figures. [Reconstruction: all of them.]"""

    k: int = 4  # variants per edit
    eps: float = 0.3  # per-position L2 radius, relative to the token norm |z_p|
    steps: int = 4  # PGD steps T
    alpha: float = 0.5  # step size, as a fraction of the radius
    mu: float = 1.0  # weight of the coherence penalty
    roles: str = "both"  # which positions may move: "image", "question" or "both"
    refresh: int = 10  # during an ASAM edit, recompute the variants every this many editing steps
    block: int | None = None  # None: perturb the joint input embeddings; b: the hidden state after block b

    def __post_init__(self):
        if self.roles not in ROLES:
            raise ValueError(f"LARConfig.roles = {self.roles!r}; choose one of {ROLES}")
        if self.k < 1 or self.steps < 0 or self.eps < 0:
            raise ValueError(
                f"LARConfig needs k >= 1, steps >= 0 and eps >= 0 (got k={self.k}, steps={self.steps}, eps={self.eps})"
            )


@dataclass
class Variants:
    """K adversarial variants of one edit input. ``latents``: (K, L, d) perturbed latent sequences
    (``z + delta``); ``delta``: the perturbations; ``radius``: (L,) the bound per position; ``mask``: (L,)
    the positions allowed to move; ``block``: where they live (None: the joint input embeddings);
    ``history``: after each PGD step (and at the start), the mean edit loss and coherence KL over the K
    variants."""

    latents: torch.Tensor
    delta: torch.Tensor
    radius: torch.Tensor
    mask: torch.Tensor
    block: int | None = None
    history: list[dict[str, float]] = field(default_factory=list)

    def __len__(self) -> int:
        return self.latents.shape[0]

    def __repr__(self) -> str:
        last = self.history[-1] if self.history else {}
        summary = ", ".join(f"{k} {v:.3f}" for k, v in last.items())
        return f"Variants(K={len(self)}, {int(self.mask.sum())} of {self.mask.numel()} positions, {summary})"


def image_token_id(model) -> int:
    """The id of the image placeholder token of a LLaVA-style model."""
    config = model.config
    token = getattr(config, "image_token_id", None)
    return int(token if token is not None else config.image_token_index)


def role_mask(batch: Batch, image_token: int, roles: str) -> torch.Tensor:
    """Positions of item 0 of ``batch`` that may move: image tokens, question tokens (the rest of the prompt
    after the first token), or both. Answer tokens and padding never move. (L,) bool."""
    ids = batch.input_ids[0]
    prompt = torch.zeros_like(ids, dtype=torch.bool)
    prompt[1 : int(batch.answer_start[0])] = True
    image = prompt & (ids == image_token)
    question = prompt & ~image
    return {"image": image, "question": question, "both": image | question}[roles]


def project(delta: torch.Tensor, radius: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``delta`` (K, L, d) with each position's norm clipped to ``radius`` (L,) and zero outside ``mask``."""
    norms = delta.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    scale = torch.clamp(radius[None, :, None] / norms, max=1.0)
    return delta * scale * mask[None, :, None]


def random_start(
    shape: tuple[int, ...], radius: torch.Tensor, mask: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """K seeded random points of the ball: a uniform direction and a uniform fraction of the radius."""
    direction = torch.randn(shape, generator=generator).to(radius)  # drawn on the CPU: the same variants on any device
    direction = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    fraction = torch.rand(shape[:-1], generator=generator).to(radius)[..., None]
    return direction * fraction * radius[None, :, None] * mask[None, :, None]


def answer_ce_per_row(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Per row, the mean cross-entropy of the answer tokens and ``</s>``: (K,) (over the whole batch:
    :func:`asam_lib.editors.editing.mean_answer_ce`)."""
    per_token = F.cross_entropy(
        at_least_float32(logits[:, :-1]).transpose(1, 2), batch.labels[:, 1:], ignore_index=-100, reduction="none"
    )
    counted = (batch.labels[:, 1:] != -100).float()
    return (per_token * counted).sum(1) / counted.sum(1)


def answer_span_log_probs(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Log-probabilities at the answer-predicting positions of rows that share one answer span (the variants
    of one input): (K, answer_len, V) (items with spans of their own:
    :func:`asam_lib.editors.editing.answer_log_probs_per_item`)."""
    start, n = int(batch.answer_start[0]), int(batch.answer_len[0])
    return F.log_softmax(at_least_float32(logits[:, start - 1 : start - 1 + n]), -1)


def coherence_kl(pre_variant: torch.Tensor, pre_clean: torch.Tensor) -> torch.Tensor:
    """Per row, KL(p_pre(.|z + delta) || p_pre(.|z)) summed over vocabulary, mean over the answer span: (K,)."""
    return (pre_variant.exp() * (pre_variant - pre_clean)).sum(-1).mean(-1)


@contextmanager
def added_to_block_output(model, block: int, delta: torch.Tensor) -> Iterator[None]:
    """Inside the context, ``delta`` (K, L, d) is added to the hidden state after language block ``block``."""

    def add(_module, _args, output):
        if isinstance(output, tuple):
            return (output[0] + delta.to(output[0].dtype), *output[1:])
        return output + delta.to(output.dtype)

    handle = language_layers(model)[block].register_forward_hook(add)
    try:
        yield
    finally:
        handle.remove()


def block_output(model, embeds: torch.Tensor, batch: Batch, block: int) -> torch.Tensor:
    """The hidden state after language block ``block`` for joint embeddings ``embeds``: (B, L, d)."""
    with module_output(language_layers(model)[block]) as captured, torch.no_grad():
        forward_embeds(model, embeds, batch)
    return captured["y"].detach()


def forward_variants(
    model,
    forward: Forward,
    anchor_embeds: torch.Tensor,
    delta: torch.Tensor,
    rows: Batch,
    block: int | None,
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """Logits (K, L, V) of ``forward`` on the K perturbed inputs ``z + delta``: added to the joint
    embeddings ``anchor_embeds`` (1, L, d), or to block ``block``'s output (``keep``: at those positions only)."""
    base = anchor_embeds.expand(delta.shape[0], -1, -1)
    if block is None:
        return _run(forward, base + delta.to(base.dtype), rows, keep)
    with added_to_block_output(model, block, delta):
        return _run(forward, base, rows, keep)


def _run(forward: Forward, embeds: torch.Tensor, rows: Batch, keep: torch.Tensor | None) -> torch.Tensor:
    return forward(embeds, rows) if keep is None else forward(embeds, rows, keep)


def adversarial_variants(
    model,
    edited: Forward,
    unedited: Forward,
    anchor_embeds: torch.Tensor,
    batch: Batch,
    config: LARConfig,
    generator: torch.Generator,
    trace_last: bool = True,
    shared_below: int | None = None,
    window: bool = False,
) -> Variants:
    """K adversarial, coherent variants of the edit input (see the module docstring).

    ``anchor_embeds``: (1, L, d) joint embeddings of the edit input; ``batch``: its one-item batch whose
    labels hold the new target; ``edited``/``unedited``: forwards of the current and of the unedited model
    on joint embeddings (e.g. :func:`asam_lib.editors.editing.unedited_forward`). The model's weights are never
    changed. ``trace_last``: also record the losses after the last step in ``history`` (one more forward of each
    model; the variants are the same without it, which is how ASAM's edit loop calls it). ``shared_below``: the
    edit layer l, when the two models differ only from block l up (every editor here): each PGD step then runs
    the blocks below l once for both models (forward and backward) instead of once each, about a quarter less
    work for the same variants up to float rounding (the two models' gradients are summed before, not after,
    the shared blocks). Needs ``config.block`` below l. ``window``: both models make logits only where the losses
    read them (:func:`asam_lib.mllm.memory.loss_window`; the forwards take the positions as a third argument, as
    :func:`asam_lib.editors.editing.edited_forward` and :func:`asam_lib.editors.editing.unedited_forward` do)."""
    if shared_below is not None and config.block is not None and config.block >= shared_below:
        raise ValueError(f"LARConfig.block = {config.block} must be below the shared edit layer {shared_below}")
    rows = batch.repeat(config.k)
    mask = role_mask(batch, image_token_id(model), config.roles)
    clean = anchor_embeds[0] if config.block is None else block_output(model, anchor_embeds, batch, config.block)[0]
    radius = config.eps * at_least_float32(clean).norm(dim=-1)
    with torch.no_grad():
        pre_clean = answer_span_log_probs(unedited(anchor_embeds, batch), rows)

    keep, read = loss_window(rows) if window else (None, rows)

    def losses(delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if shared_below is None:
            edit_logits = forward_variants(model, edited, anchor_embeds, delta, rows, config.block, keep)
            pre_logits = forward_variants(model, unedited, anchor_embeds, delta, rows, config.block, keep)
        else:  # the blocks below the edit layer once, then each model from there (asam_lib.mllm.forward)
            hidden = module_input(
                language_layers(model)[shared_below],
                lambda: forward_variants(model, edited, anchor_embeds, delta, rows, config.block),
                grad=torch.is_grad_enabled(),
            )
            with lower_blocks_skipped(model, shared_below):
                edit_logits, pre_logits = _run(edited, hidden, rows, keep), _run(unedited, hidden, rows, keep)
        edit_loss = answer_ce_per_row(edit_logits, read)
        return edit_loss, coherence_kl(answer_span_log_probs(pre_logits, read), pre_clean)

    delta = random_start((config.k, *clean.shape), radius, mask, generator)
    history = []
    for _ in range(config.steps):
        delta.requires_grad_(True)
        edit_loss, kl = losses(delta)
        (grad,) = torch.autograd.grad((edit_loss - config.mu * kl).sum(), delta)
        history.append({"edit_loss": edit_loss.mean().item(), "coherence_kl": kl.mean().item()})
        with torch.no_grad():
            step = grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            delta = project(delta + config.alpha * radius[None, :, None] * step, radius, mask)
    delta = delta.detach()
    if trace_last:
        with torch.no_grad():
            edit_loss, kl = losses(delta)
        history.append({"edit_loss": edit_loss.mean().item(), "coherence_kl": kl.mean().item()})
    return Variants((clean[None] + delta).detach(), delta, radius, mask, config.block, history)


def noise_variants(
    model, anchor_embeds: torch.Tensor, batch: Batch, config: LARConfig, generator: torch.Generator
) -> Variants:
    """The "without LAR" ablation: K random perturbations with the norms PGD would end at (every moving
    position on the sphere of radius ``eps * |z_p|``), no gradient ascent."""
    mask = role_mask(batch, image_token_id(model), config.roles)
    clean = anchor_embeds[0] if config.block is None else block_output(model, anchor_embeds, batch, config.block)[0]
    radius = config.eps * at_least_float32(clean).norm(dim=-1)
    direction = torch.randn((config.k, *clean.shape), generator=generator).to(radius)
    delta = (
        direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-12) * radius[None, :, None] * mask[None, :, None]
    )
    return Variants((clean[None] + delta), delta, radius, mask, config.block)


@torch.no_grad()
def variant_diagnostics(
    model, edited: Forward, unedited: Forward, anchor_embeds: torch.Tensor, batch: Batch, variants: Variants
) -> dict[str, float]:
    """How good the variants are: ``coherence`` (share of variants on which the unedited model's argmax
    answer tokens are those it gives on the clean input), ``edit_loss`` (mean CE of the new target under the
    edited model), ``edit_success`` (share on which the edited model answers the new target), ``diversity``
    (mean pairwise distance between the perturbations, relative to the distance two independent points on
    the sphere of the bound would have) and ``bound_use`` (mean |delta_p| / (eps |z_p|) over moving
    positions: 1 = on the bound)."""
    k = len(variants)
    rows = batch.repeat(k)
    pre_clean = answer_span_log_probs(unedited(anchor_embeds, batch), rows).argmax(-1)
    pre = answer_span_log_probs(
        forward_variants(model, unedited, anchor_embeds, variants.delta, rows, variants.block), rows
    )
    post_logits = forward_variants(model, edited, anchor_embeds, variants.delta, rows, variants.block)
    post = answer_span_log_probs(post_logits, rows).argmax(-1)
    start, n = int(batch.answer_start[0]), int(batch.answer_len[0])
    target = batch.input_ids[0, start : start + n]
    moving = variants.mask
    flat = variants.delta[:, moving].flatten(1)
    pairs = torch.cdist(flat, flat)[torch.triu_indices(k, k, 1).unbind()] if k > 1 else torch.zeros(1)
    sphere_distance = (2 * variants.radius[moving].pow(2).sum()).sqrt().clamp_min(1e-12)
    return {
        "coherence": (pre.argmax(-1) == pre_clean).all(-1).float().mean().item(),
        "edit_loss": answer_ce_per_row(post_logits, rows).mean().item(),
        "edit_success": (post == target).all(-1).float().mean().item(),
        "diversity": (pairs.mean() / (sphere_distance)).item(),
        "bound_use": (variants.delta[:, moving].norm(dim=-1) / variants.radius[moving].clamp_min(1e-12)).mean().item(),
    }
