"""ASAM with one ingredient changed: the ablations and the sensitivity grid of notebook 04.

Each catalogue maps a display name to an editor. The default setting of every sensitivity knob *is* the
main table's ASAM, so the grid leaves it out and :func:`with_default_settings` copies the main run's rows
under the knob's name instead of editing twice.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from asam_lib.asam import ASAM, SEQUENTIAL_OPTION, ASAMSettings
from asam_lib.editing import FTL, Editor
from asam_lib.lar import LARConfig
from asam_lib.patch import Patch
from asam_lib.rcsl import RCSLConfig

# RCSL at the configuration notebook 03's design study selects on the development edits (its rule: the largest
# paired gain in hard-tier unit consistency over ASAM without RCSL, among forms that keep Rel >= 0.99 and
# T-Loc / I-Loc >= 0.97); notebook 03 asserts on its full run that the rule picks this one.
SELECTED_RCSL = RCSLConfig(normalise=True)
SELECTED_LAMBDA_RANK = 100.0


PATCH_AT_FULL_BUDGET = "Patch, all 30 steps"


def at_full_budget(editor: Editor) -> Editor:
    """``editor`` with its early stop switched off: it takes every one of its ``steps`` Adam steps (30, ASAM's own
    maximum), whatever its loss. This is the same-budget control. ASAM stops only once the CE of its anchor *and*
    of its variants is below ``stop_loss``, so it trains longer than Patch (about 16 steps against 10), and random
    variants never slow the stop down. At full budget a control trains at least as long as ASAM on every edit, so
    whatever ASAM still adds over it is not training length. [Reconstruction: the paper gives no budget rule.]"""
    return editor.with_config(replace(editor.config, stop_loss=0.0))


def budget_controls() -> dict[str, Editor]:
    """The main table's same-budget control: Patch at ASAM's full budget (:func:`at_full_budget`)."""
    return {PATCH_AT_FULL_BUDGET: at_full_budget(Patch())}


def ablation_editors() -> dict[str, Editor]:
    """ASAM and its ablations (docs/method.md, "Ablations and sensitivity"): no LAR (random variants of the
    same norm), no RCSL, no asymmetry, ASAM on FT-L instead of Patch, RCSL alone (the variants enter only
    through H, not through their CE: lambda_adv = 0) at a large lambda_rank, this companion's option for
    sequential editing (:data:`asam_lib.asam.SEQUENTIAL_OPTION`: what it costs a single edit), and RCSL at the
    configuration the design study selects (:data:`SELECTED_RCSL`), with and without its asymmetry: where RCSL acts, its
    asymmetry can be tested.

    The controls: *without LAR* and *RCSL alone* at full budget (:func:`at_full_budget`), and RCSL where it has
    room to act: with random variants, whose unit consistency is well below the ceiling that ASAM's own variants
    reach, the selected RCSL against no RCSL at all."""
    selected = ASAMSettings(lambda_rank=SELECTED_LAMBDA_RANK)
    random_variants = ASAMSettings(variants="noise", lambda_rank=0.0)
    rcsl_alone = ASAM(settings=ASAMSettings(lambda_adv=0.0, lambda_rank=100.0))
    without_lar = ASAM(settings=ASAMSettings(variants="noise"))
    return {
        "ASAM": ASAM(),
        "without LAR": without_lar,
        "without RCSL": ASAM(settings=ASAMSettings(lambda_rank=0.0)),
        "without asymmetry": ASAM(rcsl=RCSLConfig(asymmetric=False)),
        "ASAM on FT-L": ASAM(FTL()),
        "RCSL alone, lambda_rank=100": rcsl_alone,
        "ASAM calibrated": ASAM(settings=SEQUENTIAL_OPTION),
        "RCSL selected": ASAM(rcsl=SELECTED_RCSL, settings=selected),
        "RCSL selected, without asymmetry": ASAM(rcsl=replace(SELECTED_RCSL, asymmetric=False), settings=selected),
        "without LAR, all 30 steps": at_full_budget(without_lar),
        "RCSL alone, all 30 steps": at_full_budget(rcsl_alone),
        "random variants, without RCSL": ASAM(settings=random_variants),
        "random variants, RCSL selected": ASAM(
            rcsl=SELECTED_RCSL, settings=replace(random_variants, lambda_rank=SELECTED_LAMBDA_RANK)
        ),
    }


CONTROLS = (
    "without LAR, all 30 steps",
    "RCSL alone, all 30 steps",
    "random variants, without RCSL",
    "random variants, RCSL selected",
)

# ASAM without RCSL with LAR's and with random variants: where RCSL has room to act (notebook 04's development edits)
HEADROOM = ("without RCSL", "random variants, without RCSL")


def ablation_pairs() -> list[tuple[str, str]]:
    """The paired comparisons of the ablation study: ASAM against each ablation at its defaults and against
    Patch; RCSL at its selected configuration against ASAM without RCSL and against itself without asymmetry."""
    defaults = [
        name
        for name in ablation_editors()
        if name != "ASAM" and not name.startswith("RCSL selected") and name not in CONTROLS
    ]
    return [
        *[("ASAM", name) for name in [*defaults, "Patch"]],
        ("RCSL selected", "without RCSL"),
        ("RCSL selected", "RCSL selected, without asymmetry"),
        *control_pairs(),
    ]


def control_pairs() -> list[tuple[str, str]]:
    """The controls' paired comparisons, the last of :func:`ablation_pairs`: the same-budget ones (what ASAM, LAR
    and RCSL add beyond training longer), then RCSL where it has room to act."""
    return [
        ("ASAM", PATCH_AT_FULL_BUDGET),
        ("ASAM", "without LAR, all 30 steps"),
        ("RCSL alone, lambda_rank=100", "Patch"),
        ("RCSL alone, all 30 steps", PATCH_AT_FULL_BUDGET),
        ("random variants, RCSL selected", "random variants, without RCSL"),
    ]


def rcsl_design_editors() -> dict[str, Editor]:
    """The RCSL design study (notebook 03, on the development split): where H is read and how it is
    normalised, and a dose-response of lambda_rank, each beside its own no-RCSL control. ``ffn_hidden``
    needs FFN weights below the site that the edit trains, so it runs on FT-L over gate, up and down
    projections ("FT-L3"), with that base's own control."""
    ftl3 = FTL(modules=("gate_proj", "up_proj", "down_proj"))

    def rank(weight: float, base: Editor | None = None, **rcsl) -> ASAM:
        return ASAM(base, rcsl=RCSLConfig(**rcsl), settings=ASAMSettings(lambda_rank=weight))

    editors: dict[str, Editor] = {"without RCSL": rank(0.0)}
    editors |= {f"block output, lambda={w:g}": rank(w) for w in (1.0, 10.0, 100.0, 1000.0)}
    editors |= {f"block output centred, lambda={w:g}": rank(w, centre=True) for w in (10.0, 100.0)}
    editors |= {f"block output row-normalised, lambda={w:g}": rank(w, normalise=True) for w in (100.0, 1000.0)}
    editors["what the edit adds, lambda=100"] = rank(100.0, site="edit_delta")
    editors["Patch neurons, lambda=100"] = rank(100.0, site="patch_keys")
    editors["FT-L3 without RCSL"] = rank(0.0, ftl3)
    editors["FT-L3, FFN hidden, lambda=100"] = rank(100.0, ftl3, site="ffn_hidden")
    return editors


