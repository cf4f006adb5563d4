"""Summaries of the study on hand-made tables: targets, the ablation table, gap closure, distance curves."""

import math
from dataclasses import replace

import pandas as pd
import pytest

from asam_lib.editors.methods import METRICS
from asam_lib.evaluation.summaries import (
    TARGETS,
    ablation_rows,
    ablation_table,
    distance_bins,
    distance_curve,
    gap_closure,
    share_of_gap_closed,
    target_checks,
)


def _summary(asam: dict, patch: dict, task="vqa"):
    rows = [
        {"task": task, "method": m, "metric": k, "protocol": "exact", "mean": v}
        for m, d in [("ASAM", asam), ("Patch", patch)]
        for k, v in d.items()
    ]
    return pd.DataFrame(rows)


GOOD = {"Rel": 1.0, "T-Gen": 1.0, "I-Gen": 0.95, "TI-Gen": 0.9, "T-Loc": 0.99, "I-Loc": 0.98}
PATCH = {"Rel": 1.0, "T-Gen": 1.0, "I-Gen": 0.8, "TI-Gen": 0.8, "T-Loc": 1.0, "I-Loc": 1.0}


def test_target_checks_meet_and_miss_each_threshold():
    steps = pd.DataFrame({"ASAM": [12.0], "Patch": [6.0]}, index=["vqa"])
    checks = target_checks(_summary(GOOD, PATCH), ["vqa"], steps).set_index("target")
    assert checks.met.all() and "time per edit <= 3x Patch" not in checks.index  # no wall times: no time target
    assert checks.loc["closes >= 1/2 of Patch's I-Gen gap", "measured"] == "0.75 (gap 0.200 -> 0.050)"
    assert checks.loc["closes >= 1/2 of Patch's T-Gen gap", "met"]  # no gap to close counts as met
    bad = {**GOOD, "I-Gen": 0.85, "Rel": 0.98, "I-Loc": 0.96}
    seconds = pd.DataFrame({"ASAM": [3.5], "Patch": [1.0]}, index=["vqa"])
    missed = target_checks(_summary(bad, PATCH), ["vqa"], steps, seconds).set_index("target")
    assert not missed.met[
        ["closes >= 1/2 of Patch's I-Gen gap", "Rel >= 0.99", "I-Loc >= 0.97", "time per edit <= 3x Patch"]
    ].any()
    assert missed.met[["closes >= 1/2 of Patch's TI-Gen gap", "T-Loc >= 0.97"]].all()
    assert missed.loc["time per edit <= 3x Patch", "measured"] == "3.50x (steps 12.0 vs 6.0)"
    assert TARGETS.gap_share == 0.5 and TARGETS.min_rel == 0.99 and TARGETS.min_loc == 0.97


def test_each_generality_target_is_judged_against_the_stronger_baseline():
    longer = {**PATCH, "I-Gen": 0.88, "TI-Gen": 0.7}  # Patch trained longer: stronger on I-Gen, weaker on TI-Gen
    summary = pd.concat([_summary(GOOD, PATCH), _summary({}, longer).assign(method="Patch, longer")])
    steps = pd.DataFrame({"ASAM": [12.0], "Patch": [6.0], "Patch, longer": [30.0]}, index=["vqa"])
    checks = target_checks(summary, ["vqa"], steps, base=["Patch", "Patch, longer"]).set_index("target")
    against = "closes >= 1/2 of the stronger of Patch / Patch, longer's"
    # I-Gen: ASAM's 0.95 closes 0.58 of the longer Patch's gap 0.12; TI-Gen: Patch's own gap 0.2 is the smaller one
    assert checks.loc[f"{against} I-Gen gap", "measured"] == "0.58 against Patch, longer (gap 0.120 -> 0.050)"
    assert checks.loc[f"{against} TI-Gen gap", "measured"] == "0.50 against Patch (gap 0.200 -> 0.100)"
    assert checks.met.all()
    worse = {**longer, "I-Gen": 0.92}  # now ASAM closes only 0.375 of the stronger baseline's I-Gen gap
    summary = pd.concat([_summary(GOOD, PATCH), _summary({}, worse).assign(method="Patch, longer")])
    missed = target_checks(summary, ["vqa"], steps, base=["Patch", "Patch, longer"]).set_index("target")
    assert not missed.loc[f"{against} I-Gen gap", "met"]


