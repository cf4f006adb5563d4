"""Run the numbered notebooks headless with papermill: ``python -m tools.run_notebooks NB...``.

Each notebook runs with kernel ``python3``, absolute paths, a per-cell timeout, no progress bars, and
the full-run parameters of ``notebooks/figures.yaml`` (the notebooks' own defaults are the quick
configuration that nbval runs). Executed copies go to ``build/executed/``, never into ``notebooks/``;
figures and results are written by the notebooks themselves. A failing notebook stops the run with the
notebook and the cell named; at the end a table says, per notebook, how many figures and tables it
wrote, how many files are new or changed bytes, and how long it took (after ``make figures`` on a clean
checkout, nothing should have changed).

A full run also writes each executed notebook, made reproducible (:func:`for_reading`), to
``docs/notebooks/``, so a reader sees every figure, table and printed number without running anything:
no timestamps, durations, absolute paths, widget ids or stderr (warnings and wall-clock times go there).

Notebooks are independent (each writes only files named after itself), so a run executes them in ``--lanes``
(default 2) at once, each in its own process: notebook 04, about 60% of the work, starts first in a lane of its
own while the others run one after another beside it, so the cores stay busy while a notebook computes in its
kernel alone. Each notebook's results are the same in any lane: every computation is seeded, and each process
keeps its own number of torch threads whatever else runs (a full run in two lanes and one in a single lane wrote
byte-identical files; ``make check-repro`` compares two runs). If a notebook fails, the others are stopped.

While notebooks run, stderr says where each one is: its section and cell and for how long, and notebook 04's
worker jobs done of total with the time left (:mod:`tools.run_progress`; every 20 s on a terminal, once a minute
otherwise). Nothing of it reaches the executed notebooks, reading copies, figures or tables. The two lines a
kernel that ends normally writes to its stderr (a TCP warning, a KeyboardInterrupt at shutdown) are held back,
and shown only if that notebook fails; everything else a notebook's process writes passes through.

``--quick`` runs the quick configuration instead (only ``save_figures`` is set, so the files are written):
``make check-repro`` uses it. ``--checked-outputs`` runs the quick configuration and stores, in the
notebook itself, the outputs of the cells marked ``# NBVAL_CHECK_OUTPUT`` (text only, no images) and no
other output: these are the outputs nbval compares (docs/development.md).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import papermill as pm
import yaml

from asam_lib.common import paths
from asam_lib.common.progress import PROGRESS_FILE
from asam_lib.common.provenance import digest_folder
from tools.run_progress import CellReporter, Follower, NotebookProgress, Ticker, describe, is_kernel_noise, news

CELL_TIMEOUT_S = 1800
QUICK_PARAMETERS = {"save_figures": True}
QUIET_ENV = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}  # no progress bars in kernels we start
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml", "application/pdf")
WIDGET_TYPE = "application/vnd.jupyter.widget-view+json"
READING_COPIES = paths.REPO_ROOT / "docs" / "notebooks"
FIRST = ("04_edit_and_evaluate",)  # started first, in a lane of their own: the longest notebooks


def full_run_parameters(notebook: Path) -> dict:
    """The parameters ``make figures`` passes to ``notebook`` (from notebooks/figures.yaml)."""
    config = yaml.safe_load((paths.NOTEBOOKS / "figures.yaml").read_text()) or {}
    return dict(config.get(notebook.stem, {}))


def run(notebook: Path, parameters: dict, executed: Path) -> tuple[Path, float]:
    """Execute one notebook with ``parameters``; return the executed copy (under ``executed``) and seconds."""
    os.environ.update(QUIET_ENV)  # the kernel inherits this process's environment
    out = paths.ensure(executed) / notebook.name
    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(notebook),
            str(out),
            parameters=parameters,
            kernel_name="python3",
            cwd=str(paths.NOTEBOOKS),
            execution_timeout=CELL_TIMEOUT_S,
            progress_bar=False,
            on_cell_start=CellReporter(notebook, injected=bool(parameters)),  # for the terminal, not the notebook
        )
    except pm.PapermillExecutionError as err:
        raise SystemExit(
            f"\n{notebook.name} failed in cell {err.exec_count} ({err.ename}: {err.evalue}).\n"
            f"The partly executed notebook is {out}."
        ) from None
    return out, time.perf_counter() - start


def store_checked_outputs(notebook: Path, executed: Path) -> int:
    """Keep in ``notebook`` the outputs of ``executed`` for the marked cells only; return how many cells.

    Images are dropped (nbval does not compare them); every other cell is stored without output.
    """
    source = nbformat.read(notebook, as_version=4)
    ran = {cell.id: cell for cell in nbformat.read(executed, as_version=4).cells}
    marked = 0
    for cell in source.cells:
        if cell.cell_type != "code":
            continue
        if CHECK_MARK in cell.source:
            marked += 1
            cell.execution_count = ran[cell.id].execution_count
            cell.outputs = [_text_only(o) for o in ran[cell.id].outputs if _text_only(o) is not None]
        else:
            cell.execution_count, cell.outputs = None, []
    notebook.write_text(nbformat.writes(source) + "\n")
    return marked


def for_reading(executed: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``executed`` without what changes from run to run: papermill's and Jupyter's timing metadata (the
    parameters are kept), stderr streams (warnings, progress bars and wall-clock times), live widgets (their
    ids are random), the random id papermill gives the cell it injects, and the repository's absolute path."""
    notebook = nbformat.from_dict(executed)
    parameters = notebook.metadata.get("papermill", {}).get("parameters")
    notebook.metadata.pop("papermill", None)
    notebook.metadata.pop("widgets", None)
    if parameters is not None:
        notebook.metadata["papermill"] = {"parameters": parameters}
    for cell in notebook.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.id = "injected-parameters"
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.outputs:
            if output.get("name") == "stderr":
                continue
            if "data" in output:
                output.data = {k: v for k, v in output.data.items() if k != WIDGET_TYPE}
                if not output.data:
                    continue
            kept.append(output)
        cell.outputs = kept
    text = nbformat.writes(notebook).replace(str(paths.REPO_ROOT), "<repository>")
    return relinked(nbformat.reads(text, as_version=4))


