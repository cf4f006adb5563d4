"""The study's helpers: editors of the sensitivity grid, default settings taken from the main run,
gap closure and distance curves on hand-made tables, and one job run end to end."""

import math

import pandas as pd
import pytest

from asam_lib.asam import ASAM
from asam_lib.patch import Patch
from asam_lib.editing import FTL
from asam_lib.harness import editor_config
from asam_lib.study import (Job, ablation_editors, distance_curve, split, gap_closure, knob, run_jobs, sensitivity_defaults,
                            sensitivity_editors, sensitivity_settings, split_timings, with_default_settings)


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


def test_gap_closure_on_a_hand_made_summary():
    summary = pd.DataFrame([
        {"task": "vqa", "method": "Patch", "metric": "I-Gen", "mean": 0.8},
        {"task": "vqa", "method": "ASAM", "metric": "I-Gen", "mean": 0.9},
        {"task": "vqa", "method": "Patch", "metric": "T-Gen", "mean": 1.0},
        {"task": "vqa", "method": "ASAM", "metric": "T-Gen", "mean": 1.0},
        {"task": "vqa", "method": "Patch", "metric": "Rel", "mean": 1.0},
        {"task": "vqa", "method": "ASAM", "metric": "Rel", "mean": 1.0},
    ])
    closure = gap_closure(summary, "ASAM", "Patch").set_index("metric")
    assert set(closure.index) == {"I-Gen", "T-Gen"}
    assert closure.loc["I-Gen", "share closed"] == pytest.approx(0.5)
    assert closure.loc["I-Gen", "Patch gap"] == pytest.approx(0.2) and closure.loc["I-Gen", "ASAM gap"] == pytest.approx(0.1)
    assert math.isnan(closure.loc["T-Gen", "share closed"])  # no gap to close


def test_distance_curve_bins_members_and_ignores_the_anchor():
    members = pd.DataFrame({
        "method": ["A"] * 5, "seed": [0] * 5, "kind": ["anchor", "image", "image", "both", "both"],
        "latent_distance": [0.0, 0.05, 0.15, 0.25, 0.9], "exact": [1.0, 1.0, 0.0, 1.0, 0.0],
    })
    curve = distance_curve(members, "latent_distance", [0.0, 0.1, 0.2, 0.5])
    assert curve.n.sum() == 4  # the anchor is not a unit member to generalise to
    assert curve.set_index("bin").exact.to_dict() == {"0-0.1": 1.0, "0.1-0.2": 0.0, "0.2-0.5": 0.5}  # 0.9 counts in the last bin


def test_split_timings_separates_wall_clock_rows():
    rows = pd.DataFrame({"metric": ["Rel", "seconds", "steps"], "value": [1.0, 0.2, 5.0]})
    kept, timings = split_timings(rows)
    assert list(kept.metric) == ["Rel", "steps"] and list(timings.metric) == ["seconds"]


def test_split_covers_the_cases_once():
    job = Job("main", "vqa", 0, 10, {"Patch": Patch()}, start=1)
    parts = split(job, 4)
    assert [(p.start, p.n_edits) for p in parts] == [(1, 3), (3, 5), (5, 8), (8, 10)]  # consecutive, sizes 2-3
    assert "cases 8-9" in repr(parts[-1])
    assert len(split(Job("main", "vqa", 0, 2, {}), 5)) == 2  # no empty parts
    with pytest.raises(ValueError, match="cannot be split"):
        split(Job("main", "vqa", 0, 10, {}, mode="sequential"), 2)


def test_a_job_runs_in_this_process_and_tags_its_rows():
    whole = Job("check", "vqa", 0, 3, {"Patch": Patch()})
    rows, members = run_jobs([whole], workers=1)
    assert rows.group.eq("check").all() and members.group.eq("check").all()
    assert rows.case.nunique() == 3 and set(members.kind) == {"anchor", "text", "image", "both"}
    parts, _ = run_jobs(split(whole, 2), workers=1)
    keep = ~rows.metric.eq("seconds")
    pd.testing.assert_frame_equal(parts[~parts.metric.eq("seconds")].reset_index(drop=True), rows[keep].reset_index(drop=True))
    with pytest.raises(ValueError, match="unknown mode"):
        run_jobs([Job("check", "vqa", 0, 1, {"Patch": Patch()}, mode="parallel")], workers=1)


def test_a_job_on_a_model_folder_and_an_mmedit_file(tmp_path, small_world, tiny_parts):
    from asam_lib.benchmark import export_mmedit
    from asam_lib.editing import FTL, EditConfig
    from asam_lib.mmedit_study import StudyError, prefix_cases
    from asam_lib.prompting import PromptEncoder
    from asam_lib.records import load_records

    model, processor = tiny_parts
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    data = export_mmedit(small_world, tmp_path / "data", "vqa")
    job = Job("main", "vqa", 0, 3, {"FT-L": FTL(EditConfig(steps=2, layer=1))}, model_folder=str(tmp_path / "model"), data=str(data))
    assert "data" in repr(job)
    rows, members = run_jobs([job], workers=1)
    records = load_records(data)
    assert rows.case.nunique() == 3 and set(rows.case) <= {f"vqa-{r.index}" for r in records}
    assert set(members.kind) <= {"anchor", "text", "image", "both"} and members.latent_distance.notna().all()
    encoder = PromptEncoder(processor)
    first = prefix_cases(model, encoder, records, 2, seed=0)
    more = prefix_cases(model, encoder, records, 3, seed=0)
    assert [c.request.name for c in first] == [c.request.name for c in more[:2]]
    assert all(c.request.locality_support for c in more)  # from the pool: records that are never edited
    with pytest.raises(StudyError, match="half of them are the support pool"):
        prefix_cases(model, encoder, records, len(records), seed=0)


def test_the_predictive_mode_gives_one_row_per_edit():
    from asam_lib.lar import LARConfig

    rows, members = run_jobs([Job("predictive", "vqa", 0, 2, {"Patch": Patch()}, mode="predictive", lar=LARConfig(k=2, steps=1))], workers=1)
    assert len(rows) == 2 and members.empty
    assert {"lar_loss", "noise_loss", "lar_failure", "Unit"} <= set(rows.columns) and rows.group.eq("predictive").all()
