"""The editor interface: ``editor.edit(model, encoder, request) -> EditHandle`` with exact rollback.

Every intrinsic editor shares one loop (:meth:`Editor.edit`): install trainable parameters at the edit
layer (:meth:`Editor.install` returns an :class:`Installed`), then minimise

    L = CE(anchor -> y_new) + lambda_loc * KL(p_edit || p_pre) on locality *support* items

for ``steps`` Adam steps, then fold the change into the model. What differs between editors is only what
they install (:meth:`Editor.install`) and, for ASAM, extra loss terms (:meth:`Editor.extra_losses`).

Rollback is exact: an editor snapshots every tensor it will change (or keeps the module it replaces) and
:meth:`EditHandle.restore` puts them back bit for bit. A non-finite loss restores the model before the
error is raised, so a failed edit never leaves NaN weights behind.

Every edit also knows the *unedited* values of what it changed (``originals``: parameter name -> tensor),
so :func:`unedited_forward` runs the unedited model without touching the weights (LAR's coherence term
needs both models at once).

State that lives for one edit is typed: :class:`EditContext` holds the request's inputs, the originals,
the editor's own state (:attr:`Installed.state`, e.g. Patch's neurons) and ASAM's current variants;
:class:`UneditedPasses` holds the unedited model's forward passes that editors of one request share.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

import torch
import torch.nn.functional as F

from asam_lib.common.seeding import torch_generator
from asam_lib.mllm.architectures import architecture, edit_layer_mlp, language_layers
from asam_lib.mllm.forward import FixedInputs, forward_embeds, joint_embeddings
from asam_lib.mllm.hooks import counted_calls
from asam_lib.mllm.memory import LoopMemory, checkpointed_blocks
from asam_lib.mllm.precision import adam, at_least_float32
from asam_lib.mllm.prompting import Batch, Item, PromptEncoder, answer_logits

if TYPE_CHECKING:
    from asam_lib.editors.lar import Variants


COMPANION = {"companion": True}  # field metadata: an option beyond the paper (see harness.editor_config)
MEMORY = {"memory": True}  # field metadata: how much memory a step keeps, not what it computes (never in the hash)


class EditError(RuntimeError):
    """An edit that cannot be carried out (the base model is left untouched)."""


@dataclass
class EditRequest:
    """What an editor is given: the edit input, its new target, locality support items and memory items
    (inputs an intrinsic patch must stay silent on, T-Patcher's memory). Both must come from the support
    pool, never from the items locality is evaluated on."""

    question: str
    target: str
    image: object
    locality_support: Sequence[Item] = ()
    name: str = "request"
    memory: Sequence[Item] = ()

    @property
    def anchor_item(self) -> Item:
        return (self.question, self.target, self.image)


@dataclass(frozen=True)
class EditConfig:
    """Hyper-parameters shared by the intrinsic editors. Defaults reproduce the committed figures.

    The last three fields set how much memory a step keeps for its backward pass, not what it computes
    (:mod:`asam_lib.mllm.memory`); None: on where the model is large (:func:`asam_lib.mllm.memory.is_large`), off on the
    embedded model. They are left out of the config's repr and of an editor's hash
    (:func:`asam_lib.evaluation.harness.editor_config`), so every editor's hash is what it was before they existed."""

    layer: int = 2  # index of the language-model block whose FFN is edited
    steps: int = 30  # Adam steps
    lr: float = 1e-2
    lambda_loc: float = 1.0  # weight of the KL locality term on support items
    stop_loss: float = 0.3  # stop once the anchor CE is below this: the edit has succeeded (0 = run all steps)
    checkpoint_blocks: bool | None = field(default=None, repr=False, metadata=MEMORY)  # blocks recomputed in backward
    loss_logits: bool | None = field(default=None, repr=False, metadata=MEMORY)  # logits only where losses read them
    micro_batch: int | None = field(default=None, repr=False, metadata=MEMORY)  # rows per group (0: all at once)

    def __post_init__(self):
        if self.micro_batch is not None and self.micro_batch < 0:
            raise ValueError(f"EditConfig.micro_batch = {self.micro_batch}; give 0 (all at once) or a group size >= 1")


@dataclass
class EditHandle:
    """The result of one edit: call :meth:`restore` to undo it exactly, or use it as the one edited-model
    context, ``with editor.edit(model, encoder, request) as handle: ...``, which restores on leaving the block
    whatever happens in it. ``originals``: the unedited values of the parameters the edit changed (see
    :func:`unedited_forward`)."""

    editor: str
    request: str
    steps: int
    seconds: float
    losses: list[dict[str, float]] = field(repr=False)
    _undo: Callable[[], None] = field(repr=False)
    originals: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)
    restored: bool = False
    forward_passes: int | None = None  # through the edit layer in the training loop (None: not counted)

    def restore(self) -> None:
        """Return the model to the weights it had before this edit (bit-exact)."""
        if not self.restored:
            self._undo()
            self.restored = True

    def __enter__(self) -> EditHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.restore()


