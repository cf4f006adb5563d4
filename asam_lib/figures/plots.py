"""One plotting style for every figure: a seaborn theme, deterministic files (each method's colour is its
registry entry's, :func:`asam_lib.editors.methods.colours`).

Figures are saved as PNG and PDF with fixed metadata, so a re-run writes the same bytes. Once a notebook
has declared its provenance (``provenance.declare("01_knowledge_units", globals())`` in its setup cell),
each saved figure gets a sidecar ``<name>.json``: the notebook, the values of its ``parameters`` cell and
their content hash, a hash of the notebook's code, the library fingerprint and the hashes of the PNG and PDF
(:func:`asam_lib.common.provenance.write_sidecar`).
Sidecars hold no timestamps and no absolute paths, so they are as reproducible as the figures.

Before a figure is saved or shown, :func:`check_layout` draws it and raises :class:`FigureLayoutError` when two
of its texts overlap or a text runs off the canvas; notebooks show every figure through :func:`show`, so the
check runs under nbval as well as under ``make figures``.

Figures built inside :func:`detached_figures` (the playground's widget does) stay out of pyplot's registry of open
figures, so no pyplot hook in another thread can draw or close them while their owner does.
"""

from __future__ import annotations

import contextvars
import math
import re
import textwrap
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence
from unittest import mock

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullFormatter
from PIL import Image

from asam_lib.common import paths, provenance
from asam_lib.evaluation.summaries import distance_bins

# Kinds of unit members; none is a method's colour (text was FT-L's blue, both Patch's green), so a member is never
# taken for an editor in a figure that shows both.
KIND_COLOURS = {"anchor": "#4c4c4c", "text": "#1b9e77", "image": "#ff7f0e", "both": "#e7298a"}
OUTCOME_COLOURS = {"right": "#1a9850", "wrong": "#d73027"}  # frames of predictions that are right / wrong
# Colours of quantities that are not methods (metrics, loss terms), none of them a method's colour
# (asam_lib.editors.methods), so that a reader never takes a metric or a loss term for an editor.
QUANTITY_COLOURS = ("#1a1a1a", "#e6ab02", "#1b9e77", "#e7298a", "#a6761d", "#fdb863")


def quantity_colours(names: Sequence[str]) -> dict[str, str]:
    """``names`` (metrics, loss terms) -> colours of :data:`QUANTITY_COLOURS`, in order."""
    if len(names) > len(QUANTITY_COLOURS):
        raise ValueError(f"{len(names)} quantities to colour, QUANTITY_COLOURS has {len(QUANTITY_COLOURS)}")
    return dict(zip(names, QUANTITY_COLOURS))


def set_style() -> None:
    """The project's one seaborn theme (call once per notebook)."""
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.95)
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "svg.hashsalt": "asam", "pdf.compression": 6})


_DETACHED = contextvars.ContextVar("detached_figures", default=False)
_SUBPLOTS_KEYWORDS = ("sharex", "sharey", "squeeze", "width_ratios", "height_ratios", "subplot_kw", "gridspec_kw")


@contextmanager
def detached_figures() -> Iterator[None]:
    """Inside, :func:`subplots` makes figures outside pyplot: not in its registry of open figures, each on its own
    Agg canvas (they are displayed, saved and garbage-collected like any figure; ``plt.close`` is not needed).

    Why a widget callback builds its figures so: every comm message an IPython kernel handles fires the
    ``post_execute`` event, whose matplotlib-inline hook (``flush_figures``) draws, displays and closes every
    figure open in pyplot. JupyterLab 4.6 with ipykernel 7 sends widget comm messages on a kernel subshell, a thread
    of its own (Lab's ``commsOverSubshells`` setting, on by default), so a message that arrives while a callback
    draws its figures (the output widget sending each new output back to the kernel) has that hook draw the same
    figures in another thread at the same moment, and the callback's PNG comes out blank but for a stray title or
    tick label."""
    token = _DETACHED.set(True)
    try:
        yield
    finally:
        _DETACHED.reset(token)


