"""Notebook 04's tables from per-edit rows: formatting, binary overstatement, steps, headroom, distance curves with
their edit counts, the sequential summary (against the committed table) and the sensitivity comparisons."""

import pandas as pd
import pytest

from asam_lib.common import paths
from asam_lib.evaluation.summaries import distance_curve
from asam_lib.experiments.study_tables import (
    binary_overstatement,
    distance_curves,
    firing_summary,
    headroom_table,
    interval_cells,
    judged_checkpoint,
    per_edit_mean,
    sensitivity_comparisons,
    sequential_tables,
    steps_on_edits,
    steps_table,
    wall_clock,
)


def _rows(group, method, metric, values, task="vqa", tier="standard", seed=0, protocol="exact"):
    return pd.DataFrame(
        {
            "group": group,
            "method": method,
            "metric": metric,
            "task": task,
            "tier": tier,
            "seed": seed,
            "protocol": protocol,
            "case": [f"{task}-{i}" for i in range(len(values))],
            "value": values,
        }
    )


def test_interval_cells_format_means_and_signed_differences():
    table = pd.DataFrame({"method": ["A"], "metric": ["Rel"], "mean": [0.5], "ci_low": [0.25], "ci_high": [0.75]})
    assert interval_cells(table, "method", "metric").loc["A", "Rel"] == "0.500 [0.250, 0.750]"
    paired = table.rename(columns={"mean": "mean_diff"}).assign(mean_diff=-0.02, ci_low=-0.05)
    assert interval_cells(paired, "method", "metric", signed=True).loc["A", "Rel"] == "-0.020 [-0.050, +0.750]"


def test_binary_overstatement_is_the_binary_i_gen_minus_each_tier():
    index = pd.MultiIndex.from_product([["vqa"], ["binary", "standard", "hard"], ["Patch"]])
    means = pd.DataFrame({"I-Gen": [0.9, 0.8, 0.5]}, index=index.set_names(["task", "tier", "method"]))
    row = binary_overstatement(means).loc[("vqa", "Patch")]
    assert row["binary I-Gen"] == 0.9 and row["- unit I-Gen"] == pytest.approx(0.1)
    assert row["- hard I-Gen"] == pytest.approx(0.4)


def test_the_cost_table_gives_steps_and_forward_passes_per_edit_of_main_and_ablation_only():
    single = pd.concat(
        [
            _rows("main", "ASAM", "steps", [10.0, 20.0]),
            _rows("main", "ASAM", "forward passes", [29.0, 49.0]),
            _rows("main", "ASAM", "Rel", [1.0, 1.0]),
            _rows("ablation", "without LAR", "steps", [4.0, 6.0, 8.0]),
            _rows("sensitivity", "K=2", "steps", [99.0]),
        ]
    )
    table = steps_table(single).set_index("method")
    assert set(table.index) == {"ASAM", "without LAR"}  # not the sensitivity group
    assert table.loc["ASAM", ["steps", "forward_passes", "n_edits"]].tolist() == [15.0, 39.0, 2]
    assert table.loc["without LAR", "steps"] == 6.0 and table.loc["without LAR", "n_edits"] == 3
    assert pd.isna(table.loc["without LAR", "forward_passes"])  # not counted: left empty, not zero
    assert per_edit_mean(single, metric="steps").loc["vqa", "ASAM"] == 15.0
    only_first = steps_on_edits(single, pd.DataFrame({"seed": [0], "case": ["vqa-0"]}), "vqa", ["ASAM", "Patch"])
    assert only_first["ASAM"] == 10.0 and pd.isna(only_first["Patch"])  # Patch did not run: NaN, in order


def test_headroom_reads_the_hard_tier_unit_of_the_development_group():
    single = pd.concat(
        [
            _rows("headroom", "without RCSL", "Unit", [1.0, 0.5], tier="hard", protocol="exact_known"),
            _rows("headroom", "without RCSL", "Unit", [0.0, 0.0], tier="standard"),
            _rows("main", "without RCSL", "Unit", [0.0], tier="hard", protocol="exact_known"),
        ]
    )
    table = headroom_table(single, ["without RCSL", "random variants, without RCSL"])
    assert table.loc["without RCSL", "Unit (hard)"] == 0.75 and table.loc["without RCSL", "n_edits"] == 2
    assert pd.isna(table.loc["random variants, without RCSL", "n_edits"])  # not run: a row of NaN, kept


def _members(n_cases=3, per_case=4):
    rows = []
    for method in ["Patch", "ASAM"]:
        for c in range(n_cases):
            for k in range(per_case):
                distance = 0.1 * c + 0.01 * k  # case c's members lie in [0.1 c, 0.1 c + 0.03]
                rows.append(
                    {
                        "group": "main",
                        "task": "vqa",
                        "tier": "standard",
                        "method": method,
                        "seed": 0,
                        "case": f"vqa-{c}",
                        "kind": "text" if k else "anchor",
                        "latent_distance": distance,
                        "image_distance": distance,
                        "exact": float(method == "ASAM" or c == 0),
                    }
                )
    return pd.DataFrame(rows)


