"""GRACE: a codebook of keys, deferral radii and values wrapped around the FFN of the edit layer
(Hartvigsen et al., "Aging with GRACE: Lifelong Model Editing with Discrete Key-Value Adaptors", NeurIPS 2023).

The FFN of language block l is wrapped by a :class:`Codebook`. At every position, its input ``x`` is compared
with every key (Euclidean distance, in float32); where the nearest key ``k`` lies within the deferral radius
``eps`` of its entry, the codebook's value *replaces* the FFN's output (as in GRACE, which replaces the
wrapped layer's output):

    FFN'(x) = v_k       if ||x - k|| <= eps_k,   k = argmin_k' ||x - k'||
    FFN'(x) = FFN(x)    otherwise

Outside every radius the block computes exactly what it computed before (bit for bit). A key at exactly the
radius is inside (``<=``), but which side of the radius a key at float-rounding distance from it lies on is
up to the CPU's kernels: the same FFN input computed in another batch, or by another instruction set, moves by
about 1e-6 of its norm. So no rule below puts a key it must cover on the radius itself (see ``COVER_MARGIN``).

One edit makes one *entry*: its keys are the FFN inputs at the edit input's answer-predicting positions, the
last prompt token (GRACE's key) and, teacher-forced with the new target, every answer token after it up to
the one that predicts ``</s>``; each key has its own value and the entry one radius. [Reconstruction: GRACE
keys one position, the prompt's last token, and EasyEdit replaces the output at the prompt's positions; here
every position decides from its own FFN input, so a multi-token new answer comes out token by token, under
teacher forcing as in greedy decoding (its prefix is the same), with a KV cache too, and no position has to be
told where the prompt ends.]

GRACE's codebook rules, applied to the entry's first key (the prompt's last token) and the nearest first key
``k*`` of the codebook, at distance ``d``:

- ``d > eps_0 + eps*`` (``eps_0``: :attr:`GRACESettings.radius`): the two balls do not overlap; a new entry
  with radius ``eps_0``;
- otherwise, the same target: *expand*: no new entry; ``eps*`` grows to ``d (1 + COVER_MARGIN)`` (GRACE's
  "coverage") and the nearest entry's values are trained on the new edit input;
- otherwise, another target: *split*: a new entry, and both radii become ``d / 2``.

Values start at the FFN's own output on their keys (GRACE's "warm" start), so a new entry changes nothing
before training; only the values are trained (the shared loop's Adam, ``steps``, ``lr`` and ``stop_loss``), with
``lr = 1`` by default (EasyEdit's GRACE learning rate: about 6 steps per edit on the embedded model). GRACE has no
locality loss (its radius keeps it local), hence ``lambda_loc = 0`` by default. Equally near keys go to the
newest entry, so a later edit of the very same input wins.

Sequential edits share the codebook: an edit on a model whose edit-layer FFN is already a codebook adds to
it. Each edit's rollback removes its own entry (or puts back the expanded entry's values) and the radii it
changed, and the edit that wrapped the FFN puts the original module back; edits are rolled back in reverse
order (as :func:`asam_lib.evaluation.harness.run_sequential` does). An edit's ``originals`` are its entry's radius set
to -1 (it never fires) and the radii before the edit, so :func:`asam_lib.editors.editing.unedited_forward` runs the
codebook as it was.

The default radius, 1.0 in units of the FFN input, is EasyEdit's ``eps``, checked on the embedded model at
layer 2 (the first VQA cases of seed 0): keys have norm ~9.8; rephrasings of the edit question lie 0.4-1.6
from its key, other images of the entity 1.2-6, the nearest locality item 8.4, memory item 6.4 and other edit
questions 6.9. A radius of 1 keeps locality exact and sequential edits apart, and reaches only the closest
rephrasings, as GRACE does (on 10 single edits: Rel 1, T-Gen 0.69, I-Gen 0.01; radius 3: T-Gen 1, I-Gen 0.68,
locality still 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from asam_lib.editors.editing import EditConfig, EditError, Editor, Installed
from asam_lib.editors.patch import answer_span, ffn_inputs
from asam_lib.mllm.architectures import edit_layer_mlp, replace_edit_layer_mlp
from asam_lib.mllm.precision import at_least_float32

COVER_MARGIN = 1e-3
"""How far past the new key an expanded radius reaches, relative to the distance: a thousand times float32's
rounding of a distance, and far below the gaps between distinct inputs' keys (module docstring)."""


@dataclass(frozen=True)
class GRACESettings:
    """GRACE-specific knobs."""

    radius: float = 1.0  # eps_0: deferral radius of a new entry, in units of the FFN input (module docstring)

    def __post_init__(self):
        if not (math.isfinite(self.radius) and self.radius >= 0):
            raise ValueError(f"GRACESettings.radius = {self.radius}: the deferral radius must be a finite number >= 0")


