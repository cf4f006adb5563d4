"""The figures of notebook 04 (edit and evaluate), each drawn from the tables the study saves.

Every function takes tidy tables (those of :mod:`asam_lib.experiments.study_tables` and
:mod:`asam_lib.evaluation.summaries`, or the same tables read back from ``results/``) and returns a figure; the notebook
shows and saves it (:func:`asam_lib.figures.plots.show`). Drawing never re-runs an edit. The building blocks (interval
bars and lines, the paired forest) are :mod:`asam_lib.figures.plots`'; the methods' colours come from the method
registry (:func:`asam_lib.editors.methods.colours`), passed in.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from asam_lib.figures import plots

SHARE = "share (exact / agreement)"  # the y label of every panel of shares
LOG_T = "edits applied (T, log)"  # the x label of every sequential panel


def main_table_figure(
    summary: pd.DataFrame, tasks: Sequence[str], methods: Sequence[str], colours: dict[str, str]
) -> plt.Figure:
    """The main table as bars, one row of panels per task: the binary view (shaded) beside the knowledge unit and
    its hard tier (:data:`asam_lib.figures.plots.TIER_PANELS`), mean and 95% CI of ``summary``
    (:func:`asam_lib.evaluation.summaries.summary_over_edits` by task, tier, method, metric)."""
    labelled = plots.tier_labelled(summary)
    fig, axes = plt.subplots(len(tasks), 1, figsize=(12, 3.3 * len(tasks)), sharex=True, squeeze=False)
    for ax, task in zip(axes[:, 0], tasks):
        panels = list(plots.TIER_PANELS.values())
        plots.interval_bars(ax, labelled[labelled.task == task], "label", panels, "method", methods, colours)
        ax.set(ylim=(0, 1.05), ylabel=SHARE, title=f"{task.upper()}")
        ax.axvspan(*plots.BINARY_SPAN, color="0.92", zorder=0)
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.suptitle(
        "The binary view (shaded) beside the knowledge unit and its hard tier (known members); "
        "95% CI over seeds and edits"
    )
    fig.tight_layout()
    return fig


def distance_figure(
    curve: pd.DataFrame, image_curve: pd.DataFrame, methods: Sequence[str], colours: dict[str, str]
) -> plt.Figure:
    """Unit consistency against distance from the edit input (:func:`asam_lib.evaluation.summaries.distance_curve`'s
    tables): left the latent-distance bins of ``curve``, right the image-distance bins of ``image_curve``; each
    point a bin at its mean distance, 95% CI over seeds. The title gives each latent bin's number of edits, nearest
    bin first (:func:`edits_per_bin`)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), sharey=True)
    for ax, data, label in [
        (axes[0], curve, "latent distance (cosine; standard tier)"),
        (axes[1], image_curve, "image distance (standard + hard tiers)"),
    ]:
        sns.lineplot(
            data,
            x="distance",
            y="exact",
            hue="method",
            hue_order=methods,
            palette=colours,
            marker="o",
            errorbar=("ci", 95),
            seed=0,
            ax=ax,
            legend=ax is axes[1],
        )
        ax.set(xlabel=label, ylabel="share of members on the new answer", ylim=(0, 1.05))
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    counts = ", ".join(str(n) for n in edits_per_bin(curve))
    fig.suptitle(f"VQA: unit consistency against distance from the edit input (edits per latent bin: {counts})")
    fig.tight_layout()
    return fig


def edits_per_bin(curve: pd.DataFrame) -> pd.Series:
    """Per bin of ``curve`` (indexed by its mean ``distance``), the number of edits with a member in it: the sum
    over seeds of its ``n_edits``, taken from the first method (every method edits the same cases)."""
    first = curve[curve.method == curve.method.iloc[0]]
    return first.groupby("distance").n_edits.sum().astype(int)


def sequential_figure(summary: pd.DataFrame, methods: Sequence[str], colours: dict[str, str], title: str) -> plt.Figure:
    """Sequential editing: Rel, TI-Gen, T-Loc and I-Loc of ``summary``
    (:func:`asam_lib.experiments.study_tables.sequential_tables`) against the number of edits applied, one line per
    method."""
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.3), sharey=True)
    for ax, metric in zip(axes, ["Rel", "TI-Gen", "T-Loc", "I-Loc"]):
        plots.interval_lines(ax, summary[summary.metric == metric], "T", "method", methods, colours, True)
        ax.set(xlabel=LOG_T, title=metric, ylim=(0, 1.05))
    axes[0].set_ylabel(SHARE)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="center left", bbox_to_anchor=(0.885, 0.5), fontsize=8)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 0.88, 1))
    return fig


