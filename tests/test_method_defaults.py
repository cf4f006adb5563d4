"""docs/method.md quotes each setting's default beside its name ("Changed by: `LARConfig.eps` (0.3)"); the default's
home is the dataclass field, so every quoted value must be the field's default, and every catalogue the page
describes must be built from the dotted overrides it names."""

import ast
import dataclasses
import re

import pytest

from asam_lib.common import paths
from asam_lib.editors import methods
from asam_lib.editors.asam import ASAMSettings
from asam_lib.editors.editing import EditConfig
from asam_lib.editors.grace import GRACESettings
from asam_lib.editors.lar import LARConfig
from asam_lib.editors.lora import LoRASettings
from asam_lib.editors.patch import PatchSettings
from asam_lib.editors.rcsl import RCSLConfig
from asam_lib.evaluation.harness import HarnessConfig
from asam_lib.evaluation.summaries import Targets
from asam_lib.experiments import ablations

CONFIGS = {
    c.__name__: c
    for c in (ASAMSettings, EditConfig, GRACESettings, HarnessConfig, LARConfig, LoRASettings, PatchSettings)
}
CONFIGS |= {"RCSLConfig": RCSLConfig, "Targets": Targets}
TEXT = (paths.REPO_ROOT / "docs" / "method.md").read_text()
# `Class.field` (value...: the value is the first word in the brackets; one qualified ("2e-2 for LoRA") is not a default
QUOTED = re.compile(r"`(\w+)\.(\w+)` \((-?[\w.\"+-]+)(?! for )")


def quoted_defaults() -> list[tuple[str, str, object]]:
    """(class, field, value) of every default quoted in a "Changed by" paragraph whose value is a Python literal."""
    found = []
    for paragraph in re.findall(r"Changed by:.*?(?:\n\n|\Z)", TEXT, flags=re.S):
        for cls, name, value in QUOTED.findall(paragraph):
            try:
                found.append((cls, name, ast.literal_eval(value)))
            except (ValueError, SyntaxError):
                continue  # a description, not a value
    return found


def test_the_page_quotes_the_defaults_of_the_settings_it_names():
    found = quoted_defaults()
    assert len(found) >= 40 and ("LARConfig", "eps", 0.3) in found  # the check reads the page's quotes
    for cls, name, value in found:
        assert cls in CONFIGS, f"docs/method.md names {cls}.{name}: add {cls} to CONFIGS"
        default = {f.name: f.default for f in dataclasses.fields(CONFIGS[cls])}[name]
        assert default == value and (type(default) is type(value) or isinstance(default, float)), (cls, name, value)


@pytest.mark.parametrize(
    "name, quoted, overrides",
    [
        ("without RCSL", "`settings.lambda_rank = 0`", {"settings.lambda_rank": 0.0}),
        ("without asymmetry", "`rcsl.asymmetric = False`", {"rcsl.asymmetric": False}),
        ("ASAM on FT-L", '`base = "FT-L"`', {"base": "FT-L"}),
    ],
)
def test_the_ablation_table_names_the_overrides_its_entries_are_built_from(name, quoted, overrides):
    assert f"| {name} | {quoted}" in TEXT
    entry = {v.name: v for v in ablations.ABLATIONS}[name]
    assert (entry.method, dict(entry.overrides)) == ("ASAM", overrides)
    assert repr(entry.editor()) == repr(methods.build("ASAM", overrides))
