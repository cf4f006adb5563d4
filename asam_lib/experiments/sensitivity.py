"""The sensitivity study of notebook 04: ASAM with one knob changed at a time around its defaults.

Each knob is a dotted setting of ASAM (:data:`KNOBS`); each setting is a catalogue entry
(:class:`~asam_lib.experiments.ablations.Variant`). The default setting of every knob *is* the main table's ASAM, so
the grid leaves it out and :func:`with_default_settings` copies the main run's rows under the knob's name instead of
editing twice.
"""

from __future__ import annotations

import pandas as pd

from asam_lib.editors import methods
from asam_lib.editors.editing import Editor
from asam_lib.editors.overrides import setting
from asam_lib.experiments.ablations import Variant, editors

# knob of the sensitivity grid -> the dotted setting it changes
KNOBS = {
    "eps": "lar.eps",
    "K": "lar.k",
    "lambda_rank": "settings.lambda_rank",
    "T": "lar.steps",
    "layer": "config.layer",
}


def sensitivity_settings(
    eps=(0.1, 0.3, 0.5), k=(2, 4, 8), lambda_rank=(1.0, 10.0, 100.0), steps=(2, 4, 8), layers=(1, 2, 3)
) -> dict[str, tuple]:
    """The sensitivity grid: knob (:data:`KNOBS`) -> the values it takes (one knob at a time around ASAM's
    defaults)."""
    return {"eps": eps, "K": k, "lambda_rank": lambda_rank, "T": steps, "layer": layers}


def sensitivity_defaults() -> dict[str, str]:
    """Knob -> ASAM's default value, formatted as in the editors' names ("eps" -> "0.3")."""
    asam = methods.build("ASAM")
    return {knob: str(setting(asam, path)) for knob, path in KNOBS.items()}


def sensitivity_variants(grid: dict[str, tuple] | None = None, include_defaults: bool = False) -> list[Variant]:
    """The entries of :func:`sensitivity_editors`: ASAM with one knob changed ("knob=value"), and Patch at each
    edit layer ("Patch layer=l")."""
    grid = grid or sensitivity_settings()
    asam = methods.build("ASAM")
    variants = []
    for name, values in grid.items():
        path = KNOBS[name]
        for value in values:
            if include_defaults or value != setting(asam, path):
                variants.append(Variant(f"{name}={value}", "ASAM", {path: value}))
                if name == "layer":
                    variants.append(Variant(f"Patch layer={value}", "Patch", {path: value}))
    return variants


def sensitivity_editors(grid: dict[str, tuple] | None = None, include_defaults: bool = False) -> dict[str, Editor]:
    """ASAM with one knob of ``grid`` (default :func:`sensitivity_settings`) changed at a time (name
    "knob=value"), and Patch at each edit layer ("Patch layer=l") as the reference for the layer sweep.
    Settings equal to the defaults are the main table's ASAM and Patch, so they are left out unless
    ``include_defaults`` (see :func:`with_default_settings`)."""
    return editors(sensitivity_variants(grid, include_defaults))


def with_default_settings(
    sensitivity: pd.DataFrame, main: pd.DataFrame, defaults: dict[str, str] | None = None
) -> pd.DataFrame:
    """``sensitivity`` rows plus, for every knob, the main run's ASAM rows on the same cases renamed
    "knob=default" (and Patch's renamed "Patch layer=default"): the default setting *is* the main table's
    editor, so the study does not edit with it twice. Works on metric rows and on timing rows."""
    defaults = defaults or sensitivity_defaults()
    same = main[
        main.task.isin(sensitivity.task.unique())
        & main.seed.isin(sensitivity.seed.unique())
        & main.case.isin(sensitivity.case.unique())
    ]
    parts = [sensitivity]
    for name, value in defaults.items():
        parts.append(same[same.method == "ASAM"].assign(method=f"{name}={value}", group="sensitivity"))
    parts.append(same[same.method == "Patch"].assign(method=f"Patch layer={defaults['layer']}", group="sensitivity"))
    return pd.concat(parts, ignore_index=True)


def knob(name: str) -> tuple[str, str]:
    """("eps", "0.1") from "eps=0.1"; ("Patch layer", "2") from "Patch layer=2"."""
    key, _, value = name.partition("=")
    return key, value
