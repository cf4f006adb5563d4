"""``make bench-edits``' table (tools/bench.py) on fake timings: the median over repeats, exact counts per edit,
the ratio to Patch, the sidecar naming the machine; and the forward-pass counter it uses."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from asam_lib.common import paths
from tools.bench import EditTiming, edit_cost_table, machine, time_methods, write_edit_cost

FAKE = [
    EditTiming("vqa", "Patch", (0.30, 0.10, 0.20), steps=24, forward_passes=60, n_edits=4),
    EditTiming("vqa", "ASAM", (0.50, 0.90, 0.40), steps=40, forward_passes=250, n_edits=4),
    EditTiming("caption", "Patch", (0.25,), steps=10, forward_passes=30, n_edits=2),
    EditTiming("caption", "ASAM", (1.00,), steps=20, forward_passes=90, n_edits=2),
]


def test_the_table_has_medians_exact_counts_per_edit_and_the_ratio_to_patch():
    table = edit_cost_table(FAKE).set_index(["task", "method"])
    assert table.loc[("vqa", "Patch"), "seconds_per_edit"] == pytest.approx(0.20)  # median of 0.3, 0.1, 0.2
    assert table.loc[("vqa", "ASAM"), "seconds_per_edit"] == pytest.approx(0.50)
    assert table.loc[("vqa", "ASAM"), "steps_per_edit"] == 10.0 and table.loc[("vqa", "ASAM"), "repeats"] == 3
    assert table.loc[("vqa", "ASAM"), "forward_passes_per_edit"] == 62.5
    assert table.loc[("vqa", "ASAM"), "seconds_vs_patch"] == pytest.approx(2.5)
    assert table.loc[("caption", "ASAM"), "seconds_vs_patch"] == pytest.approx(4.0)
    assert table.loc[("caption", "Patch"), "seconds_vs_patch"] == pytest.approx(1.0)


def test_a_task_without_a_patch_timing_is_named():
    with pytest.raises(ValueError, match=r"no Patch timing for task\(s\) \['caption'\]"):
        edit_cost_table(FAKE[:2] + FAKE[3:])


def test_the_written_table_reads_back_and_its_sidecar_names_the_machine(tmp_path):
    where = machine("shared")
    path = write_edit_cost(edit_cost_table(FAKE), where, tmp_path)
    back = pd.read_csv(path)
    assert path == tmp_path / "edit_cost.csv" and len(back) == 4
    assert set(back.columns) >= {"seconds_per_edit", "steps_per_edit", "forward_passes_per_edit", "seconds_vs_patch"}
    sidecar = json.loads((tmp_path / "edit_cost.json").read_text())
    assert sidecar["files"] == {"edit_cost.csv": sidecar["files"]["edit_cost.csv"]}
    recorded = sidecar["machine"]
    assert recorded["cpu"] and recorded["cores"] >= 1 and recorded["threads"] >= 1 and recorded["note"] == "shared"
    assert recorded["torch"] == torch.__version__ and recorded["date"].endswith("UTC") and recorded["commit"]


@pytest.mark.parametrize("argument", ["--repeats=0", "--n-edits=x"])
def test_bad_counts_exit_with_status_2_naming_the_option(argument):
    run = subprocess.run(
        [sys.executable, "-m", "tools.bench", "edits", argument],
        cwd=paths.REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and argument.split("=")[0] in run.stderr


class CountingEditor:
    """An editor that runs the edit layer's FFN ``forwards`` times per edit and reports ``steps`` steps."""

    def __init__(self, steps: int, forwards: int, layer: int = 1):
        self.steps, self.forwards, self.config = steps, forwards, SimpleNamespace(layer=layer)
        self.restored = 0

    def edit(self, model, encoder, request, seed):
        editor = self

        class Handle(SimpleNamespace):
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                editor.restored += 1

        return Handle(steps=self.steps, forward_passes=self.forwards)


def test_methods_are_timed_in_interleaved_rounds_with_exact_counts_per_edit(tiny_parts):
    model, _ = tiny_parts
    cases = [SimpleNamespace(request=None)] * 3
    editors = {"Patch": CountingEditor(steps=4, forwards=2), "ASAM": CountingEditor(steps=6, forwards=5)}
    timings = {t.method: t for t in time_methods(model, None, cases, editors, "vqa", repeats=2, seed=0)}
    assert timings["Patch"] == EditTiming("vqa", "Patch", timings["Patch"].seconds, 12, 6, 3)
    assert timings["ASAM"].steps == 18 and timings["ASAM"].forward_passes == 15
    assert all(len(t.seconds) == 2 and min(t.seconds) > 0 for t in timings.values())
    assert editors["ASAM"].restored == 2 * 3, "every edit of every round is rolled back"
