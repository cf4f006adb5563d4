"""Edit cases kept on disk, so that the processes of a run build each case once.

Building one case of the embedded world takes about half a second (rendering the images of its unit and of its
support, locality and memory items; the base model's latent distances and known flags), and the notebooks' worker
processes need the same cases again and again: the single-edit and sequential jobs of one seed on both workers, the
same seeds in notebooks 01 and 04. A case depends only on its world record, the seed, the harness settings, the
base model and this library's code (:func:`asam_lib.evaluation.harness.world_case`). So it is stored (pickled: read
back, it holds the same numbers) in a folder named by a hash of the model's files, the library's source and the versions
of the packages that compute it, and any change to one of those starts a new folder (the folders of other versions are
removed). Only the embedded base model's cases are kept; a checkpoint of your own is never hashed or cached.
"""

from __future__ import annotations

import hashlib
import pickle
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Callable, TypeVar

from asam_lib.common import cache, paths
from asam_lib.common.provenance import content_hash, library_fingerprint

T = TypeVar("T")
ROOT_NAME = "cases"


@lru_cache(maxsize=4)
def cases_folder(model_folder: Path) -> Path:
    """The folder of the cases built with the model in ``model_folder`` by this code (created; the folders of
    other models or code versions are removed)."""
    digest = hashlib.sha256(content_hash(library_fingerprint()).encode())
    for file in sorted(Path(model_folder).iterdir()):
        if file.is_file():
            digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    root = paths.CACHE / ROOT_NAME
    folder = root / digest.hexdigest()[:20]
    if not folder.exists():
        for other in root.glob("*"):
            if other.is_dir() and other != folder:
                shutil.rmtree(other, ignore_errors=True)
    return paths.ensure(folder)


def cached(folder: Path | None, key: dict, build: Callable[[], T]) -> T:
    """``build()``, kept in ``folder`` under ``key`` (a JSON-able dict naming everything the result depends on
    besides the folder's model and code): read back if some process has built it, else built under a lock (a
    second process asking at the same moment waits for it) and written atomically. ``folder`` None: just build."""
    if folder is None:
        return build()
    path = folder / f"{content_hash(key)[:32]}.pkl"
    kept = _read(path)
    if kept is not None:
        return kept
    with cache.building(path):
        kept = _read(path)
        if kept is not None:
            return kept
        value = build()
        cache.write_atomically(path, lambda tmp: tmp.write_bytes(pickle.dumps(value, pickle.HIGHEST_PROTOCOL)))
    return value


def _read(path: Path):
    try:
        return pickle.loads(path.read_bytes())
    except FileNotFoundError:
        return None
