"""tools.kernel_sets: the forced kernel sets' environments, the comparison of a regenerated table with the committed
one at the README's rounding, and the sequential study rerun on a tiny configuration."""

import shutil

import pandas as pd
import pytest

from asam_lib.common import paths
from tools import kernel_sets


def test_a_kernel_set_sets_its_switches_and_clears_the_others(monkeypatch):
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    env = kernel_sets.environment("avx2")
    assert env["ATEN_CPU_CAPABILITY"] == "avx2" and env["ONEDNN_MAX_CPU_ISA"] == "AVX2" and "MKL_CBWR" not in env
    native = kernel_sets.environment("native")
    assert not {"ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA"} & set(native)


def test_an_unknown_kernel_set_is_named():
    with pytest.raises(SystemExit, match="unknown kernel set 'avx1024': choose from native, avx2, default"):
        kernel_sets.environment("avx1024")


def _write(folder, name, table):
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / f"{name}.csv", index=False)


def test_moves_are_counted_at_three_decimals_and_verdict_changes_are_counted(tmp_path):
    committed = pd.DataFrame({"method": ["A", "A", "B"], "T": [1.0, 10.0, 10.0], "mean": [0.5, 0.2, 0.9]})
    here = pd.DataFrame({"method": ["A", "A", "B"], "T": [1, 10, 10], "mean": [0.5004, 0.23, 0.9]})
    _write(tmp_path / "a", "summary", committed)
    _write(tmp_path / "b", "summary", here)
    targets = pd.DataFrame({"task": ["vqa", "vqa"], "target": ["x", "y"], "measured": ["0.1", "0.2"], "met": [1, 1]})
    _write(tmp_path / "a", "targets", targets)
    _write(tmp_path / "b", "targets", targets.assign(met=[1, 0]))
    moves = kernel_sets.largest_moves(tmp_path / "a", tmp_path / "b", tables=("summary", "targets")).set_index("table")
    summary = moves.loc["summary"]
    # 0.5 -> 0.5004 rounds to the same 0.500; 0.2 -> 0.23 moves by 0.030; T 10.0 and 10 are the same row
    assert (summary.rows, summary.rows_unmatched, summary.rows_moved) == (3, 0, 1)
    assert summary.largest_move == pytest.approx(0.03) and summary["where"] == "method A, T 10.0"
    assert moves.loc["targets"].verdicts_changed == 1


def test_the_sequential_study_reruns_into_notebook_04s_three_tables(monkeypatch, tmp_path):
    tiny = dict(seeds=[0], n_sequential=1, n_sequential_every_seed=1, checkpoints=[1], firing_probe=1)
    monkeypatch.setattr(kernel_sets, "figures_parameters", lambda notebook="04_edit_and_evaluate": tiny)
    folder = tmp_path / "results"
    shutil.copytree(paths.REPO_ROOT / "results", folder, ignore=shutil.ignore_patterns("cross_cpu"))
    tables = kernel_sets.sequential_tables(folder, workers=1)
    assert list(tables) == list(kernel_sets.SEQUENTIAL_TABLES)
    for name, table in tables.items():
        assert list(table.columns) == list(pd.read_csv(folder / f"{name}.csv").columns), name
    summary = tables["04_sequential_summary"]
    assert set(summary.method) == {"Patch", "GRACE", "ASAM", "ASAM calibrated"} and set(summary["T"]) == {1}