def sensitivity_settings(
    eps=(0.1, 0.3, 0.5), k=(2, 4, 8), lambda_rank=(1.0, 10.0, 100.0), steps=(2, 4, 8), layers=(1, 2, 3)
) -> dict[str, tuple]:
    """The sensitivity grid: knob -> the values it takes (one knob at a time around ASAM's defaults)."""
    return {"eps": eps, "K": k, "lambda_rank": lambda_rank, "T": steps, "layer": layers}


def sensitivity_defaults() -> dict[str, str]:
    """Knob -> ASAM's default value, formatted as in the editors' names ("eps" -> "0.3")."""
    asam = ASAM()
    return {
        "eps": str(asam.lar.eps),
        "K": str(asam.lar.k),
        "lambda_rank": str(asam.settings.lambda_rank),
        "T": str(asam.lar.steps),
        "layer": str(asam.config.layer),
    }


def sensitivity_editors(grid: dict[str, tuple] | None = None, include_defaults: bool = False) -> dict[str, Editor]:
    """ASAM with one knob of ``grid`` (default :func:`sensitivity_settings`) changed at a time (name
    "knob=value"), and Patch at each edit layer ("Patch layer=l") as the reference for the layer sweep.
    Settings equal to the defaults are the main table's ASAM and Patch, so they are left out unless
    ``include_defaults`` (see :func:`with_default_settings`)."""
    grid = grid or sensitivity_settings()
    defaults = sensitivity_defaults()
    lar, patch = LARConfig(), Patch()
    make = {
        "eps": lambda v: ASAM(lar=replace(lar, eps=v)),
        "K": lambda v: ASAM(lar=replace(lar, k=v)),
        "lambda_rank": lambda v: ASAM(settings=ASAMSettings(lambda_rank=v)),
        "T": lambda v: ASAM(lar=replace(lar, steps=v)),
        "layer": lambda v: ASAM(patch.with_config(replace(patch.config, layer=v))),
    }
    editors: dict[str, Editor] = {}
    for name, values in grid.items():
        for value in values:
            if include_defaults or str(value) != defaults[name]:
                editors[f"{name}={value}"] = make[name](value)
                if name == "layer":
                    editors[f"Patch layer={value}"] = patch.with_config(replace(patch.config, layer=value))
    return editors


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