MARKDOWN_LINK = re.compile(r"(\]\()(\.\./[^)\s]*)")


def relinked(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``notebook`` with the relative links of its Markdown cells, written from ``notebooks/``, pointed at the
    same files from ``docs/notebooks/`` (``../docs/method.md`` becomes ``../method.md``), so they work in the
    reading copy too."""
    source, copy = paths.REPO_ROOT / "notebooks", READING_COPIES

    def relink(match: re.Match) -> str:
        return match[1] + os.path.relpath(os.path.normpath(source / match[2]), copy)

    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = MARKDOWN_LINK.sub(relink, cell.source)
    return notebook


def _text_only(output: nbformat.NotebookNode) -> nbformat.NotebookNode | None:
    """``output`` without image data and metadata (None if nothing is left)."""
    if "data" not in output:
        return output
    data = {k: v for k, v in output.data.items() if k not in IMAGE_TYPES}
    return nbformat.from_dict({**output, "data": data, "metadata": {}}) if data else None


def _snapshot() -> dict[str, str]:
    """Hashes of the files under figures/ and results/ (wherever ASAM_FIGURES / ASAM_RESULTS point)."""
    return {
        f"{folder.name}/{p}": h for folder in (paths.FIGURES, paths.RESULTS) for p, h in digest_folder(folder).items()
    }


def run_one(notebook: Path, quick: bool, executed: Path) -> float:
    """Run one notebook (full or quick configuration) and, on a full run, write its reading copy; seconds."""
    out, seconds = run(notebook.resolve(), QUICK_PARAMETERS if quick else full_run_parameters(notebook), executed)
    if not quick:
        copy = paths.ensure(READING_COPIES) / notebook.name
        copy.write_text(nbformat.writes(for_reading(nbformat.read(out, as_version=4))) + "\n")
    return seconds


def schedule(notebooks: list[Path]) -> list[Path]:
    """The order in which lanes take the notebooks: those of :data:`FIRST`, then the rest in the given order."""
    return sorted(notebooks, key=lambda nb: (nb.stem not in FIRST, notebooks.index(nb)))


def run_in_lanes(notebooks: list[Path], lanes: int, quick: bool, executed: Path) -> dict[Path, float]:
    """Run ``notebooks`` (in :func:`schedule` order), ``lanes`` at a time, each in its own process
    (``python -m tools.run_notebooks --one``); seconds per notebook. The first failure stops every other
    running notebook (with its kernel and workers) and exits with the failing notebook's message.

    While they run, stderr says where each one is (:mod:`tools.run_progress`); the lines a kernel that ends
    normally writes to its stderr are held back, and printed only if its notebook fails."""
    queue, seconds, failed = list(schedule(notebooks)), {}, []
    # more threads than cores while lanes share them: OpenMP threads wait asleep rather than spinning (the same
    # numbers, since the thread count does not change; without it a kernel's in-process torch work slows down)
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE") if lanes > 1 else dict(os.environ)
    running: dict[Path, subprocess.Popen] = {}
    followers: dict[Path, Follower] = {}
    lock = threading.Lock()
    done = threading.Event()
    events_folder = tempfile.TemporaryDirectory(prefix="asam-progress-")  # one progress file per notebook
    events = Path(events_folder.name)

    def say(line: str) -> None:
        with lock:
            print(line, file=sys.stderr, flush=True)

    def lane() -> None:
        while True:
            with lock:
                if not queue or failed:
                    return
                nb = queue.pop(0)
                command = [sys.executable, "-m", "tools.run_notebooks", "--one", str(nb), "--executed", str(executed)]
                print(f"running {nb.name} ...", flush=True)
                start = time.perf_counter()
                progress_file = events / f"{nb.stem}.jsonl"
                followers[nb] = Follower(progress_file, NotebookProgress(nb.stem, time.time()))
                running[nb] = subprocess.Popen(
                    command + (["--quick"] if quick else []),
                    cwd=paths.REPO_ROOT,
                    start_new_session=True,
                    env={**env, PROGRESS_FILE: str(progress_file)},
                    stderr=subprocess.PIPE,
                    encoding="utf-8",
                    errors="replace",  # a stray byte must not stop the reader (a full pipe would block the notebook)
                )
            held: list[str] = []
            reader = threading.Thread(target=_pass_on, args=(running[nb].stderr, held, say), daemon=True)
            reader.start()
            code = running[nb].wait()
            reader.join(timeout=10)  # the kernel and workers, which write to the same pipe, end with the notebook
            with lock:
                del running[nb]
                for line in news(followers.pop(nb)):  # the last events, if the watcher has not read them yet
                    print(line, file=sys.stderr, flush=True)
                if code == 0:
                    seconds[nb] = time.perf_counter() - start
                    print(f"finished {nb.name} ({seconds[nb]:.0f} s)", flush=True)
                elif not failed:  # a notebook stopped by another's failure is not a failure of its own
                    failed.append(nb)
                    print("".join(held), end="", file=sys.stderr, flush=True)
                    for process in running.values():
                        os.killpg(process.pid, signal.SIGTERM)

    threads = [threading.Thread(target=lane) for _ in range(max(1, lanes))]
    for thread in threads:
        thread.start()
    watcher = threading.Thread(target=_watch, args=(followers, lock, done, say))
    watcher.start()
    for thread in threads:
        thread.join()
    done.set()
    watcher.join()
    events_folder.cleanup()
    if failed:
        raise SystemExit(f"\n{failed[0].name} failed (its message is above); the other notebooks were stopped.")
    return seconds


def _pass_on(stderr, held: list[str], say) -> None:
    """Print each line of a notebook's ``stderr`` at once, except kernel noise: that goes to ``held``."""
    for line in stderr:
        if is_kernel_noise(line):
            held.append(line)
        else:
            say(line.rstrip("\n"))


def _watch(followers: dict[Path, Follower], lock: threading.Lock, done: threading.Event, say) -> None:
    """Until ``done``: read the running notebooks' progress, print a line when a batch of jobs completes, and
    a status line per running notebook when the :class:`~tools.run_progress.Ticker` says one is due."""
    ticker = Ticker(sys.stderr.isatty())
    while not done.wait(1.0):
        now, lines = time.time(), []
        with lock:
            lines += [line for follower in followers.values() for line in news(follower)]
            if ticker.due(now):
                lines += [describe(f.progress, now) for f in followers.values()]
        for line in lines:
            say(line)


def _own_files(files, notebook: Path) -> list:
    """The files (paths or relative names) a notebook writes: figures and tables are named after it ("04_...")."""
    prefix = notebook.stem.split("_")[0] + "_"
    return [f for f in files if Path(f).name.startswith(prefix)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the notebooks' quick configuration, writing files")
    mode.add_argument("--checked-outputs", action="store_true", help="store the outputs nbval compares")
    parser.add_argument("--executed", type=Path, default=paths.BUILD / "executed", help="where executed copies go")
    parser.add_argument("--lanes", type=int, default=2, help="notebooks run at once (each in its own process)")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # a lane's process: run this notebook only
    args = parser.parse_args(argv)
    if args.one is not None:
        # stopped by another lane's failure: raise, so that papermill shuts the kernel (and its workers) down
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(f"{args.one.name}: stopped"))
        run_one(args.one, args.quick, args.executed)
        return
    if not args.notebooks:
        parser.error("name at least one notebook")
    if args.checked_outputs:
        for nb in args.notebooks:
            out, seconds = run(nb.resolve(), {}, paths.BUILD / "checked-outputs")
            print(f"{nb.name}: outputs of {store_checked_outputs(nb, out)} marked cells stored ({seconds:.0f} s)")
        return
    before, started, start = _snapshot(), time.time_ns(), time.perf_counter()
    seconds = run_in_lanes(args.notebooks, args.lanes, args.quick, args.executed)
    wall = time.perf_counter() - start
    after, written = _snapshot(), _written_since(started)
    new = sorted(f for f in after if f not in before)
    changed = sorted(f for f, h in after.items() if f in before and before[f] != h)
    rows = [
        (nb.name, _own_files(written, nb), _own_files(new, nb), _own_files(changed, nb), seconds[nb])
        for nb in args.notebooks
    ]
    print(f"\n{'notebook':32s} {'figures':>7s} {'tables':>6s} {'new':>5s} {'changed':>7s} {'seconds':>7s}")
    for name, written, new, changed, seconds in rows:
        figures = sum(p.suffix == ".png" for p in written)
        tables = sum(p.suffix == ".csv" for p in written)
        print(f"{name:32s} {figures:7d} {tables:6d} {len(new):5d} {len(changed):7d} {seconds:7.0f}")
    print(
        f"{'total':32s} {'':7s} {'':6s} {sum(len(r[2]) for r in rows):5d} {sum(len(r[3]) for r in rows):7d} "
        f"{wall:7.0f}  (wall clock, {args.lanes} lane(s))"
    )
    print(
        f"\nfigures (PNG + PDF + JSON sidecar) in {paths.FIGURES}, tables (CSV + JSON sidecar) in {paths.RESULTS}; "
        "new / changed: files that did not exist / whose bytes differ from before the run"
    )
    for name, _, _, changed, _ in rows:
        for f in changed:
            print(f"  changed by {name}: {f}")


def _written_since(start_ns: int) -> list[Path]:
    """Files under figures/ and results/ modified since ``start_ns`` (time.time_ns())."""
    return sorted(
        p
        for folder in (paths.FIGURES, paths.RESULTS)
        if folder.exists()
        for p in folder.rglob("*")
        if p.is_file() and p.stat().st_mtime_ns >= start_ns
    )


if __name__ == "__main__":
    main(sys.argv[1:])
