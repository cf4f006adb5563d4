"""ASAM with one ingredient changed: the catalogues of the studies, as data.

Each entry is a :class:`Variant` (a display name, a registered method and the dotted overrides of its defaults);
:func:`editors` builds a catalogue into name -> editor. Here: notebook 04's ablations and same-budget controls,
notebook 03's RCSL design study, and the sequential studies of ``make sequential-causes`` (the causes of ASAM's
loss of locality, and the calibrations behind the sequential option). The sensitivity grid is
:mod:`asam_lib.experiments.sensitivity`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from asam_lib.editors import methods
from asam_lib.editors.asam import SEQUENTIAL_OPTION
from asam_lib.editors.editing import Editor
from asam_lib.editors.overrides import with_overrides


@dataclass(frozen=True)
class Variant:
    """One entry of a catalogue: its display ``name``, a registered ``method`` and the dotted ``overrides`` of that
    method's defaults (:func:`asam_lib.editors.methods.build`) that make it."""

    name: str
    method: str
    overrides: Mapping[str, object] = field(default_factory=dict)

    def editor(self) -> Editor:
        """The entry's editor, built from its method's defaults and its overrides."""
        return methods.build(self.method, self.overrides)


def editors(variants: Iterable[Variant]) -> dict[str, Editor]:
    """Display name -> editor of every entry of a catalogue, in its order."""
    return {v.name: v.editor() for v in variants}


# RCSL at the configuration notebook 03's design study selects on the development edits (its rule: the largest
# paired gain in hard-tier unit consistency over ASAM without RCSL, among forms that keep Rel >= 0.99 and
# T-Loc / I-Loc >= 0.97); notebook 03 asserts on its full run that the rule picks this one.
SELECTED = {"rcsl.normalise": True, "settings.lambda_rank": 100.0}
_selected = methods.build("ASAM", SELECTED)
SELECTED_RCSL, SELECTED_LAMBDA_RANK = _selected.rcsl, _selected.settings.lambda_rank

# the same-budget control: no early stop, so the editor takes every one of its steps (see at_full_budget)
FULL_BUDGET = {"config.stop_loss": 0.0}
PATCH_AT_FULL_BUDGET = "Patch, all 30 steps"


def at_full_budget(editor: Editor) -> Editor:
    """``editor`` with its early stop switched off (:data:`FULL_BUDGET`): it takes every one of its ``steps`` Adam
    steps (30, ASAM's own maximum), whatever its loss. This is the same-budget control. ASAM stops only once the CE
    of its anchor *and* of its variants is below ``stop_loss``, so it trains longer than Patch (about 16 steps
    against 10), and random variants never slow the stop down. At full budget a control trains at least as long as
    ASAM on every edit, so whatever ASAM still adds over it is not training length. [Reconstruction: the paper gives
    no budget rule.]"""
    return with_overrides(editor, FULL_BUDGET)


BUDGET_CONTROLS = (Variant(PATCH_AT_FULL_BUDGET, "Patch", FULL_BUDGET),)


def budget_controls() -> dict[str, Editor]:
    """The main table's same-budget control: Patch at ASAM's full budget (:func:`at_full_budget`)."""
    return editors(BUDGET_CONTROLS)


