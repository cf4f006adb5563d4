"""Absolute paths from one place, so notebooks work the same from JupyterLab, papermill and nbval."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO_ROOT / "notebooks"
FIGURES = REPO_ROOT / "figures"
RESULTS = REPO_ROOT / "results"
CHECKPOINTS = REPO_ROOT / "checkpoints"
CACHE = Path(os.environ.get("ASAM_CACHE", REPO_ROOT / ".cache"))
BUILD = REPO_ROOT / "build"


def ensure(path: Path) -> Path:
    """Create ``path`` (a folder) if needed and return it."""
    path.mkdir(parents=True, exist_ok=True)
    return path