def _metric_rows(method, cases, value, group, seed=0, task="vqa", protocol="exact"):
    return pd.DataFrame(
        [
            {
                "method": method,
                "seed": seed,
                "task": task,
                "case": c,
                "metric": m,
                "protocol": "answer_span" if protocol == "exact" and m.endswith("Loc") else protocol,
                "value": value,
                "group": group,
            }
            for c in cases
            for m in METRICS
        ]
    )


def test_the_ablation_table_compares_every_ablation_on_the_ablation_edits_only():
    single = pd.concat(
        [
            _metric_rows("Patch", ["a", "b", "c"], 0.5, "main"),
            _metric_rows("ASAM", ["a", "b", "c"], 0.9, "main"),
            _metric_rows("ASAM", ["a"], 0.0, "main", seed=1),  # another seed: not among the seeds asked for
            _metric_rows("ASAM", ["a"], 0.0, "main", protocol="token_acc"),  # another protocol
            _metric_rows("without LAR", ["a", "b"], 0.7, "ablation"),
            _metric_rows("FT-L", ["a", "b"], 0.1, "main"),  # not an ablation
        ]
    )
    rows = ablation_rows(single, ["ASAM", "without LAR"], task="vqa", seeds=[0])
    assert set(rows.case) == {"a", "b"} and set(rows.method) == {"Patch", "ASAM", "without LAR"}
    table = ablation_table(rows, ["ASAM", "without LAR"])
    assert list(table.index) == ["Patch", "ASAM", "without LAR"] and list(table.columns) == list(METRICS)
    assert table.loc["ASAM", "I-Gen"] == 0.9 and table.loc["without LAR", "I-Gen"] == 0.7
    closed = share_of_gap_closed(table, "I-Gen")
    assert closed["Patch"] == 0 and closed["ASAM"] == pytest.approx(0.8) and closed["without LAR"] == pytest.approx(0.4)
    assert share_of_gap_closed(table.assign(**{"I-Gen": 1.0}), "I-Gen").isna().all()  # no gap: nothing to close


def test_gap_closure_on_a_hand_made_summary():
    summary = pd.DataFrame(
        [
            {"task": "vqa", "method": "Patch", "metric": "I-Gen", "mean": 0.8},
            {"task": "vqa", "method": "ASAM", "metric": "I-Gen", "mean": 0.9},
            {"task": "vqa", "method": "Patch", "metric": "T-Gen", "mean": 1.0},
            {"task": "vqa", "method": "ASAM", "metric": "T-Gen", "mean": 1.0},
            {"task": "vqa", "method": "Patch", "metric": "Rel", "mean": 1.0},
            {"task": "vqa", "method": "ASAM", "metric": "Rel", "mean": 1.0},
        ]
    )
    closure = gap_closure(summary, "ASAM", "Patch").set_index("metric")
    assert set(closure.index) == {"I-Gen", "T-Gen"}
    assert closure.loc["I-Gen", "share closed"] == pytest.approx(0.5)
    assert closure.loc["I-Gen", "Patch gap"] == pytest.approx(0.2) and closure.loc[
        "I-Gen", "ASAM gap"
    ] == pytest.approx(0.1)
    assert math.isnan(closure.loc["T-Gen", "share closed"])  # no gap to close


def test_distance_bins_are_fixed_or_quantile_and_centred_on_their_mean():
    values = pd.Series([0.05, 0.15, 0.25, 0.9], index=[3, 4, 5, 6])
    fixed = distance_bins(values, [0.0, 0.1, 0.2, 0.5])
    assert list(fixed.index) == [3, 4, 5, 6] and list(fixed.bin.astype(str)) == [
        "0-0.1",
        "0.1-0.2",
        "0.2-0.5",
        "0.2-0.5",
    ]
    assert fixed.centre.tolist() == pytest.approx([0.05, 0.15, 0.575, 0.575])  # 0.9 counts in the last bin
    halves = distance_bins(values, n_bins=2)
    assert halves.bin.nunique() == 2 and halves.centre.tolist() == pytest.approx([0.1, 0.1, 0.575, 0.575])