def subplots(nrows: int = 1, ncols: int = 1, **kwargs) -> tuple[Figure, object]:
    """``plt.subplots(nrows, ncols, **kwargs)``; inside :func:`detached_figures`, the same figure made outside
    pyplot (the same pixels: the same rcParams, an Agg canvas)."""
    if not _DETACHED.get():
        return plt.subplots(nrows, ncols, **kwargs)
    grid = {key: kwargs.pop(key) for key in _SUBPLOTS_KEYWORDS if key in kwargs}
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **grid)


class FigureLayoutError(ValueError):
    """Two texts of a figure overlap, or a text runs off the figure's canvas."""


@dataclass(frozen=True)
class PlacedText:
    """A text as drawn: its string, where it belongs (``'title of axes 1'``) and its corners in pixels."""

    text: str
    role: str
    corners: np.ndarray  # (4, 2): the rectangle of the text, rotated with it
    extent: tuple[float, float, float, float]  # x0, y0, x1, y1 of the axis-aligned box around it

    def __str__(self) -> str:
        shown = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        return f"{shown!r} ({self.role})"


def all_axes(fig: plt.Figure) -> list[plt.Axes]:
    """The axes of ``fig`` (``fig.axes``, numbered from 1 in messages), then their insets."""
    return [*fig.axes, *(inset for ax in fig.axes for inset in ax.child_axes)]


def text_roles(fig: plt.Figure) -> dict[int, str]:
    """Where each text artist of ``fig`` belongs, by ``id``: ``'x tick label of axes 2'``, ``'suptitle'``, ..."""
    roles: dict[int, str] = {}

    def legend(owner, where: str) -> None:
        if owner is not None:
            roles[id(owner.get_title())] = f"legend title {where}"
            roles.update({id(t): f"legend entry {where}" for t in owner.texts})

    roles.update({id(t): "figure text" for t in fig.texts})
    for attr, role in [("_suptitle", "suptitle"), ("_supxlabel", "supxlabel"), ("_supylabel", "supylabel")]:
        if getattr(fig, attr, None) is not None:
            roles[id(getattr(fig, attr))] = role
    for figure_legend in fig.legends:
        legend(figure_legend, "of the figure")
    for n, ax in enumerate(all_axes(fig), start=1):
        where = f"of axes {n}"
        for title in (ax.title, ax._left_title, ax._right_title):
            roles[id(title)] = f"title {where}"
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            roles[id(axis.label)] = f"{name} label {where}"
            roles[id(axis.offsetText)] = f"{name} offset text {where}"
            for tick in [*axis.majorTicks, *axis.minorTicks]:
                roles[id(tick.label1)] = roles[id(tick.label2)] = f"{name} tick label {where}"
        roles.update({id(t): f"text {where}" for t in ax.texts})
        legend(ax.get_legend(), where)
    return roles


def drawn_texts(fig: plt.Figure) -> list[PlacedText]:
    """Every non-empty text that drawing ``fig`` (on its Agg canvas) renders, with where it lands.

    Texts that are not drawn (invisible, empty, ticks outside the view, axes switched off) are left out:
    they are recorded as matplotlib draws them, not read from the artist tree.
    """
    drawn: list[Text] = []
    draw = Text.draw

    def recording_draw(text: Text, renderer) -> None:
        draw(text, renderer)
        if text.get_visible() and text.get_text().strip():
            drawn.append(text)

    with mock.patch.object(Text, "draw", recording_draw):
        fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    roles, axes = text_roles(fig), all_axes(fig)
    placed = []
    for text in dict.fromkeys(drawn):  # a text drawn twice counts once
        box = text.get_window_extent(renderer)
        angle = text.get_rotation()
        if angle % 90:  # the rotated rectangle, not the larger axis-aligned box around it
            text.set_rotation(0)
            width, height = text.get_window_extent(renderer).size
            text.set_rotation(angle)
            c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
            half = np.array([[-width, -height], [width, -height], [width, height], [-width, height]]) / 2
            corners = np.array([box.x0 + box.x1, box.y0 + box.y1]) / 2 + half @ np.array([[c, s], [-s, c]])
        else:
            corners = np.array([[box.x0, box.y0], [box.x1, box.y0], [box.x1, box.y1], [box.x0, box.y1]])
        role = roles.get(id(text), "text" if text.axes not in axes else f"text of axes {axes.index(text.axes) + 1}")
        placed.append(PlacedText(text.get_text(), role, corners, (box.x0, box.y0, box.x1, box.y1)))
    return placed


