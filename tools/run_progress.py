"""What ``make figures`` says on the terminal while notebooks run: where each one is, and nothing that alarms.

The kernels print nothing for the terminal (whatever they print lands in the executed notebook), so each
notebook's progress travels through a file of JSON lines (``ASAM_PROGRESS_FILE``, see
:mod:`asam_lib.common.progress`): the process running the notebook appends ``{"cell": k, "cells": n, "section": ...}``
when a code cell starts (:class:`CellReporter`, a hook of the notebook client), and the kernel appends
``{"jobs": ..., "done": k, "total": n}`` as its worker jobs finish. The runner reads these files
(:class:`Follower`) and prints, to stderr only, one line per running notebook (:func:`describe`), such as

    04_edit_and_evaluate, 9 min 12 s: 6. Sequential editing, cell 13 of 17 (for 2 min 40 s); jobs 31 of 48,
    about 5 min left

(on one line) every :data:`TERMINAL_EVERY_S` seconds on a terminal and every :data:`LOG_EVERY_S` seconds
otherwise (a CI log gets a line a minute at most, :class:`Ticker`), and a line when a batch of jobs is complete
(:func:`batch_done`). Nothing of this reaches the notebooks, figures or tables.

:func:`is_kernel_noise` names the two lines a kernel that ends normally writes to its stderr, which the runner
holds back (and prints after all if the notebook fails): every other line passes through at once.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from asam_lib.common.progress import report

TERMINAL_EVERY_S = 20.0
LOG_EVERY_S = 60.0

# Lines a kernel writes to stderr when nothing is wrong (ipykernel 7, jupyter_client 8), the same on every run:
# - the TCP warning: the kernel listens on 127.0.0.1 for the one client that started it, and its messages are signed
#   with the key of a connection file only this user can read, so no one else can run code in it; what another
#   local user could read is this run's outputs, the notebooks and figures the repository publishes anyway;
# - jupyter_client interrupts the kernel (SIGINT) before every shutdown request, normal ones included, and a kernel
#   still handling a message at that moment logs the KeyboardInterrupt it caught (a notebook 05 run did). An
#   interrupt while a cell runs shows as a traceback in the notebook and a failed cell, not as this line.
KERNEL_NOISE = (
    re.compile(r"\[IPKernelApp\] WARNING \| Kernel is running over TCP without encryption"),
    re.compile(r"\[IPKernelApp\] ERROR \| KeyboardInterrupt caught in kernel\.?\s*$"),
)


def is_kernel_noise(line: str) -> bool:
    """Whether ``line`` (of a kernel's stderr) is one of the :data:`KERNEL_NOISE` lines of a normal run."""
    return any(pattern.search(line) for pattern in KERNEL_NOISE)


def duration(seconds: float) -> str:
    """``seconds`` for a person: ``"45 s"``, ``"3 min 05 s"``, ``"1 h 02 min"``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class CellReporter:
    """A notebook client's ``on_cell_start`` hook that reports each code cell with its section.

    ``cells``: how many code cells will run (those of the notebook, plus papermill's injected parameters
    cell); the section is the first heading of the last Markdown cell that had one.
    """

    def __init__(self, notebook: Path, injected: bool):
        source = nbformat.read(notebook, as_version=4)
        self.cells = sum(c.cell_type == "code" and bool(c.source.strip()) for c in source.cells) + int(injected)
        self.started, self.section = 0, ""

    def __call__(self, cell: nbformat.NotebookNode, cell_index: int) -> None:
        if cell.cell_type == "markdown":
            headings = [line.lstrip("#").strip() for line in cell.source.splitlines() if line.startswith("#")]
            self.section = headings[0] if headings else self.section
        elif cell.cell_type == "code" and cell.source.strip():
            self.started += 1
            report(cell=self.started, cells=self.cells, section=self.section)


@dataclass
class NotebookProgress:
    """What is known of one running notebook: when it started, its cell, and its current batch of jobs."""

    name: str
    started: float
    cell: dict = field(default_factory=dict)  # the last cell event
    jobs: dict = field(default_factory=dict)  # the last jobs event
    jobs_started: float = 0.0  # when the current batch of jobs began (its done = 0 event)

    def update(self, event: dict) -> None:
        """Take one event of the progress file."""
        if "cell" in event:
            self.cell = event
        if "jobs" in event:
            if event["done"] == 0:
                self.jobs_started = event["t"]
            self.jobs = event


def describe(progress: NotebookProgress, now: float) -> str:
    """One line: the notebook, how long it has run, its section and cell (for how long), its jobs and the
    time left for them (from the mean time per job so far, less the time since the last one finished)."""
    line = f"{progress.name}, {duration(now - progress.started)}"
    cell = progress.cell
    if not cell:
        return f"{line}: starting its kernel"
    where = f"{cell['section']}, " if cell.get("section") else ""
    line += f": {where}cell {cell['cell']} of {cell['cells']} (for {duration(now - cell['t'])})"
    jobs = progress.jobs
    if jobs and jobs["t"] >= cell["t"]:  # a batch of jobs started by this cell
        done, total = jobs["done"], jobs["total"]
        line += f"; {jobs['jobs']} {done} of {total}"
        if 0 < done < total:
            per_job = (jobs["t"] - progress.jobs_started) / done
            line += f", about {duration(per_job * (total - done) - (now - jobs['t']))} left"
    return line


def batch_done(progress: NotebookProgress, event: dict) -> str | None:
    """The line that says a batch of jobs is complete, if ``event`` is its last: ``"04_...: jobs 48 of 48 done
    in 12 min 30 s"``; None for any other event."""
    if "jobs" not in event or not 0 < event["done"] == event["total"]:
        return None
    took = duration(event["t"] - progress.jobs_started)
    return f"{progress.name}: {event['jobs']} {event['done']} of {event['total']} done in {took}"


class Follower:
    """Reads the new lines of one notebook's progress file each time it is asked."""

    def __init__(self, path: Path, progress: NotebookProgress):
        self.path, self.progress, self.offset = path, progress, 0

    def poll(self) -> list[dict]:
        """Events appended since the last poll (complete lines only), already taken by :attr:`progress`."""
        if not self.path.exists():
            return []
        with self.path.open("rb") as file:
            file.seek(self.offset)
            data = file.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        events = [json.loads(line) for line in complete.decode("utf-8").splitlines() if line.strip()]
        for event in events:
            self.progress.update(event)
        return events


def news(follower: Follower) -> list[str]:
    """Poll ``follower``; the lines its new events call for at once (a batch of jobs complete)."""
    return [line for event in follower.poll() if (line := batch_done(follower.progress, event))]


class Ticker:
    """Says when the next status line is due: every ``every`` seconds, the first one ``every`` after start."""

    def __init__(self, terminal: bool, start: float | None = None):
        self.every = TERMINAL_EVERY_S if terminal else LOG_EVERY_S
        self.last = time.time() if start is None else start

    def due(self, now: float) -> bool:
        """True (and the clock restarts) when ``every`` seconds have passed since the last line."""
        if now - self.last < self.every:
            return False
        self.last = now
        return True
