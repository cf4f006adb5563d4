"""The memory measurements beside the library, on their tiny shape: ``tools/gpu_memory.py`` through the command line
on the CPU (with the memory options switched on from the command line), and ``make bench-memory``'s counts."""

import pandas as pd
import pytest

from asam_lib.editors import methods
from asam_lib.frontends.cli import main
from tools import bench_memory, gpu_memory


def test_the_gpu_script_runs_every_editor_through_the_command_line_on_the_cpu(tmp_path, capsys):
    options = ["--checkpoint-blocks", "on", "--loss-logits", "on", "--micro-batch", "1", "--steps", "2"]
    argv = ["--shape", "tiny", "--device", "cpu", "--dtype", "float32", "--n-edits", "1", "--n-support", "1"]
    rows = gpu_memory.run([*argv, "--folder", str(tmp_path), "--report", str(tmp_path / "r.json"), "--", *options])
    assert [r["method"] for r in rows] == methods.names()
    for row in rows:
        assert row["steps_per_edit"] == 2 and row["edits"] == 1
        assert row["s_per_step"] > 0 and row["peak_gib"] is None  # no GPU: no peak memory
    assert "options: --checkpoint-blocks on" in capsys.readouterr().out
    assert (tmp_path / "r.json").is_file()


def test_the_gpu_script_refuses_cuda_where_there_is_none(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_memory.torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="no CUDA device"):
        gpu_memory.run(["--shape", "tiny", "--device", "cuda:0", "--folder", str(tmp_path)])


@pytest.mark.parametrize("argv", [["--micro-batch", "-1"], ["--checkpoint-blocks", "maybe"]])
def test_a_bad_memory_option_is_one_error_line_with_status_2(argv, tmp_path, capsys):
    assert (
        main(["study", "--model", str(tmp_path), "--data", str(tmp_path / "x.json"), "--out", str(tmp_path), *argv])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1


def test_the_benchmark_counts_the_savings_the_formula_predicts(tmp_path):
    table = bench_memory.run(["--shape", "tiny", "--methods", "FT-L", "--steps", "1", "--folder", str(tmp_path)])
    alone = table[table["items"] == "edit input"].set_index("options")
    # Checkpointing: the formula counts per-token tensors; a forward's own (rotary positions, the mask), kept once by
    # a recomputed block as its inputs, are outside it. On this shape (one block above the edit layer) they are ~20%
    # of the predicted saving; 0.6-1.2x checks the order of magnitude and the sign while allowing for them.
    ratio = alone.saving_mib["checkpoint_blocks"] / alone.predicted_saving_mib["checkpoint_blocks"]
    assert 0.6 < ratio < 1.2
    # The window: the float32 log-probabilities of every position but the answer's, minus the small gather it adds.
    ratio = alone.saving_mib["loss_logits"] / alone.predicted_saving_mib["loss_logits"]
    assert 0.85 < ratio < 1.05
    with_support = table[table["items"] == "+ support"].set_index("options").saved_mib
    assert with_support["all (micro_batch 2)"] < with_support["checkpoint + logits"] < with_support["none"]
    assert isinstance(table, pd.DataFrame) and (table.s_per_step > 0).all()
