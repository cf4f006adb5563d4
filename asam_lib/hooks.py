"""Hooks on model modules, always removed, even when the forward pass raises."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch


class _Captured(Exception):
    """Raised by the capturing hook to stop the forward pass once it has what it needs."""


def module_input(
    module: torch.nn.Module, run: Callable[[], Any], keyword: str | None = None, grad: bool = False
) -> torch.Tensor:
    """What ``module`` receives while ``run()`` executes (under ``no_grad``): its first positional
    argument, or the keyword argument ``keyword``. The first call of ``module`` counts; the tensor is
    detached, and the forward pass stops there (nothing after ``module`` is computed). ``grad``: run with
    gradients and keep the tensor's graph (to backpropagate through what came before ``module``)."""
    captured: dict[str, torch.Tensor] = {}

    def grab(_module, args, kwargs):
        captured["x"] = kwargs[keyword] if keyword is not None else args[0]
        raise _Captured

    handle = module.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.enable_grad() if grad else torch.no_grad():
            run()
    except _Captured:
        pass
    finally:
        handle.remove()
    if "x" not in captured:
        raise RuntimeError(f"{type(module).__name__} was not called during the forward pass")
    return captured["x"] if grad else captured["x"].detach()


@contextmanager
def module_output(module: torch.nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Inside the context, ``captured["y"]`` is the last output of ``module`` (its first element when the
    module returns a tuple), with its autograd graph. The hook is removed on exit, even on an exception."""
    captured: dict[str, torch.Tensor] = {}

    def grab(_module, _args, output):
        captured["y"] = output[0] if isinstance(output, tuple) else output

    handle = module.register_forward_hook(grab)
    try:
        yield captured
    finally:
        handle.remove()


@contextmanager
def module_io(module: torch.nn.Module, which: str = "output") -> Iterator[dict[str, torch.Tensor]]:
    """Like :func:`module_output`, for either end of ``module``: inside the context, ``captured["y"]`` is the
    last ``"output"`` of ``module`` or the first positional argument of its last call (``"input"``), with its
    autograd graph. The hook is removed on exit, even on an exception."""
    if which == "output":
        with module_output(module) as captured:
            yield captured
        return
    if which != "input":
        raise ValueError(f"module_io: which = {which!r}; choose 'input' or 'output'")
    captured: dict[str, torch.Tensor] = {}

    def grab(_module, args):
        captured["y"] = args[0]

    handle = module.register_forward_pre_hook(grab)
    try:
        yield captured
    finally:
        handle.remove()


@contextmanager
def call_count(module: torch.nn.Module) -> Iterator[dict[str, int]]:
    """Inside the context, ``counts["calls"]`` is how often ``module`` has run forward (a batch counts once; a
    module that wraps it, as an editor's patch does, still calls it). The hook is removed on exit, even on an
    exception."""
    counts = {"calls": 0}

    def count(_module, _args):
        counts["calls"] += 1

    handle = module.register_forward_pre_hook(count)
    try:
        yield counts
    finally:
        handle.remove()