def test_a_distance_bin_counts_its_members_and_its_edits():
    curve = distance_curve(_members(), "latent_distance", [0.0, 0.05, 0.3]).set_index(["method", "bin"])
    # the anchors are not evaluated: 3 members per case; case 0 in the first bin, cases 1 and 2 in the second
    assert curve.loc[("Patch", "0-0.05"), ["n", "n_edits"]].tolist() == [3, 1]
    assert curve.loc[("Patch", "0.05-0.3"), ["n", "n_edits"]].tolist() == [6, 2]
    assert curve.loc[("Patch", "0.05-0.3"), "exact"] == 0.0 and curve.loc[("ASAM", "0.05-0.3"), "exact"] == 1.0
    assert "n_edits" not in distance_curve(_members().drop(columns="case"), "latent_distance", [0.0, 0.3])


def test_distance_curves_bin_latent_quintiles_of_the_standard_tier_and_fixed_image_bins():
    members = pd.concat([_members(n_cases=5), _members().assign(group="ablation", exact=9.0)])
    latent, image = distance_curves(members, ["Patch", "ASAM"])
    assert latent.exact.max() <= 1.0 and set(latent.method) == {"Patch", "ASAM"}  # the main group only
    assert latent.groupby("method").n.sum().eq(15).all()  # every evaluated member once
    assert latent.bin.nunique() == 5 and set(image.bin) <= {"0-0.3", "0.3-0.4", "0.4-0.5"}


def test_the_judged_checkpoint_is_the_largest_every_seed_reaches_capped_at_fifty():
    assert judged_checkpoint([1, 3, 5], 3) == 3
    assert judged_checkpoint([1, 5, 10, 20, 50, 100], 100) == 50
    assert judged_checkpoint([1, 5, 10, 20, 50, 100], 30) == 20


def test_the_sequential_summary_reproduces_the_committed_table_on_its_first_checkpoint():
    committed = pd.read_csv(paths.RESULTS / "04_sequential.csv")
    first = committed[committed["T"] == committed["T"].min()]
    paired = pd.read_csv(paths.RESULTS / "04_ablations_paired.csv")
    summary, checks = sequential_tables(first, paired, [1], 1, "ASAM calibrated")
    expected = pd.read_csv(paths.RESULTS / "04_sequential_summary.csv")
    expected = expected[expected["T"] == first["T"].min()].set_index(["method", "metric"]).sort_index()
    got = summary.set_index(["method", "metric"]).sort_index()
    # the same rows through the same bootstrap: equal to the committed 6 decimals (the table's rounding)
    pd.testing.assert_series_equal(got["mean"].round(6), expected["mean"], check_names=False)
    pd.testing.assert_series_equal(got["ci_low"].round(6), expected["ci_low"], check_names=False)
    assert set(checks.target.str.len() > 0) == {True} and checks.met.dtype == bool


def test_firing_turns_the_misfire_rate_into_patches_per_input():
    rows = pd.concat(
        [
            _rows("sequential", "Patch", "misfire rate", [0.1, 0.3]).assign(T=10),
            _rows("sequential", "Patch", "own patch fires", [0.5, 0.7]).assign(T=10),
        ]
    )
    table = firing_summary(rows).set_index("metric")
    assert table.loc["misfire rate", "mean"] == pytest.approx(2.0)  # 0.2 of pairs fire, times T = 10 patches
    assert table.loc["own patch fires", "mean"] == pytest.approx(0.6)


def test_sensitivity_compares_settings_with_the_main_runs_asam_and_patch_on_the_same_edits():
    single = pd.concat(
        [
            _rows("main", "ASAM", "I-Gen", [0.5, 0.5, 0.5]),
            _rows("main", "Patch", "I-Gen", [0.2, 0.2, 0.2]),
            _rows("sensitivity", "K=2", "I-Gen", [0.7, 0.7]),
            _rows("sensitivity", "Patch layer=1", "I-Gen", [0.1, 0.1]),
        ]
    )
    paired, n_edits = sensitivity_comparisons(single, ["K=2", "Patch layer=1"])
    diffs = paired.set_index("comparison")
    assert diffs.loc["K=2 - ASAM", "mean_diff"] == pytest.approx(0.2)
    assert diffs.loc["Patch layer=1 - Patch", "mean_diff"] == pytest.approx(-0.1)
    assert n_edits == 2 and (diffs.n_edits == 2).all()  # paired on the two edits both ran


def test_wall_clock_gives_seconds_per_edit_and_asams_growth_with_k():
    timings = pd.concat(
        [
            _rows("main", "ASAM", "seconds", [2.0, 4.0]),
            _rows("main", "Patch", "seconds", [1.0, 1.0]),
            _rows("sensitivity", "K=16", "seconds", [9.0, 9.0]),
        ]
    )
    wall, growth = wall_clock(timings, ["Patch", "ASAM"])
    assert list(wall.columns) == ["Patch", "ASAM"] and wall.loc["vqa", "ASAM"] == 3.0
    assert growth.loc[("K", "16")] == 9.0 and growth.loc[("K", "4")] == 3.0  # the default (4) is the main run's