@dataclass
class EditInputs:
    """The unedited model's view of a request: ``anchor``/``locality``: batches; ``*_embeds``: their joint
    input embeddings ``(B, L, d)`` (fixed, since only the edit layer changes); ``pre_locality``: the
    unedited model's log-probabilities on the locality answer spans."""

    anchor: Batch
    anchor_embeds: torch.Tensor
    locality: Batch | None
    locality_embeds: torch.Tensor | None
    pre_locality: list[torch.Tensor] | None


@dataclass
class UneditedPasses:
    """Forward passes of the *unedited* model that editors of the same request reuse (single edits with
    rollback, see :meth:`Editor.edit`): the request's inputs and, per edit layer, Patch's memory states and the
    edit input and locality support items below that layer (:meth:`EditContext.fixed_anchor`,
    :meth:`EditContext.fixed_locality`)."""

    inputs: EditInputs | None = None
    memory_states: dict[int, torch.Tensor] = field(default_factory=dict)
    anchor: dict[int, FixedInputs] = field(default_factory=dict)
    locality: dict[int, FixedInputs] = field(default_factory=dict)


@dataclass
class EditContext:
    """Everything one edit reuses from step to step. The request's batches and embeddings (``inputs``, see
    :class:`EditInputs`; read through this context's properties of the same names), the edit's random stream,
    and what the loop fills in: ``originals`` (the unedited values of the trained parameters),
    ``editor_state`` (the editor's own per-edit state, see :attr:`Installed.state`) and ``variants`` (ASAM's
    current LAR variants of the edit input, and ``variant_inputs`` the edit input and those variants below the edit
    layer, see :func:`asam_lib.editors.asam.variant_inputs`); ``memory``: the loop's memory options, resolved for the
    model (:class:`asam_lib.mllm.memory.LoopMemory`)."""

    request: EditRequest
    inputs: EditInputs
    generator: torch.Generator
    encoder: PromptEncoder
    unedited: UneditedPasses = field(default_factory=UneditedPasses)
    originals: dict[str, torch.Tensor] = field(default_factory=dict)
    editor_state: object = None
    variants: Variants | None = None
    variant_inputs: FixedInputs | None = None
    memory: LoopMemory = field(default_factory=LoopMemory)

    @property
    def anchor(self) -> Batch:
        return self.inputs.anchor

    @property
    def anchor_embeds(self) -> torch.Tensor:
        return self.inputs.anchor_embeds

    @property
    def locality(self) -> Batch | None:
        return self.inputs.locality

    @property
    def locality_embeds(self) -> torch.Tensor | None:
        return self.inputs.locality_embeds

    @property
    def pre_locality(self) -> list[torch.Tensor] | None:
        return self.inputs.pre_locality

    def fixed_anchor(self, model, layer: int) -> FixedInputs:
        """The edit input with its hidden states entering block ``layer`` (see :meth:`fixed_locality`)."""
        return _kept_below(self.unedited.anchor, model, self.anchor_embeds, self.anchor, layer)

    def fixed_locality(self, model, layer: int) -> FixedInputs:
        """The locality support batch with its hidden states entering block ``layer``
        (:class:`asam_lib.mllm.forward.FixedInputs`): computed on first use and kept with the unedited passes, since an
        edit at ``layer`` never changes the blocks below it. Each step then runs the edit layer and above only."""
        return _kept_below(self.unedited.locality, model, self.locality_embeds, self.locality, layer)


def _kept_below(kept: dict[int, FixedInputs], model, embeds: torch.Tensor, batch: Batch, layer: int) -> FixedInputs:
    """``kept[layer]``, computed on first use from ``batch``'s joint embeddings ``embeds``."""
    if layer not in kept:
        kept[layer] = FixedInputs.from_embeds(model, embeds, batch, layer)
    return kept[layer]


@dataclass
class Installed:
    """What :meth:`Editor.install` returns. ``params``: tensors to train (or optimiser parameter groups);
    ``undo``: restores the model exactly; ``originals``: parameter name -> its unedited value while
    training; ``finalize``: folds the trained change into the model after training and returns the
    originals from then on (None: unchanged); ``state``: the editor's own per-edit state, a dataclass of its
    own (Patch: :class:`asam_lib.editors.patch.PatchState`), handed back as :attr:`EditContext.editor_state`."""

    params: list
    undo: Callable[[], None]
    originals: dict[str, torch.Tensor]
    finalize: Callable[[], dict[str, torch.Tensor] | None] = lambda: None
    state: object = None