def overlap(a: PlacedText, b: PlacedText, tolerance: float = 1.0) -> bool:
    """Whether the rectangles of ``a`` and ``b`` overlap by more than ``tolerance`` pixels (separating axes)."""
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a.extent, b.extent
    if min(ax1, bx1) - max(ax0, bx0) <= tolerance or min(ay1, by1) - max(ay0, by0) <= tolerance:
        return False  # apart already as axis-aligned boxes (the common case, and cheap)
    for corners in (a.corners, b.corners):
        for edge in (corners[1] - corners[0], corners[3] - corners[0]):
            axis = edge / np.linalg.norm(edge)
            pa, pb = a.corners @ axis, b.corners @ axis
            if min(pa.max(), pb.max()) - max(pa.min(), pb.min()) <= tolerance:
                return False
    return True


def layout_problems(fig: plt.Figure, tolerance: float = 1.0) -> list[str]:
    """Every text of ``fig`` that runs off its canvas, then every pair of texts that overlap, by more than
    ``tolerance`` pixels, each as a sentence naming the texts and the axes they belong to (:func:`all_axes`,
    numbered from 1). Drawing ``fig`` is part of the check."""
    texts = drawn_texts(fig)
    width, height = fig.bbox.width, fig.bbox.height
    problems = []
    for t in texts:
        x0, y0, x1, y1 = t.extent
        if min(x0, y0) < -tolerance or x1 > width + tolerance or y1 > height + tolerance:
            problems.append(
                f"{t} runs off the figure's canvas ({width:.0f} x {height:.0f} px; the text spans x {x0:.0f} to "
                f"{x1:.0f}, y {y0:.0f} to {y1:.0f})"
            )
    problems += [f"{a} overlaps {b}" for i, a in enumerate(texts) for b in texts[i + 1 :] if overlap(a, b, tolerance)]
    return problems


def check_layout(fig: plt.Figure, tolerance: float = 1.0) -> None:
    """Draw ``fig`` and raise :class:`FigureLayoutError` if two of its texts overlap (titles, axis and tick
    labels, legend texts, annotations, ``ax.text``) or a text runs off the canvas, by more than ``tolerance``
    pixels; the message lists every such problem (:func:`layout_problems`) and how to fix it."""
    problems = layout_problems(fig, tolerance)
    if problems:
        raise FigureLayoutError(
            "; ".join(problems) + ". Lay the figure out inside its canvas (layout='constrained' or fig.tight_layout(), "
            "a suptitle at y <= 1, a legend inside the figure), move, wrap or shorten a text, use fewer ticks or a "
            "larger figure"
        )


def save(fig: plt.Figure, name: str, folder: Path | None = None) -> Path:
    """Check the layout of ``fig`` (:func:`check_layout`), then save it as ``name``.png and ``name``.pdf (fixed
    metadata) under ``folder`` (default figures/).

    After :func:`asam_lib.common.provenance.declare`, also writes the sidecar ``name``.json.
    """
    check_layout(fig)
    return _write(fig, name, folder)


def show(fig: plt.Figure, name: str, folder: Path | None = None, save: bool = False) -> None:
    """What a notebook does with each figure: check its layout (:func:`check_layout`, also when nothing is
    saved, as under nbval), save it as ``name`` under ``folder`` (default figures/) when ``save``, show it."""
    check_layout(fig)
    if save:
        _write(fig, name, folder)
    plt.show()


