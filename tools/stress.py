"""Run notebooks under nbval (their quick configuration) again and again, each time with an empty cache
as on a fresh clone, and print how many runs passed: ``make stress`` (not part of ``make test``).

    python tools/stress.py notebooks/04_edit_and_evaluate.ipynb --runs 30

The log of every failed run is kept under ``build/stress/`` so that a flake's traceback is not lost.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOGS = REPO / "build" / "stress"


def nbval_command(notebooks: list[str]) -> list[str]:
    """The notebook half of ``make test`` (its ``test-notebooks`` target), for ``notebooks``."""
    return ["make", "--no-print-directory", "test-notebooks", f"NOTEBOOKS={' '.join(notebooks)}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--keep-cache", action="store_true", help="reuse .cache instead of an empty cache per run")
    args = parser.parse_args(argv)
    LOGS.mkdir(parents=True, exist_ok=True)
    passed = 0
    for run in range(1, args.runs + 1):
        env = {**os.environ, "TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
        with tempfile.TemporaryDirectory(prefix="asam-stress-cache-") as cache:
            if not args.keep_cache:
                env["ASAM_CACHE"] = cache
            start = time.perf_counter()
            result = subprocess.run(nbval_command(args.notebooks), cwd=REPO, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if result.returncode == 0:
            passed += 1
            verdict = "passed"
        else:
            log = LOGS / f"run-{run:03d}.log"
            log.write_text(result.stdout + "\n--- stderr ---\n" + result.stderr)
            verdict = f"FAILED (log: {log.relative_to(REPO)})"
        print(f"run {run}/{args.runs}: {verdict} in {seconds:.0f} s; {passed} passed so far", flush=True)
    print(f"{passed} of {args.runs} runs passed")
    return 0 if passed == args.runs else 1


if __name__ == "__main__":
    raise SystemExit(main())
