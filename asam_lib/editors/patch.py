"""Patch: intrinsic key-value memory added to the FFN of the edit layer (T-Patcher, UniKE's intrinsic
branch).

``n`` new neurons are appended to the FFN of language block l. As in T-Patcher, each neuron has a key
``k`` with a bias ``b`` and a value ``v``; the patched block computes

    FFN'(x) = FFN(x) + V · relu(K x + b),      K: (n, d),  b: (n,),  V: (d, n)

The bias is what makes a patch *selective*: a neuron fires only on hidden states on the edit input's side
of a hyperplane. Keys start on the line from the memory centre ``m`` (mean FFN input at the
answer-predicting position of the memory items) to the edit input's hidden state ``h`` at an
answer-predicting position (neuron i takes answer position i mod the answer's length, so every token of a
multi-token target has neurons that fire on it):

    K x + b = a_edit · ((x - m)·w / ((h - m)·w) - tau) / (1 - tau),     w = C^-1 (h - m)

(``C``: the memory states' covariance, shrunk towards the identity), so a neuron fires with activation
``a_edit`` on ``h``, is silent on ``m``, and starts firing a fraction ``tau`` of the way from ``m`` to
``h`` along the direction that best separates ``h`` from the memory. [Reconstruction: T-Patcher initialises
the key from ``h`` and learns selectivity with its margin losses; the closed-form start above gives that
selectivity from step 0, and ``tau`` is exposed as a parameter.] A little seeded noise on the keys breaks the
symmetry between neurons; values start at zero, so the patch is an exact no-op before training. Only the patch
is trained.

T-Patcher's two margin losses are available: an activation loss (the neurons fire on the edit input,
activation >= ``act_margin``) and a memory loss (they stay below ``mem_margin`` on the memory states).
Rollback puts the original FFN module back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from asam_lib.editors.editing import EditConfig, EditContext, Editor, Installed, parameter_names
from asam_lib.mllm.architectures import edit_layer_mlp, replace_edit_layer_mlp
from asam_lib.mllm.forward import forward_embeds
from asam_lib.mllm.hooks import module_input
from asam_lib.mllm.precision import at_least_float32, computed_in_float32
from asam_lib.mllm.prompting import Batch, answer_positions


class PatchedMLP(torch.nn.Module):
    """An FFN with ``n`` extra key-value neurons (see the module docstring)."""

    def __init__(self, mlp: torch.nn.Module, keys: torch.Tensor, biases: torch.Tensor, noise: float):
        super().__init__()
        self.mlp = mlp
        n, d = keys.shape
        jitter = noise * torch.randn(n, d).to(keys) * keys.norm(dim=-1, keepdim=True) / d**0.5
        self.key = torch.nn.Parameter(keys + jitter)
        self.bias = torch.nn.Parameter(biases.clone())
        self.value = torch.nn.Parameter(torch.zeros(d, n).to(keys))
        self.activation = torch.nn.ReLU()  # a module, so hooks can read the neurons' activations (RCSL's patch_keys)
        # FFN inputs the edit covers (its input, then its variants, at the answer-predicting positions), kept by
        # ASAM's sequential option to separate later patches from this one (asam_lib.editors.asam.ASAM.calibrate)
        self.edit_cover: torch.Tensor | None = None

    def neuron_activations(self, x: torch.Tensor) -> torch.Tensor:
        """Activations of the new neurons: (..., n)."""
        return self.activation(x @ self.key.T + self.bias)

    def chain(self) -> tuple[list[PatchedMLP], torch.nn.Module]:
        """The patches nested in this one, this one included, the first edit's first (sequential editing nests
        one patch per edit around the previous FFN), and the FFN they are all added to."""
        patches, ffn = [], self
        while isinstance(ffn, PatchedMLP):
            patches.append(ffn)
            ffn = ffn.mlp
        return patches[::-1], ffn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(self.mlp, PatchedMLP):
            return self.mlp(x) + self.neuron_activations(x) @ self.value.T
        # Sequential editing: run every patch's neurons as one layer, in one pair of matrix products, rather than
        # one pair per edit (at T = 100 edits the nested calls took a third of each step). The same function,
        # summed in another order; ``activation`` then sees every patch's neurons, the first edit's first.
        patches, ffn = self.chain()
        keys = torch.cat([p.key for p in patches])
        biases = torch.cat([p.bias for p in patches])
        values = torch.cat([p.value for p in patches], dim=1)
        return ffn(x) + self.activation(x @ keys.T + biases) @ values.T


def ffn_inputs(model, embeds: torch.Tensor, batch: Batch, layer: int) -> torch.Tensor:
    """The input of the FFN of ``layer`` for ``batch``'s joint embeddings ``embeds``: (B, L, d)."""
    return module_input(edit_layer_mlp(model, layer), lambda: forward_embeds(model, embeds, batch))