def _write(fig: plt.Figure, name: str, folder: Path | None) -> Path:
    folder = paths.ensure(folder or paths.FIGURES)
    png, pdf = folder / f"{name}.png", folder / f"{name}.pdf"
    fig.savefig(png, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(pdf, bbox_inches="tight", metadata={"Creator": None, "Producer": None, "CreationDate": None})
    if provenance.declared() is not None:
        provenance.write_sidecar([png, pdf], {"figure": name, **provenance.declared()})
    return png


def wrap(text: str, width: float, fontsize: float) -> str:
    """``text`` with each of its lines broken at spaces to fit ``width`` points at ``fontsize`` (a punctuation
    mark standing alone, as in the world's questions ``"... fed ?"``, stays with the word before it)."""
    chars = max(8, int(width / (0.6 * fontsize)))  # 0.6 em: a wide average glyph of the theme's sans-serif
    glued = re.sub(r" ([?:!.,;])(?=\s|$)", "\u00a0\\1", text)  # a no-break space
    return "\n".join(textwrap.fill(line, chars) for line in glued.split("\n"))


def image_grid(
    images: Sequence[Image.Image],
    ncols: int,
    titles: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    frame_colours: Sequence[str | None] | None = None,
    cell: float = 1.0,
    title: str | None = None,
    fontsize: float = 7,
) -> plt.Figure:
    """Images in a grid (``cell`` inches each) with optional titles (wrapped to the cell's width), row labels,
    coloured frames and a title above the grid."""
    nrows = int(np.ceil(len(images) / ncols))
    titles = [wrap(t, cell * 72, fontsize) for t in titles] if titles is not None else None
    lines = max((t.count("\n") + 1 for t in titles), default=0) if titles is not None else 0
    height = round(nrows * (cell * 1.05 + lines * fontsize * 1.3 / 72) + (0.35 if title else 0), 2)
    fig, axes = subplots(nrows, ncols, figsize=(cell * ncols, height), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= len(images):
            ax.axis("off")
            continue
        ax.imshow(images[k], interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[k], fontsize=fontsize)
        colour = frame_colours[k] if frame_colours is not None else None
        for spine in ax.spines.values():
            spine.set_visible(colour is not None)
            if colour is not None:
                spine.set_edgecolor(colour)
                spine.set_linewidth(3)
    if row_labels is not None:
        for r, label in enumerate(row_labels):
            axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=fontsize + 1)
    if title is not None:
        fig.suptitle(wrap(title, cell * ncols * 72, 10), fontsize=10)
    fig.tight_layout()
    return fig


DISTANCE_PANELS = (  # (slice, distance column, x label): each panel holds the members of one slice
    ("text", "text_distance", "template parts changed"),
    ("image", "image_distance", "image parameter distance"),
    ("image", "latent_distance", "latent distance (cosine, log scale)"),
    ("both", "latent_distance", "latent distance (cosine, log scale)"),
)


def numeric_points(
    ax: plt.Axes, data: pd.DataFrame, x: str, y: str, hue: str, colours: dict[str, str], seed: int, dodge=False
) -> None:
    """Mean of ``y`` per ``x`` value on a numeric ``x`` axis, one line per ``hue`` value (``colours``' keys, in
    order) with its 95% bootstrap CI (``seed``); no legend (:func:`points_legend` draws one per figure)."""
    sns.pointplot(
        data,
        x=x,
        y=y,
        hue=hue,
        hue_order=list(colours),
        palette=colours,
        native_scale=True,
        dodge=dodge,
        errorbar=("ci", 95),
        seed=seed,
        ax=ax,
        markersize=4,
        linewidth=1.2,
        legend=False,
    )


def points_legend(fig: plt.Figure, colours: dict[str, str], title: str) -> None:
    """The legend of :func:`numeric_points`' lines, outside the panels on the right (constrained layout)."""
    handles = [plt.Line2D([], [], color=c, marker="o", markersize=4, linewidth=1.2) for c in colours.values()]
    fig.legend(handles, list(colours), title=title, loc="outside right upper")


def consistency_by_distance(
    members: pd.DataFrame, palette: dict[str, str], title: str, n_bins: int = 5, seed: int = 0
) -> plt.Figure:
    """Share of a unit's members on the new answer against their distance from the edit input, one panel per
    slice and distance (:data:`DISTANCE_PANELS`), one line per method (95% bootstrap CI over members).

    ``members``: one row per evaluated member and edit (columns method, kind, text_distance, image_distance,
    latent_distance, exact). Template parts are counted (integer ticks); the image and latent distances are
    put in ``n_bins`` quantile bins per panel, each drawn at its mean distance on a numeric axis.
    """
    fig, axes = plt.subplots(2, 2, figsize=(9, 6), sharey=True, layout="constrained")
    hue_order = [m for m in palette if m in set(members.method)]
    for ax, (kind, column, label) in zip(axes.flat, DISTANCE_PANELS):
        chosen = members[members.kind == kind]
        x = chosen[column] if column == "text_distance" else distance_bins(chosen[column], n_bins=n_bins).centre
        if column == "latent_distance":
            ax.set_xscale("log")
        numeric_points(ax, chosen.assign(x=x), "x", "exact", "method", {m: palette[m] for m in hue_order}, seed, 0.15)
        if column == "text_distance":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if column == "latent_distance":
            ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
            ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set(
            xlabel=label,
            ylabel="share on the new answer",
            ylim=(0, 1.05),
            title=f"{kind} slice (n = {chosen.groupby('method').size().max()} per method)",
        )
    points_legend(fig, {m: palette[m] for m in hue_order}, "method")
    fig.suptitle(title)
    return fig


def lar_trajectory(history: pd.DataFrame, colour: str) -> plt.Figure:
    """LAR's PGD steps: the edit loss on the variants (climbing) and their KL to the unedited model, which the
    coherence term pulls back down after the first steps.
    ``history``: one row per step (columns ``PGD step``, edit_loss, coherence_kl)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
    for ax, column, ylabel, title, line_colour in [
        (axes[0], "edit_loss", "edit loss on the variants (CE, nats)", "The adversary climbs the edit loss", colour),
        (axes[1], "coherence_kl", "KL to the unedited model (nats)", "... and coherence pulls the KL back", "0.4"),
    ]:
        ax.plot(history["PGD step"], history[column], marker="o", color=line_colour)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(xlabel="PGD step", ylabel=ylabel, title=title)
    return fig


def eps_sweep(sweep: pd.DataFrame, colours: dict[str, str], title: str, seed: int = 0) -> plt.Figure:
    """Coherence, edit failure and diversity of LAR and random variants against the radius eps (a numeric axis),
    mean and 95% bootstrap CI over edits. ``sweep``: one row per (case, eps, variants) with those columns;
    ``colours``: one per value of ``variants``."""
    measures = {
        "coherence": "share with the unedited answer",
        "edit failure": "share on which the edit fails",
        "diversity": "spread (1 = as random)",
    }
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), sharex=True, layout="constrained")
    for ax, (measure, ylabel) in zip(axes, measures.items()):
        numeric_points(ax, sweep, "eps", measure, "variants", colours, seed)
        ax.set(xlabel="", ylabel=ylabel, title=measure, ylim=(-0.03, 1.05))
    points_legend(fig, colours, "variants")
    fig.supxlabel("radius eps (relative to the token norm)")
    fig.suptitle(title)
    return fig


def variants_among_members(points: pd.DataFrame, colours: dict[str, str], title: str) -> plt.Figure:
    """Left: the unit's members and the variants in a 2-D PCA of the edit layer's input (LAR variants triangles,
    random variants crosses, the anchor a large white-edged star drawn over them). Right: each point's distance
    from the anchor in the full space, which the projection cannot shrink. ``points``:
    :func:`asam_lib.experiments.lar_study.latent_map`; ``colours``: one per kind."""
    markers = {"anchor": "*", "random variant": "x", "LAR variant": "^"}
    order = [k for k in ("text", "image", "both", "LAR variant", "random variant", "anchor") if k in set(points.kind)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained", width_ratios=(1.2, 1))
    for kind in order:
        chosen = points[points.kind == kind]
        anchor = kind == "anchor"
        axes[0].scatter(
            chosen.pc1,
            chosen.pc2,
            s=280 if anchor else 22,
            marker=markers.get(kind, "o"),
            color=colours[kind],
            edgecolors="white" if anchor else None,
            linewidths=1.5 if anchor else 1,
            label=f"{kind} ({len(chosen)})",
            alpha=1 if anchor else 0.85,
        )
    axes[0].set(xlabel="principal component 1", ylabel="principal component 2", title="2-D projection (PCA)")
    distances = points[points.kind != "anchor"]
    rows = [k for k in order if k != "anchor"]
    sns.stripplot(
        distances,
        x="anchor_distance",
        y="kind",
        order=rows,
        hue="kind",
        palette=colours,
        size=4,
        ax=axes[1],
        jitter=0.2,
    )
    axes[1].set(xlabel="distance from the anchor (L2, full space)", ylabel="", title="Distance from the anchor")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(order), fontsize=8)
    fig.suptitle(title)
    return fig


TIER_PANELS = {  # (tier, metric) -> its x label, in reading order: the binary view, the unit, its hard tier, locality
    ("standard", "Rel"): "Rel",
    ("binary", "T-Gen"): "T-Gen\nbinary",
    ("binary", "I-Gen"): "I-Gen\nbinary",
    ("standard", "T-Gen"): "T-Gen\nunit",
    ("standard", "I-Gen"): "I-Gen\nunit",
    ("standard", "TI-Gen"): "TI-Gen\nunit",
    ("standard", "Unit"): "Unit",
    ("hard", "I-Gen"): "I-Gen\nhard",
    ("hard", "Unit"): "Unit\nhard",
    ("standard", "T-Loc"): "T-Loc",
    ("standard", "I-Loc"): "I-Loc",
}
BINARY_SPAN = (0.5, 2.5)  # the x range of the binary view's bars in TIER_PANELS' order (shaded in the figures)


def predictive_value(
    study: pd.DataFrame, summary: pd.DataFrame, curves: pd.DataFrame, colours: dict[str, str], lar_colour: str
) -> plt.Figure:
    """Left: each edit's loss on its LAR variants against its consistency on the real unit (a point per edit, the
    editor's colour). Middle: the ROC of the variants' loss for "misses a held-out member", all editors pooled (LAR
    variants solid in ``lar_colour``, random variants dotted grey). Right: the same ROC per editor (its colour; LAR
    solid, random dotted). Legends give each AUC with its 95% interval. ``study``, ``summary``, ``curves``:
    :func:`asam_lib.experiments.lar_study.predictive_study`, :func:`~asam_lib.experiments.lar_study.predictive_summary`
    and :func:`~asam_lib.experiments.lar_study.roc_curves`; ``colours``: one per editor."""
    styles = {"lar": ("-", "LAR"), "noise": (":", "random")}
    aucs = summary.set_index(["method", "variants"])
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.9), layout="constrained")
    sns.scatterplot(study, x="lar_loss", y="Unit", hue="method", palette=colours, ax=axes[0], s=25, alpha=0.8)
    axes[0].set(
        xscale="log",
        xlabel="edit loss on LAR variants (CE, nats, log scale)",
        ylabel="unit consistency (held-out members)",
        title="Variants' loss vs the real unit",
    )
    editors = [m for m in colours if m in set(study.method)]
    for ax, methods_drawn, title in [
        (axes[1], ["pooled"], "'Misses a held-out member' (pooled)"),
        (axes[2], editors, "The same, per editor"),
    ]:
        for method in methods_drawn:
            for source, (style, name) in styles.items():
                curve = curves[(curves.method == method) & (curves.variants == source)]
                row = aucs.loc[(method, source)]
                colour = (lar_colour if source == "lar" else "0.45") if method == "pooled" else colours[method]
                who = f"{name} variants" if method == "pooled" else f"{method}, {name}"
                label = f"{who}: {row.auc_loss_for_miss:.2f} [{row.auc_ci_low:.2f}, {row.auc_ci_high:.2f}]"
                ax.plot(curve.fpr, curve.tpr, style, color=colour, label=label)
        ax.plot([0, 1], [0, 1], color="0.8", linewidth=0.8)
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
        ax.legend(fontsize=7, loc="lower right", title="AUC [95% CI]", title_fontsize=7)
    return fig


def tier_labelled(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``table`` (columns tier, metric, ...) that :data:`TIER_PANELS` shows, with their x label in a
    ``label`` column: the binary view beside the unit's slices and its hard tier (notebooks 01 and 04)."""
    labels = [TIER_PANELS.get((t, m)) for t, m in zip(table.tier, table.metric)]
    return table.assign(label=labels).dropna(subset=["label"])


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
    computed elsewhere, e.g. :func:`asam_lib.evaluation.summaries.summary_over_edits`), one group per ``x`` value in
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


