"""Provenance of figures and result tables: content hashes, the fingerprint of the code that shapes them,
and the sidecar ``<name>.json`` written beside each saved file.

A sidecar names what wrote its file: a notebook (:func:`declare`: the notebook, its parameters, the hash of its
code cells) or a command of ``tools/`` (:func:`command_source`: the command that reruns it, its arguments, the
hash of the tool's source), and in both cases :func:`library_fingerprint`.

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
from typing import Mapping, Sequence

from asam_lib.common import paths
from asam_lib.common.parameters import parameter_defaults

PACKAGES = ("matplotlib", "numpy", "pandas", "seaborn", "torch", "transformers")  # what changes figure bytes


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def content_hash(value: object) -> str:
    """Hex sha256 of ``value`` as canonical JSON (sorted keys, no whitespace): the same for equal values."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def library_fingerprint() -> dict:
    """Version of asam_lib, a hash of its source files, and the versions of the packages that shape figures."""
    package = Path(__file__).resolve().parents[1]  # asam_lib/, whose layer folders hold the modules
    sources = sorted(package.rglob("*.py"))
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.relative_to(package).as_posix().encode() + b"\0" + source.read_bytes() + b"\0")
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


def notebook_code_sha256(notebook: Path) -> str:
    """Content hash of a notebook's code cells (joined by newlines): outputs and Markdown do not change it."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    return content_hash("\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code"))


_declared: dict | None = None  # set by declare(), read when a figure or table is saved


def declare(notebook: str, namespace: Mapping[str, object]) -> dict:
    """Declare that the figures and tables saved from now on come from ``notebook`` run with its current
    parameters (a notebook's setup cell: ``provenance.declare("04_edit_and_evaluate", globals())``).

    ``notebook`` is the stem of a file in notebooks/; the names assigned in its cell tagged ``parameters``
    are looked up in ``namespace`` (pass ``globals()``), so papermill's overrides are what gets recorded.
    """
    global _declared
    path = paths.NOTEBOOKS / f"{notebook}.ipynb"
    names = list(parameter_defaults(notebook))
    missing = [n for n in names if n not in namespace]
    if missing:
        raise KeyError(f"provenance: parameters {missing} of {path.name} are not defined (pass globals())")
    parameters = {n: namespace[n] for n in names}
    _declared = {
        "notebook": path.relative_to(paths.REPO_ROOT).as_posix(),
        "notebook_code_sha256": notebook_code_sha256(path),
        "parameters": parameters,
        "parameters_sha256": content_hash(parameters),
        **library_fingerprint(),
    }
    return _declared


def declared() -> dict | None:
    """What :func:`declare` recorded in this process (None before a notebook declared itself)."""
    return _declared


def command_source(tool: str, arguments: Mapping[str, object], rerun: str) -> dict:
    """Where a table written by a command of ``tools/`` comes from, for :func:`write_sidecar` (through
    ``asam_lib.evaluation.harness.save_table(..., source=...)``): ``tool`` the command's file relative to the repository
    (``"tools/sequential_causes.py"``), ``arguments`` the settings that shape the table (JSON values), ``rerun``
    the command that rewrites it (``"make sequential-causes"``), and the library fingerprint."""
    path = paths.REPO_ROOT / tool
    if not path.is_file():
        raise FileNotFoundError(f"provenance: tool {tool!r} -> {path} not found (give its path from the repository)")
    arguments = dict(arguments)
    return {
        "command": rerun,
        "tool": tool,
        "tool_code_sha256": sha256_file(path),
        "arguments": arguments,
        "arguments_sha256": content_hash(arguments),
        **library_fingerprint(),
    }


def write_sidecar(files: Sequence[Path], described: Mapping[str, object]) -> Path:
    """Write ``<stem>.json`` beside ``files`` (one stem: a figure's .png and .pdf, or a table's .csv) holding
    the sha256 of each file and ``described`` (where they come from); sorted keys, so equal content gives
    equal bytes."""
    files = [Path(p) for p in files]
    sidecar = files[0].with_suffix(".json")
    record = {"files": {p.name: sha256_file(p) for p in files}, **described}
    sidecar.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return sidecar


def digest_folder(folder: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``folder`` (empty if it does not exist)."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}
