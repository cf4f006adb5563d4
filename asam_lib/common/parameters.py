"""Notebook parameters checked against the types they are meant to have.

papermill's ``-p name value`` turns text that looks like a number into a number and leaves anything else a
string: ``-p seeds "[7]"`` arrives as the string ``"[7]"``, and a loop over it runs the three "seeds" ``[``,
``7`` and ``]``. ``-y 'seeds: [7]'`` passes YAML, and the value arrives as a list. A notebook calls
:func:`check_types` on its parameters right after the ``parameters`` cell, so such a value stops it with one
line naming the parameter and the fix.
"""

from __future__ import annotations

import ast
import json
import types
import typing
from typing import Mapping

from asam_lib.common import paths


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
            fix = (
                f"papermill's -p passes text; pass the value as YAML instead: -y '{name}: {value}'"
                if isinstance(value, str)
                else f"pass a value of type {_type_name(kind)}"
            )
            raise ParameterError(
                f"parameter {name} = {value!r} ({type(value).__name__}) should be {_type_name(kind)} ({fix})"
            )


def parameter_defaults(notebook: str) -> dict[str, object]:
    """Name -> default of every parameter of ``notebooks/<notebook>.ipynb``: the plain literals assigned in
    its one cell tagged ``parameters``."""
    path = paths.NOTEBOOKS / f"{notebook}.ipynb"
    if not path.is_file():
        raise FileNotFoundError(f"notebook {notebook!r} -> {path} not found (give the file's stem)")
    tagged = [c for c in json.loads(path.read_text())["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"{path.name} has {len(tagged)} cells tagged 'parameters', expected 1")
    return {
        target.id: ast.literal_eval(node.value)
        for node in ast.parse("".join(tagged[0]["source"])).body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def declared_type(default: object) -> object:
    """The type a parameter must have, read from its default: ``[0]`` -> ``list[int]``, ``{}`` -> ``dict``."""
    if isinstance(default, list):
        kinds = {declared_type(v) for v in default}
        return list[kinds.pop()] if len(kinds) == 1 else list
    if isinstance(default, dict):
        keys, values = {declared_type(k) for k in default}, {declared_type(v) for v in default.values()}
        return dict[keys.pop(), values.pop()] if len(keys) == len(values) == 1 else dict
    return typing.Any if default is None else type(default)


def check_parameters(notebook: str, namespace: Mapping[str, object]) -> None:
    """:func:`check_types` of every parameter of ``notebook`` (pass ``globals()``) against the type of its
    default, so a notebook checks its parameters in one line right after its ``parameters`` cell."""
    check_types(namespace, {name: declared_type(value) for name, value in parameter_defaults(notebook).items()})
