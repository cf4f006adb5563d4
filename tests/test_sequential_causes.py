"""tools/sequential_causes.py (make sequential-causes) on a tiny configuration: its tables and their sidecars, the
development split, and its input checks."""

import json

import pandas as pd
import pytest

from asam_lib.common import paths
from asam_lib.editors.asam import SEQUENTIAL_OPTION
from tools import repro, sequential_causes

TINY = ["--seeds", "0", "--edits", "2", "--checkpoints", "1", "2", "--workers", "1"]


@pytest.fixture()
def results(tmp_path, monkeypatch):
    """``results/`` and ``build/`` of this test (what ``ASAM_RESULTS`` redirects), the repository's untouched."""
    monkeypatch.setattr(paths, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(paths, "BUILD", tmp_path / "build")
    return tmp_path / "results"


def test_the_cause_study_writes_its_tables_with_sidecars_to_results(results):
    sequential_causes.main([*TINY, "--settings", "keys frozen"])
    summary = pd.read_csv(results / "sequential_causes_summary.csv")
    paired = pd.read_csv(results / "sequential_causes_paired.csv")
    assert set(summary.method) == {"ASAM", "keys frozen"} and set(summary["T"]) == {1, 2}
    assert set(paired.comparison) == {"keys frozen - ASAM"}
    assert {"T", "metric", "mean_diff", "ci_low", "ci_high", "n_edits", "n_seeds"} <= set(paired.columns)
    at_two = paired[(paired["T"] == 2) & (paired.metric == "Rel")]
    assert len(at_two) == 1 and at_two.n_edits.item() == 2  # both edits re-evaluated after the second
    sidecar = json.loads((results / "sequential_causes_paired.json").read_text())
    assert sidecar["command"] == "make sequential-causes" and sidecar["tool"] == "tools/sequential_causes.py"
    assert sidecar["arguments"] == {
        "split": "report",
        "seeds": [0],
        "edits": [2],
        "checkpoints": [1, 2],
        "settings": ["keys frozen"],
    }
    assert repro.stale_files(results) == []  # today's library and tool
    rows = pd.read_csv(results.parent / "build" / "sequential_causes" / "sequential_causes_rows.csv")
    assert set(rows.method) == {"ASAM", "keys frozen"}  # the per-edit rows stay out of results/


def test_the_dev_split_runs_the_calibration_choice_on_development_edits_paired_with_patch(tmp_path):
    sequential_causes.main([*TINY, "--split", "dev", "--settings", "ASAM calibrated", "--out", str(tmp_path)])
    assert repro.stale_files(tmp_path) == []  # the per-edit rows of an exploratory run have their sidecar too
    paired = pd.read_csv(tmp_path / "sequential_calibration_dev_paired.csv")
    rows = pd.read_csv(tmp_path / "sequential_calibration_dev_rows.csv")
    assert set(paired.comparison) == {"ASAM calibrated - Patch"}
    assert rows.group.unique().tolist() == ["sequential dev"]
    assert json.loads((tmp_path / "sequential_calibration_dev_summary.json").read_text())["arguments"]["split"] == "dev"


def test_the_dev_split_draws_development_edits_and_names_the_candidates():
    jobs = sequential_causes.jobs([0, 1], [3, 2], [1, 2, 3], ["ASAM calibrated"], split="dev")
    assert [(j.seed, j.split, list(j.editors), j.checkpoints) for j in jobs] == [
        (0, "dev", ["Patch"], (1, 2, 3)),
        (0, "dev", ["ASAM calibrated"], (1, 2, 3)),
        (1, "dev", ["Patch"], (1, 2)),
        (1, "dev", ["ASAM calibrated"], (1, 2)),
    ]
    assert {j.split for j in sequential_causes.jobs([0], [2], [1], ["keys frozen"])} == {"report"}
    editors = sequential_causes.calibration_editors()
    assert editors["ASAM calibrated"].settings == SEQUENTIAL_OPTION
    memory = editors["calibrated on its own memory"].settings
    assert memory.calibrate_bias and memory.calibrate_memory and memory.calibrate_edits == "off"
    assert editors["calibrated on earlier inputs and variants"].settings.calibrate_edits == "cover"
    assert editors["calibrated on its own memory and earlier inputs"].settings.calibrate_memory
    assert not editors["ASAM"].settings.calibrate_bias


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
    with pytest.raises(SystemExit, match="for --split dev"):
        sequential_causes.jobs([0], [2], [1], ["keys frozen"], split="dev")
    with pytest.raises(SystemExit, match="one per seed"):
        sequential_causes.jobs([0, 1], [2], [1], ["keys frozen"])
    rows = pd.DataFrame({"seed": [0, 0], "case": [0, 1]})
    with pytest.raises(SystemExit, match="seed 0 for 3 edits; the dev split has 2"):
        sequential_causes.check_edits(rows, [0], [3], "dev")
    with pytest.raises(SystemExit) as exit_:
        sequential_causes.main(["--split", "test"])
    assert exit_.value.code == 2  # argparse: the choices named on one line
