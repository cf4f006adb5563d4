"""make figures' runner: lanes take notebook 04 first, name each notebook's own files, and one failing notebook
stops the others (kernel included) with a message that names it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tools import run_notebooks

from helpers import notebook_file


def test_schedule_starts_the_study_first_and_keeps_the_others_in_order():
    names = [Path(f"notebooks/{n}.ipynb") for n in ["01_a", "02_b", "04_edit_and_evaluate", "05_c"]]
    assert [p.stem for p in run_notebooks.schedule(names)] == ["04_edit_and_evaluate", "01_a", "02_b", "05_c"]


def test_each_notebook_is_credited_with_the_files_named_after_it():
    files = ["figures/01_x.png", "results/04_y.csv", "figures/04_z.pdf"]
    assert run_notebooks._own_files(files, Path("notebooks/04_edit_and_evaluate.ipynb")) == files[1:]
    assert run_notebooks._own_files(files, Path("notebooks/02_lar.ipynb")) == []


def test_a_failing_notebook_stops_the_other_lane_and_is_named(tmp_path, capsys):
    pid_file = tmp_path / "slow.pid"
    slow = notebook_file(
        tmp_path / "01_slow.ipynb",
        f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(300)",
    )
    failing = notebook_file(
        tmp_path / "02_failing.ipynb",
        f"import os, time\nwhile not os.path.exists({str(pid_file)!r}): time.sleep(0.2)\nraise ValueError('boom')",
    )
    start = time.perf_counter()
    with pytest.raises(SystemExit, match="02_failing.ipynb failed"):
        run_notebooks.run_in_lanes([slow, failing], lanes=2, quick=True, executed=tmp_path / "executed")
    assert time.perf_counter() - start < 120, "the slow notebook was not stopped"
    kernel = int(pid_file.read_text())
    for _ in range(50):  # the stopped notebook's kernel is shut down with it
        try:
            os.kill(kernel, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the kernel of the stopped notebook (pid {kernel}) still runs")
    assert "boom" in capsys.readouterr().err + (tmp_path / "executed" / "02_failing.ipynb").read_text()


@pytest.mark.parametrize("lanes", [1, 2])
def test_one_lane_runs_the_notebooks_one_after_another_and_two_at_once(tmp_path, lanes):
    spans = tmp_path / "spans"
    spans.mkdir()
    notebooks = [
        notebook_file(
            tmp_path / f"0{i}_sleep.ipynb",
            "import time\nstart = time.time()\ntime.sleep(4)\n"
            f"open({str(spans / str(i))!r}, 'w').write(f'{{start}} {{time.time()}}')",
        )
        for i in (1, 2)
    ]
    seconds = run_notebooks.run_in_lanes(notebooks, lanes=lanes, quick=True, executed=tmp_path / "executed")
    assert set(seconds) == set(notebooks) and all(s >= 4 for s in seconds.values())
    (start_1, end_1), (start_2, end_2) = (map(float, (spans / str(i)).read_text().split()) for i in (1, 2))
    overlap = min(end_1, end_2) > max(start_1, start_2)
    assert overlap == (lanes == 2)


def test_the_command_line_takes_the_number_of_lanes(tmp_path, capsys):
    notebooks = [str(notebook_file(tmp_path / f"0{i}_quick.ipynb", "x = 1")) for i in (1, 2)]
    run_notebooks.main(["--quick", "--lanes", "1", "--executed", str(tmp_path / "executed"), *notebooks])
    printed = capsys.readouterr().out
    assert "(wall clock, 1 lane(s))" in printed and "01_quick.ipynb" in printed and "02_quick.ipynb" in printed
