"""Independent jobs on worker processes, with every failure reported as one error that names its job.

:func:`run_in_workers` calls a module-level function on each job, in ``workers`` spawned processes (one
torch thread each: on a small model, two single-threaded processes finish sooner than one process with two
threads), and returns the outputs in job order. Whatever goes wrong in a worker reaches the caller as a
:class:`JobError` that names the job and carries the worker's own traceback as text: an exception, a worker
that dies (killed, out of memory, a crash in native code), a job or an output that cannot be pickled.
Jobs done of total go to a progress bar and to :func:`asam_lib.common.progress.counted`'s progress file.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

import torch

from asam_lib.common.progress import counted

J = TypeVar("J")
R = TypeVar("R")


class JobError(RuntimeError):
    """A job that failed: names the job and carries the traceback of the process that ran it."""

    def __init__(self, job: str, detail: str):
        self.job, self.detail = job, detail
        super().__init__(f"{job} failed:\n{detail}")

    def __reduce__(self):  # raised in a worker, re-raised in the caller
        return type(self), (self.job, self.detail)


def _init_worker() -> None:
    torch.set_num_threads(1)
    os.environ["TQDM_DISABLE"] = "1"


def _call_in_worker(function: Callable[[J], R], job: J) -> R:
    """``function(job)``, with any exception turned into a :class:`JobError` that carries this worker's
    traceback as text (an exception object need not survive pickling; its text does)."""
    try:
        return function(job)
    except Exception:
        raise JobError(repr(job), traceback.format_exc()) from None


def _result(job: object, future: Future) -> object:
    """The output of ``job``'s future, or one :class:`JobError` naming the job whatever went wrong."""
    try:
        return future.result()
    except JobError as err:
        raise JobError(err.job, err.detail) from None
    except BrokenProcessPool as err:
        raise JobError(
            repr(job),
            f"the worker process running it (or a job beside it) died without a Python error: "
            f"killed, out of memory or a crash in native code ({err})",
        ) from None
    except Exception as err:  # e.g. the job or its output could not be pickled
        raise JobError(repr(job), "".join(traceback.format_exception(err))) from None


def run_in_workers(function: Callable[[J], R], jobs: Sequence[J], workers: int = 2, desc: str = "jobs") -> list[R]:
    """``[function(job) for job in jobs]`` on ``workers`` processes (1: in this process). ``function`` must
    be importable by name (defined at module level). A failing job raises :class:`JobError` naming it (in
    this process: the job's own exception, with a note naming the job); jobs not yet started are not run."""
    if workers <= 1:
        outputs = []
        for job in counted(jobs, desc):
            try:
                outputs.append(function(job))
            except Exception as err:
                err.add_note(f"while running {job!r}")
                raise
        return outputs
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
        futures = [pool.submit(_call_in_worker, function, job) for job in jobs]
        try:
            return [_result(job, future) for job, future in counted(zip(jobs, futures), desc)]
        except JobError:
            pool.shutdown(cancel_futures=True)
            raise
