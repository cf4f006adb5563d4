"""Dotted overrides: the one way to change a setting from outside its frozen config.

A setting has one home, a field of a frozen config of an editor (:class:`~asam_lib.editors.editing.EditConfig`,
:class:`~asam_lib.editors.lar.LARConfig`, :class:`~asam_lib.editors.rcsl.RCSLConfig`, each method's settings), and is
named by its dotted path from the editor: ``config.lr``, ``lar.eps``, ``settings.lambda_rank``,
``base.settings.n_neurons``. :func:`with_overrides` returns a copy of an editor with some of them set, each value
checked by its config's own validation; :func:`setting` reads one. :func:`asam_lib.editors.methods.build` builds a
registered method with overrides, and everything that changes a setting goes through it: the catalogues of
:mod:`asam_lib.experiments.ablations`, the playground, hyper-parameter files (:mod:`asam_lib.editors.hparams`) and the
command line's ``--set PATH=VALUE``::

    with_overrides(ASAM(), {"lar.eps": 0.1, "settings.lambda_rank": 10})
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Mapping

from asam_lib.editors.editing import Editor


class HParamsError(ValueError):
    """A setting that cannot be used (an unknown path, a value of the wrong type or one its config refuses), or a
    hyper-parameter file that cannot; the message names the path (and the file), the value and the fix."""


def _coerced(current: object, value: object, path: str) -> object:
    """``value`` as the type of the setting's ``current`` value (YAML reads ``5e-2`` as text)."""
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise HParamsError(f"setting {path} = {value!r}: expected true or false")
        return value
    if isinstance(current, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise HParamsError(f"setting {path} = {value!r}: expected an integer")
        return value
    if isinstance(current, float):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise HParamsError(f"setting {path} = {value!r}: expected a number") from None
        if isinstance(value, bool) or not math.isfinite(number):
            raise HParamsError(f"setting {path} = {value!r}: expected a finite number")
        return number
    if isinstance(current, tuple):
        return tuple(value) if isinstance(value, list) else value
    return value


def _named(prefix: str, values: Mapping[str, object]) -> str:
    """``lar.eps = 0.1, lar.k = 0``: the settings (not whole sub-configs) a failed change set."""
    leaves = {k: v for k, v in values.items() if not dataclasses.is_dataclass(v) and not isinstance(v, Editor)}
    return ", ".join(f"{prefix}{k} = {v!r}" for k, v in leaves.items()) or prefix.rstrip(".") or "settings"


def _unknown(path: str, target: object) -> HParamsError:
    """The error for ``path``, whose last name ``target`` (a config or an editor) lacks; it lists what it has."""
    if dataclasses.is_dataclass(target):
        names = [f.name for f in dataclasses.fields(target)]
    else:
        names = sorted(vars(target)) if hasattr(target, "__dict__") else []
    return HParamsError(f"unknown setting {path}: {type(target).__name__} has {', '.join(names) or 'no settings'}")


def with_overrides(target: object, overrides: Mapping[str, object], prefix: str = "") -> object:
    """A copy of ``target`` (an :class:`~asam_lib.editors.editing.Editor` or a frozen config) with each dotted path of
    ``overrides`` set, e.g. ``{"config.lr": 0.1, "lar.eps": 0.2}``; ``target`` itself is left as it is. A
    changed ``config`` goes through :meth:`Editor.with_config` (ASAM passes it on to its base editor); every
    value is checked by its config's own validation, and a refused one is one :class:`HParamsError` naming the
    path and the value."""
    groups: dict[str, dict[str, object]] = {}
    changes: dict[str, object] = {}
    for path, value in overrides.items():
        head, _, rest = path.partition(".")
        if rest:
            groups.setdefault(head, {})[rest] = value
        else:
            changes[head] = value
    for head, sub in groups.items():
        if not hasattr(target, head):
            raise HParamsError(f"unknown setting {prefix}{head}: {type(target).__name__} has no {head!r}")
        changes[head] = with_overrides(getattr(target, head), sub, f"{prefix}{head}.")
    unknown = [k for k in changes if not hasattr(target, k)]
    if unknown:
        raise _unknown(f"{prefix}{unknown[0]}", target)
    changes = {k: _coerced(getattr(target, k), v, prefix + k) for k, v in changes.items()}
    if dataclasses.is_dataclass(target):
        try:
            return dataclasses.replace(target, **changes)
        except (TypeError, ValueError) as err:
            raise HParamsError(f"{_named(prefix, changes)}: {err}") from None
    if isinstance(target, Editor):
        changed = target.with_config(changes.pop("config")) if "config" in changes else copy.copy(target)
        for name, value in changes.items():
            setattr(changed, name, value)
        try:
            return changed.with_config(changed.config)  # ASAM checks its parts against its config here
        except ValueError as err:
            raise HParamsError(f"{_named(prefix, overrides)}: {err}") from None
    raise HParamsError(f"setting {prefix.rstrip('.')} is a {type(target).__name__}, not a config: give a whole value")


def setting(target: object, path: str) -> object:
    """The value at dotted ``path`` of ``target`` (an editor or a config), e.g. ``setting(ASAM(), "lar.eps")``."""
    value = target
    for name in path.split("."):
        if not hasattr(value, name):
            raise _unknown(path, value)
        value = getattr(value, name)
    return value
