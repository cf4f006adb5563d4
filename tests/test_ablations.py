"""ASAM's ablations and the sensitivity grid: each changes what its name says (its settings, and the term of
ASAM's loss it names, and nothing else), and the default settings come from the main run.

The loss-term tests edit the same request with the same seed on the tiny model with every ablation, so at the
first step (same installed patch, same variants) the loss terms of an ablation and of ASAM compare one by one.
"""

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from asam_lib.editors import methods, rcsl
from asam_lib.editors.asam import ASAM
from asam_lib.editors.editing import FTL, EditConfig
from asam_lib.editors.patch import Patch
from asam_lib.evaluation.harness import editor_config
from asam_lib.experiments.ablations import (
    CONTROLS,
    PATCH_AT_FULL_BUDGET,
    Variant,
    ablation_editors,
    at_full_budget,
    budget_controls,
    rcsl_design_editors,
)
from asam_lib.experiments.sensitivity import (
    knob,
    sensitivity_defaults,
    sensitivity_editors,
    sensitivity_settings,
    with_default_settings,
)
from asam_lib.experiments.study import sequential_study_editors

from helpers import make_request

FIXTURE = Path(__file__).parent / "fixtures" / "catalogue_editors.json"


def test_sensitivity_grid_leaves_out_the_defaults_unless_asked():
    defaults = sensitivity_defaults()
    assert defaults == {"eps": "0.3", "K": "4", "lambda_rank": "1.0", "T": "4", "layer": "2"}
    editors = sensitivity_editors()
    assert "eps=0.1" in editors and "eps=0.3" not in editors and "Patch layer=2" not in editors
    assert len(editors) == 2 * 4 + 2 * 2  # two other values per ASAM knob, two other layers for ASAM and Patch
    full = sensitivity_editors(include_defaults=True)
    assert len(full) == 3 * 4 + 2 * 3
    assert full["eps=0.5"].lar.eps == 0.5 and full["K=8"].lar.k == 8 and full["T=2"].lar.steps == 2
    assert full["lambda_rank=10.0"].settings.lambda_rank == 10.0
    assert isinstance(full["layer=3"], ASAM) and full["layer=3"].config.layer == 3
    assert isinstance(full["Patch layer=1"], Patch) and full["Patch layer=1"].config.layer == 1
    only_eps = sensitivity_editors({"eps": (0.3, 0.7)})
    assert list(only_eps) == ["eps=0.7"]
    assert set(sensitivity_settings()) == set(defaults)


def test_each_ablation_changes_what_its_name_says_and_no_two_coincide():
    editors = ablation_editors()
    full = editors["ASAM"]
    assert len({editor_config(e) for e in editors.values()}) == len(editors)
    assert editors["without LAR"].settings.variants == "noise"
    assert (
        editors["without RCSL"].settings.lambda_rank == 0
        and editors["without RCSL"].settings.lambda_adv == full.settings.lambda_adv
    )
    assert not editors["without asymmetry"].rcsl.asymmetric and full.rcsl.asymmetric
    assert isinstance(editors["ASAM on FT-L"].base, FTL) and isinstance(full.base, Patch)
    strong = editors["RCSL alone, lambda_rank=100"]
    assert strong.settings.lambda_adv == 0 and strong.settings.lambda_rank == 100
    selected, symmetric = editors["RCSL selected"], editors["RCSL selected, without asymmetry"]
    assert selected.rcsl.normalise and selected.rcsl.asymmetric and not symmetric.rcsl.asymmetric
    assert selected.settings.lambda_rank == symmetric.settings.lambda_rank == 100


def test_every_ablation_is_compared_once_and_the_selected_rcsl_against_its_own_controls():
    from asam_lib.experiments.ablations import ablation_pairs

    pairs = ablation_pairs()
    compared = {b for _, b in pairs}
    assert set(ablation_editors()) - {"ASAM", "RCSL selected", *CONTROLS} <= compared and "Patch" in compared
    assert ("RCSL selected", "without RCSL") in pairs and ("RCSL selected", "RCSL selected, without asymmetry") in pairs
    assert len(pairs) == len(set(pairs))


def test_each_same_budget_control_is_paired_with_what_it_controls():
    from asam_lib.experiments.ablations import ablation_pairs

    pairs = ablation_pairs()
    assert ("ASAM", PATCH_AT_FULL_BUDGET) in pairs and ("ASAM", "without LAR, all 30 steps") in pairs
    assert ("RCSL alone, lambda_rank=100", "Patch") in pairs
    assert ("RCSL alone, all 30 steps", PATCH_AT_FULL_BUDGET) in pairs
    assert ("random variants, RCSL selected", "random variants, without RCSL") in pairs


