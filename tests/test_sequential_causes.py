"""tools/sequential_causes.py (make sequential-causes) on a tiny configuration: its tables, and its input checks."""

import pandas as pd
import pytest

from tools import sequential_causes


def test_the_cause_study_writes_means_and_paired_differences_to_asam(tmp_path):
    sequential_causes.main(
        ["--seeds", "0", "--edits", "2", "--checkpoints", "1", "2", "--settings", "keys frozen", "--workers", "1"]
        + ["--out", str(tmp_path)]
    )
    summary = pd.read_csv(tmp_path / "summary.csv")
    paired = pd.read_csv(tmp_path / "paired.csv")
    assert set(summary.method) == {"ASAM", "keys frozen"} and set(summary["T"]) == {1, 2}
    assert set(paired.comparison) == {"keys frozen - ASAM"}
    assert {"T", "metric", "mean_diff", "ci_low", "ci_high", "n_edits", "n_seeds"} <= set(paired.columns)
    at_two = paired[(paired["T"] == 2) & (paired.metric == "Rel")]
    assert len(at_two) == 1 and at_two.n_edits.item() == 2  # both edits re-evaluated after the second


def test_every_setting_changes_one_ingredient_of_asam():
    editors = sequential_causes.cause_editors()
    reference = editors.pop("ASAM")
    assert editors["keys frozen"].base.settings.key_lr_scale == 0.0
    assert editors["without LAR"].settings.variants == "noise"
    assert editors["without RCSL"].settings.lambda_rank == 0.0
    assert editors["eps=0.1"].lar.eps == 0.1 and editors["question tokens only"].lar.roles == "question"
    assert reference.base.settings.key_lr_scale > 0 and reference.settings.variants == "lar"
    assert reference.settings.lambda_rank > 0 and reference.lar.eps == 0.3 and reference.lar.roles == "both"


def test_bad_arguments_name_the_problem():
    with pytest.raises(SystemExit, match="unknown setting"):
        sequential_causes.jobs([0], [2], [1], ["no such thing"])
    with pytest.raises(SystemExit, match="one per seed"):
        sequential_causes.jobs([0, 1], [2], [1], ["keys frozen"])
