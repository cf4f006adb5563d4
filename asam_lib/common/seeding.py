"""One seeding function and explicit generators (no hidden global randomness in library code)."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic CPU kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def derive_seed(seed: int, *names: object) -> int:
    """A stable 31-bit seed for a named random stream, e.g. ``derive_seed(0, "images", 3)``."""
    text = "/".join([str(seed), *map(str, names)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


def numpy_rng(seed: int, *names: object) -> np.random.Generator:
    """A NumPy generator for one named stream."""
    return np.random.default_rng(derive_seed(seed, *names))


def torch_generator(seed: int, *names: object) -> torch.Generator:
    """A torch CPU generator for one named stream."""
    return torch.Generator().manual_seed(derive_seed(seed, *names))
