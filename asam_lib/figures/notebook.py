"""The setup every numbered notebook runs right after its ``parameters`` cell, in one call.

    nb = setup("03_rcsl_loss", globals(), seed=seed, save=save_figures)
    show, save_table = nb.show, nb.save_table

:func:`setup` seeds Python, NumPy and torch (when given a ``seed``), sets the project's plot style, checks each
parameter against the type of its default, declares the notebook's provenance (figures and tables saved after
it get a sidecar ``.json``) and quiets the libraries' logging. It returns a :class:`Notebook`, which knows where
this notebook's figures and tables go and whether to write them:

- ``nb.show(fig, name)`` checks the figure's layout, saves it as ``name`` (PNG, PDF and sidecar) under
  ``nb.figures`` when ``save`` is on, and displays it (:func:`asam_lib.figures.plots.show`);
- ``nb.save_table(table, name)`` writes ``name.csv`` (and its sidecar) under ``nb.results`` when ``save`` is on,
  and does nothing otherwise (:func:`asam_lib.evaluation.harness.save_table`).

A notebook that writes to a folder of its own (notebook 04's ``results_folder`` parameter) passes it as
``results_folder``: tables go there and figures to its ``figures/`` subfolder; otherwise they go to the
repository's ``results/`` and ``figures/`` (:mod:`asam_lib.common.paths`, which ``ASAM_RESULTS`` and ``ASAM_FIGURES``
redirect).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import matplotlib.pyplot as plt
import pandas as pd
import transformers

from asam_lib.common import paths, provenance
from asam_lib.common.parameters import check_parameters
from asam_lib.common.seeding import seed_everything
from asam_lib.evaluation import harness
from asam_lib.figures import plots

QUIET_LOGGERS = ("PIL",)  # loggers set to WARNING: PIL logs every image file it opens at DEBUG/INFO


@dataclass(frozen=True)
class Notebook:
    """Where one notebook's outputs go and whether it writes them (``save``: the ``save_figures`` parameter)."""

    name: str  # the notebook's stem, e.g. "03_rcsl_loss"
    save: bool
    figures: Path
    results: Path

    def show(self, fig: plt.Figure, name: str) -> None:
        """Check ``fig``'s layout, save it as ``name`` under :attr:`figures` when :attr:`save`, and display it."""
        plots.show(fig, name, self.figures, save=self.save)

    def save_table(self, table: pd.DataFrame, name: str) -> Path | None:
        """Write ``table`` as ``name.csv`` under :attr:`results` when :attr:`save` (return its path), else nothing."""
        return harness.save_table(table, name, self.results) if self.save else None


def output_folders(results_folder: str | Path = "") -> tuple[Path, Path]:
    """``(figures, results)``: the repository's folders, or ``results_folder`` and its ``figures/`` subfolder."""
    if not str(results_folder):
        return paths.FIGURES, paths.RESULTS
    return Path(results_folder) / "figures", Path(results_folder)


def quiet_logging() -> None:
    """Only errors from transformers, only warnings from :data:`QUIET_LOGGERS`."""
    transformers.logging.set_verbosity_error()
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def setup(
    notebook: str,
    namespace: Mapping[str, object],
    seed: int | None = None,
    save: bool = False,
    results_folder: str | Path = "",
) -> Notebook:
    """Set up the notebook ``notebook`` (its stem in notebooks/) from its parameters (pass ``globals()``).

    Seeds everything with ``seed`` (None: no seeding, for a notebook whose jobs seed themselves), sets the plot
    style, checks the parameters' types (:func:`asam_lib.common.parameters.check_parameters`), declares the provenance
    of what it saves (:func:`asam_lib.common.provenance.declare`) and quiets logging. ``save`` is the notebook's
    ``save_figures``; ``results_folder`` (empty: the repository's) is where its tables and figures go.
    """
    if seed is not None:
        seed_everything(seed)
    plots.set_style()
    check_parameters(notebook, namespace)
    provenance.declare(notebook, namespace)
    quiet_logging()
    figures, results = output_folders(results_folder)
    return Notebook(notebook, bool(save), figures, results)
