"""Hyper-parameter files in EasyEdit's layout, read as dotted overrides of the editors' own configs.

EasyEdit keeps one YAML per method and model (``hparams/<METHOD>/<model>.yaml``) whose keys are the
method's settings: ``alg_name``, ``model_name``, ``device``, the edit layer(s) ``layers: [L]``, ``lr``,
``num_steps`` and each method's own knobs. This project's files have the same layout (``hparams/ASAM/
llava-1.5-7b.yaml``); what a key changes is one field of a frozen config of the editor, named by a dotted
path from the editor (``config.lr``, ``lar.eps``, ``settings.lambda_rank``). :func:`load_hparams` turns a
file into :class:`HParams`, whose ``overrides`` are those paths with their values; :func:`with_overrides`
returns the editor with them, and :func:`configured_editor` does both for the file's method::

    hp = load_hparams("hparams/ASAM/llava-1.5-7b.yaml")   # hp.overrides == {"config.layer": 16, "lar.eps": 0.3, ...}
    editor = configured_editor(hp)

A key is one of :data:`COMMON_KEYS` (every editor), one of the method's own EasyEdit-style names (its
``hparams`` entry in :mod:`asam_lib.editors.methods`, e.g. ASAM's ``lar_eps``), one of :data:`EASYEDIT_ONLY_KEYS`
(kept for EasyEdit's tools, unused here), or a dotted path itself (``lar.mu: 2.0``), so every setting can be
reached. Anything else stops with one line naming the file, the key and the keys it knows.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import yaml

from asam_lib.editors import methods
from asam_lib.editors.editing import Editor

# EasyEdit key -> dotted path of the setting it changes, for every editor
COMMON_KEYS = {
    "layers": "config.layer",
    "lr": "config.lr",
    "num_steps": "config.steps",
    "lambda_loc": "config.lambda_loc",
    "stop_loss": "config.stop_loss",
}
# keys EasyEdit's files carry that change nothing here (``model_name`` and ``device`` are kept on HParams)
EASYEDIT_ONLY_KEYS = ("alg_name", "model_name", "device", "dtype", "max_length", "model_parallel", "name")


class HParamsError(ValueError):
    """A hyper-parameter file that cannot be used; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class HParams:
    """One hyper-parameter file: the method (``alg_name``, a name in :mod:`asam_lib.editors.methods`), the checkpoint
    it was written for (``model_name``, a folder or hub id; informational here), the ``device`` and the
    ``overrides`` (dotted path -> value) of the method's editor."""

    alg_name: str
    model_name: str
    overrides: dict[str, object]
    device: str = "cpu"
    source: str = "<memory>"
    raw: dict = field(default_factory=dict, repr=False)


def _edit_layer(value: object, source: str) -> int:
    """EasyEdit's ``layers: [L]`` (or a plain ``L``): the one edit layer."""
    layers = value if isinstance(value, list) else [value]
    if len(layers) != 1 or not isinstance(layers[0], int) or isinstance(layers[0], bool):
        raise HParamsError(
            f"{source}: key 'layers' = {value!r}: give one edit layer as a list of one integer, e.g. layers: [16]"
        )
    return layers[0]


def load_hparams(path: str | Path) -> HParams:
    """Read an EasyEdit-layout YAML file (see the module docstring) into :class:`HParams`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no hyper-parameter file at {path} (see hparams/<METHOD>/<model>.yaml)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise HParamsError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    return hparams_from_dict(raw, str(path))


def hparams_from_dict(raw: object, source: str = "<memory>") -> HParams:
    """:class:`HParams` from the mapping a YAML file holds (``source`` names it in errors)."""
    if not isinstance(raw, dict):
        raise HParamsError(f"{source}: expected a mapping of keys to values, got {type(raw).__name__}")
    if "alg_name" not in raw:
        raise HParamsError(f"{source}: key 'alg_name' is missing; give one of {', '.join(methods.names())}")
    name = raw["alg_name"]
    if name not in methods.METHODS:
        raise HParamsError(
            f"{source}: alg_name {name!r} is not a method here; choose one of {', '.join(methods.names())}"
        )
    if raw.get("batch_size", 1) != 1:
        raise HParamsError(
            f"{source}: batch_size {raw['batch_size']!r}: edits are made one at a time, set batch_size: 1"
        )
    own = methods.method(name).hparams
    overrides: dict[str, object] = {}
    for key, value in raw.items():
        if key in EASYEDIT_ONLY_KEYS or key == "batch_size":
            continue
        if key == "layers":
            value = _edit_layer(value, source)
        path = COMMON_KEYS.get(key) or own.get(key) or (key if "." in key else None)
        if path is None:
            known = ", ".join([*COMMON_KEYS, *own])
            raise HParamsError(
                f"{source}: unknown key {key!r} for {name}; use one of {known} or a dotted setting such as lar.mu"
            )
        overrides[path] = value
    return HParams(name, str(raw.get("model_name", "")), overrides, str(raw.get("device", "cpu")), source, raw)


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


def with_overrides(target: object, overrides: Mapping[str, object], prefix: str = "") -> object:
    """A copy of ``target`` (an :class:`~asam_lib.editors.editing.Editor` or a frozen config) with each dotted path of
    ``overrides`` set, e.g. ``{"config.lr": 0.1, "lar.eps": 0.2}``; ``target`` itself is left as it is. A
    changed ``config`` goes through :meth:`Editor.with_config` (ASAM passes it on to its base editor); every
    value is checked by its config's own validation."""
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
        names = (
            [f.name for f in dataclasses.fields(target)] if dataclasses.is_dataclass(target) else sorted(vars(target))
        )
        raise HParamsError(f"unknown setting {prefix}{unknown[0]}: {type(target).__name__} has {', '.join(names)}")
    changes = {k: _coerced(getattr(target, k), v, prefix + k) for k, v in changes.items()}
    if dataclasses.is_dataclass(target):
        try:
            return dataclasses.replace(target, **changes)
        except (TypeError, ValueError) as err:
            raise HParamsError(f"settings {prefix or type(target).__name__}: {err}") from None
    if isinstance(target, Editor):
        changed = target.with_config(changes.pop("config")) if "config" in changes else copy.copy(target)
        for name, value in changes.items():
            setattr(changed, name, value)
        try:
            return changed.with_config(changed.config)  # ASAM checks its parts against its config here
        except ValueError as err:
            raise HParamsError(f"settings {prefix or type(target).__name__}: {err}") from None
    raise HParamsError(f"setting {prefix.rstrip('.')} is a {type(target).__name__}, not a config: give a whole value")


def configured_editor(hparams: HParams) -> Editor:
    """The editor of ``hparams.alg_name`` with its defaults changed by ``hparams.overrides``."""
    try:
        return with_overrides(methods.method(hparams.alg_name).editor(), hparams.overrides)
    except HParamsError as err:
        raise HParamsError(f"{hparams.source}: {err}") from None