class CodebookEntry(torch.nn.Module):
    """One edit's entry: ``key`` (n, d) the FFN inputs at the edit input's answer-predicting positions,
    ``value`` (n, d) what the FFN outputs there instead (trained), ``radius`` () the deferral radius and
    ``target`` the new answer (GRACE's label)."""

    def __init__(self, key: torch.Tensor, value: torch.Tensor, radius: float, target: str):
        super().__init__()
        self.register_buffer("key", key.detach().clone())
        self.value = torch.nn.Parameter(value.detach().clone())
        self.register_buffer("radius", torch.tensor(radius).to(key))
        self.target = target


def nearest(queries: torch.Tensor, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each of ``queries`` (N, d): the distance (float32) to the nearest of ``keys`` (K, d) and its index:
    (N,), (N,)."""
    with torch.no_grad():
        return torch.cdist(at_least_float32(queries), at_least_float32(keys)).min(-1)


class Codebook(torch.nn.Module):
    """An FFN wrapped by GRACE's codebook (see the module docstring): ``mlp`` the original FFN, ``entries``
    one :class:`CodebookEntry` per edit, oldest first."""

    def __init__(self, mlp: torch.nn.Module):
        super().__init__()
        self.mlp = mlp
        self.entries = torch.nn.ModuleList()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.mlp(x)
        if not len(self.entries):
            return out
        newest_first = list(reversed(self.entries))  # a tie in distance goes to the newest edit
        keys = torch.cat([e.key for e in newest_first])
        radii = torch.cat([e.radius.expand(len(e.key)) for e in newest_first])
        values = torch.cat([e.value for e in newest_first])
        flat = out.reshape(-1, out.shape[-1])
        distance, index = nearest(x.reshape(-1, x.shape[-1]), keys)
        fires = distance <= at_least_float32(radii)[index]
        return torch.where(fires[:, None], values[index], flat).view_as(out)


def tensor_names(model, tensors: list[torch.Tensor]) -> list[str]:
    """The qualified names of ``tensors`` among ``model``'s parameters and buffers."""
    names = {id(t): n for n, t in [*model.named_parameters(), *model.named_buffers()]}
    return [names[id(t)] for t in tensors]


class GRACE(Editor):
    """GRACE editor: one codebook entry per edit at the edit layer's FFN (see the module docstring)."""

    name = "GRACE"

    def __init__(
        self, config: EditConfig = EditConfig(lr=1.0, lambda_loc=0.0), settings: GRACESettings = GRACESettings()
    ):
        super().__init__(config)
        self.settings = settings

    def install(self, model, context):
        layer = self.config.layer
        anchor_x = ffn_inputs(model, context.anchor_embeds, context.anchor, layer)
        keys = answer_span(anchor_x, context.anchor, include_eos=True)[0]  # predicting each answer token and </s>
        mlp = edit_layer_mlp(model, layer)
        wrapped = not isinstance(mlp, Codebook)
        codebook = Codebook(mlp) if wrapped else mlp
        target = context.request.target.strip()
        near, distance = None, math.inf
        if len(codebook.entries):
            newest_first = list(reversed(codebook.entries))
            d, i = nearest(keys[:1], torch.stack([e.key[0] for e in newest_first]))
            near, distance = newest_first[int(i)], float(d)
        overlaps = near is not None and distance <= self.settings.radius + float(near.radius)
        if overlaps and near.target == target:
            return self._expand(model, near, distance)
        radius, changed = self.settings.radius, []
        if overlaps:  # another target: split
            radius = distance / 2
            changed.append((near, near.radius.clone()))
            near.radius.fill_(radius)
        with torch.no_grad():
            entry = CodebookEntry(keys, codebook.mlp(keys), radius, target)
        codebook.entries.append(entry)
        if wrapped:
            replace_edit_layer_mlp(model, layer, codebook)
        request = context.request.name

        def undo() -> None:
            if codebook.entries[-1] is not entry:
                raise EditError(
                    f"{request}: GRACE edits are rolled back in reverse order; a later edit is still in place"
                )
            del codebook.entries[-1]
            for e, r in changed:
                e.radius.copy_(r)
            if wrapped:
                replace_edit_layer_mlp(model, layer, codebook.mlp)

        tensors = [entry.radius, *(e.radius for e, _ in changed)]
        unedited = [torch.full_like(entry.radius, -1.0), *(r for _, r in changed)]
        return Installed([entry.value], undo, dict(zip(tensor_names(model, tensors), unedited)))

    def _expand(self, model, entry: CodebookEntry, distance: float) -> Installed:
        """GRACE's same-target rule: grow ``entry``'s radius to reach past ``distance`` (by ``COVER_MARGIN``) and
        train its values."""
        saved_value, saved_radius = entry.value.detach().clone(), entry.radius.clone()
        entry.radius.fill_(max(float(entry.radius), distance * (1 + COVER_MARGIN)))
        entry.value.requires_grad_(True)

        def undo() -> None:
            with torch.no_grad():
                entry.value.copy_(saved_value)
            entry.radius.copy_(saved_radius)

        originals = dict(zip(tensor_names(model, [entry.value, entry.radius]), [saved_value, saved_radius]))
        return Installed([entry.value], undo, originals)