def answer_log_probs_per_item(logits: torch.Tensor, batch: Batch) -> list[torch.Tensor]:
    """Per item, log-probabilities over the vocabulary at its answer-predicting positions (items' answers
    differ in length, hence a list of ``(answer_len_i, V)``)."""
    return [F.log_softmax(at_least_float32(lg), -1) for lg in answer_logits(logits, batch)]


def mean_answer_ce(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Cross-entropy of the answer tokens and ``</s>`` (the batch's labels), averaged over every such token of
    the batch: a scalar (per row: :func:`asam_lib.editors.lar.answer_ce_per_row`)."""
    return F.cross_entropy(
        at_least_float32(logits[:, :-1].flatten(0, 1)), batch.labels[:, 1:].flatten(), ignore_index=-100
    )


def locality_kl(post: list[torch.Tensor], pre: list[torch.Tensor]) -> torch.Tensor:
    """Mean KL(p_edit || p_pre) over the answer-span positions of the locality items."""
    terms = [F.kl_div(p_pre, p_post, log_target=True, reduction="batchmean") for p_post, p_pre in zip(post, pre)]
    return torch.stack(terms).mean()


def snapshot(model, tensors: Sequence[torch.Tensor]) -> tuple[Callable[[], None], dict[str, torch.Tensor]]:
    """An undo function that copies ``tensors`` (parameters of ``model``) back to their current values,
    and those values by parameter name."""
    saved = [t.detach().clone() for t in tensors]

    def undo() -> None:
        with torch.no_grad():
            for t, s in zip(tensors, saved):
                t.copy_(s)

    return undo, dict(zip(parameter_names(model, tensors), saved))


def parameter_names(model, tensors: Sequence[torch.Tensor]) -> list[str]:
    """The qualified names of ``tensors`` among ``model``'s parameters."""
    names = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
    missing = [i for i, t in enumerate(tensors) if id(t) not in names]
    if missing:
        raise ValueError(f"tensors {missing} are not parameters of the model")
    return [names[id(t)] for t in tensors]


def unedited_forward(model, originals: dict[str, torch.Tensor]) -> Callable[[torch.Tensor, Batch], torch.Tensor]:
    """A forward ``(embeds, batch) -> logits`` of the *unedited* model: ``model`` with the parameters in
    ``originals`` replaced by their unedited values (``torch.func.functional_call``; weights untouched). A third
    argument ``keep`` makes logits at those positions only (:func:`asam_lib.mllm.forward.forward_embeds`)."""

    def forward(embeds: torch.Tensor, batch: Batch, keep: torch.Tensor | None = None) -> torch.Tensor:
        inputs = {
            "inputs_embeds": embeds,
            "attention_mask": batch.attention_mask,
            "use_cache": False,
            **architecture(model).embeds_inputs(model, batch),
            **({} if keep is None else {"logits_to_keep": keep}),
        }
        return torch.func.functional_call(model, originals, args=(), kwargs=inputs).logits

    return forward


def edited_forward(model) -> Callable[[torch.Tensor, Batch], torch.Tensor]:
    """A forward ``(embeds, batch) -> logits`` of the model as it is (a third argument ``keep``: logits at those
    positions only)."""
    return lambda embeds, batch, keep=None: forward_embeds(model, embeds, batch, keep)


class Editor:
    """Base class of the intrinsic editors (see the module docstring)."""

    name = "editor"

    def __init__(self, config: EditConfig = EditConfig()):
        self.config = config

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"

    def with_config(self, config: EditConfig) -> Editor:
        """A copy of this editor with ``config`` (this one is left as it is)."""
        changed = copy.copy(self)
        changed.config = config
        return changed

    # --- what subclasses define --------------------------------------------------------------
    def install(self, model, context: EditContext) -> Installed:
        """Make the edit trainable (see :class:`Installed`)."""
        raise NotImplementedError

    def edit_losses(self, model, context: EditContext, step: int) -> dict[str, torch.Tensor]:
        """The terms on the edit input: its cross-entropy of the new target, ``"edit"`` (ASAM adds its
        variants' terms, computed in the same batched forward)."""
        fixed = context.fixed_anchor(model, self.config.layer)  # = a full forward, from the layer up
        return {"edit": mean_answer_ce(*fixed.loss_logits(model, context.memory.loss_logits))}

    def extra_losses(self, model, context: EditContext, step: int) -> dict[str, torch.Tensor]:
        """The editor's own terms (Patch: T-Patcher's activation and memory losses)."""
        return {}

    def done(self, terms: dict[str, torch.Tensor]) -> bool:
        """Stop early once the edit has succeeded: the anchor's CE is below ``stop_loss``."""
        return terms["edit"].item() < self.config.stop_loss

    # --- the shared loop ---------------------------------------------------------------------
    def context(
        self, model, encoder: PromptEncoder, request: EditRequest, seed: int, unedited: UneditedPasses | None = None
    ) -> EditContext:
        unedited = UneditedPasses() if unedited is None else unedited
        if unedited.inputs is None:
            unedited.inputs = self._inputs(model, encoder, request)
        generator = torch_generator(seed, "edit", request.name)
        c = self.config
        memory = LoopMemory.resolve(model, c.checkpoint_blocks, c.loss_logits, c.micro_batch)
        return EditContext(request, unedited.inputs, generator, encoder, unedited, memory=memory)

    @staticmethod
    def _inputs(model, encoder: PromptEncoder, request: EditRequest) -> EditInputs:
        anchor = encoder.batch([request.anchor_item])
        locality = encoder.batch(list(request.locality_support)) if request.locality_support else None
        anchor_embeds = joint_embeddings(model, anchor)
        locality_embeds = pre = None
        if locality is not None:
            locality_embeds = joint_embeddings(model, locality)
            with torch.no_grad():
                pre = answer_log_probs_per_item(forward_embeds(model, locality_embeds, locality), locality)
        return EditInputs(anchor, anchor_embeds, locality, locality_embeds, pre)

    def locality_losses(self, model, context: EditContext) -> dict[str, torch.Tensor]:
        """The KL locality term on the support items (none without support items or with lambda_loc = 0).

        With micro-batches (``context.memory.micro_batch`` smaller than the support batch), each group's share of
        the term is backpropagated here, its gradients accumulated on the trained parameters before the group
        after it runs, and the term comes back without a graph (its gradients are already there)."""
        if context.locality is None or self.config.lambda_loc <= 0:
            return {}
        fixed = context.fixed_locality(model, self.config.layer)  # the same logits as a full forward, half the cost
        n, size, window = len(fixed.batch), context.memory.micro_batch, context.memory.loss_logits
        if not 0 < size < n:
            post = answer_log_probs_per_item(*fixed.loss_logits(model, window))
            return {"locality": self.config.lambda_loc * locality_kl(post, context.pre_locality)}
        shares = []
        for lo in range(0, n, size):
            hi = min(lo + size, n)
            post = answer_log_probs_per_item(*fixed.rows(model, lo, hi).loss_logits(model, window))
            share = self.config.lambda_loc * locality_kl(post, context.pre_locality[lo:hi]) * ((hi - lo) / n)
            share.backward()
            shares.append(share.detach())
        return {"locality": torch.stack(shares).sum()}

    def losses(self, model, context: EditContext, step: int) -> dict[str, torch.Tensor]:
        """Every term of the loss, in the order they are summed: the edit input's, locality, the editor's own."""
        terms = self.edit_losses(model, context, step)
        terms.update(self.locality_losses(model, context))
        terms.update(self.extra_losses(model, context, step))
        return terms

    def edit(
        self,
        model,
        encoder: PromptEncoder,
        request: EditRequest,
        seed: int = 0,
        unedited: UneditedPasses | None = None,
        trace_gradients: bool = False,
    ) -> EditHandle:
        """Edit ``model`` in place so that ``request.question`` on its image answers ``request.target``.

        ``unedited``: kept per request across editors that each start from the *same unedited model* (single
        edits with rollback); the forward passes of the unedited model one editor needs (the joint embeddings
        of the inputs, the locality reference, Patch's memory states) are stored there and reused by the
        next. Leave it None when the model changes between edits (sequential editing).

        ``trace_gradients``: also record, per step, the norm of each term's own gradient on the trained
        parameters (``"grad <term>"`` in :attr:`EditHandle.losses`), from one extra backward pass per term;
        the edit itself is the same (not with micro-batches, whose terms are backpropagated as they are made).

        The step's memory options (:class:`EditConfig`'s last three fields, :mod:`asam_lib.mllm.memory`) hold for the
        whole loop: blocks other than the edit layer recompute themselves in the backward pass, logits are made
        only where a loss reads them, and the support items run in groups."""
        start = time.perf_counter()
        n_layers = len(language_layers(model))
        if not 0 <= self.config.layer < n_layers:
            raise EditError(
                f"{request.name}: edit layer {self.config.layer} is out of range (the model has {n_layers} language "
                f"layers: 0-{n_layers - 1})"
            )
        try:
            context = self.context(model, encoder, request, seed, unedited)
        except ValueError as err:
            raise EditError(f"{request.name}: {err}") from None
        if trace_gradients and context.memory.micro_batch:
            raise EditError(
                f"{request.name}: trace_gradients needs the support items in one batch (set EditConfig.micro_batch=0)"
            )
        frozen = [(p, p.requires_grad) for p in model.parameters()]
        for p, _ in frozen:
            p.requires_grad_(False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=context.generator)))
            installed = self.install(model, context)
        context.originals, context.editor_state = installed.originals, installed.state
        optimiser = adam(installed.params, lr=self.config.lr)
        history: list[dict[str, float]] = []
        try:
            edit_block = language_layers(model)[self.config.layer]
            with checkpointed_blocks(model, self.config.layer, context.memory.checkpoint_blocks):
                with counted_calls(edit_block) as passes:  # the loop's cost, exact: LAR's search included
                    self._train(model, context, installed, optimiser, history, trace_gradients)
            originals = installed.finalize() or installed.originals
        except BaseException:
            installed.undo()
            raise
        finally:
            for p, flag in frozen:
                p.requires_grad_(flag)
        seconds = time.perf_counter() - start
        return EditHandle(
            self.name, request.name, len(history), seconds, history, installed.undo, originals, False, passes.calls
        )

    def _train(
        self,
        model,
        context: EditContext,
        installed: Installed,
        optimiser: torch.optim.Optimizer,
        history: list[dict[str, float]],
        trace_gradients: bool,
    ) -> None:
        """The steps of :meth:`edit`, each step's terms appended to ``history``, until ``config.steps`` or
        :meth:`done`. Gradients are zeroed before a step's terms are made (micro-batches accumulate theirs then)."""
        for step in range(self.config.steps):
            optimiser.zero_grad()
            terms = self.losses(model, context, step)
            bad = [k for k, v in terms.items() if not torch.isfinite(v)]
            if bad:
                raise EditError(
                    f"{context.request.name}: non-finite {', '.join(bad)} loss at step {step} "
                    f"({type(self).__name__}); the model was restored"
                )
            step_record = {k: v.item() for k, v in terms.items()}
            if trace_gradients:
                step_record.update(gradient_norms(terms, installed.params))
            loss = sum(terms.values())
            if loss.requires_grad:  # without: every term's gradients were accumulated as it was made (micro-batches)
                loss.backward()
            optimiser.step()
            history.append(step_record)
            if self.done(terms):
                break


