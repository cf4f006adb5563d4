"""One plotting style for every figure: a seaborn theme, deterministic files (each method's colour is its
registry entry's, :func:`asam_lib.methods.colours`).

Figures are saved as PNG and PDF with fixed metadata, so a re-run writes the same bytes. Once a notebook
has declared its provenance (``plots.provenance("01_knowledge_units", globals())`` in its setup cell), each
saved figure gets a sidecar ``<name>.json``: the notebook, the values of its ``parameters`` cell and their
content hash, a hash of the notebook's code, the library fingerprint and the hashes of the PNG and PDF.
Sidecars hold no timestamps and no absolute paths, so they are as reproducible as the figures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from PIL import Image

from asam_lib import paths
from asam_lib import provenance as prov
from asam_lib.parameters import parameter_defaults

KIND_COLOURS = {"anchor": "#4c4c4c", "text": "#1f77b4", "image": "#ff7f0e", "both": "#2ca02c"}
OUTCOME_COLOURS = {"right": "#1a9850", "wrong": "#d73027"}  # frames of predictions that are right / wrong


def set_style() -> None:
    """The project's one seaborn theme (call once per notebook)."""
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.95)
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "svg.hashsalt": "asam", "pdf.compression": 6})


_provenance: dict | None = None  # set by provenance(), read by save()


def provenance(notebook: str, namespace: Mapping[str, object]) -> dict:
    """Declare that the figures saved from now on come from ``notebook`` run with its current parameters.

    ``notebook`` is the stem of a file in notebooks/; the names assigned in its cell tagged ``parameters``
    are looked up in ``namespace`` (pass ``globals()``), so papermill's overrides are what gets recorded.
    """
    global _provenance
    path = paths.NOTEBOOKS / f"{notebook}.ipynb"
    names = list(parameter_defaults(notebook))
    cells = json.loads(path.read_text())["cells"]
    missing = [n for n in names if n not in namespace]
    if missing:
        raise KeyError(f"provenance: parameters {missing} of {path.name} are not defined (pass globals())")
    parameters = {n: namespace[n] for n in names}
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    _provenance = {
        "notebook": path.relative_to(paths.REPO_ROOT).as_posix(),
        "notebook_code_sha256": prov.content_hash(code),
        "parameters": parameters,
        "parameters_sha256": prov.content_hash(parameters),
        **prov.library_fingerprint(),
    }
    return _provenance


def save(fig: plt.Figure, name: str, folder: Path | None = None) -> Path:
    """Save ``fig`` as ``name``.png and ``name``.pdf (fixed metadata) under ``folder`` (default figures/).

    After :func:`provenance`, also writes the sidecar ``name``.json.
    """
    folder = paths.ensure(folder or paths.FIGURES)
    png, pdf = folder / f"{name}.png", folder / f"{name}.pdf"
    fig.savefig(png, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(pdf, bbox_inches="tight", metadata={"Creator": None, "Producer": None, "CreationDate": None})
    if _provenance is not None:
        sidecar = {"figure": name, "files": {p.name: prov.sha256_file(p) for p in (png, pdf)}, **_provenance}
        (folder / f"{name}.json").write_text(json.dumps(sidecar, indent=1, sort_keys=True) + "\n")
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
