"""Progress bars that honour ``TQDM_DISABLE`` in Jupyter kernels too, and progress a runner can follow.

``tqdm.auto`` picks the notebook widget in a kernel, and the widget passes ``disable=False`` explicitly,
overriding the environment variable that plain tqdm reads. Test runs (nbval, papermill under ``make``) set
``TQDM_DISABLE=1`` and should print no bar anywhere; people running a notebook by hand still get one.

A bar in a kernel is invisible to whoever started the kernel from a terminal (``make figures``), and anything
printed would land in the notebook's outputs. So :func:`counted` also appends each step, as one JSON line,
to the file named by ``ASAM_PROGRESS_FILE`` when that is set (``tools.run_notebooks`` sets it for each
notebook and reads the file from outside); without it, nothing is written.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from functools import partial
from typing import TypeVar

from tqdm.auto import tqdm as _tqdm

T = TypeVar("T")
PROGRESS_FILE = "ASAM_PROGRESS_FILE"  # environment variable: where :func:`report` appends its events

tqdm = partial(_tqdm, disable=True) if os.environ.get("TQDM_DISABLE", "") not in ("", "0") else _tqdm


def report(**event: object) -> None:
    """Append ``event`` with the wall-clock time ``t`` as one JSON line to ``$ASAM_PROGRESS_FILE`` (if set).

    One short ``write`` in append mode, so lines from the kernel and the process that runs it do not mix.
    """
    target = os.environ.get(PROGRESS_FILE)
    if not target:
        return
    with open(target, "a", encoding="utf-8") as file:
        file.write(json.dumps({**event, "t": time.time()}) + "\n")


def counted(items: Iterable[T], desc: str) -> Iterator[T]:
    """``tqdm(items, desc=desc)`` that also reports ``{"jobs": desc, "done": k, "total": n}`` before the
    first item and after each item is consumed (so ``done`` reaches ``total`` when the loop ends)."""
    items = list(items)
    report(jobs=desc, done=0, total=len(items))
    for done, item in enumerate(tqdm(items, desc=desc), start=1):
        yield item
        report(jobs=desc, done=done, total=len(items))
