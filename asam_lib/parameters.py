"""Notebook parameters checked against the types they are meant to have.

papermill's ``-p name value`` turns text that looks like a number into a number and leaves anything else a
string: ``-p seeds "[7]"`` arrives as the string ``"[7]"``, and a loop over it runs the three "seeds" ``[``,
``7`` and ``]``. ``-y 'seeds: [7]'`` passes YAML, and the value arrives as a list. A notebook calls
:func:`check_types` on its parameters right after the ``parameters`` cell, so such a value stops it with one
line naming the parameter and the fix.
"""

from __future__ import annotations

import types
import typing
from typing import Mapping


class ParameterError(TypeError):
    """A notebook parameter of the wrong type, with the fix in its message."""


def matches(value: object, expected: object) -> bool:
    """Whether ``value`` has type ``expected``: a class, ``X | None``, ``list[X]``, ``tuple[X, ...]`` or
    ``dict[K, V]``. An int is a float too; a bool is not an int."""
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if expected is typing.Any:
        return True
    if expected is None or expected is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, option) for option in args)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        return isinstance(value, list) and all(matches(v, args[0]) for v in value)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(matches(v, a) for v, a in zip(value, args))
    if origin is dict:
        return isinstance(value, dict) and all(matches(k, args[0]) and matches(v, args[1]) for k, v in value.items())
    return isinstance(value, expected)


def _type_name(expected: object) -> str:
    return expected.__name__ if isinstance(expected, type) else str(expected)


def check_types(namespace: Mapping[str, object], expected: Mapping[str, object]) -> None:
    """Raise :class:`ParameterError` for the first parameter in ``expected`` (name -> type) whose value in
    ``namespace`` (a notebook's ``globals()``) has another type, e.g.
    ``check_types(globals(), {"quick": bool, "seeds": list[int], "data": dict[str, str]})``."""
    for name, kind in expected.items():
        if name not in namespace:
            raise ParameterError(f"parameter {name} is not set: the notebook's parameters cell should define it")
        value = namespace[name]
        if not matches(value, kind):
            fix = (f"papermill's -p passes text; pass the value as YAML instead: -y '{name}: {value}'" if isinstance(value, str)
                   else f"pass a value of type {_type_name(kind)}")
            raise ParameterError(f"parameter {name} = {value!r} ({type(value).__name__}) should be {_type_name(kind)} ({fix})")
