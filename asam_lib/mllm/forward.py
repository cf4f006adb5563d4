"""Forward passes of a model from its joint input embeddings, and from its edit layer up.

:func:`joint_embeddings` is the language model's input sequence (projected image tokens + text embeddings) and
:func:`forward_embeds` runs the model from it (what LAR perturbs, and what every editor trains on).

Every editor of this companion changes one language block, its edit layer ``l`` (the FFN of block ``l``, see
:mod:`asam_lib.editors.editing`), and nothing below it. So for an input that is not perturbed (an evaluation batch, the
locality items of the edit loop), the hidden state that enters block ``l`` is the same before, during and after
any number of edits at layer ``l``. :class:`FixedInputs` computes it once (with the processor, the vision tower and
blocks ``0 .. l-1``) and, at each later use, runs only blocks ``l`` and above. The logits are bit-identical to a
full forward of the same batch (``tests/test_forward.py``), at about half the cost on the embedded model.

Blocks below ``l`` are skipped by putting pass-through modules in their place for the duration of one forward
(:func:`lower_blocks_skipped`); the language model still builds its own attention mask and positions from the
batch, so any architecture whose decoder loop is ``hidden = block(hidden, ...)`` works (LLaVA's Llama, Qwen2-VL).
Not for inputs an editor is still perturbing below its edit layer (LAR's search for ASAM's variants goes through
every block); once found, the variants are fixed inputs until the next search
(:func:`asam_lib.editors.asam.variant_inputs`).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch

from asam_lib.mllm.architectures import architecture, language_layers, language_model
from asam_lib.mllm.hooks import module_input
from asam_lib.mllm.memory import batch_rows, loss_window
from asam_lib.mllm.prompting import Batch


def joint_embeddings(model, batch: Batch) -> torch.Tensor:
    """The language model's input sequence (projected image tokens + text embeddings): (B, L, d).

    Captured with a pre-hook on the language model, so it is whatever the architecture itself builds.
    """
    return module_input(language_model(model), lambda: model(**batch.model_inputs()), keyword="inputs_embeds")


def forward_embeds(
    model,
    embeds: torch.Tensor,
    batch: Batch,
    keep: torch.Tensor | None = None,
    extra: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Logits ``(B, L, V)`` of the model on joint embeddings ``embeds`` with ``batch``'s mask, plus what
    the architecture needs besides (Qwen2-VL: its M-RoPE positions; ``extra``: those inputs, if already made), so
    that ``forward_embeds(model, joint_embeddings(model, batch), batch)`` equals ``model(**batch.model_inputs())``.
    ``keep``: only these positions (P,) get logits, ``(B, P, V)`` (the others' hidden states are computed all the
    same)."""
    extra = architecture(model).embeds_inputs(model, batch) if extra is None else extra
    kept = {} if keep is None else {"logits_to_keep": keep}
    return model(inputs_embeds=embeds, attention_mask=batch.attention_mask, use_cache=False, **extra, **kept).logits


class _PassThrough(torch.nn.Module):
    """Stands in for a skipped decoder block: returns the hidden state it is given."""

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return hidden_states


@contextmanager
def lower_blocks_skipped(model, layer: int) -> Iterator[None]:
    """Inside the context, language blocks ``0 .. layer-1`` of ``model`` pass their input through unchanged; the
    blocks are put back on exit, even on an exception."""
    blocks = language_layers(model)
    saved = [blocks[i] for i in range(layer)]
    try:
        for i in range(layer):
            blocks[i] = _PassThrough()
        yield
    finally:
        for i, block in enumerate(saved):
            blocks[i] = block


@dataclass
class FixedInputs:
    """A batch and the hidden states entering language block ``layer`` on it, ``hidden`` (B, L, d), computed once
    (see the module docstring). :meth:`logits` is the model's forward on the batch from there: valid as long as
    nothing below block ``layer`` changes. ``extra``: the architecture's other inputs of a forward from
    embeddings, already made (rows of a larger batch, :meth:`rows`); None: made from ``batch``."""

    batch: Batch
    layer: int
    hidden: torch.Tensor
    extra: dict[str, torch.Tensor] | None = None

    @classmethod
    def from_batch(cls, model, batch: Batch, layer: int) -> FixedInputs:
        """From the batch's own inputs (token ids and pixels)."""
        return cls(batch, layer, module_input(language_layers(model)[layer], lambda: model(**batch.model_inputs())))

    @classmethod
    def from_embeds(cls, model, embeds: torch.Tensor, batch: Batch, layer: int) -> FixedInputs:
        """From the batch's joint input embeddings ``embeds`` (:func:`asam_lib.editors.editing.joint_embeddings`)."""
        return cls(
            batch, layer, module_input(language_layers(model)[layer], lambda: forward_embeds(model, embeds, batch))
        )

    def logits(self, model, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, L, V) of ``model`` on the batch, running blocks ``layer`` and above only (with gradients
        to the parameters of those blocks, unless called under ``no_grad``); ``keep``: at these positions only,
        (B, P, V)."""
        with lower_blocks_skipped(model, self.layer):
            return forward_embeds(model, self.hidden, self.batch, keep, self.extra)

    def loss_logits(self, model, window: bool = False) -> tuple[torch.Tensor, Batch]:
        """The logits a loss reads and the batch to read them with: :meth:`logits` and the batch, or (``window``)
        the logits at :func:`asam_lib.mllm.memory.loss_window`'s positions only and the batch cut to them."""
        if not window:
            return self.logits(model), self.batch
        positions, cut = loss_window(self.batch)
        return self.logits(model, positions), cut

    def rows(self, model, lo: int, hi: int) -> FixedInputs:
        """Rows ``lo .. hi-1`` of these inputs (a micro-batch), with the architecture's other inputs cut from the
        whole batch's (positions, ``(..., B, L)``)."""
        extra = self.extra if self.extra is not None else architecture(model).embeds_inputs(model, self.batch)
        cut = {name: value[..., lo:hi, :] for name, value in extra.items()}
        return FixedInputs(batch_rows(self.batch, lo, hi), self.layer, self.hidden[lo:hi], cut)

    def __repr__(self) -> str:
        return f"FixedInputs({len(self.batch)} items, from block {self.layer}, hidden {tuple(self.hidden.shape)})"