def answer_span(states: torch.Tensor, batch: Batch, include_eos: bool = False) -> torch.Tensor:
    """``states`` (B, L, d) at the positions that predict the answer tokens of ``batch``'s first item (and its
    ``</s>`` with ``include_eos``): (B, answer_len [+ 1], d). For rows that share the first item's layout: the
    edit input, and its variants."""
    start, length = int(batch.answer_start[0]), int(batch.answer_len[0])
    return states[:, start - 1 : start - 1 + length + int(include_eos)]


@computed_in_float32
def selective_key(
    edit_x: torch.Tensor, memory_x: torch.Tensor, activation: float, threshold: float, shrinkage: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Key ``k`` (d,) and bias ``b`` () of a neuron that fires ``activation`` on ``edit_x`` (d,), is silent on
    the memory centre ``m`` and starts firing a fraction ``threshold`` of the way from ``m`` to ``edit_x``
    along the discriminant direction ``w = C^-1 (edit_x - m)``, ``C`` the memory states' covariance
    shrunk towards a multiple of the identity (``shrinkage`` = 1: ``w = edit_x - m``)."""
    centre = memory_x.mean(0)
    direction = edit_x - centre
    if shrinkage < 1.0 and len(memory_x) > 1:
        cov = torch.cov(memory_x.T)
        cov = (1.0 - shrinkage) * cov + shrinkage * cov.diagonal().mean() * torch.eye(len(centre)).to(cov)
        direction = torch.linalg.solve(cov, direction)
    key = activation / ((1.0 - threshold) * (direction @ (edit_x - centre))) * direction
    bias = -(key @ centre) - activation * threshold / (1.0 - threshold)
    return key, bias


def memory_states(model, context: EditContext, layer: int) -> torch.Tensor:
    """FFN inputs at the answer-predicting positions of the request's memory items (else its locality
    support items, else every position of the edit input): (M, d)."""
    if context.request.memory:
        batch = context.encoder.batch(list(context.request.memory))
        return answer_positions(
            module_input(edit_layer_mlp(model, layer), lambda: model(**batch.model_inputs())), batch
        )
    if context.locality is not None:
        return answer_positions(ffn_inputs(model, context.locality_embeds, context.locality, layer), context.locality)
    anchor_x = ffn_inputs(model, context.anchor_embeds, context.anchor, layer)
    return anchor_x[0, context.anchor.attention_mask[0].bool()]


@dataclass
class PatchState:
    """What one Patch edit keeps between steps: the patched FFN, the FFN inputs at the edit input's
    answer-predicting positions ``edit_x`` (answer_len, d) and the memory states ``memory_x`` (M, d)."""

    patch: PatchedMLP
    edit_x: torch.Tensor
    memory_x: torch.Tensor


@dataclass(frozen=True)
class PatchSettings:
    """Patch-specific knobs."""

    n_neurons: int = 4
    activation: float = 1.0  # initial activation of each neuron on the edit input
    threshold: float = 0.5  # tau: where, from the memory centre (0) to the edit input (1), neurons start firing
    shrinkage: float = 0.1  # covariance shrinkage of the key direction (1 = plain edit_x - memory centre)
    key_lr_scale: float = 0.1  # learning rate of keys and biases, relative to the values' (EditConfig.lr)
    key_noise: float = 0.05  # seeded noise on the keys, relative to the key norm
    lambda_act: float = 0.0  # weight of the activation loss: new neurons must fire on the edit input ...
    act_margin: float = 1.0  # ... with activation >= act_margin
    lambda_mem: float = 30.0  # weight of the memory loss: they must stay silent on the memory states ...
    mem_margin: float = 0.0  # ... with activation <= mem_margin


class Patch(Editor):
    """Patch editor: train only new FFN neurons at the edit layer."""

    name = "Patch"

    def __init__(self, config: EditConfig = EditConfig(lr=5e-2), settings: PatchSettings = PatchSettings()):
        super().__init__(config)
        self.settings = settings

    def install(self, model, context):
        layer = self.config.layer
        anchor_x = ffn_inputs(model, context.anchor_embeds, context.anchor, layer)
        edit_x = answer_span(anchor_x, context.anchor)[0]  # every position that predicts an answer token
        memory = context.unedited.memory_states  # the unedited model's: computed once per request and layer
        if layer not in memory:
            memory[layer] = memory_states(model, context, layer)
        memory_x = memory[layer]
        s = self.settings
        starts = [
            selective_key(edit_x[i % len(edit_x)], memory_x, s.activation, s.threshold, s.shrinkage)
            for i in range(s.n_neurons)
        ]
        patched = PatchedMLP(
            edit_layer_mlp(model, layer),
            torch.stack([k for k, _ in starts]),
            torch.stack([b for _, b in starts]),
            s.key_noise,
        )
        original = replace_edit_layer_mlp(model, layer, patched)

        def undo() -> None:
            replace_edit_layer_mlp(model, layer, original)

        keys = {"params": [patched.key, patched.bias], "lr": self.config.lr * s.key_lr_scale}
        originals = {parameter_names(model, [patched.value])[0]: torch.zeros_like(patched.value)}
        return Installed(
            [keys, {"params": [patched.value]}], undo, originals, state=PatchState(patched, edit_x, memory_x)
        )

    def extra_losses(self, model, context: EditContext, step: int) -> dict[str, torch.Tensor]:
        s, state = self.settings, context.editor_state
        terms = {}
        if s.lambda_act > 0:
            terms["activation"] = (
                s.lambda_act
                * torch.relu(s.act_margin - at_least_float32(state.patch.neuron_activations(state.edit_x))).mean()
            )
        if s.lambda_mem > 0:
            terms["memory"] = (
                s.lambda_mem
                * torch.relu(at_least_float32(state.patch.neuron_activations(state.memory_x)) - s.mem_margin).mean()
            )
        return terms


def stacked_patches(model, layer: int) -> list[PatchedMLP]:
    """The patches installed at the FFN of ``layer``, in the order the edits made them (sequential editing
    nests one :class:`PatchedMLP` per edit around the previous FFN): the first edit's first."""
    mlp = edit_layer_mlp(model, layer)
    return mlp.chain()[0] if isinstance(mlp, PatchedMLP) else []


