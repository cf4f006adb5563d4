"""One plotting style for every figure: a seaborn theme, one colour per method, deterministic files.

Figures are saved as PNG and PDF with fixed metadata, so a re-run writes the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from PIL import Image

from asam_lib import paths

METHOD_COLOURS = {
    "base": "#7f7f7f",
    "FT-L": "#1f77b4",
    "LoRA": "#9467bd",
    "Patch": "#2ca02c",
    "ASAM": "#d62728",
}
KIND_COLOURS = {"anchor": "#4c4c4c", "text": "#1f77b4", "image": "#ff7f0e", "both": "#2ca02c"}


def set_style() -> None:
    """The project's one seaborn theme (call once per notebook)."""
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.95)
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "svg.hashsalt": "asam", "pdf.compression": 6})


def save(fig: plt.Figure, name: str, folder: Path | None = None) -> Path:
    """Save ``fig`` as ``name``.png and ``name``.pdf (fixed metadata) under ``folder`` (default figures/)."""
    folder = paths.ensure(folder or paths.FIGURES)
    png = folder / f"{name}.png"
    fig.savefig(png, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(folder / f"{name}.pdf", bbox_inches="tight", metadata={"Creator": None, "Producer": None, "CreationDate": None})
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
