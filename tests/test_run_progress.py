"""What make figures says on the terminal: the progress line, the once-a-minute rule off a terminal, the
kernel lines held back (a real error still shows), and progress that never reaches the executed notebook."""

from __future__ import annotations

import json
import math

import nbformat
import pytest

from asam_lib.common import progress
from asam_lib.experiments.workers import run_in_workers
from tools import run_notebooks, run_progress
from tools.run_progress import Follower, NotebookProgress, Ticker, describe, duration, is_kernel_noise

from helpers import notebook_file


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0 s"), (44.6, "45 s"), (60, "1 min 00 s"), (185, "3 min 05 s"), (3720, "1 h 02 min")]
)
def test_durations_read_as_a_person_would_say_them(seconds, text):
    assert duration(seconds) == text


def test_the_line_names_section_cell_jobs_and_the_time_left():
    notebook = NotebookProgress("04_edit_and_evaluate", started=0.0)
    assert describe(notebook, now=5.0) == "04_edit_and_evaluate, 5 s: starting its kernel"
    notebook.update({"cell": 3, "cells": 10, "section": "6. Sequential editing", "t": 100.0})
    notebook.update({"jobs": "jobs", "done": 0, "total": 12, "t": 110.0})
    notebook.update({"jobs": "jobs", "done": 4, "total": 12, "t": 150.0})
    # 40 s for 4 jobs: 10 s a job, 8 jobs left = 80 s, of which 10 s have passed since the last one finished
    assert describe(notebook, now=160.0) == (
        "04_edit_and_evaluate, 2 min 40 s: 6. Sequential editing, cell 3 of 10 (for 1 min 00 s); "
        "jobs 4 of 12, about 1 min 10 s left"
    )
    notebook.update({"cell": 4, "cells": 10, "section": "7. Sensitivity", "t": 170.0})
    assert describe(notebook, now=171.0).endswith("7. Sensitivity, cell 4 of 10 (for 1 s)"), "old jobs are dropped"


def test_a_batch_of_jobs_is_announced_once_when_complete(tmp_path):
    events = tmp_path / "04.jsonl"
    follower = Follower(events, NotebookProgress("04_edit_and_evaluate", started=0.0))
    lines = [{"jobs": "jobs", "done": k, "total": 2, "t": 10.0 + 30 * k} for k in range(3)]
    events.write_text("".join(json.dumps(e) + "\n" for e in lines) + '{"jobs": "jo')  # the last one half written
    assert run_progress.news(follower) == ["04_edit_and_evaluate: jobs 2 of 2 done in 1 min 00 s"]
    assert run_progress.news(follower) == [], "each event is read once, a half-written line not at all"


@pytest.mark.parametrize(("terminal", "every"), [(True, run_progress.TERMINAL_EVERY_S), (False, 60.0)])
def test_off_a_terminal_a_status_line_comes_once_a_minute_at_most(terminal, every):
    ticker = Ticker(terminal, start=0.0)
    due = [t for t in range(1, 601) if ticker.due(float(t))]  # polled each second for 10 minutes
    assert due == list(range(int(every), 601, int(every)))
    assert terminal or len(due) <= 10


@pytest.mark.parametrize(
    "line",
    [
        "[IPKernelApp] WARNING | Kernel is running over TCP without encryption. All communication (including code "
        "and outputs) is sent in plain text and is susceptible to eavesdropping.\n",
        "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel.\n",
        "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel\n",
    ],
)
def test_the_lines_of_a_kernel_shut_down_normally_are_noise(line):
    assert is_kernel_noise(line)


@pytest.mark.parametrize(
    "line",
    [
        "[IPKernelApp] ERROR | Exception in message handler:\n",
        "[IPKernelApp] WARNING | Unknown message type: 'x'\n",
        "KeyboardInterrupt\n",
        "04_edit_and_evaluate.ipynb failed in cell 7 (ValueError: boom).\n",
    ],
)
def test_real_errors_and_warnings_are_not_noise(line):
    assert not is_kernel_noise(line)


def test_noise_is_held_back_and_everything_else_passes_at_once():
    said, held = [], []
    lines = ["[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel.\n", "Traceback (most recent call last):\n"]
    run_notebooks._pass_on(iter(lines), held, said.append)
    assert said == ["Traceback (most recent call last):"] and held == lines[:1]


def test_jobs_are_reported_to_the_progress_file_only_when_one_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.PROGRESS_FILE, raising=False)
    assert run_in_workers(math.sqrt, [1.0, 4.0], workers=1) == [1.0, 2.0]
    assert list(tmp_path.iterdir()) == []
    events = tmp_path / "events.jsonl"
    monkeypatch.setenv(progress.PROGRESS_FILE, str(events))
    assert run_in_workers(math.sqrt, [1.0, 4.0], workers=1, desc="roots") == [1.0, 2.0]
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [(e["jobs"], e["done"], e["total"]) for e in lines] == [("roots", 0, 2), ("roots", 1, 2), ("roots", 2, 2)]


def test_a_run_says_where_it_is_on_stderr_and_nothing_of_it_reaches_the_notebook(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(run_progress, "LOG_EVERY_S", 1.0)  # capsys is no terminal: the once-a-minute rule, sped up
    path = notebook_file(
        tmp_path / "01_progress.ipynb",
        nbformat.v4.new_markdown_cell("# A test\n## 1. Jobs"),
        "import math\nfrom asam_lib.experiments.workers import run_in_workers\n"
        "roots = run_in_workers(math.sqrt, [1.0, 4.0, 9.0], workers=1)",
        nbformat.v4.new_markdown_cell("## 2. A pause"),
        "import time\ntime.sleep(4)",
    )
    run_notebooks.run_in_lanes([path], lanes=1, quick=True, executed=tmp_path / "executed")
    err = capsys.readouterr().err
    assert "01_progress: jobs 3 of 3 done in" in err
    assert "01_progress, " in err and ": 2. A pause, cell 3 of 3 (for " in err  # 2 cells + the injected one
    assert "IPKernelApp" not in err, "the kernel's TCP warning was not held back"
    executed = (tmp_path / "executed" / path.name).read_text()
    assert "2. A pause, cell" not in executed and "jobs 3 of 3" not in executed and '"stderr"' not in executed


def test_a_failing_notebook_prints_its_error_its_name_and_the_lines_held_back(tmp_path, capsys):
    path = notebook_file(tmp_path / "01_fails.ipynb", "raise ValueError('the real error')")
    with pytest.raises(SystemExit, match="01_fails.ipynb failed"):
        run_notebooks.run_in_lanes([path], lanes=1, quick=True, executed=tmp_path / "executed")
    err = capsys.readouterr().err
    assert "01_fails.ipynb failed in cell" in err and "ValueError: the real error" in err
    assert "Kernel is running over TCP without encryption" in err, "held lines are shown when the notebook fails"
