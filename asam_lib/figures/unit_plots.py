"""The figures of notebook 01 (knowledge units), in the style of :mod:`asam_lib.figures.plots`: the world's
entities, an edit request, a unit's members, the base model's accuracy per slice and the baselines' generality gap.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from asam_lib.data.records import EditRecord
from asam_lib.data.units import KINDS, KnowledgeUnit
from asam_lib.data.world import EVAL_STREAM, PRETRAIN_STREAM, World
from asam_lib.figures import plots


def world_grid(world: World, n_entities: int = 8, per_stream: int = 4) -> plt.Figure:
    """``n_entities`` entities spread over the world, each with ``per_stream`` pretraining images and as many
    held-out ones."""
    shown = world.entities[:: max(1, len(world.entities) // n_entities)][:n_entities]
    images, labels = [], []
    for entity in shown:
        images += [world.image(entity.index, PRETRAIN_STREAM, k) for k in range(per_stream)]
        images += [world.image(entity.index, EVAL_STREAM, k) for k in range(per_stream)]
        labels.append(entity.caption.replace(" ", "\n"))
    return plots.image_grid(
        images,
        ncols=2 * per_stream,
        row_labels=labels,
        cell=0.9,
        title="Eight entities: four pretraining images (left) and four held-out images (right)",
    )


def edit_request(record: EditRecord) -> plt.Figure:
    """The three images of an MMEdit record with their questions: the edit input, its rephrased image, and the
    image locality item."""
    return plots.image_grid(
        [record.image("image"), record.image("image_rephrase"), record.image("m_loc")],
        ncols=3,
        titles=[f"image\n{record.src}", f"image_rephrase\n{record.rephrase}", f"m_loc\n{record.m_loc_q}"],
        cell=2.2,
    )


def unit_members(unit: KnowledgeUnit, per_kind: int = 4) -> plt.Figure:
    """The anchor and the first members of each kind (three phrasings), each titled with its kind, its text and
    image distances from the anchor, and its question."""
    members = (unit.members[:1] + unit.select("text")[: per_kind - 1] + unit.select("image")[:per_kind]) + unit.select(
        "both"
    )[:per_kind]
    return plots.image_grid(
        [m.image for m in members],
        ncols=6,
        titles=[f"{m.kind} (t={m.text_distance:.0f}, i={m.image_distance:.2f})\n{m.question}" for m in members],
        frame_colours=[plots.KIND_COLOURS[m.kind] for m in members],
        cell=1.9,
    )


def slice_accuracy(per_unit: pd.DataFrame) -> plt.Figure:
    """Bars of :func:`asam_lib.experiments.unit_study.slice_accuracy` per slice, with 95% bootstrap intervals over
    requests."""
    fig, ax = plt.subplots(figsize=(5, 3), layout="constrained")
    sns.barplot(
        per_unit,
        x="slice",
        y="exact",
        order=list(KINDS),
        hue="slice",
        palette=plots.KIND_COLOURS,
        errorbar=("ci", 95),
        seed=0,
        ax=ax,
        legend=False,
    )
    ax.set(
        ylim=(0, 1.02),
        xlabel="unit slice",
        ylabel="exact match (true answer)",
        title=f"Base model on the units ({per_unit.request.nunique()} requests, 95% CI)",
    )
    return fig


def generality_gap(table: pd.DataFrame, baselines: Sequence[str], colours: dict[str, str]) -> plt.Figure:
    """The baselines' means with intervals (``table``: :func:`asam_lib.evaluation.summaries.summary_over_edits` by
    tier, method and metric) on the binary view (shaded), the unit's slices, its hard tier and locality."""
    labelled = plots.tier_labelled(table)  # the binary view, the unit, its hard tier and locality (as notebook 04)
    fig, ax = plt.subplots(figsize=(10, 3.4))
    plots.interval_bars(ax, labelled, "label", list(plots.TIER_PANELS.values()), "method", list(baselines), colours)
    ax.axvspan(*plots.BINARY_SPAN, color="0.92", zorder=0)
    ax.set(ylim=(0, 1.05), ylabel="share (exact match / agreement)")
    ax.set_title("The binary view (shaded) beside the unit's slices and its hard tier, for the intrinsic baselines")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # beside the bars, not over them
    fig.tight_layout()
    return fig
