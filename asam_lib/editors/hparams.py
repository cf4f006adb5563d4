"""Hyper-parameter files in EasyEdit's layout, read as dotted overrides of the editors' own configs.

EasyEdit keeps one YAML per method and model (``hparams/<METHOD>/<model>.yaml``) whose keys are the
method's settings: ``alg_name``, ``model_name``, ``device``, the edit layer(s) ``layers: [L]``, ``lr``,
``num_steps`` and each method's own knobs. This project's files have the same layout (``hparams/ASAM/
llava-1.5-7b.yaml``); what a key changes is one field of a frozen config of the editor, named by a dotted
path from the editor (``config.lr``, ``lar.eps``, ``settings.lambda_rank``). :func:`load_hparams` turns a
file into :class:`HParams`, whose ``overrides`` are those paths with their values;
:func:`asam_lib.editors.methods.build` returns the method's editor with them, and :func:`configured_editor` does both
for the file's method::

    hp = load_hparams("hparams/ASAM/llava-1.5-7b.yaml")   # hp.overrides == {"config.layer": 16, "lar.eps": 0.3, ...}
    editor = configured_editor(hp)

A key is one of :data:`COMMON_KEYS` (every editor), one of the method's own EasyEdit-style names (its
``hparams`` entry in :mod:`asam_lib.editors.methods`, e.g. ASAM's ``lar_eps``), one of :data:`EASYEDIT_ONLY_KEYS`
(kept for EasyEdit's tools, unused here), or a dotted path itself (``lar.mu: 2.0``), so every setting can be
reached. Anything else stops with one line naming the file, the key and the keys it knows.

The command line reads the same dotted paths from ``--set PATH=VALUE`` (:func:`parse_assignment`) and combines
them with a file's (:func:`method_overrides`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import yaml

from asam_lib.editors import methods
from asam_lib.editors.editing import Editor
from asam_lib.editors.overrides import HParamsError, setting

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


def configured_editor(hparams: HParams) -> Editor:
    """The editor of ``hparams.alg_name`` with its defaults changed by ``hparams.overrides``."""
    try:
        return methods.build(hparams.alg_name, hparams.overrides)
    except HParamsError as err:
        raise HParamsError(f"{hparams.source}: {err}") from None


def parse_assignment(text: str) -> tuple[str, object]:
    """``("lar.eps", 0.1)`` from the command line's ``--set lar.eps=0.1``; the value is read as a YAML value, as
    in a hyper-parameter file (``true``, ``noise``, ``[gate_proj, down_proj]``)."""
    path, sep, value = text.partition("=")
    path = path.strip()
    if not sep or not path or any(not part.isidentifier() for part in path.split(".")):
        raise HParamsError(f"--set {text!r}: give a dotted setting and a value, e.g. --set lar.eps=0.1")
    try:
        parsed = yaml.safe_load(value) if value.strip() else value
    except yaml.YAMLError:
        raise HParamsError(f"--set {text!r}: the value is not a YAML value") from None
    if isinstance(parsed, str):  # YAML 1.1 reads 5e-3 as text: a number is recorded as one
        try:
            return path, float(parsed)
        except ValueError:
            pass
    return path, parsed


def method_overrides(
    names: Sequence[str], hparams: HParams | None = None, assignments: Sequence[str] = ()
) -> dict[str, dict[str, object]]:
    """Method -> its dotted overrides in a study of methods ``names``: the hyper-parameter file's (for its
    ``alg_name``), then each ``--set PATH=VALUE`` of ``assignments`` (:func:`parse_assignment`) for every method
    whose editor has that setting (``config.lr``: all of them; ``lar.eps``: ASAM). Every method is built with its
    overrides here, so an unknown path (one no method has) or a value a config refuses stops with one
    :class:`HParamsError` naming the path and the value before anything runs."""
    overrides = {hparams.alg_name: dict(hparams.overrides)} if hparams else {}
    for text in assignments:
        path, value = parse_assignment(text)
        defaults = {name: methods.build(name) for name in names}
        having = [name for name, editor in defaults.items() if _has_setting(editor, path)]
        if not having:
            head = path.split(".")[0]
            closest = [name for name, editor in defaults.items() if _has_setting(editor, head)]
            if closest:  # e.g. lar.epz: ASAM has lar, and its error lists lar's fields
                try:
                    setting(defaults[closest[0]], path)
                except HParamsError as err:
                    raise HParamsError(f"--set {path}={value!r}: {closest[0]}: {err}") from None
            raise HParamsError(
                f"--set {path}={value!r}: unknown setting {path}: none of {', '.join(names)} has it "
                f"(settings are dotted paths such as config.lr, lar.eps, settings.lambda_rank)"
            )
        for name in having:
            overrides.setdefault(name, {})[path] = value
    for name, changes in overrides.items():
        try:
            methods.build(name, changes)
        except HParamsError as err:
            source = f"{hparams.source} / --set" if hparams else "--set"
            raise HParamsError(f"{source}: {name}: {err}") from None
    return overrides


def _has_setting(editor: Editor, path: str) -> bool:
    """Whether ``editor`` has the dotted setting ``path`` (``base`` counts for an editor that trains a base)."""
    try:
        setting(editor, path)
    except HParamsError:
        return False
    return True