def test_distance_curve_bins_members_and_ignores_the_anchor():
    members = pd.DataFrame(
        {
            "method": ["A"] * 5,
            "seed": [0] * 5,
            "kind": ["anchor", "image", "image", "both", "both"],
            "latent_distance": [0.0, 0.05, 0.15, 0.25, 0.9],
            "exact": [1.0, 1.0, 0.0, 1.0, 0.0],
        }
    )
    curve = distance_curve(members, "latent_distance", [0.0, 0.1, 0.2, 0.5])
    assert curve.n.sum() == 4  # the anchor is not a unit member to generalise to
    assert curve.set_index("bin").exact.to_dict() == {
        "0-0.1": 1.0,
        "0.1-0.2": 0.0,
        "0.2-0.5": 0.5,
    }  # 0.9 counts in the last bin


def _per_edit(method, values, tier="standard", metric="I-Gen", protocol="exact"):
    """Rows of ``values[seed][i]`` for case i under each seed."""
    return pd.DataFrame(
        [
            {"task": "vqa", "tier": tier, "method": method, "metric": metric, "protocol": protocol}
            | {"seed": s, "case": f"vqa-{i}", "value": v}
            for s, row in enumerate(values)
            for i, v in enumerate(row)
        ]
    )


def test_crossed_bootstrap_is_degenerate_for_constant_values_and_widens_with_spread_over_seeds():
    from asam_lib.evaluation.summaries import crossed_bootstrap

    constant = _per_edit("ASAM", [[0.5] * 6] * 3).set_index(["seed", "case"]).value
    assert crossed_bootstrap(constant) == (0.5, 0.5, 0.5)
    by_seed = _per_edit("ASAM", [[0.2] * 6, [0.5] * 6, [0.8] * 6]).set_index(["seed", "case"]).value
    by_case = _per_edit("ASAM", [[0.2, 0.5, 0.8] * 2] * 3).set_index(["seed", "case"]).value
    mean, low, high = crossed_bootstrap(by_seed)
    assert mean == pytest.approx(0.5) and low < 0.4 and high > 0.6  # three seeds that disagree: a wide interval
    assert crossed_bootstrap(by_case)[0] == pytest.approx(0.5) and crossed_bootstrap(by_case)[1] > low


def test_paired_differences_pair_the_same_edits_and_name_the_comparison():
    from asam_lib.evaluation.summaries import paired_differences

    a = _per_edit("ASAM", [[1.0, 0.9, 0.8, 1.0]] * 3)
    b = _per_edit("without RCSL", [[0.9, 0.8, 0.7, 0.9]] * 3)
    extra = _per_edit("without RCSL", [[0.0] * 6] * 3).query("case in ['vqa-4', 'vqa-5']")  # unpaired: left out
    table = paired_differences(pd.concat([a, b, extra]), [("ASAM", "without RCSL")])
    row = table.iloc[0]
    assert list(table.columns) == [
        "task",
        "tier",
        "comparison",
        "metric",
        "mean_diff",
        "ci_low",
        "ci_high",
        "n_edits",
        "n_seeds",
    ]
    assert row.comparison == "ASAM - without RCSL" and row.n_edits == 12 and row.n_seeds == 3
    assert (
        row.mean_diff == pytest.approx(0.1) and row.ci_low == pytest.approx(0.1) and row.ci_high == pytest.approx(0.1)
    )
    with pytest.raises(ValueError, match="no rows of 'GRACE'"):
        paired_differences(a, [("ASAM", "GRACE")])


def test_primary_rows_read_the_hard_tier_over_known_members_and_locality_on_the_answer_span():
    from asam_lib.evaluation.summaries import primary_rows

    rows = pd.concat(
        [
            _per_edit("ASAM", [[1.0]], tier="hard", protocol="exact"),
            _per_edit("ASAM", [[0.5]], tier="hard", protocol="exact_known"),
            _per_edit("ASAM", [[float("nan")]], tier="hard", protocol="exact_known", metric="T-Gen"),
            _per_edit("ASAM", [[0.7]], protocol="exact"),
            _per_edit("ASAM", [[0.9]], metric="T-Loc", protocol="answer_span"),
            _per_edit("ASAM", [[0.8]], metric="T-Loc", protocol="easyedit_topk"),
        ]
    )
    chosen = primary_rows(rows)
    assert sorted(zip(chosen.tier, chosen.metric, chosen.value)) == [
        ("hard", "I-Gen", 0.5),
        ("standard", "I-Gen", 0.7),
        ("standard", "T-Loc", 0.9),
    ]


