"""Hooks on model modules, always removed, even when the forward pass raises."""

from __future__ import annotations

from typing import Any, Callable

import torch


class _Captured(Exception):
    """Raised by the capturing hook to stop the forward pass once it has what it needs."""


def module_input(module: torch.nn.Module, run: Callable[[], Any], keyword: str | None = None) -> torch.Tensor:
    """What ``module`` receives while ``run()`` executes (under ``no_grad``): its first positional
    argument, or the keyword argument ``keyword``. The first call of ``module`` counts; the tensor is
    detached, and the forward pass stops there (nothing after ``module`` is computed)."""
    captured: dict[str, torch.Tensor] = {}

    def grab(_module, args, kwargs):
        captured["x"] = kwargs[keyword] if keyword is not None else args[0]
        raise _Captured

    handle = module.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            run()
    except _Captured:
        pass
    finally:
        handle.remove()
    if "x" not in captured:
        raise RuntimeError(f"{type(module).__name__} was not called during the forward pass")
    return captured["x"].detach()
