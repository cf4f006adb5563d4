"""README tables are written from results/ between markers, and only there."""

import pandas as pd

from tools.readme_tables import update


def test_marked_blocks_are_rewritten_from_the_results_and_the_rest_is_kept(tmp_path):
    rows = [
        {"tier": "standard", "method": m, "metric": k, "protocol": "exact", "mean": 0.5, "ci_low": 0.4, "ci_high": 0.6}
        for m in ["FT-L", "LoRA", "Patch"]
        for k in ["Rel", "T-Gen", "I-Gen", "TI-Gen", "Unit", "T-Loc", "I-Loc"]
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "01_baselines.csv", index=False)
    readme = tmp_path / "README.md"
    readme.write_text(
        "intro\n<!-- results:baselines -->\nold numbers\n<!-- /results:baselines -->\n"
        "<!-- results:main -->\nkept\n<!-- /results:main -->\nend\n"
    )
    assert update(readme, tmp_path) == ["baselines"]
    text = readme.read_text()
    assert "old numbers" not in text and "| FT-L | 0.500 [0.400, 0.600] |" in text
    assert text.startswith("intro\n") and text.endswith("<!-- results:main -->\nkept\n<!-- /results:main -->\nend\n")


def test_an_empty_block_is_filled_and_a_rewrite_is_stable(tmp_path):
    rows = [
        {"tier": "standard", "method": m, "metric": k, "protocol": "exact", "mean": 0.5, "ci_low": 0.4, "ci_high": 0.6}
        for m in ["FT-L", "LoRA", "Patch"]
        for k in ["Rel", "T-Gen", "I-Gen", "TI-Gen", "Unit", "T-Loc", "I-Loc"]
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "01_baselines.csv", index=False)
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:baselines -->\n<!-- /results:baselines -->\nend\n")
    assert update(readme, tmp_path) == ["baselines"]
    filled = readme.read_text()
    assert "| Patch | 0.500 [0.400, 0.600] |" in filled and filled.endswith("|\n<!-- /results:baselines -->\nend\n")
    update(readme, tmp_path)
    assert readme.read_text() == filled


def test_the_ablation_table_follows_the_reading_order_not_the_alphabet(tmp_path):
    from tools.readme_tables import METRICS, ablation_table

    names = ["without LAR", "Patch", "ASAM", "an old ablation", "RCSL alone"]
    pd.DataFrame([{"method": m, **{k: 0.5 for k in METRICS}} for m in sorted(names)]).to_csv(
        tmp_path / "04_ablations.csv", index=False
    )
    rows = [line.split(" | ")[0].strip("| ") for line in ablation_table(tmp_path).splitlines()[2:]]
    assert rows == [
        "Patch",
        "ASAM",
        "without LAR",
        "RCSL alone",
        "an old ablation",
    ]  # a name it does not know is kept, last


def test_a_registered_method_without_results_yet_has_no_row(tmp_path):
    from tools.readme_tables import METRICS, baseline_table, sequential_table

    cell = {"protocol": "exact", "mean": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n_seeds": 3}
    rows = [
        {"tier": tier, "method": m, "metric": k, **cell}
        for tier in ["standard", "hard"]
        for m in ["FT-L", "LoRA", "Patch"]
        for k in METRICS
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "01_baselines.csv", index=False)
    sequential_rows = [
        {"method": m, "T": t, "metric": k, **cell}
        for m in ["ASAM calibrated", "Patch", "ASAM"]
        for t in [1, 10, 50]
        for k in METRICS
    ]
    pd.DataFrame(sequential_rows).to_csv(tmp_path / "04_sequential_summary.csv", index=False)
    baselines = [line.split(" | ")[0].strip("| ") for line in baseline_table(tmp_path).splitlines()[2:]]
    sequential = [line.split(" | ")[0].strip("| ") for line in sequential_table(tmp_path).splitlines()[2:]]
    assert baselines == ["FT-L", "LoRA", "Patch"]  # GRACE: no results yet
    # an option of a method comes after the methods; rows at T = 10 and 50 (100 is not in this run)
    assert sequential == ["Patch", "Patch", "ASAM", "ASAM", "ASAM calibrated", "ASAM calibrated"]
    assert "Unit (hard)" in baseline_table(tmp_path).splitlines()[0]


def test_the_cause_table_shows_the_largest_t_every_seed_reaches_in_the_study_s_order(tmp_path):
    from tools.readme_tables import causes_table

    cell = {"mean_diff": 0.1, "ci_low": 0.05, "ci_high": 0.15}
    rows = [
        {"comparison": c, "T": t, "metric": k, **cell, "n_edits": 50 * seeds, "n_seeds": seeds}
        for c in ["without RCSL - ASAM", "keys frozen - ASAM", "without LAR - ASAM"]
        for t, seeds in [(10, 3), (50, 3), (100, 1)]
        for k in ["Rel", "TI-Gen", "I-Loc", "I-Gen"]
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "sequential_causes_paired.csv", index=False)
    lines = causes_table(tmp_path).splitlines()
    assert lines[0] == "(after T = 50 edits: mean paired difference to ASAM [95% CI], 150 edits over 3 seeds)"
    assert lines[2] == "| comparison | Rel | TI-Gen | I-Loc |"  # the sequential table's columns, I-Gen not
    assert [line.split(" | ")[0].strip("| ") for line in lines[4:]] == [
        "without LAR - ASAM",
        "without RCSL - ASAM",
        "keys frozen - ASAM",
    ]
    assert lines[4].endswith("| +0.100 [+0.050, +0.150] |")