def with_changes(editors: dict[str, Editor], changes: dict[str, object]) -> dict[str, Editor]:
    """``editors`` (name -> editor), each with ``changes`` (:class:`EditConfig` field -> value) made to its config,
    e.g. ``{"checkpoint_blocks": True}`` (no changes: the same editors)."""
    if not changes:
        return editors
    return {name: e.with_config(dataclasses.replace(e.config, **changes)) for name, e in editors.items()}


def trained_tensors(params: list) -> list[torch.Tensor]:
    """The tensors of an :class:`Installed`'s ``params`` (plain tensors or optimiser parameter groups)."""
    return [t for p in params for t in (p["params"] if isinstance(p, dict) else [p])]


def gradient_norms(terms: dict[str, torch.Tensor], params: list) -> dict[str, float]:
    """``"grad <term>"`` -> the L2 norm of each loss term's gradient on the trained tensors ``params`` (the
    graph is kept for the step's own backward pass)."""
    tensors = trained_tensors(params)
    norms = {}
    for name, term in terms.items():
        if not term.requires_grad:
            norms[f"grad {name}"] = 0.0
            continue
        grads = torch.autograd.grad(term, tensors, retain_graph=True, allow_unused=True)
        squares = [at_least_float32(g).pow(2).sum() for g in grads if g is not None]
        norms[f"grad {name}"] = float(torch.stack(squares).sum().sqrt()) if squares else 0.0
    return norms


class FTL(Editor):
    """FT-L: fine-tune the FFN output projection(s) of the edit layer directly."""

    name = "FT-L"

    def __init__(self, config: EditConfig = EditConfig(), modules: tuple[str, ...] = ("down_proj",)):
        super().__init__(config)
        self.modules = modules

    def install(self, model, context):
        mlp = edit_layer_mlp(model, self.config.layer)
        params = [getattr(mlp, name).weight for name in self.modules]
        undo, originals = snapshot(model, params)
        for p in params:
            p.requires_grad_(True)
        return Installed(params, undo, originals)