def test_the_rcsl_threshold_needs_the_gain_an_interval_above_zero_and_kept_reliability_and_locality():
    from asam_lib.evaluation.summaries import rcsl_target_check

    def paired(mean, low, high):
        row = {"comparison": "RCSL selected - without RCSL", "tier": "hard", "metric": "Unit"}
        return pd.DataFrame([row | {"mean_diff": mean, "ci_low": low, "ci_high": high}])

    table = pd.DataFrame({"Rel": [1.0], "T-Loc": [0.99], "I-Loc": [0.98]}, index=["RCSL selected"])
    assert rcsl_target_check(paired(0.05, 0.01, 0.09), table)["met"]
    assert not rcsl_target_check(paired(0.02, 0.01, 0.03), table)["met"]  # too small
    assert not rcsl_target_check(paired(0.05, -0.01, 0.09), table)["met"]  # interval includes zero
    assert not rcsl_target_check(paired(0.05, 0.01, 0.09), table.assign(**{"I-Loc": 0.96}))["met"]  # locality lost
    assert "+0.050 [+0.010, +0.090]" in rcsl_target_check(paired(0.05, 0.01, 0.09), table)["measured"]
    with pytest.raises(ValueError, match="no hard-tier Unit row"):
        rcsl_target_check(paired(0.05, 0.01, 0.09).assign(tier="standard"), table)


def test_sequential_thresholds_compare_with_the_base_editor_at_T_and_with_asam_on_single_edits():
    from asam_lib.evaluation.summaries import SEQUENTIAL_TARGETS, sequential_target_checks

    def at(T, **means):
        return [
            {"method": m, "T": T, "metric": k, "mean": v, "n_seeds": 3} for m, d in means.items() for k, v in d.items()
        ]

    fixed = {"Rel": 0.96, "TI-Gen": 0.80, "T-Loc": 0.69, "I-Loc": 0.70}
    patch = {"Rel": 0.90, "TI-Gen": 0.74, "T-Loc": 0.70, "I-Loc": 0.71}
    sequential = pd.DataFrame(at(50, fixed=fixed, Patch=patch) + at(100, fixed={**fixed, "Rel": 0.1}, Patch=patch))
    single = pd.DataFrame(
        [
            {"comparison": "ASAM - fixed", "tier": "standard", "metric": "I-Gen", "mean_diff": 0.005, "n_edits": 24},
            {"comparison": "ASAM - fixed", "tier": "hard", "metric": "Unit", "mean_diff": -0.02, "n_edits": 24},
            {"comparison": "ASAM - other", "tier": "hard", "metric": "Unit", "mean_diff": 0.5, "n_edits": 24},
        ]
    )
    checks = sequential_target_checks(sequential, single, "fixed").set_index("target")
    assert len(checks) == 5 and checks.met.all(), checks  # at T = 50, not at 100; another comparison is not read
    assert checks.loc["I-Loc >= Patch's - 0.02 (T = 50, 3 seed(s))", "measured"] == "0.700 vs 0.710 (-0.010)"
    worse = sequential.assign(
        mean=sequential["mean"].where(sequential.metric.ne("TI-Gen") | sequential.method.ne("fixed"), 0.78)
    )
    costly = single.assign(mean_diff=[0.02, -0.02, 0.5])
    checks = sequential_target_checks(worse, costly, "fixed").set_index("target")
    assert list(checks.index[~checks.met]) == [
        "TI-Gen >= Patch's + 0.05 (T = 50, 3 seed(s))",
        "single edits: no metric more than 0.01 below ASAM's",
    ]
    assert "largest drop +0.020 (standard I-Gen" in checks.measured.iloc[-1]
    with pytest.raises(ValueError, match="T = 20"):
        sequential_target_checks(sequential, single, "fixed", targets=replace(SEQUENTIAL_TARGETS, at_T=20))
