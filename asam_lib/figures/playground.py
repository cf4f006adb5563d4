"""The playground of notebook 05: choose a fact of the world, a new answer, an editor and its knobs; edit;
see what moved.

One function does the work, :func:`run_edit`; the widgets (:class:`Playground`) only read their values into
a :class:`Choice` and call it. For one choice it

1. builds the edit request and the knowledge unit of (entity, relation) with the new answer
   (:func:`edit_case`: the world's MMEdit record, :func:`asam_lib.data.units.unit_from_world`, locality support,
   memory and evaluation items from the harness's disjoint pools);
2. scores every unit member on the unedited model (right = the true answer) and records the locality
   reference;
3. edits with the chosen editor (:func:`make_editor`: FT-L, LoRA, Patch, or ASAM with ``eps``, ``K`` and
   ``lambda_rank``), scores every member again (right = the new answer) and computes the metrics
   (:func:`asam_lib.evaluation.metrics.evaluate_edit`);
4. builds H, the edit layer's output at the answer-predicting position, for two sets of rows: the anchor
   and K LAR variants found against the edited model (radius ``eps``), and the unit's members; its
   spectrum s_i^2 / sum_j s_j^2 (:func:`asam_lib.editors.rcsl.spectrum`) is taken on the edited model and, for the
   same rows, on the unedited one;
5. restores the model and checks that every tensor of its state is bit-identical to before.

``eps`` and ``K`` shape the LAR variants of the spectrum for every method; ASAM also trains on them, and
``lambda_rank`` weighs its RCSL term (0 = the "no RCSL" ablation). Each knob is a dotted setting of ASAM's
(:data:`KNOBS`), set through :func:`asam_lib.editors.methods.build` and checked by ASAM's own configs; :func:`knobs`
reads them from overrides such as ``{"lar.eps": 0.1}`` (notebook 05's ``settings``). Plots read the returned
:class:`PlaygroundResult` only, so re-plotting never re-runs an edit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from matplotlib.ticker import MaxNLocator

from asam_lib.common.seeding import torch_generator
from asam_lib.data.benchmark import exported_benchmark
from asam_lib.data.pretrain import base_model_folder
from asam_lib.data.records import EditRecord, load_records
from asam_lib.data.units import KnowledgeUnit, member_items
from asam_lib.data.world import RELATIONS, World
from asam_lib.editors import methods, rcsl
from asam_lib.editors.asam import ASAM, ASAMSettings, edit_layer_representations
from asam_lib.editors.editing import EditError, Editor, edited_forward, joint_embeddings, unedited_forward
from asam_lib.editors.lar import LARConfig, adversarial_variants
from asam_lib.editors.overrides import HParamsError, setting
from asam_lib.evaluation.harness import EditCase, HarnessConfig, world_case
from asam_lib.evaluation.metrics import evaluate_edit, evaluated_members, locality_reference
from asam_lib.figures import plots
from asam_lib.mllm.architectures import language_layers
from asam_lib.mllm.hooks import module_output
from asam_lib.mllm.model import load_model
from asam_lib.mllm.prompting import PromptEncoder, answer_positions, score_items

METRICS = methods.METRICS
ROWS = ("LAR variants", "unit members")  # the two sets of rows of H
FIGURES = ("members", "metrics", "spectrum")  # the figures of an edit, in the order the widget shows them
SLIDERS = ("eps", "K", "lambda_rank")  # the widget's sliders, by their labels
# Choice's knobs (one per slider) -> the dotted setting of ASAM each sets (asam_lib.editors.methods.build)
KNOBS = {"eps": "lar.eps", "k": "lar.k", "lambda_rank": "settings.lambda_rank"}
STATES = ("before", "after")


class PlaygroundError(ValueError):
    """A choice the playground cannot edit; the message names the input and the values to choose from."""


@dataclass(frozen=True)
class Choice:
    """What the widgets choose: the fact (image entity index, relation), its new answer, the editor and its
    knobs (``eps``: LAR radius, ``k``: number of variants K, ``lambda_rank``: weight of ASAM's RCSL term)."""

    entity: int = 0
    relation: str = "home"
    new_answer: str = ""  # "" = the first candidate answer that differs from the true one
    method: str = "ASAM"
    eps: float = LARConfig.eps
    k: int = LARConfig.k
    lambda_rank: float = ASAMSettings.lambda_rank
    seed: int = 0


@dataclass
class Session:
    """What every edit of the playground shares: the world, the base model, its encoder, the world's VQA
    records (one per entity and relation) and the sizes of units and locality sets."""

    world: World
    model: object
    encoder: PromptEncoder
    records: list[EditRecord]
    config: HarnessConfig = HarnessConfig()


def load_session(world: World | None = None, config: HarnessConfig = HarnessConfig()) -> Session:
    """The default world and the shipped base model (``checkpoints/base``, or the cached retrained one)."""
    world = world or World()
    model, processor = load_model(base_model_folder())
    return Session(world, model, PromptEncoder(processor), load_records(exported_benchmark(world, "vqa")), config)


# --- what the widgets offer ---------------------------------------------------------------------------


def entity_choices(world: World) -> list[tuple[str, int]]:
    """``(label, index)`` of every image entity, e.g. ``("3: dotted blue circle", 3)``."""
    return [(f"{e.index}: {e.caption}", e.index) for e in world.entities]


def relation_choices() -> list[str]:
    """The world's relations: home, food, maker, friend."""
    return list(RELATIONS)


def answer_choices(world: World, entity: int, relation: str) -> list[str]:
    """Candidate new answers of ``relation`` for ``entity``: every answer of the relation but the true one."""
    check_fact(world, entity, relation)
    return [a for a in world.candidate_answers(relation) if a != world.entities[entity].facts[relation]]


def check_fact(world: World, entity: int, relation: str) -> None:
    """Raise :class:`PlaygroundError` unless ``entity`` is an image entity and ``relation`` a relation."""
    if not isinstance(entity, int) or not 0 <= entity < len(world.entities):
        raise PlaygroundError(
            f"entity {entity!r} is not an image entity of this world (choose 0-{len(world.entities) - 1})"
        )
    if relation not in RELATIONS:
        raise PlaygroundError(f"relation {relation!r} is unknown; choose one of {', '.join(RELATIONS)}")


def resolve(world: World, choice: Choice) -> Choice:
    """``choice`` checked, with its default new answer filled in; :class:`PlaygroundError` names what is wrong."""
    candidates = answer_choices(world, choice.entity, choice.relation)
    new = choice.new_answer or candidates[0]
    old = world.entities[choice.entity].facts[choice.relation]
    if new == old:
        raise PlaygroundError(
            f"new answer {new!r} is what entity {choice.entity} already has for {choice.relation}: "
            f"choose one of {', '.join(candidates)}"
        )
    if new not in candidates:
        raise PlaygroundError(
            f"new answer {new!r} is not an answer of relation {choice.relation!r}; choose one of "
            f"{', '.join(candidates)}"
        )
    if choice.method not in methods.METHODS:
        raise PlaygroundError(f"method {choice.method!r} is unknown; choose one of {', '.join(methods.names())}")
    asam_with(knob_overrides(choice))  # the knobs, checked by ASAM's own configs (the spectrum's variants use them)
    return replace(choice, new_answer=new)


def knob_overrides(choice: Choice) -> dict[str, object]:
    """The dotted overrides of ASAM's settings that the choice's knobs set (:data:`KNOBS`)."""
    return {path: getattr(choice, name) for name, path in KNOBS.items()}


def knobs(overrides: Mapping[str, object]) -> dict[str, object]:
    """The knobs of :class:`Choice` (``eps``, ``k``, ``lambda_rank``) from dotted overrides of ASAM's settings,
    e.g. ``{"lar.eps": 0.1}`` -> ``{"eps": 0.1, "k": 4, "lambda_rank": 1.0}``: the others at ASAM's defaults."""
    other = sorted(set(overrides) - set(KNOBS.values()))
    if other:
        raise PlaygroundError(f"setting {other[0]} is not a knob of the playground; give {', '.join(KNOBS.values())}")
    asam = asam_with(overrides)
    return {name: setting(asam, path) for name, path in KNOBS.items()}


def asam_with(overrides: Mapping[str, object]) -> ASAM:
    """ASAM with dotted ``overrides`` (:func:`asam_lib.editors.methods.build`); a refused one is a
    :class:`PlaygroundError`."""
    try:
        return methods.build("ASAM", overrides)
    except HParamsError as err:
        raise PlaygroundError(str(err)) from None


# --- the request, the unit and the editor ---------------------------------------------------------------


def edit_case(session: Session, entity: int, relation: str, new_answer: str, seed: int = 0) -> EditCase:
    """The edit of (``entity``, ``relation``) to ``new_answer``: the world's record for the fact with its
    target replaced, its knowledge unit, the request (locality support and memory items from the support
    pools) and the locality evaluation items (from the evaluation pools): the case
    :func:`asam_lib.evaluation.harness.build_cases` builds for that record."""
    world, config = session.world, session.config
    check_fact(world, entity, relation)
    found = [r for r in session.records if r.extra.get("entity") == entity and r.extra.get("relation") == relation]
    if not found:
        raise PlaygroundError(f"no edit request for entity {entity} / {relation} in the session's records")
    return world_case(session.model, session.encoder, world, config, replace(found[0], alt=new_answer), seed)


def lar_config(eps: float, k: int) -> LARConfig:
    """ASAM's LAR settings with radius ``eps`` and ``k`` variants."""
    return asam_with({KNOBS["eps"]: eps, KNOBS["k"]: k}).lar


def active_sliders(method: str) -> tuple[str, ...]:
    """The sliders of :data:`SLIDERS` that ``method`` reads (the widget greys out the others): ``eps`` and ``K``
    (the LAR variants of the spectrum, for every method), and ``lambda_rank`` (ASAM's RCSL weight) for ASAM."""
    return SLIDERS if method == "ASAM" else ("eps", "K")


def make_editor(
    method: str, eps: float = LARConfig.eps, k: int = LARConfig.k, lambda_rank: float = ASAMSettings.lambda_rank
) -> Editor:
    """The editor ``method`` with its default settings; ASAM (on Patch) takes ``eps``, ``k`` and ``lambda_rank``
    (:data:`KNOBS`)."""
    if method not in methods.METHODS:
        raise PlaygroundError(f"method {method!r} is unknown; choose one of {', '.join(methods.names())}")
    if method == "ASAM":
        return asam_with(knob_overrides(Choice(eps=eps, k=k, lambda_rank=lambda_rank)))
    return methods.build(method)


# --- measuring -------------------------------------------------------------------------------------------


def member_predictions(model, encoder: PromptEncoder, unit: KnowledgeUnit, answer: str) -> pd.DataFrame:
    """One row per unit member: kind, question, the model's (teacher-forced argmax) answer and whether it is
    ``answer``."""
    scores = score_items(model, encoder, member_items(unit.members, answer))
    return pd.DataFrame(
        [
            {"kind": m.kind, "question": m.question, "prediction": s["prediction"], "right": bool(s["exact"])}
            for m, s in zip(unit.members, scores)
        ]
    )


@torch.no_grad()
def edit_layer_rows(
    model, encoder: PromptEncoder, case: EditCase, delta: torch.Tensor, layer: int
) -> dict[str, torch.Tensor]:
    """H for each set of rows in :data:`ROWS`: the anchor and its variants (perturbations ``delta`` (K, L, d)),
    (K+1, d); the unit's members, (N, d). Both are the output of language block ``layer`` at the
    answer-predicting position."""
    batch = encoder.batch([case.request.anchor_item])
    _, variants = edit_layer_representations(model, layer, joint_embeddings(model, batch), batch, delta)
    members = encoder.batch(member_items(case.unit.members, case.unit.new_answer))
    with module_output(language_layers(model)[layer]) as captured:
        model(**members.model_inputs())
    return {
        "LAR variants": variants,
        "unit members": answer_positions(captured["y"], members),
    }


def spectrum_rows(H: dict[str, torch.Tensor], state: str) -> list[dict]:
    """Tidy rows ``(rows, state, i, share)`` of the spectra of ``H`` (i from 1)."""
    return [
        {"rows": name, "state": state, "i": i, "share": float(s)}
        for name, rows in H.items()
        for i, s in enumerate(rcsl.spectrum(rows.double()).tolist(), start=1)
    ]


HARD_METRICS = (*methods.GENERALITY_METRICS, "Unit")  # what the hard tier measures (its anchor is the standard one)


def _metric_table(
    before: list[dict], after: list[dict], metrics=METRICS, protocols=("exact", "answer_span")
) -> pd.DataFrame:
    """The rows of ``protocols`` (exact match for Rel, Gen, Unit and answer-span agreement for Loc; the hard tier:
    exact match on its known members), before and after: (metric, before, after)."""
    pick = lambda rows: {r["metric"]: r["value"] for r in rows if r["protocol"] in protocols}  # noqa: E731
    b, a = pick(before), pick(after)
    return pd.DataFrame({"metric": list(metrics), "before": [b[m] for m in metrics], "after": [a[m] for m in metrics]})


@dataclass
class PlaygroundResult:
    """One playground edit. ``members``: per unit member, kind, question, prediction and rightness before
    (right = the true answer) and after (right = the new answer); ``metrics``: ``(metric, before, after)``;
    ``spectra``: tidy ``(rows, state, i, share)``; ``tail_energy``: L_rank (r = 1) per rows and state;
    ``restored``: every tensor of the model's state is bit-identical to before the edit; ``hard_metrics``: the
    hard tier's generality and unit consistency on its known members, ``(metric, before, after)`` (None when the
    session builds no hard tier)."""

    choice: Choice
    case: EditCase
    steps: int
    members: pd.DataFrame
    metrics: pd.DataFrame
    spectra: pd.DataFrame
    tail_energy: pd.DataFrame
    restored: bool
    hard_metrics: pd.DataFrame | None = None

    @property
    def old_answer(self) -> str:
        return self.case.unit.old_answer

    def __repr__(self) -> str:
        c, n = self.choice, len(self.members)
        after = self.metrics.set_index("metric")["after"]
        knobs = f"eps={c.eps:g}, K={c.k}" + (f", lambda_rank={c.lambda_rank:g}" if c.method == "ASAM" else "")
        tails = "; ".join(f"{rows} {r.before:.4f} -> {r.after:.4f}" for rows, r in self.tail_energy.iterrows())
        return "\n".join(
            [
                f"PlaygroundResult({c.method} edit of {self.case.unit.name!r}: {self.old_answer!r} -> "
                f"{c.new_answer!r}, "
                f"{self.steps} steps; {knobs}, seed {c.seed})",
                f"  question: {self.case.request.question!r}",
                f"  unit members right before (true answer): {int(self.members.right_before.sum())}/{n}, "
                f"after (new answer): {int(self.members.right_after.sum())}/{n}",
                "  after: " + "  ".join(f"{m} {after[m]:.2f}" for m in METRICS),
                *self._hard_line(),
                f"  tail energy of H, before -> after: {tails}",
                f"  model restored bit-exactly: {self.restored}",
            ]
        )

    def _hard_line(self) -> list[str]:
        if self.hard_metrics is None:
            return []
        after = self.hard_metrics.set_index("metric")["after"]
        known = sum(bool(m.known) for m in evaluated_members(self.case.hard_unit) if m.kind != "anchor")
        metrics = "  ".join(f"{m} {after[m]:.2f}" for m in HARD_METRICS)
        return [f"  after, hard tier ({known} known members): {metrics}"]

    def figures(self) -> dict[str, plt.Figure]:
        """The three figures of an edit, by name: unit members, metrics, spectrum of H; made outside pyplot
        (:func:`asam_lib.figures.plots.detached_figures`: the widget's callback draws them while the kernel may handle
        other widget messages in another thread)."""
        with plots.detached_figures():
            return dict(zip(FIGURES, (member_grid(self), metrics_figure(self), spectrum_figure(self))))


def run_edit(session: Session, choice: Choice) -> PlaygroundResult:
    """Edit, measure before and after, restore (see the module docstring)."""
    choice = resolve(session.world, choice)
    model, encoder = session.model, session.encoder
    case = edit_case(session, choice.entity, choice.relation, choice.new_answer, choice.seed)
    editor = make_editor(choice.method, choice.eps, choice.k, choice.lambda_rank)
    layer = editor.config.layer
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    reference = locality_reference(model, encoder, case.locality)
    before_metrics = evaluate_edit(model, encoder, case.unit, reference)
    hard = case.hard_unit
    before_hard = evaluate_edit(model, encoder, hard, None) if hard is not None else None
    before = member_predictions(model, encoder, case.unit, case.unit.old_answer)
    batch = encoder.batch([case.request.anchor_item])
    with editor.edit(model, encoder, case.request, seed=choice.seed) as handle:
        after_metrics = evaluate_edit(model, encoder, case.unit, reference)
        after_hard = evaluate_edit(model, encoder, hard, None) if hard is not None else None
        after = member_predictions(model, encoder, case.unit, choice.new_answer)
        variants = adversarial_variants(
            model,
            edited_forward(model),
            unedited_forward(model, handle.originals),
            joint_embeddings(model, batch),
            batch,
            lar_config(choice.eps, choice.k),
            torch_generator(choice.seed, "playground-lar", case.request.name),
        )
        H_after = edit_layer_rows(model, encoder, case, variants.delta, layer)
    H_before = edit_layer_rows(model, encoder, case, variants.delta, layer)
    now = model.state_dict()
    restored = set(now) == set(state) and all(torch.equal(now[k], v) for k, v in state.items())
    members = before.join(after[["prediction", "right"]], lsuffix="_before", rsuffix="_after")
    spectra = pd.DataFrame(spectrum_rows(H_before, "before") + spectrum_rows(H_after, "after"))
    tails = pd.DataFrame(
        {
            s: {rows: rcsl.rank_loss(H[rows].double()).item() for rows in ROWS}
            for s, H in zip(STATES, (H_before, H_after))
        }
    )
    hard_table = None if hard is None else _metric_table(before_hard, after_hard, HARD_METRICS, ("exact_known",))
    return PlaygroundResult(
        choice,
        case,
        handle.steps,
        members,
        _metric_table(before_metrics, after_metrics),
        spectra,
        tails,
        restored,
        hard_table,
    )


# --- figures -------------------------------------------------------------------------------------------


def shown_members(result: PlaygroundResult, per_kind: int = 3) -> list[int]:
    """Indices of the members the grid shows: the anchor and the first ``per_kind`` of each other kind."""
    kinds = result.members.kind
    return [0] + [i for kind in ("text", "image", "both") for i in kinds.index[kinds == kind][:per_kind].tolist()]


def member_grid(result: PlaygroundResult, per_kind: int = 3) -> plt.Figure:
    """Unit members before (top row) and after (bottom row) the edit, framed by whether the model is right:
    the true answer before, the new answer after. Titles: member kind and the model's answer."""
    shown = shown_members(result, per_kind)
    rows = result.members.loc[shown]
    images = [result.case.unit.members[i].image for i in shown]
    titles = [f"{r.kind}: {r[f'prediction_{s}']}" for s in STATES for _, r in rows.iterrows()]
    frames = [
        plots.OUTCOME_COLOURS["right" if r[f"right_{s}"] else "wrong"] for s in STATES for _, r in rows.iterrows()
    ]
    labels = [f"before\n(right: {result.old_answer})", f"after\n(right: {result.choice.new_answer})"]
    title = (
        f"{result.choice.method}: {result.case.unit.name}, {result.old_answer} -> {result.choice.new_answer} "
        f"(frames: green = right, red = wrong)"
    )
    return plots.image_grid(
        images * 2, ncols=len(shown), titles=titles, row_labels=labels, frame_colours=frames, cell=1.15, title=title
    )


def metrics_figure(result: PlaygroundResult) -> plt.Figure:
    """The metrics before and after the edit (exact match for Rel, Gen, Unit; answer-span agreement for Loc), and
    beside them the hard tier's generality and unit consistency on its known members (when there is one)."""
    palette = {"before": methods.UNEDITED_COLOUR, "after": methods.method(result.choice.method).colour}
    panels = [("standard tier", result.metrics, METRICS)]
    if result.hard_metrics is not None:
        panels.append(("hard tier, known members", result.hard_metrics, HARD_METRICS))
    widths = [len(order) for _, _, order in panels]
    fig, axes = plots.subplots(1, len(panels), figsize=(3 + sum(widths) * 0.75, 3), width_ratios=widths, squeeze=False)
    for ax, (tier, table, order) in zip(axes[0], panels):
        tidy = table.melt(id_vars="metric", var_name="state", value_name="value")
        sns.barplot(
            tidy, x="metric", y="value", hue="state", order=list(order), hue_order=list(STATES), palette=palette, ax=ax
        )
        ax.set(ylim=(0, 1.05), xlabel="", ylabel="share (exact match / agreement)", title=tier)
        ax.get_legend().remove()
    for ax in axes[0, 1:]:
        ax.set_ylabel("")
    axes[0, -1].legend(*axes[0, 0].get_legend_handles_labels(), loc="upper left", bbox_to_anchor=(1, 1), fontsize=8)
    fig.suptitle(f"{result.choice.method}: metrics of the new answer before and after the edit")
    fig.tight_layout()
    return fig


def spectrum_figure(result: PlaygroundResult) -> plt.Figure:
    """The spectrum of H (share of energy per singular value, log) before and after, per set of rows."""
    fig, axes = plots.subplots(1, len(ROWS), figsize=(10, 3.2))
    colours = {"before": methods.UNEDITED_COLOUR, "after": methods.method(result.choice.method).colour}
    for ax, rows in zip(axes, ROWS):
        for state in STATES:
            s = result.spectra.query("rows == @rows and state == @state")
            ax.semilogy(
                s.i,
                s.share,
                marker="o",
                markersize=3,
                linewidth=1,
                color=colours[state],
                linestyle="--" if state == "before" else "-",
                label=f"{state} (L_rank {result.tail_energy.loc[rows, state]:.3f})",
            )
        ax.set(
            xlabel="singular value index i",
            ylabel="share of energy  s_i² / Σ s²  (log)",
            title=f"spectrum of H: {rows} ({s.i.max()} rows)",
        )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --- the widgets -----------------------------------------------------------------------------------------


class Playground:
    """ipywidgets around :func:`run_edit`: dropdowns for entity, relation, new answer and method, sliders for
    eps, K and lambda_rank, an Edit button and an output area showing the result and its three figures.
    ``playground.widget`` is what to display; ``playground.result`` holds the last edit."""

    def __init__(self, session: Session, choice: Choice = Choice()):
        import ipywidgets as w

        choice = resolve(session.world, choice)
        self.session, self.result = session, None
        look = {"style": {"description_width": "initial"}, "layout": w.Layout(width="300px")}
        self.entity = w.Dropdown(
            options=entity_choices(session.world), value=choice.entity, description="entity", **look
        )
        self.relation = w.Dropdown(options=relation_choices(), value=choice.relation, description="relation", **look)
        self.new_answer = w.Dropdown(
            options=answer_choices(session.world, choice.entity, choice.relation),
            value=choice.new_answer,
            description="new answer",
            **look,
        )
        self.fact = w.HTML()
        self.method = w.Dropdown(options=methods.names(), value=choice.method, description="method", **look)
        self.eps = w.FloatSlider(value=choice.eps, min=0.0, max=1.0, step=0.05, description="eps", **look)
        self.k = w.IntSlider(value=choice.k, min=1, max=16, description="K", **look)
        self.lambda_rank = w.FloatSlider(
            value=choice.lambda_rank, min=0.0, max=100.0, step=0.5, description="lambda_rank", **look
        )
        self.sliders = dict(zip(SLIDERS, (self.eps, self.k, self.lambda_rank)))
        self.seed = choice.seed
        self.button = w.Button(description="Edit", button_style="primary", icon="pencil")
        self.output = w.Output()
        self.entity.observe(self._fact_changed, "value")
        self.relation.observe(self._fact_changed, "value")
        self.method.observe(self._method_changed, "value")
        self.button.on_click(self.on_edit)
        self._fact_changed()
        self._method_changed()
        self.widget = w.VBox(
            [
                w.HBox([self.entity, self.relation, self.new_answer]),
                self.fact,
                w.HBox([self.method, self.eps]),
                w.HBox([self.k, self.lambda_rank]),
                self.button,
                self.output,
            ]
        )

    def choice(self) -> Choice:
        """The widgets' current values."""
        return Choice(
            self.entity.value,
            self.relation.value,
            self.new_answer.value,
            self.method.value,
            float(self.eps.value),
            int(self.k.value),
            float(self.lambda_rank.value),
            self.seed,
        )

    def _fact_changed(self, _change=None) -> None:
        world = self.session.world
        self.new_answer.options = answer_choices(world, self.entity.value, self.relation.value)
        true = world.entities[self.entity.value].facts[self.relation.value]
        self.fact.value = f"true answer now: <b>{true}</b>"

    def _method_changed(self, _change=None) -> None:
        active = active_sliders(self.method.value)
        for name, slider in self.sliders.items():
            slider.disabled = name not in active

    def on_edit(self, _button=None) -> None:
        """The Edit button: run :func:`run_edit` on the widgets' values and show the result in the output area
        (an input it cannot edit is printed there: widget callbacks swallow exceptions)."""
        from IPython.display import clear_output, display

        self.button.disabled, self.button.description = True, "Editing ..."
        try:
            with self.output:
                clear_output(wait=True)
                try:
                    self.result = run_edit(self.session, self.choice())
                except (ValueError, EditError) as err:
                    print(f"cannot edit: {err}")
                    return
                print(self.result)
                for fig in self.result.figures().values():
                    display(fig)
        finally:
            self.button.disabled, self.button.description = False, "Edit"