def firing_figure(summary: pd.DataFrame, methods: Sequence[str], colours: dict[str, str]) -> plt.Figure:
    """Where the patches fire as edits accumulate (:func:`asam_lib.experiments.study_tables.firing_summary`): left the
    patches firing per unrelated input, right the share of its unit on which an edit's own patch fires. The right axis
    spans the intervals drawn (coverage sits near one, where a 0-1 axis shows a flat line) with a margin."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    for ax, metric, label, title in [
        (axes[0], "misfire rate", "patches firing per input", "Misfires: patches firing on an unrelated input"),
        (axes[1], "own patch fires", "share of the unit's members", "Coverage: an edit's own patch on its unit"),
    ]:
        plots.interval_lines(ax, summary[summary.metric == metric], "T", "method", methods, colours, True)
        ax.set(xlabel=LOG_T, ylabel=label, title=title)
    axes[1].set_ylim(*share_range(summary[summary.metric == "own patch fires"]))
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("Where the patches fire (VQA; 95% CI over seeds and edits)")
    fig.tight_layout()
    return fig


def share_range(table: pd.DataFrame, margin: float = 0.1, least: float = 0.05) -> tuple[float, float]:
    """A y range for shares that shows the differences in ``table`` (columns ci_low, ci_high): the span of its
    intervals, at least ``least`` wide (stretched downwards: shares end at one), with ``margin`` of that span on
    each side, kept within [0, 1 + margin x span]."""
    high = min(float(table.ci_high.max()), 1.0)
    low = min(float(table.ci_low.min()), high - least)
    pad = (high - low) * margin
    return max(0.0, low - pad), high + pad


def steps_figure(steps: pd.DataFrame, methods: Sequence[str], colours: dict[str, str]) -> plt.Figure:
    """Optimiser steps per edit, per task and method, from the per-edit ``steps`` rows (95% CI over edits)."""
    fig, ax = plt.subplots(figsize=(6, 3))
    sns.barplot(
        steps,
        x="task",
        y="value",
        hue="method",
        hue_order=methods,
        palette=colours,
        errorbar=("ci", 95),
        seed=0,
        ax=ax,
    )
    ax.set(xlabel="", ylabel="optimiser steps per edit", title="Cost of an edit in optimiser steps")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


ABLATION_PANELS = [
    ("standard", "I-Gen", "I-Gen"),
    ("standard", "TI-Gen", "TI-Gen"),
    ("hard", "Unit", "Unit, hard tier (known)"),
    ("standard", "T-Loc", "T-Loc"),
    ("standard", "I-Loc", "I-Loc"),
]  # (tier, metric, label) of the ablation figure's panels
SENSITIVITY_PANELS = [
    ("standard", "I-Gen", "I-Gen"),
    ("hard", "Unit", "Unit, hard (known)"),
    ("standard", "I-Loc", "I-Loc"),
]


def ablation_figure(
    paired: pd.DataFrame, pairs: Sequence[tuple[str, str]], n_edits: int, n_seeds: int, colour: str
) -> plt.Figure:
    """The ablation study's paired differences (:func:`asam_lib.evaluation.summaries.paired_differences` of ``pairs``,
    rows in their order) as a forest, one panel per :data:`ABLATION_PANELS`. Each row is its first method minus its
    second (ASAM minus an ablation, and the controls' other pairs, e.g. RCSL alone minus Patch)."""
    return plots.paired_forest(
        paired,
        [f"{a} - {b}" for a, b in pairs],
        ABLATION_PANELS,
        f"Paired differences on the same VQA edits: each row's first method minus its second "
        f"({n_edits} edits, {n_seeds} seed(s))",
        colour,
    )


def sensitivity_figure(
    paired: pd.DataFrame, knobs: Sequence[str], defaults: dict[str, str], n_edits: int, n_seeds: int
) -> plt.Figure:
    """The sensitivity study (:func:`asam_lib.experiments.study_tables.sensitivity_comparisons`' ASAM settings; the
    Patch rows are left out): one panel per knob, each setting minus ASAM's default, :data:`SENSITIVITY_PANELS`."""
    return plots.sensitivity_panels(
        paired[~paired.comparison.str.startswith("Patch")],
        knobs,
        defaults,
        SENSITIVITY_PANELS,
        f"Sensitivity: each setting minus ASAM's default, paired ({n_edits} VQA edits, {n_seeds} seed(s))",
    )
