"""One plotting style for every figure: a seaborn theme, deterministic files (each method's colour is its
registry entry's, :func:`asam_lib.methods.colours`).

Figures are saved as PNG and PDF with fixed metadata, so a re-run writes the same bytes. Once a notebook
has declared its provenance (``provenance.declare("01_knowledge_units", globals())`` in its setup cell),
each saved figure gets a sidecar ``<name>.json``: the notebook, the values of its ``parameters`` cell and
their content hash, a hash of the notebook's code, the library fingerprint and the hashes of the PNG and PDF
(:func:`asam_lib.provenance.write_sidecar`).
Sidecars hold no timestamps and no absolute paths, so they are as reproducible as the figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from PIL import Image

from asam_lib import paths, provenance

KIND_COLOURS = {"anchor": "#4c4c4c", "text": "#1f77b4", "image": "#ff7f0e", "both": "#2ca02c"}
OUTCOME_COLOURS = {"right": "#1a9850", "wrong": "#d73027"}  # frames of predictions that are right / wrong


def set_style() -> None:
    """The project's one seaborn theme (call once per notebook)."""
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.95)
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "svg.hashsalt": "asam", "pdf.compression": 6})


def save(fig: plt.Figure, name: str, folder: Path | None = None) -> Path:
    """Save ``fig`` as ``name``.png and ``name``.pdf (fixed metadata) under ``folder`` (default figures/).

    After :func:`asam_lib.provenance.declare`, also writes the sidecar ``name``.json.
    """
    folder = paths.ensure(folder or paths.FIGURES)
    png, pdf = folder / f"{name}.png", folder / f"{name}.pdf"
    fig.savefig(png, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(pdf, bbox_inches="tight", metadata={"Creator": None, "Producer": None, "CreationDate": None})
    if provenance.declared() is not None:
        provenance.write_sidecar([png, pdf], {"figure": name, **provenance.declared()})
    return png


def image_grid(
    images: Sequence[Image.Image],
    ncols: int,
    titles: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    frame_colours: Sequence[str | None] | None = None,
    cell: float = 1.0,
) -> plt.Figure:
    """Images in a grid with optional titles, row labels and coloured frames."""
    nrows = int(np.ceil(len(images) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols, cell * nrows * 1.05), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= len(images):
            ax.axis("off")
            continue
        ax.imshow(images[k], interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[k], fontsize=7)
        colour = frame_colours[k] if frame_colours is not None else None
        for spine in ax.spines.values():
            spine.set_visible(colour is not None)
            if colour is not None:
                spine.set_edgecolor(colour)
                spine.set_linewidth(3)
    if row_labels is not None:
        for r, label in enumerate(row_labels):
            axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    return fig


def interval_bars(
    ax: plt.Axes,
    table,
    x: str,
    order: Sequence[str],
    hue: str,
    hue_order: Sequence[str],
    colours: dict[str, str],
    width: float = 0.8,
) -> None:
    """Grouped bars of ``table``'s ``mean`` with its ``ci_low``/``ci_high`` interval as error bars (intervals
    computed elsewhere, e.g. :func:`asam_lib.summaries.summary_over_edits`), one group per ``x`` value in
    ``order``, one bar per ``hue`` value in ``hue_order``; missing cells are left empty."""
    indexed = table.set_index([x, hue])
    step = width / len(hue_order)
    for j, name in enumerate(hue_order):
        positions, means, errors = [], [], []
        for i, group in enumerate(order):
            if (group, name) in indexed.index:
                row = indexed.loc[(group, name)]
                positions.append(i - width / 2 + (j + 0.5) * step)
                means.append(row["mean"])
                errors.append((row["mean"] - row["ci_low"], row["ci_high"] - row["mean"]))
        err = np.array(errors).T if errors else None
        ax.bar(positions, means, step * 0.95, yerr=err, color=colours[name], label=name, capsize=1.5, linewidth=0)
    ax.set_xticks(range(len(order)), order)


def paired_forest(
    paired,
    comparisons: Sequence[str],
    panels: Sequence[tuple[str, str, str]],
    title: str,
    colour: str = "#d62728",
) -> plt.Figure:
    """One panel per ``(tier, metric, label)`` of ``panels``: for each comparison (rows, in ``comparisons``
    order) its paired mean difference and 95% interval from ``paired`` (the table of
    :func:`asam_lib.summaries.paired_differences`), with a line at zero. An interval that excludes zero is drawn
    solid, one that includes it hollow."""
    fig, axes = plt.subplots(
        1, len(panels), figsize=(2.6 * len(panels) + 2.2, 0.36 * len(comparisons) + 1.3), sharey=True, squeeze=False
    )
    for ax, (tier, metric, label) in zip(axes[0], panels):
        part = paired[(paired.tier == tier) & (paired.metric == metric)].set_index("comparison")
        for y, name in enumerate(comparisons):
            if name not in part.index:
                continue
            row = part.loc[name]
            clear = row.ci_low > 0 or row.ci_high < 0
            ax.plot([row.ci_low, row.ci_high], [y, y], color=colour, linewidth=1.6)
            ax.plot(row.mean_diff, y, "o", color=colour, markerfacecolor=colour if clear else "white", markersize=5)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set(xlabel=f"{label}\n(difference, 95% CI)", ylim=(len(comparisons) - 0.5, -0.5))
        ax.tick_params(axis="x", labelsize=8)
    axes[0, 0].set_yticks(range(len(comparisons)), comparisons)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def sensitivity_panels(
    paired,
    knobs: Sequence[str],
    defaults: dict[str, str],
    metrics: Sequence[tuple[str, str, str]],
    title: str,
    log_knobs: Sequence[str] = ("lambda_rank",),
) -> plt.Figure:
    """One panel per knob: for each ``(tier, metric, label)`` of ``metrics``, the paired difference of every
    setting to the default (comparisons named ``"knob=value - reference"`` in ``paired``, the table of
    :func:`asam_lib.summaries.paired_differences`) with its 95% interval, on a numeric axis in order; the
    default itself is the point at zero."""
    palette = dict(zip([label for _, _, label in metrics], sns.color_palette("colorblind", len(metrics))))
    parsed = paired.assign(
        knob=paired.comparison.str.split("=").str[0],
        setting=paired.comparison.str.split("=").str[1].str.split(" - ").str[0].astype(float),
    )
    fig, axes = plt.subplots(1, len(knobs), figsize=(2.7 * len(knobs), 3.0), sharey=True, squeeze=False)
    offsets = np.linspace(-0.04, 0.04, len(metrics))
    for ax, knob_name in zip(axes[0], knobs):
        default = float(defaults[knob_name])
        for (tier, metric, label), offset in zip(metrics, offsets):
            part = parsed[(parsed.knob == knob_name) & (parsed.tier == tier) & (parsed.metric == metric)]
            part = part.sort_values("setting")
            x = np.concatenate([part.setting.to_numpy(), [default]])
            order = np.argsort(x)
            y = np.concatenate([part.mean_diff.to_numpy(), [0.0]])[order]
            low = np.concatenate([(part.mean_diff - part.ci_low).to_numpy(), [0.0]])[order]
            high = np.concatenate([(part.ci_high - part.mean_diff).to_numpy(), [0.0]])[order]
            shifted = x[order] * (10**offset if knob_name in log_knobs else 1) + (
                0 if knob_name in log_knobs else offset * np.ptp(x)
            )
            ax.errorbar(
                shifted,
                y,
                yerr=[low, high],
                marker="o",
                markersize=3.5,
                linewidth=1.2,
                capsize=2,
                color=palette[label],
                label=label,
            )
        ax.axhline(0, color="black", linewidth=0.8)
        if knob_name in log_knobs:
            ax.set_xscale("log")
        values = sorted(set(parsed[parsed.knob == knob_name].setting) | {default})
        ax.set_xticks(values, [f"{v:g}" for v in values])
        ax.minorticks_off()
        ax.set(xlabel=f"{knob_name} (default {default:g})")
    axes[0, 0].set_ylabel("difference to the default\n(paired, 95% CI)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncols=len(metrics), bbox_to_anchor=(0.5, -0.02), fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig
