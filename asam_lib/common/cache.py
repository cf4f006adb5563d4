"""Artefacts built once and shared by every process (the exported benchmark, image banks, a pretrained
model): built under an inter-process lock, and every file written atomically.

Notebooks run their edits on worker processes, and on a fresh clone two workers can ask for the same
artefact at the same moment. A file is written under a temporary name in its folder and renamed into
place (``os.replace`` is atomic), so a reader sees either no file or the whole file, never a half-written
one; :func:`building` makes the second process wait for the first instead of building it again.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock


@contextmanager
def building(folder: Path) -> Iterator[None]:
    """Hold an inter-process lock on ``folder`` (the file ``folder.lock`` beside it) while building it.
    Check again inside the block whether another process built it meanwhile."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        yield


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary path in ``path``'s folder, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
