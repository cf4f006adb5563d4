"""Absolute paths from one place, so notebooks work the same from JupyterLab, papermill and nbval.

``ASAM_FIGURES`` and ``ASAM_RESULTS`` redirect where notebooks write figures and result tables (``make
check-repro`` uses them to regenerate into build/ without touching the committed files); ``ASAM_CACHE``
moves the cache of expensive artefacts.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]  # asam_lib/common/paths.py
NOTEBOOKS = REPO_ROOT / "notebooks"
FIGURES = Path(os.environ.get("ASAM_FIGURES", REPO_ROOT / "figures")).resolve()
RESULTS = Path(os.environ.get("ASAM_RESULTS", REPO_ROOT / "results")).resolve()
CHECKPOINTS = REPO_ROOT / "checkpoints"
CACHE = Path(os.environ.get("ASAM_CACHE", REPO_ROOT / ".cache"))
BUILD = REPO_ROOT / "build"


def ensure(path: Path) -> Path:
    """Create ``path`` (a folder) if needed and return it."""
    path.mkdir(parents=True, exist_ok=True)
    return path
