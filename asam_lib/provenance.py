"""Provenance of figures: content hashes and the fingerprint of the code that shapes a figure.

The hashes are content hashes (no paths, no timestamps, no git): the same content gives the same hash on any
machine and in any checkout. :func:`library_fingerprint` covers ``asam_lib/`` (the method and its experiment
API) and the packages that change figure bytes, nothing else: the tooling in ``tools/`` is not part of it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("matplotlib", "numpy", "pandas", "seaborn", "torch", "transformers")  # what changes figure bytes


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def content_hash(value: object) -> str:
    """Hex sha256 of ``value`` as canonical JSON (sorted keys, no whitespace): the same for equal values."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def library_fingerprint() -> dict:
    """Version of asam_lib, a hash of its source files, and the versions of the packages that shape figures."""
    sources = sorted(Path(__file__).parent.glob("*.py"))
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    return {
        "asam_lib_version": _version("asam-lib"),
        "asam_lib_source_sha256": digest.hexdigest(),
        "python": ".".join(map(str, sys.version_info[:2])),  # the micro version is not pinned
        "packages": {name: _version(name) for name in PACKAGES},
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def digest_folder(folder: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``folder`` (empty if it does not exist)."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}
