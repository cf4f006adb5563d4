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
