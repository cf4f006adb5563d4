"""ASAM's ablations and the sensitivity grid: each changes what its name says, and the default settings
come from the main run."""

import pandas as pd

from asam_lib.ablations import (
    ablation_editors,
    knob,
    sensitivity_defaults,
    sensitivity_editors,
    sensitivity_settings,
    with_default_settings,
)
from asam_lib.asam import ASAM
from asam_lib.editing import FTL
from asam_lib.harness import editor_config
from asam_lib.patch import Patch


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
    assert editors["without RCSL"].settings.lambda_rank == 0 and editors["without RCSL"].settings.lambda_adv == full.settings.lambda_adv
    assert not editors["without asymmetry"].rcsl.asymmetric and full.rcsl.asymmetric
    assert editors["RCSL tail_sum"].rcsl.objective == "tail_sum" and editors["RCSL nuclear"].rcsl.objective == "nuclear"
    assert isinstance(editors["ASAM on FT-L"].base, FTL) and isinstance(full.base, Patch)
    alone, strong = editors["RCSL alone"], editors["RCSL alone, lambda_rank=100"]
    assert alone.settings.lambda_adv == strong.settings.lambda_adv == 0
    assert alone.settings.lambda_rank == full.settings.lambda_rank and strong.settings.lambda_rank == 100


def _rows(method, cases, value, group="main", seed=0, task="vqa"):
    return pd.DataFrame([{"method": method, "seed": seed, "task": task, "case": c, "metric": "I-Gen", "value": value, "group": group} for c in cases])


def test_default_settings_come_from_the_main_run_on_the_same_cases():
    main = pd.concat([_rows("ASAM", ["a", "b", "c"], 0.9), _rows("Patch", ["a", "b", "c"], 0.5), _rows("ASAM", ["a"], 0.1, seed=1)])
    sens = _rows("eps=0.1", ["a", "b"], 0.7, group="sensitivity")
    out = with_default_settings(sens, main, {"eps": "0.3", "layer": "2"})
    assert set(out.method) == {"eps=0.1", "eps=0.3", "layer=2", "Patch layer=2"}
    assert set(out[out.method == "eps=0.3"].case) == {"a", "b"}  # same cases and seed as the sensitivity rows
    assert out[out.method == "eps=0.3"].value.eq(0.9).all() and out[out.method == "Patch layer=2"].value.eq(0.5).all()
    assert out.group.eq("sensitivity").all()


def test_knob_splits_editor_names():
    assert knob("eps=0.1") == ("eps", "0.1")
    assert knob("Patch layer=2") == ("Patch layer", "2")
