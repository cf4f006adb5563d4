"""Hooks on model modules, always removed, even when the forward pass raises."""

from __future__ import annotations

from typing import Any, Callable

import torch


def module_input(module: torch.nn.Module, run: Callable[[], Any], keyword: str | None = None) -> torch.Tensor:
    """What ``module`` receives while ``run()`` executes (under ``no_grad``): its first positional
    argument, or the keyword argument ``keyword``. The first call of ``module`` counts; the tensor is
    detached."""
    captured: dict[str, torch.Tensor] = {}

    def grab(_module, args, kwargs):
        if "x" not in captured:
            captured["x"] = kwargs[keyword] if keyword is not None else args[0]

    handle = module.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            run()
    finally:
        handle.remove()
    return captured["x"].detach()