def test_the_full_budget_controls_only_switch_the_early_stop_off():
    editors = ablation_editors()
    for control, base in [
        ("without LAR, all 30 steps", "without LAR"),
        ("RCSL alone, all 30 steps", "RCSL alone, lambda_rank=100"),
    ]:
        assert editors[control].config == replace(editors[base].config, stop_loss=0.0)
        assert (editors[control].lar, editors[control].rcsl, editors[control].settings) == (
            editors[base].lar,
            editors[base].rcsl,
            editors[base].settings,
        )
    assert budget_controls()[PATCH_AT_FULL_BUDGET].config == replace(Patch().config, stop_loss=0.0)
    random_variants = editors["random variants, without RCSL"].settings
    assert random_variants.variants == "noise" and random_variants.lambda_rank == 0
    with_rcsl = editors["random variants, RCSL selected"]
    assert with_rcsl.settings == replace(random_variants, lambda_rank=100) and with_rcsl.rcsl.normalise


def test_at_full_budget_an_editor_takes_every_step_whatever_its_loss(small_world, tiny_parts, tiny_encoder):
    model, _ = tiny_parts
    stops_at_once = Patch().with_config(EditConfig(layer=1, steps=4, lr=0.05, stop_loss=1e9))
    for editor, steps in [(stops_at_once, 1), (at_full_budget(stops_at_once), 4)]:
        handle = editor.edit(model, tiny_encoder, make_request(small_world), seed=0)
        try:
            assert handle.steps == steps
        finally:
            handle.restore()


def _rows(method, cases, value, group="main", seed=0, task="vqa"):
    return pd.DataFrame(
        [
            {"method": method, "seed": seed, "task": task, "case": c, "metric": "I-Gen", "value": value, "group": group}
            for c in cases
        ]
    )


def test_default_settings_come_from_the_main_run_on_the_same_cases():
    main = pd.concat(
        [_rows("ASAM", ["a", "b", "c"], 0.9), _rows("Patch", ["a", "b", "c"], 0.5), _rows("ASAM", ["a"], 0.1, seed=1)]
    )
    sens = _rows("eps=0.1", ["a", "b"], 0.7, group="sensitivity")
    out = with_default_settings(sens, main, {"eps": "0.3", "layer": "2"})
    assert set(out.method) == {"eps=0.1", "eps=0.3", "layer=2", "Patch layer=2"}
    assert set(out[out.method == "eps=0.3"].case) == {"a", "b"}  # same cases and seed as the sensitivity rows
    assert out[out.method == "eps=0.3"].value.eq(0.9).all() and out[out.method == "Patch layer=2"].value.eq(0.5).all()
    assert out.group.eq("sensitivity").all()


def test_knob_splits_editor_names():
    assert knob("eps=0.1") == ("eps", "0.1")
    assert knob("Patch layer=2") == ("Patch layer", "2")


STEPS = 3  # Adam's first step is the sign of the gradient: a changed gradient shows from the third step on
TERMS = ["edit", "adversarial", "rank", "locality", "activation", "memory"]  # ASAM's loss terms, and Patch's own


@pytest.fixture(scope="module")
def terms(small_world, tiny_parts, tiny_encoder) -> dict[str, list[dict[str, float]]]:
    """Ablation name -> its loss terms at each of STEPS steps of the same edit."""
    model, _ = tiny_parts
    losses = {}
    for name, editor in ablation_editors().items():
        editor = editor.with_config(
            EditConfig(layer=1, steps=STEPS, lr=0.05, stop_loss=0.0)
        )  # the tiny model has two layers
        handle = editor.edit(model, tiny_encoder, make_request(small_world), seed=0)
        losses[name] = handle.losses
        handle.restore()
    return losses


def _differs_only_in(terms, name, changed):
    """Assert that ablation ``name``'s first-step terms equal ASAM's except those in ``changed``."""
    asam, ablation = terms["ASAM"][0], terms[name][0]
    for term in TERMS:
        if term not in changed and term in asam:
            assert ablation.get(term) == asam[term], (
                f"{name!r} changed ASAM's {term} term ({ablation.get(term)} vs {asam[term]})"
            )


def test_the_catalogue_is_the_one_notebook_04_and_the_readme_describe(terms):
    assert list(terms) == [
        "ASAM",
        "without LAR",
        "without RCSL",
        "without asymmetry",
        "ASAM on FT-L",
        "RCSL alone, lambda_rank=100",
        "ASAM calibrated",
        "RCSL selected",
        "RCSL selected, without asymmetry",
        "without LAR, all 30 steps",
        "RCSL alone, all 30 steps",
        "random variants, without RCSL",
        "random variants, RCSL selected",
    ]
    assert {"edit", "adversarial", "rank", "locality", "memory"} <= set(terms["ASAM"][0])


def test_without_lar_the_variants_are_random_and_break_the_edit_less(terms):
    asam, ablation = terms["ASAM"][0], terms["without LAR"][0]
    assert ablation["adversarial"] < asam["adversarial"], (
        "random variants of the same norm should have a lower CE than LAR's"
    )
    _differs_only_in(terms, "without LAR", {"adversarial", "rank"})


def test_without_rcsl_drops_the_rank_term_only(terms):
    assert "rank" not in terms["without RCSL"][0]
    _differs_only_in(terms, "without RCSL", {"rank"})