def interval_lines(
    ax: plt.Axes, table, x: str, hue: str, hue_order: Sequence[str], colours: dict[str, str], log_x: bool = False
) -> None:
    """One line per ``hue`` value in ``hue_order``: ``table``'s ``mean`` against the numeric column ``x``, with
    its ``ci_low``/``ci_high`` interval as error bars (intervals computed elsewhere, e.g.
    :func:`asam_lib.evaluation.summaries.summary_over_edits`). ``log_x``: a log axis ticked at the ``x`` values
    present."""
    for name in hue_order:
        line = table[table[hue] == name].sort_values(x)
        if line.empty:
            continue
        errors = np.array([line["mean"] - line["ci_low"], line["ci_high"] - line["mean"]])
        ax.errorbar(
            line[x], line["mean"], yerr=errors, color=colours[name], label=name, marker="o", markersize=4, capsize=2
        )
    if log_x:
        ticks = sorted(set(table[x]))
        ax.set_xscale("log")
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()


def paired_forest(
    paired,
    comparisons: Sequence[str],
    panels: Sequence[tuple[str, str, str]],
    title: str,
    colour: str = "#d62728",
    clip: float | None = None,
) -> plt.Figure:
    """One panel per ``(tier, metric, label)`` of ``panels``: for each comparison (rows, in ``comparisons``
    order) its paired mean difference and 95% interval from ``paired`` (the table of
    :func:`asam_lib.evaluation.summaries.paired_differences`), with a line at zero. An interval that excludes zero is
    drawn solid, one that includes it hollow. With ``clip``, each axis spans at most ``[-clip, clip]`` around zero, so
    that one large difference does not squash the others: a mean beyond it is drawn as an arrow at the edge with
    its value written beside it."""
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
            if clip is not None and abs(row.mean_diff) > clip:
                _clipped(ax, row.mean_diff, y, clip, colour)
                continue
            low, high = (row.ci_low, row.ci_high) if clip is None else (max(row.ci_low, -clip), min(row.ci_high, clip))
            ax.plot([low, high], [y, y], color=colour, linewidth=1.6)
            ax.plot(row.mean_diff, y, "o", color=colour, markerfacecolor=colour if clear else "white", markersize=5)
        ax.axvline(0, color="black", linewidth=0.8)
        if clip is not None:
            ax.set_xlim(-1.15 * clip, 1.15 * clip)
        ax.set(xlabel=f"{label}\n(difference, 95% CI)", ylim=(len(comparisons) - 0.5, -0.5))
        ax.tick_params(axis="x", labelsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(3))  # narrow panels: at most four ticks, so their labels never meet
    axes[0, 0].set_yticks(range(len(comparisons)), comparisons)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def _clipped(ax: plt.Axes, value: float, y: float, clip: float, colour: str) -> None:
    """A mean difference beyond ``[-clip, clip]``: an arrow at the edge it passes, and its value inside the axis."""
    edge = math.copysign(1.1 * clip, value)
    ax.plot(edge, y, "<" if value < 0 else ">", color=colour, markersize=7)
    ax.annotate(
        f"{value:+.2f}",
        (edge, y),
        xytext=(8 if value < 0 else -8, 0),
        textcoords="offset points",
        ha="left" if value < 0 else "right",
        va="center",
        fontsize=7,
        color=colour,
    )


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
    :func:`asam_lib.evaluation.summaries.paired_differences`) with its 95% interval, on a numeric axis in order; the
    default itself is the point at zero."""
    palette = quantity_colours([label for _, _, label in metrics])
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
    fig.legend(handles, labels, loc="lower center", ncols=len(metrics), bbox_to_anchor=(0.5, 0.0), fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig
