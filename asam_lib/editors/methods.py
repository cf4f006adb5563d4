"""The registry of editing methods and the list of metrics: every list of methods in the project is read here.

Each :class:`Method` entry gives a method's display name, how to build its editor with default settings,
its colour in every figure and its role: an intrinsic ``"baseline"`` (the editors ASAM starts from), a
``"lifelong"`` editor built for sequential editing (GRACE), or ``"method"`` (ASAM). The order of
:data:`METHODS` is the order of every table, legend and menu. Read by the study (notebook 04's main table and
sequential runs), the command line, the playground's menu, the plots' colours, the README's tables and the
notebooks.

Adding an editor is its module (a subclass of :class:`asam_lib.editors.editing.Editor`) and one entry, as GRACE's
(:mod:`asam_lib.editors.grace`) in the list at the end of this module::

    Method("GRACE", GRACE, "#8c564b", role="lifelong")

:data:`METRICS` is the order of the metrics in every table and figure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from asam_lib.editors.asam import ASAM
from asam_lib.editors.editing import FTL, EditConfig, Editor
from asam_lib.editors.grace import GRACE
from asam_lib.editors.lora import LoRA
from asam_lib.editors.overrides import HParamsError, with_overrides
from asam_lib.editors.patch import Patch

METRICS = ("Rel", "T-Gen", "I-Gen", "TI-Gen", "Unit", "T-Loc", "I-Loc")
GENERALITY_METRICS = ("T-Gen", "I-Gen", "TI-Gen")
ROLES = ("baseline", "lifelong", "method")
UNEDITED_COLOUR = "#7f7f7f"  # the unedited model ("base") in figures that compare before and after


class UnknownMethod(ValueError):
    """A method name the registry does not hold; the message lists the registered ones."""


@dataclass(frozen=True)
class Method:
    """One editing method: ``name`` (as in tables), ``factory`` (builds the editor with its defaults),
    ``colour`` (one colour in every figure), ``role`` (``"baseline"``: an intrinsic editor ASAM starts from;
    ``"lifelong"``: an editor built for many sequential edits, compared in notebook 04 only; ``"method"``) and
    ``hparams``: the method's own keys in an EasyEdit-layout hyper-parameter file -> the dotted setting each
    changes (:mod:`asam_lib.editors.hparams`)."""

    name: str
    factory: Callable[[], Editor]
    colour: str
    role: str = "baseline"
    hparams: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"Method {self.name!r}: role {self.role!r}; choose one of {ROLES}")

    def editor(self, config: EditConfig | None = None) -> Editor:
        """The method's editor with its default settings, or with ``config`` for the shared loop."""
        editor = self.factory()
        return editor if config is None else editor.with_config(config)


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to the registry (last in every table); its name must be new."""
    if method.name in METHODS:
        raise ValueError(f"a method named {method.name!r} is already registered")
    METHODS[method.name] = method
    return method


@contextmanager
def registered(method: Method) -> Iterator[Method]:
    """``method`` registered for the duration of a ``with`` block (tests, experiments in a notebook)."""
    register(method)
    try:
        yield method
    finally:
        del METHODS[method.name]


def method(name: str) -> Method:
    """The registry entry named ``name``."""
    if name not in METHODS:
        raise UnknownMethod(
            f"unknown method {name!r}; choose one of {', '.join(METHODS)} (or register it in asam_lib.editors.methods)"
        )
    return METHODS[name]


def build(name: str, overrides: Mapping[str, object] | None = None) -> Editor:
    """The editor of method ``name`` with its defaults changed by dotted ``overrides``
    (:func:`asam_lib.editors.overrides.with_overrides`), e.g. ``build("ASAM", {"lar.eps": 0.1, "settings.lambda_rank":
    10})``.

    An editor that trains a base editor (ASAM) takes another base by method name, ``{"base": "FT-L"}``, with the
    base's own settings as ``base.<path>``; it is then built on that base with the base's config, as ``ASAM(FTL())``
    is. An unknown path or a value a config refuses is one :class:`~asam_lib.editors.overrides.HParamsError` naming
    them."""
    overrides = dict(overrides or {})
    factory = method(name).factory
    base = overrides.pop("base", None)
    if base is None:
        return with_overrides(factory(), overrides)
    if not hasattr(factory(), "base"):
        raise HParamsError(f"unknown setting base = {base!r}: {name} does not train a base editor")
    if base not in METHODS:
        raise HParamsError(f"setting base = {base!r}: choose one of {', '.join(METHODS)}")
    own = {k.removeprefix("base."): v for k, v in overrides.items() if k.startswith("base.")}
    rest = {k: v for k, v in overrides.items() if not k.startswith("base.")}
    return with_overrides(factory(build(base, own)), rest)


def names(role: str | None = None) -> list[str]:
    """Registered method names in table order (only those of ``role`` if given)."""
    return [m.name for m in METHODS.values() if role is None or m.role == role]


def editors(role: str | None = None, config: EditConfig | None = None) -> dict[str, Editor]:
    """Name -> a fresh editor of every registered method (of ``role`` if given), with its defaults."""
    return {name: METHODS[name].editor(config) for name in names(role)}


def colours() -> dict[str, str]:
    """Name -> colour of every registered method, and ``"base"``: the unedited model."""
    return {"base": UNEDITED_COLOUR, **{m.name: m.colour for m in METHODS.values()}}


for _entry in (
    Method("FT-L", FTL, "#1f77b4"),
    Method("LoRA", LoRA, "#9467bd", hparams={"rank": "settings.rank", "lora_alpha": "settings.alpha"}),
    Method("Patch", Patch, "#2ca02c", hparams={"n_neurons": "settings.n_neurons"}),
    Method(
        "GRACE",
        GRACE,
        "#8c564b",
        role="lifelong",
        hparams={"eps": "settings.radius", "edit_lr": "config.lr", "n_iter": "config.steps"},
    ),
    Method(
        "ASAM",
        ASAM,
        "#d62728",
        role="method",
        hparams={
            "lar_eps": "lar.eps",
            "lar_k": "lar.k",
            "pgd_steps": "lar.steps",
            "lambda_adv": "settings.lambda_adv",
            "lambda_rank": "settings.lambda_rank",
            "n_neurons": "base.settings.n_neurons",
        },
    ),
):
    register(_entry)