@torch.no_grad()
def patch_firing(model, encoder, items, layer: int, positions: str = "answer") -> torch.Tensor:
    """Where the patches fire: for each of ``items`` (``(question, answer, image)``) and each patch at
    ``layer`` (:func:`stacked_patches` order), the largest activation of that patch's neurons over the item's
    ``positions`` - "answer": the positions that predict its answer tokens (those locality and reliability are
    scored on), "all": every real token. A patch *fires* on an item where the value is > 0.
    (n_items, n_patches), float32 (n_patches = 0 on an unpatched model)."""
    patches = stacked_patches(model, layer)
    if positions not in ("answer", "all"):
        raise ValueError(f"positions = {positions!r}; choose 'answer' or 'all'")
    batch = encoder.batch(list(items))
    x = module_input(edit_layer_mlp(model, layer), lambda: model(**batch.model_inputs()))
    mask = batch.attention_mask.bool()
    if positions == "answer":
        index = torch.arange(x.shape[1])[None]
        start = (batch.answer_start - 1)[:, None]
        mask = (index >= start) & (index < start + batch.answer_len[:, None])
    out = torch.zeros(len(batch), len(patches))
    for j, patch in enumerate(patches):
        act = patch.neuron_activations(x).float().amax(-1)  # (B, L)
        out[:, j] = act.masked_fill(~mask, 0.0).amax(-1)
    return out


@torch.no_grad()
def calibrate_patch(
    patch: PatchedMLP, cover_x: torch.Tensor, memory_x: torch.Tensor, margin: float, max_scale: float = 10.0
) -> torch.Tensor:
    """Move each neuron's threshold away from the memory, keeping its output on the edit input (in place).

    ``cover_x`` (R, answer_len, d): FFN inputs the patch must keep firing on, at the edit input's
    answer-predicting positions (row 0: the edit input itself; ASAM adds its variants); ``memory_x`` (M, d):
    states it must stay silent on. Neuron ``i`` is read at answer position ``i mod answer_len`` (as
    :meth:`Patch.install` assigns them). With pre-activations ``z = k.x + b``, its new zero crossing is

        c = z_mem + margin * max(z_cover - z_mem, 0),   z_mem = max over memory_x,  z_cover = min over cover_x

    (``margin`` = 0: just silent on every memory state; 0.5: half-way between the memory and what it covers):
    the bias drops by ``max(c, 0)`` (a threshold is only ever raised, never lowered) and the neuron's value is
    scaled by ``z_edit / (z_edit - max(c, 0))`` (at most ``max_scale``) so that its output on the edit input
    is unchanged. A neuron silent on the edit input, or one the shift would silence there, is left alone.
    Returns the shifts (n,)."""
    length = cover_x.shape[1]
    z_memory = (memory_x.to(patch.key) @ patch.key.T + patch.bias).amax(0)
    shifts = torch.zeros_like(patch.bias)
    for i in range(len(patch.bias)):
        z_cover = cover_x[:, i % length].to(patch.key) @ patch.key[i] + patch.bias[i]
        z_edit = z_cover[0]
        crossing = z_memory[i] + margin * torch.clamp(z_cover.min() - z_memory[i], min=0)
        shift = torch.clamp(crossing, min=0)
        if z_edit <= 0 or z_edit - shift <= 1e-3 * z_edit:
            continue
        patch.bias[i] -= shift
        patch.value[:, i] *= torch.clamp(z_edit / (z_edit - shift), max=max_scale)
        shifts[i] = shift
    return shifts
