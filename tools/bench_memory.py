"""What an edit keeps for its backward pass, with and without the memory options (:mod:`asam_lib.mllm.memory`),
measured on the CPU: ``make bench-memory`` (``python -m tools.bench_memory``).

On a random LLaVA with LLaVA-1.5's sequences (576 image tokens per image item, 32,064 logits per position) and a
thirty-second of its width (``tools/llava_shape.py``, shape ``scaled``), every editor edits one record of the embedded
world's MMEdit file (its ``--n-support`` support records: their text and image locality items) for ``--steps``
steps at the middle layer, once per configuration of the options. For each it reports:

- ``saved_mib``: the peak, over the edit, of the bytes autograd keeps for the backward pass, counted with
  :func:`torch.autograd.graph.saved_tensors_hooks` (each storage once, the model's weights left out), plus the
  inputs a recomputed block keeps (hidden states, mask, positions); the recomputation of one block in the backward
  pass comes on top, for the rows of one forward;
- ``saving_mib``: how much less than without any option;
- ``predicted_saving_mib``: the saving the formula of :mod:`asam_lib.mllm.memory` predicts, on the edit input alone
  (first table; ASAM left out, its LAR search runs forwards the formula does not model): ``L (N - l - 1)
  (s_block - h b)`` for ``checkpoint_blocks``, with ``s_block`` (bytes one block keeps per token) measured on one
  block; ``(L - A - 2) V 4`` for ``loss_logits`` (the cross-entropy's float32 log-probabilities at every position
  but the answer's ``A + 2``);
- ``s_per_step``: seconds per optimiser step (one torch thread unless ``--threads``); ASAM's with one PGD step of
  LAR instead of four (the same peak: each PGD step frees its graph before the next), so its time is not ASAM's.

The second table adds the support items (a padded batch of text and image items), as an edit of the study has,
with no option, the first two, and all three.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from asam_lib.data.benchmark import export_mmedit
from asam_lib.data.records import load_records
from asam_lib.data.world import World
from asam_lib.editors import methods
from asam_lib.editors.asam import ASAM
from asam_lib.editors.editing import EditConfig, Editor, EditRequest
from asam_lib.experiments.mmedit_study import case_from_record, choose_records
from asam_lib.mllm.architectures import language_layers
from asam_lib.mllm.forward import FixedInputs
from asam_lib.mllm.prompting import PromptEncoder
from tools.llava_shape import SHAPES, Shape, build

CONFIGURATIONS = {  # name -> (checkpoint_blocks, loss_logits, micro_batch)
    "none": (False, False, 0),
    "checkpoint_blocks": (True, False, 0),
    "loss_logits": (False, True, 0),
    "checkpoint + logits": (True, True, 0),
    "all (micro_batch 2)": (True, True, 2),
}
WITH_SUPPORT = ("none", "checkpoint + logits", "all (micro_batch 2)")  # the second table's (a few minutes in all)
MIB = 2**20
LAR_STEPS = 1  # ASAM's PGD steps here (its default: 4); each step frees its graph before the next


class _Held:
    """A tensor autograd keeps, counted while it is kept."""

    __slots__ = ("tensor", "key", "counter")

    def __init__(self, tensor: torch.Tensor, counter: SavedBytes):
        self.tensor, self.key, self.counter = tensor, tensor.untyped_storage().data_ptr(), counter
        counter.add(self.key, tensor.untyped_storage().nbytes())

    def __del__(self):
        self.counter.remove(self.key)


class SavedBytes:
    """Inside the context: ``live`` and ``peak`` bytes of the tensors autograd keeps for backward passes, each
    storage once, ``model``'s parameters left out; with ``blocks``, also the inputs (hidden states, mask, positions)
    of each of those blocks that recomputes itself in the backward pass (kept on the block output's graph node until
    it is freed)."""

    def __init__(self, model, blocks: list[torch.nn.Module] = ()):
        self.excluded = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.refs: dict[int, int] = {}
        self.sizes: dict[int, int] = {}
        self.live = self.peak = 0
        self.blocks = blocks

    def add(self, key: int, size: int) -> None:
        if not self.refs.get(key):
            self.sizes[key] = size
            self.live += size
            self.peak = max(self.peak, self.live)
        self.refs[key] = self.refs.get(key, 0) + 1

    def remove(self, key: int) -> None:
        self.refs[key] -= 1
        if not self.refs[key]:
            self.live -= self.sizes.pop(key)

    def _pack(self, tensor: torch.Tensor) -> object:
        if tensor.untyped_storage().data_ptr() in self.excluded:
            return tensor
        return _Held(tensor, self)

    def _keep_inputs(self, _module, args, kwargs, output) -> None:
        out = output[0] if isinstance(output, tuple) else output
        if out.grad_fn is None:
            return
        given = [*args, *kwargs.values()]
        tensors = [t for v in given for t in (v if isinstance(v, tuple) else (v,)) if isinstance(t, torch.Tensor)]
        out.grad_fn.metadata["kept inputs"] = [_Held(t, self) for t in tensors]

    def __enter__(self) -> SavedBytes:
        self.handles = [b.register_forward_hook(self._keep_inputs, with_kwargs=True) for b in self.blocks]
        self.hooks = torch.autograd.graph.saved_tensors_hooks(
            self._pack, lambda h: h.tensor if isinstance(h, _Held) else h
        )
        self.hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.hooks.__exit__(*exc)
        for handle in self.handles:
            handle.remove()


def block_bytes_per_token(model, batch, layer: int) -> float:
    """``s_block`` on ``batch``: the bytes one language block above ``layer`` keeps per token of the batch (its
    padded width; with padding, the attention's mask and kernel differ), from the forward of blocks ``layer`` ..
    ``layer + 1`` minus that of block ``layer`` alone, with gradients to the hidden states entering ``layer``."""
    with torch.no_grad():
        hidden = FixedInputs.from_batch(model, batch, layer).hidden
    kept = []
    for top in (layer + 1, layer + 2):
        blocks = language_layers(model)
        saved_top = blocks[top:]
        try:
            del blocks[top:]
            x = hidden.detach().requires_grad_(True)
            with SavedBytes(model) as counter:
                FixedInputs(batch, layer, x).logits(model, keep=torch.zeros(len(batch), 1, dtype=torch.long))
            kept.append(counter.peak)
        finally:
            blocks.extend(saved_top)
    return (kept[1] - kept[0]) / batch.input_ids.numel()


def request_of(model, encoder: PromptEncoder, n_support: int, folder: Path) -> EditRequest:
    """The first record of the embedded world's MMEdit file, with ``n_support`` support records."""
    records = load_records(export_mmedit(World(), folder, "vqa"))
    edited, pool = choose_records(records, 1, 0)
    return case_from_record(edited[0], pool, n_support, 0).request


def predicted_savings(editor: Editor, shape: Shape, model, anchor, s_block: float) -> dict[str, float]:
    """The bytes the formula of :mod:`asam_lib.mllm.memory` says each option saves on a step of ``editor`` on its edit
    input ``anchor`` alone (module docstring): ``checkpoint_blocks``: ``L (N - l - 1) (s_block - h b)``;
    ``loss_logits``: the cross-entropy's float32 log-probabilities at every position but the answer's,
    ``(L - A - 2) V 4``. Empty for ASAM (its LAR search and variants run other forwards)."""
    if editor.name == "ASAM":
        return {}
    b = next(model.parameters()).element_size()
    above = shape.model.text_layers - editor.config.layer - 1
    length = anchor.input_ids.shape[1]
    return {
        "checkpoint_blocks": length * above * (s_block - shape.model.text_hidden * b),
        "loss_logits": (length - int(anchor.answer_len[0]) - 2) * shape.vocab * 4,
    }


def measure(model, encoder, request: EditRequest, method: str, layer: int, steps: int, options) -> tuple[float, float]:
    """Peak saved bytes and seconds per step of one edit of ``method`` with the memory ``options``."""
    memory = dict(zip(("config.checkpoint_blocks", "config.loss_logits", "config.micro_batch"), options))
    overrides = {"config.layer": layer, "config.steps": steps, "config.stop_loss": 0.0, **memory}
    if isinstance(methods.build(method), ASAM):  # one PGD step: LAR's peak is that of any of its steps, in a quarter
        overrides["lar.steps"] = LAR_STEPS  # of the time
    editor = methods.build(method, overrides)
    blocks = [b for i, b in enumerate(language_layers(model)) if i != layer] if options[0] else []
    start = time.perf_counter()
    with SavedBytes(model, blocks) as counter:
        handle = editor.edit(model, encoder, request)
    seconds = time.perf_counter() - start
    handle.restore()
    return counter.peak, seconds / handle.steps


def run(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(prog="python -m tools.bench_memory", description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=tuple(SHAPES), default="scaled")
    p.add_argument("--methods", default=",".join(methods.names()))
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--n-support", type=int, default=2, help="support records (each: a text and an image item)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--folder", type=Path, default=Path("build/bench_memory"), help="the MMEdit records")
    p.add_argument("--report", type=Path, default=None, help="also write the rows as JSON here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    shape = SHAPES[args.shape]
    model, processor = build(shape)
    model.requires_grad_(False)  # as in the edit loop, which trains only what an editor installs
    encoder = PromptEncoder(processor)
    request = request_of(model, encoder, args.n_support, args.folder)
    layer = shape.model.text_layers // 2
    anchor = encoder.batch([request.anchor_item])
    s_block = block_bytes_per_token(model, anchor, layer)
    rows = []
    for items, asked in (("edit input", replace(request, locality_support=())), ("+ support", request)):
        for method in args.methods.split(","):
            for name, options in CONFIGURATIONS.items():
                if items == "+ support" and name not in WITH_SUPPORT:
                    continue
                saved, per_step = measure(model, encoder, asked, method, layer, args.steps, options)
                editor = methods.method(method).editor().with_config(replace(EditConfig(), layer=layer))
                savings = predicted_savings(editor, shape, model, anchor, s_block) if items == "edit input" else {}
                rows.append(
                    {
                        "items": items,
                        "method": method,
                        "options": name,
                        "saved_mib": saved / MIB,
                        "predicted_saving_mib": savings[name] / MIB if name in savings else None,
                        "s_per_step": per_step,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows)
    none = table[table.options == "none"].set_index(["items", "method"]).saved_mib
    table.insert(4, "saving_mib", [none[i, m] - v for i, m, v in zip(table["items"], table.method, table.saved_mib)])
    width = encoder.batch(list(request.locality_support)).input_ids.shape[1]
    support = f"{len(request.locality_support)} support items (padded to {width})"
    print(f"\n{args.shape}: {shape}\nedit layer {layer}, edit input {anchor.input_ids.shape[1]} tokens, {support}")
    print(f"s_block = {s_block:.0f} bytes per token of the edit input")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}", na_rep="-"))
    if args.report:
        args.report.write_text(json.dumps({"s_block": s_block, "rows": rows}, indent=1) + "\n")
    return table


if __name__ == "__main__":
    run()