# this companion's option for sequential editing, in the ablations and in notebook 04's sequential study
CALIBRATED = Variant("ASAM calibrated", "ASAM", {"settings": SEQUENTIAL_OPTION})
WITHOUT_LAR = {"settings.variants": "noise"}  # random variants of the same norm
RCSL_ALONE = {"settings.lambda_adv": 0.0, "settings.lambda_rank": 100.0}
RANDOM_VARIANTS = {**WITHOUT_LAR, "settings.lambda_rank": 0.0}
# The sequential study of what causes paper-faithful ASAM's loss of locality (`make sequential-causes`): ASAM and
# settings that each change one ingredient of it (the first four are notebook 04's own ablation and sensitivity
# entries).
SEQUENTIAL_CAUSES = (
    Variant("ASAM", "ASAM"),
    Variant("without LAR", "ASAM", WITHOUT_LAR),
    Variant("without RCSL", "ASAM", {"settings.lambda_rank": 0.0}),
    Variant("keys frozen", "ASAM", {"base.settings.key_lr_scale": 0.0}),
    Variant("eps=0.1", "ASAM", {"lar.eps": 0.1}),
    Variant("question tokens only", "ASAM", {"lar.roles": "question"}),
)
# The development-edit comparison behind CALIBRATED (`make sequential-causes`, ``--split dev``): Patch, ASAM, the
# option, and the calibrations it was chosen among (ASAMSettings' fields): thresholds re-placed against the edit's
# own memory states only (margin 0.5), against the earlier edits' inputs and their variants, and against the own
# memory and the earlier inputs together.
CALIBRATION_CANDIDATES = (
    Variant("Patch", "Patch"),
    Variant("ASAM", "ASAM"),
    CALIBRATED,
    Variant("calibrated on its own memory", "ASAM", {"settings.calibrate_bias": True}),
    Variant(
        "calibrated on earlier inputs and variants",
        "ASAM",
        {"settings": replace(SEQUENTIAL_OPTION, calibrate_edits="cover")},
    ),
    Variant(
        "calibrated on its own memory and earlier inputs",
        "ASAM",
        {"settings": replace(SEQUENTIAL_OPTION, calibrate_memory=True)},
    ),
)
# ASAM and its ablations (docs/method.md, "Ablations and sensitivity"); see ablation_editors
ABLATIONS = (
    Variant("ASAM", "ASAM"),
    Variant("without LAR", "ASAM", WITHOUT_LAR),
    Variant("without RCSL", "ASAM", {"settings.lambda_rank": 0.0}),
    Variant("without asymmetry", "ASAM", {"rcsl.asymmetric": False}),
    Variant("ASAM on FT-L", "ASAM", {"base": "FT-L"}),
    Variant("RCSL alone, lambda_rank=100", "ASAM", RCSL_ALONE),
    CALIBRATED,
    Variant("RCSL selected", "ASAM", SELECTED),
    Variant("RCSL selected, without asymmetry", "ASAM", {**SELECTED, "rcsl.asymmetric": False}),
    Variant("without LAR, all 30 steps", "ASAM", {**WITHOUT_LAR, **FULL_BUDGET}),
    Variant("RCSL alone, all 30 steps", "ASAM", {**RCSL_ALONE, **FULL_BUDGET}),
    Variant("random variants, without RCSL", "ASAM", RANDOM_VARIANTS),
    Variant("random variants, RCSL selected", "ASAM", {**RANDOM_VARIANTS, **SELECTED}),
)


def ablation_editors() -> dict[str, Editor]:
    """ASAM and its ablations (:data:`ABLATIONS`; docs/method.md, "Ablations and sensitivity"): no LAR (random
    variants of the same norm), no RCSL, no asymmetry, ASAM on FT-L instead of Patch, RCSL alone (the variants enter
    only through H, not through their CE: lambda_adv = 0) at a large lambda_rank, this companion's option for
    sequential editing (:data:`asam_lib.editors.asam.SEQUENTIAL_OPTION`: what it costs a single edit), and RCSL at the
    configuration the design study selects (:data:`SELECTED`), with and without its asymmetry: where RCSL acts, its
    asymmetry can be tested.

    The controls: *without LAR* and *RCSL alone* at full budget (:func:`at_full_budget`), and RCSL where it has
    room to act: with random variants, whose unit consistency is well below the ceiling that ASAM's own variants
    reach, the selected RCSL against no RCSL at all."""
    return editors(ABLATIONS)


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


def _rank(name: str, weight: float, base: Mapping[str, object] | None = None, **rcsl) -> Variant:
    """A design-study entry: ASAM (on ``base``) with RCSL's weight ``weight`` and RCSL fields ``rcsl``."""
    return Variant(
        name, "ASAM", {**(base or {}), "settings.lambda_rank": weight, **{f"rcsl.{k}": v for k, v in rcsl.items()}}
    )


FTL3 = {"base": "FT-L", "base.modules": ("gate_proj", "up_proj", "down_proj")}  # FT-L over the whole FFN
# the RCSL design study of notebook 03; see rcsl_design_editors
RCSL_DESIGN = (
    _rank("without RCSL", 0.0),
    *[_rank(f"block output, lambda={w:g}", w) for w in (1.0, 10.0, 100.0, 1000.0)],
    *[_rank(f"block output centred, lambda={w:g}", w, centre=True) for w in (10.0, 100.0)],
    *[_rank(f"block output row-normalised, lambda={w:g}", w, normalise=True) for w in (100.0, 1000.0)],
    # the other RCSL objectives (rcsl.OBJECTIVES) at the row-normalised form
    *[
        _rank(f"block output row-normalised, {objective}, lambda=100", 100.0, normalise=True, objective=objective)
        for objective in ("tail_sum", "nuclear")
    ],
    _rank("what the edit adds, lambda=100", 100.0, site="edit_delta"),
    _rank("Patch neurons, lambda=100", 100.0, site="patch_keys"),
    _rank("FT-L3 without RCSL", 0.0, FTL3),
    _rank("FT-L3, FFN hidden, lambda=100", 100.0, FTL3, site="ffn_hidden"),
)


def rcsl_design_editors() -> dict[str, Editor]:
    """The RCSL design study (notebook 03, on the development split; :data:`RCSL_DESIGN`): where H is read and how
    it is normalised, and a dose-response of lambda_rank, each beside its own no-RCSL control. ``ffn_hidden``
    needs FFN weights below the site that the edit trains, so it runs on FT-L over gate, up and down
    projections ("FT-L3", :data:`FTL3`), with that base's own control."""
    return editors(RCSL_DESIGN)
