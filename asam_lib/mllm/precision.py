"""Half-precision models, float32 numerics.

A model loaded in bfloat16 or float16 is edited in its own dtype: the forward passes, the trained
tensors and the rollback snapshots stay in it. The few steps that half precision cannot carry run in
float32 and come back in the model's dtype:

- the selective key's covariance and solve (torch has no half-precision solve, on CPUs or GPUs);
- RCSL's singular values and the losses' log-softmax and reductions (the losses themselves stay float32);
- Adam: float16 cannot hold its ``eps`` (1e-8 rounds to 0, so a gradient that underflows in the second
  moment gives an infinite step) nor small updates of a weight, so half-precision parameters are
  trained through float32 master copies.

For a float32 model every cast here returns its input unchanged and :func:`adam` is plain
``torch.optim.Adam``: the float32 path computes exactly what it did before this module existed.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch

HALF = (torch.bfloat16, torch.float16)


def at_least_float32(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` in float32 if it is in half precision, else ``tensor`` itself (float32 and float64 stay)."""
    return tensor.float() if tensor.dtype in HALF else tensor


def computed_in_float32(function: Callable) -> Callable:
    """Decorate ``function`` so that its tensor arguments arrive in at least float32 and its tensor
    results (one tensor or a tuple) leave in the dtype of its first tensor argument."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        dtype = next(a.dtype for a in args if isinstance(a, torch.Tensor))
        result = function(*[at_least_float32(a) if isinstance(a, torch.Tensor) else a for a in args], **kwargs)
        if isinstance(result, tuple):
            return tuple(r.to(dtype) if isinstance(r, torch.Tensor) else r for r in result)
        return result.to(dtype)

    return wrapper


def adam(params: list, lr: float) -> torch.optim.Adam:
    """``torch.optim.Adam(params, lr=lr)``, where ``params`` are tensors or parameter groups. Half-precision
    tensors among them are trained through float32 master copies: before each step their gradients move to
    the masters, after it the masters are written back (rounded to the tensor's dtype)."""
    pairs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def master(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.dtype not in HALF:
            return tensor
        copy = tensor.detach().float().requires_grad_(True)
        pairs.append((tensor, copy))
        return copy

    groups = [{**g, "params": [master(t) for t in g["params"]]} if isinstance(g, dict) else master(g) for g in params]
    if not pairs:
        return torch.optim.Adam(params, lr=lr)
    optimiser = torch.optim.Adam(groups, lr=lr)

    def gradients_to_masters(*_) -> None:
        for tensor, copy in pairs:
            copy.grad = None if tensor.grad is None else tensor.grad.float()
            tensor.grad = None

    def masters_to_tensors(*_) -> None:
        with torch.no_grad():
            for tensor, copy in pairs:
                tensor.copy_(copy)

    optimiser.register_step_pre_hook(gradients_to_masters)
    optimiser.register_step_post_hook(masters_to_tensors)
    return optimiser