def test_without_asymmetry_keeps_the_rank_value_but_changes_its_gradient(terms):
    _differs_only_in(terms, "without asymmetry", set())  # the stop-gradient does not change the value...
    assert terms["without asymmetry"][2] != terms["ASAM"][2], "...but the anchor's gradient changes the edit"


def test_the_selected_rcsl_changes_the_rank_term_only_and_its_asymmetry_only_the_gradient(terms):
    assert terms["RCSL selected"][0]["rank"] != terms["ASAM"][0]["rank"]
    _differs_only_in(terms, "RCSL selected", {"rank"})
    assert terms["RCSL selected, without asymmetry"][0]["rank"] == terms["RCSL selected"][0]["rank"]
    assert terms["RCSL selected, without asymmetry"][2] != terms["RCSL selected"][2]


def test_asam_on_ftl_trains_ftl_instead_of_patchs_neurons(terms):
    assert "memory" not in terms["ASAM on FT-L"][0] and "activation" not in terms["ASAM on FT-L"][0], (
        "Patch's own terms remain"
    )
    assert {"edit", "adversarial", "rank", "locality"} <= set(terms["ASAM on FT-L"][0])


def test_rcsl_alone_drops_the_variants_cross_entropy_and_lambda_100_scales_the_rank_term(terms):
    strong = terms["RCSL alone, lambda_rank=100"][0]
    assert strong["adversarial"] == 0
    _differs_only_in(terms, "RCSL alone, lambda_rank=100", {"adversarial", "rank"})
    assert strong["rank"] == pytest.approx(100 * terms["ASAM"][0]["rank"], rel=1e-6)


def test_random_variants_without_rcsl_drop_the_rank_term_and_rcsl_selected_brings_it_back(terms):
    assert "rank" not in terms["random variants, without RCSL"][0]
    _differs_only_in(terms, "random variants, without RCSL", {"adversarial", "rank"})
    assert terms["random variants, RCSL selected"][0]["rank"] > 0
    _differs_only_in(terms, "random variants, RCSL selected", {"adversarial", "rank"})


CATALOGUES = {
    "ablation_editors": ablation_editors,
    "budget_controls": budget_controls,
    "rcsl_design_editors": rcsl_design_editors,
    "sensitivity_editors": sensitivity_editors,
    "sensitivity_editors_with_defaults": lambda: sensitivity_editors(include_defaults=True),
    "methods": methods.editors,
    "sequential_study_editors": sequential_study_editors,
}


# entries added to a catalogue after the fixture was captured: new rows of a study, not changed ones
ADDED_SINCE_THE_FIXTURE = {
    "rcsl_design_editors": (
        "block output row-normalised, tail_sum, lambda=100",
        "block output row-normalised, nuclear, lambda=100",
    ),
}


@pytest.mark.parametrize("catalogue", CATALOGUES)
def test_every_catalogue_entry_is_the_editor_it_was_before_the_catalogues_became_overrides(catalogue):
    """tests/fixtures/catalogue_editors.json holds each entry as the code built it by hand (``ASAM(settings=
    ASAMSettings(...))``) before the catalogues became (name, method, overrides) data: the same names in the same
    order, the same type, the same settings (repr) and the same hash, which keys the case cache and study.json, so
    no committed result moves."""
    before = json.loads(FIXTURE.read_text())[catalogue]
    now = CATALOGUES[catalogue]()
    added = ADDED_SINCE_THE_FIXTURE.get(catalogue, ())
    assert all(name in now for name in added), f"{catalogue} lacks the entries {added}"
    now = {name: editor for name, editor in now.items() if name not in added}
    assert list(now) == sorted(before, key=list(now).index) and set(now) == set(before)
    for name, editor in now.items():
        assert {"type": type(editor).__name__, "repr": repr(editor), "config": editor_config(editor)} == before[name]
    assert sensitivity_defaults() == json.loads(FIXTURE.read_text())["sensitivity_defaults"]


def test_the_sensitivity_grid_finds_a_default_by_value_not_by_its_spelling():
    assert "eps=0.30" not in sensitivity_editors({"eps": (0.30, 0.1)})  # 0.30 is eps's default, spelt otherwise
    assert list(sensitivity_editors({"lambda_rank": (1, 10)})) == ["lambda_rank=10"]  # 1 == 1.0, the default


def test_a_catalogue_entry_is_its_method_built_with_its_overrides():
    entry = Variant("eps=0.1", "ASAM", {"lar.eps": 0.1})
    assert editor_config(entry.editor()) == editor_config(methods.build("ASAM", {"lar.eps": 0.1}))
    assert entry.editor().lar == replace(ASAM().lar, eps=0.1)


def test_the_rcsl_design_study_compares_every_rcsl_objective():
    objectives = {editor.rcsl.objective for editor in rcsl_design_editors().values()}
    assert objectives == set(rcsl.OBJECTIVES), f"the design study leaves out {set(rcsl.OBJECTIVES) - objectives}"
