"""Reproducibility you can check: content hashes, and the pipeline run twice with its files compared.

``python -m tools.repro NB...`` (``make check-repro``) runs every notebook twice in its quick
configuration, writing figures and result tables into ``build/check-repro/run-1`` and ``run-2`` (through
``ASAM_FIGURES`` / ``ASAM_RESULTS``, so the committed ``figures/`` and ``results/`` are not touched), then
compares the sha256 of every file produced and fails on any difference. Each notebook runs in a fresh
kernel, so the second run shares nothing in memory with the first.

The hashes are :mod:`asam_lib.common.provenance`'s content hashes. :func:`stale_files` asks the other question,
whether the committed files are today's: each figure's and table's sidecar must name the notebook code and
the ``asam_lib`` source that exist now (for a table a command of ``tools/`` wrote: that command's source and the
``asam_lib`` source); ``make test`` checks it on ``figures/`` and ``results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from asam_lib.common import paths
from asam_lib.common.provenance import digest_folder, library_fingerprint, notebook_code_sha256, sha256_file

SAVED_SUFFIXES = (".png", ".pdf", ".csv")  # what notebooks save; each file has a sidecar <stem>.json beside it


@dataclass(frozen=True)
class Comparison:
    """One file in two runs: its hash in each (None when absent) and whether they agree."""

    path: str
    first: str | None
    second: str | None

    @property
    def status(self) -> str:
        if self.first is None:
            return "only in run 2"
        if self.second is None:
            return "only in run 1"
        return "identical" if self.first == self.second else "DIFFERS"

    @property
    def ok(self) -> bool:
        return self.status == "identical"


def compare(first: dict[str, str], second: dict[str, str]) -> list[Comparison]:
    """Compare two ``{path: sha256}`` maps file by file (the union of their paths, sorted)."""
    return [Comparison(p, first.get(p), second.get(p)) for p in sorted(first.keys() | second.keys())]


def format_table(rows: list[Comparison]) -> str:
    """A plain-text table: file, the first 12 hex digits of each hash, status."""
    width = max([len("file")] + [len(r.path) for r in rows])
    lines = [f"{'file':{width}s}  {'run 1':12s}  {'run 2':12s}  status"]
    for r in rows:
        lines.append(f"{r.path:{width}s}  {(r.first or '-')[:12]:12s}  {(r.second or '-')[:12]:12s}  {r.status}")
    return "\n".join(lines)


def stale_files(folder: Path, library_sha256: str | None = None) -> list[str]:
    """The figures and tables in ``folder`` that today's code did not write, as ``"<file>: <why>"`` lines.

    A file is stale when it has no sidecar, when its bytes are not the ones its sidecar records, or when the
    sidecar's hash of the code that wrote it (a notebook's code cells, or the source of a command of ``tools/``) or
    of ``asam_lib``'s source (``library_sha256``, default: today's) is not today's. ``make figures`` rewrites every
    file a notebook wrote; a table a command wrote says which command rewrites it (its sidecar's ``command``).
    """
    library_sha256 = library_sha256 or library_fingerprint()["asam_lib_source_sha256"]
    code_hashes: dict[str, str | None] = {}
    stale = []
    for path in sorted(p for p in Path(folder).iterdir() if p.suffix in SAVED_SUFFIXES):
        sidecar_path = path.with_suffix(".json")
        if not sidecar_path.exists():
            stale.append(f"{path.name}: no provenance sidecar {sidecar_path.name}")
            continue
        sidecar = json.loads(sidecar_path.read_text())
        writer, recorded, code_hash = _writer(sidecar)
        if writer not in code_hashes:
            code_hashes[writer] = code_hash(paths.REPO_ROOT / writer) if (paths.REPO_ROOT / writer).is_file() else None
        reasons = []
        if sidecar["files"].get(path.name) != sha256_file(path):
            reasons.append(f"its bytes differ from the sha256 in {sidecar_path.name}")
        if code_hashes[writer] is None:
            reasons.append(f"{writer} no longer exists")
        elif recorded != code_hashes[writer]:
            reasons.append(f"the code of {writer} changed since")
        if sidecar["asam_lib_source_sha256"] != library_sha256:
            reasons.append("asam_lib's source changed since")
        if reasons and "command" in sidecar:
            reasons.append(f"`{sidecar['command']}` rewrites it (make figures does not)")
        if reasons:
            stale.append(f"{path.name}: " + "; ".join(reasons))
    return stale


def _writer(sidecar: dict) -> tuple[str, str, Callable[[Path], str]]:
    """What wrote a sidecar's files: (its path in the repository, the hash of its code the sidecar records, the
    function that hashes its code today): a notebook (:func:`asam_lib.common.provenance.declare`) or a command of
    ``tools/`` (:func:`asam_lib.common.provenance.command_source`)."""
    if "tool" in sidecar:
        return sidecar["tool"], sidecar["tool_code_sha256"], sha256_file
    return sidecar["notebook"], sidecar["notebook_code_sha256"], notebook_code_sha256


def run_pipeline(notebooks: list[Path], out: Path) -> float:
    """Run the notebooks' quick configuration with figures and results redirected under ``out``; seconds."""
    env = dict(os.environ, ASAM_FIGURES=str(out / "figures"), ASAM_RESULTS=str(out / "results"))
    command = [sys.executable, "-m", "tools.run_notebooks", "--quick", "--executed", str(out / "executed")]
    start = time.perf_counter()
    subprocess.run(command + [str(nb) for nb in notebooks], env=env, check=True, cwd=paths.REPO_ROOT)
    return time.perf_counter() - start


def produced_files(out: Path) -> dict[str, str]:
    """Hashes of what a run wrote (figures/ and results/; the executed notebooks hold timings, so not them)."""
    return {f"{sub}/{path}": sha for sub in ("figures", "results") for path, sha in digest_folder(out / sub).items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=paths.BUILD / "check-repro", help="where the two runs write")
    args = parser.parse_args(argv)
    shutil.rmtree(args.out, ignore_errors=True)
    hashes, seconds = [], []
    for k in (1, 2):
        print(f"\n=== run {k} of 2 ===", flush=True)
        seconds.append(run_pipeline(args.notebooks, args.out / f"run-{k}"))
        hashes.append(produced_files(args.out / f"run-{k}"))
    rows = compare(*hashes)
    print("\n" + format_table(rows))
    bad = [r for r in rows if not r.ok]
    print(
        f"\n{len(rows)} files, {len(rows) - len(bad)} identical, {len(bad)} not; runs took "
        f"{seconds[0]:.0f} s and {seconds[1]:.0f} s (files under {args.out})"
    )
    if not rows:
        print("FAIL: the runs produced no files (do the notebooks honour save_figures?)")
        return 1
    if bad:
        print("FAIL: a re-run did not write the same bytes: " + ", ".join(r.path for r in bad))
        return 1
    print("OK: every produced file is byte-identical across the two runs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
