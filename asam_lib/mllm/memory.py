"""The edit loop's memory: what each step keeps for its backward pass, and three ways to keep less.

Every editor trains parameters at its edit layer ``l`` (of ``N`` language blocks). A step runs the edit input and
the locality support items (ASAM: also its ``K`` variants, and its LAR search) from block ``l`` up, and
backpropagation keeps, by default, what the blocks above need for the gradient to reach block ``l``, and the
cross-entropy's float32 log-probabilities over every position. For ``T`` tokens (rows x padded width), about

    saved ~ T [ (N - l - 1) s_block + s_edit ] + R_ce L V 4 bytes

(``s_block``: what one block keeps per token, about ``(6 h + 4 i) b`` for hidden size ``h``, FFN size ``i`` and
``b`` bytes per value; ``s_edit``: the edit layer's, smaller and editor-dependent; ``R_ce`` rows of width ``L``
whose cross-entropy is read, ``V`` the vocabulary). Three options of :class:`asam_lib.editors.editing.EditConfig` cut
the terms (each off on a small model, where the arithmetic stays exactly today's; on where the model is large,
:func:`is_large`):

- ``checkpoint_blocks``: every block but the edit layer keeps only its inputs, ``h b`` per token, and recomputes
  itself in the backward pass (:func:`checkpointed_blocks`; one block's ``s_block`` while it is recomputed). The
  edit layer itself is never recomputed: an edit's unedited forward (:func:`asam_lib.editors.editing.unedited_forward`)
  swaps its parameters only for the forward, and the recomputation would see the edited ones.
- ``loss_logits``: logits only at the positions a loss reads, each row's answer span (:func:`loss_window`), in the
  edit loop and in ASAM's LAR search: ``L`` becomes ``A + 1`` in the last term.
- ``micro_batch``: the support items, and ASAM's edit input and variants, in groups of this many rows, each group's
  gradients accumulated before the next runs: ``T`` counts one group of rows, not all of them (ASAM's rank term
  reads every row's representation at the edit layer, from a forward that stops after it).

The same arithmetic per row, so the same results: checkpointing recomputes the very same operations (bit-identical
on one machine); the window and micro-batches run the same rows through matrix products of other shapes, equal up
to float rounding (``tests/test_memory.py`` states the tolerances). ``tools/bench_memory.py`` measures the saved
bytes per step with :func:`torch.autograd.graph.saved_tensors_hooks`.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
from torch.utils.checkpoint import checkpoint

from asam_lib.mllm.architectures import language_layers
from asam_lib.mllm.prompting import Batch

LARGE_MODEL = 500_000_000  # parameters: the smallest real checkpoint here (OneVision 0.5B) has 0.9 B
LARGE_MICRO_BATCH = 2  # support items per group on a large model
CACHE_ARGUMENTS = ("cache", "past_key_values", "past_key_value")  # a decoder block's key-value cache, by version


def is_large(model) -> bool:
    """Whether ``model`` has at least :data:`LARGE_MODEL` parameters (every real checkpoint; not the embedded
    model), where the memory options are on by default."""
    return sum(p.numel() for p in model.parameters()) >= LARGE_MODEL


@dataclass(frozen=True)
class LoopMemory:
    """The memory options of one edit, resolved for its model (see the module docstring): ``checkpoint_blocks``,
    ``loss_logits`` and ``micro_batch`` (rows per group; 0: all at once)."""

    checkpoint_blocks: bool = False
    loss_logits: bool = False
    micro_batch: int = 0

    @classmethod
    def resolve(
        cls, model, checkpoint_blocks: bool | None, loss_logits: bool | None, micro_batch: int | None
    ) -> LoopMemory:
        """Each option as given, or (None) on where the model is large (:func:`is_large`)."""
        large = is_large(model)
        return cls(
            large if checkpoint_blocks is None else checkpoint_blocks,
            large if loss_logits is None else loss_logits,
            (LARGE_MICRO_BATCH if large else 0) if micro_batch is None else micro_batch,
        )


@contextmanager
def checkpointed_blocks(model, edit_layer: int, enabled: bool = True) -> Iterator[None]:
    """Inside the context, every language block of ``model`` but ``edit_layer`` keeps only its inputs for the
    backward pass and recomputes itself there (non-reentrant :func:`torch.utils.checkpoint.checkpoint`; hooks on a
    block itself stay outside what is recomputed). The blocks' own forwards are put back on exit, even on an
    exception. A block inside the context does not write to a key-value cache (its recomputation would write
    twice); the edit loop uses none."""
    blocks = [b for i, b in enumerate(language_layers(model)) if i != edit_layer] if enabled else []
    try:
        for block in blocks:
            block.forward = _recomputed(block.forward)
        yield
    finally:
        for block in blocks:
            del block.forward  # the instance attribute: the class's forward again


def _recomputed(forward):
    def run(*args, **kwargs):
        for cache in CACHE_ARGUMENTS:
            if cache in kwargs:
                kwargs[cache] = None
        if not torch.is_grad_enabled():
            return forward(*args, **kwargs)
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)

    return run


def loss_window(batch: Batch) -> tuple[torch.Tensor, Batch]:
    """The positions whose logits a loss on ``batch`` reads, per row: from its answer-predicting position to its
    end token, ``positions`` (B, P) with ``P`` = the longest answer + 2, and ``batch`` gathered at those positions
    (each row's answer then starts at column 1; columns past a row's end are unlabelled), so that the losses of
    :mod:`asam_lib.editors.editing` and :mod:`asam_lib.editors.lar` give on ``(logits at positions, window)`` what they
    give on ``(logits, batch)``. Rows differ in where their answer lies (an image item's after its image tokens, a text
    item's early), hence one window per row."""
    length = batch.input_ids.shape[1]
    span = int(batch.answer_len.max()) + 2
    wanted = (batch.answer_start - 1)[:, None] + torch.arange(span, device=batch.input_ids.device)
    positions = wanted.clamp(max=length - 1)
    labels = batch.labels.gather(1, positions).masked_fill(wanted >= length, -100)
    window = Batch(
        batch.input_ids.gather(1, positions),
        batch.attention_mask.gather(1, positions),
        labels,
        None,
        torch.ones_like(batch.answer_start),
        batch.answer_len,
    )
    return positions, window


def batch_rows(batch: Batch, lo: int, hi: int) -> Batch:
    """Rows ``lo .. hi-1`` of ``batch``, at its full width (for a forward from hidden states: no images)."""
    rows = slice(lo, hi)
    return Batch(
        batch.input_ids[rows],
        batch.attention_mask[rows],
        batch.labels[rows],
        None,
        batch.answer_start[rows],
        batch.answer_len[rows],
    )
