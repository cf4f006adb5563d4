"""Every number the README's prose quotes is written from ``results/`` or registered here with its reason; the same
scan covers the notebooks' Markdown, whose numbers are settings, thresholds their cells assert, or registered here.

A quoted result is a ``<!-- value:KEY -->`` marker (``tools.readme_values``): the first test fails when one of them
differs from its table at the README's rounding. The second finds decimals and percentages in the prose that are
neither such a marker nor in a generated table nor one of the :data:`FIXED` phrases (settings, sizes, timings:
numbers that are not results), so a result cannot be typed by hand past the rule.
"""

from __future__ import annotations

import json
import re

import pytest

from asam_lib.common import paths
from tools import readme_values

README = paths.REPO_ROOT / "README.md"
NOTEBOOKS = sorted((paths.REPO_ROOT / "notebooks").glob("*.ipynb"))

# Phrases of the README that hold a number which is not a result of results/, each with the reason. The number is
# part of the phrase, so a changed setting shows up here (the phrase is no longer found) and a new number does not
# hide behind an old phrase.
FIXED = {
    "arXiv 2605.23780": "the paper's identifier",
    "1.49 M-parameter": "the model's size, fixed by its config",
    "1.49 M parameters": "the model's size, fixed by its config",
    "(5.9 MB,": "the size of the shipped checkpoint",
    "scale (±22%)": "a setting of the world's renderer",
    "rotation (±18°)": "a setting of the world's renderer",
    "25% of the combinations": "the world's held-out share of phrasings, a setting",
    "VQA (55%), caption (15%) and text-only (30%)": "the language stage's mix, a setting",
    "gave 90% entity accuracy": "an earlier probe's outcome (design history, no table)",
    "768 give 98.7%": "the shipped checkpoint's entity accuracy, recorded in checkpoints/base/asam_meta.json",
    "radius (1.0, EasyEdit's default)": "GRACE's setting",
    "below 0.3": "the stopping rule's setting (EditConfig.stop_loss)",
    "within 0.01": "test_claims.py asserts this bound on the paired ablations",
    "above 0.01;": "test_claims.py asserts this bound on the paired ablations",
    "(+0.03 with an interval": "RCSL's threshold, a setting (asam_lib.evaluation.summaries)",
    "its +0.03 threshold": "RCSL's threshold, a setting (asam_lib.evaluation.summaries)",
    "took 13 minutes": "timing, measured (docs/development.md holds the measurements)",
    "95% CI": "the intervals' level, a setting",
    "95% interval": "the intervals' level, a setting",
    "95% bootstrap": "the intervals' level, a setting",
    # the notebooks' Markdown: bounds their cells assert, and settings
    "at least 95% exact match on held-out images, 93% on held-out phrasings and 97% on text-only": "the base model's "
    "targets (asam_lib.data.pretrain), which notebook 01 asserts",
    "coherence stays at 0.75": "notebook 02 asserts this bound in section 2",
    "(below 0.1, asserted)": "notebook 03 asserts this bound in section 4",
    "over 90% of ASAM's drop": "notebook 03 asserts this bound in section 4",
    "(under 5%, asserted)": "notebook 03 asserts this bound on the gradient shares",
    "(under 0.1%, asserted)": "notebook 03 asserts this bound on the gradient shares",
    "No form adds +0.03": "RCSL's threshold, a setting (asam_lib.evaluation.summaries); notebook 03 asserts it",
    "development edits adds +0.03": "RCSL's threshold, a setting (asam_lib.evaluation.summaries)",
    "more than 0.05 above": "notebook 04 asserts this bound on the binary view",
    "ASAM's within 0.03": "notebook 04 asserts this bound on the binary view",
    "Rel 99% and T-Loc / I-Loc 97%": "the thresholds of asam_lib.evaluation.summaries.Targets, settings",
    "is under 0.03": "notebook 04 asserts this bound on the selected RCSL",
    "by 0.03 or more": "notebook 04 asserts this bound on the sensitivity study",
    "much below about 0.05": "the sensitivity study's resolution, an estimate from its 9 edits per setting",
    "(TI-Gen 0.77 against 0.85)": "an earlier development probe, not rerun by make figures (notebook 04 says so)",
    "(AUCs below 0.75)": "test_claims.py asserts this bound on 02_predictive_summary.csv",
}

NUMBER = re.compile(r"(?<![\w.-])[-+−]?\d*\.\d+%?(?![\w.])|(?<![\w.])\d+%")


def notebook_markdown(notebook) -> str:
    """A notebook's Markdown cells, joined."""
    cells = json.loads(notebook.read_text())["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def prose(text: str) -> str:
    """``text`` without what is not hand-written prose: code blocks, inline code, generated blocks and values,
    HTML tags, link targets and LaTeX."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"<!-- results:(\w+) -->.*?<!-- /results:\1 -->", " ", text, flags=re.S)
    text = readme_values.MARKER.sub(" ", text)
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"<[^>]+>", " ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    return re.sub(r"\s+", " ", re.sub(r"\$[^$]*\$", " ", text))


def unregistered_numbers(text: str) -> list[tuple[str, str]]:
    """The decimals and percentages of ``text``'s prose outside the :data:`FIXED` phrases: (number, context)."""
    body = prose(text)
    for phrase in FIXED:
        body = re.sub(re.escape(phrase) + r"(?!\d)", " ", body)
    return [(m[0], body[max(0, m.start() - 40) : m.end() + 20].replace("\n", " ")) for m in NUMBER.finditer(body)]


def test_every_quoted_value_is_the_one_its_table_gives():
    text = README.read_text()
    wrong, pending = [], []
    for match in readme_values.MARKER.finditer(text):
        key = match["key"]
        assert key in readme_values.VALUES, f"README value {key!r} is not registered in tools/readme_values.py"
        try:
            expected = readme_values.VALUES[key](paths.RESULTS)
        except readme_values.MissingValue as err:
            pending.append(f"{key}: {err}")
            continue
        if match["value"] != expected:
            wrong.append(f"{key}: README says {match['value']!r}, results/ gives {expected!r}")
    rewrite = "`python -m tools.readme_tables` rewrites them"
    assert not wrong, f"README numbers differ from results/ ({rewrite}):\n" + "\n".join(wrong)
    assert not pending, (
        "README values whose table or row does not exist (`make figures` writes it; `make sequential-causes` the "
        "sequential_causes_* and sequential_calibration_dev_* tables):\n" + "\n".join(pending)
    )


def test_no_number_in_the_readme_prose_is_typed_by_hand():
    found = unregistered_numbers(README.read_text())
    assert not found, (
        "numbers in README prose that are neither a <!-- value:KEY --> marker (tools/readme_values.py) nor a "
        "FIXED phrase of this test:\n" + "\n".join(f"{number}: ...{context}..." for number, context in found)
    )


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_no_number_in_a_notebooks_markdown_is_typed_by_hand(notebook):
    found = unregistered_numbers(notebook_markdown(notebook))
    assert not found, (
        f"numbers in {notebook.name}'s Markdown that are neither a setting, a bound its cells assert, nor a FIXED "
        "phrase of this test:\n" + "\n".join(f"{number}: ...{context}..." for number, context in found)
    )


def test_every_fixed_phrase_is_still_in_the_readme_or_a_notebook():
    bodies = [prose(README.read_text()), *(prose(notebook_markdown(n)) for n in NOTEBOOKS)]
    stale = [phrase for phrase in FIXED if not any(phrase in body for body in bodies)]
    assert not stale, f"FIXED phrases no longer in the README or a notebook (remove them or restore the text): {stale}"


@pytest.mark.parametrize(
    "sentence, caught",
    [
        ("Patch's binary I-Gen is 0.08 above", ["0.08"]),
        ("it fires on 98% of its unit", ["98%"]),
        ("LLaVA-1.5 and a drop of -0.06", ["-0.06"]),
        ("ASAM keeps <!-- value:x -->0.059<!-- /value --> and `0.3` in code", []),
        ("GRACE's deferral radius (1.0, EasyEdit's default)", []),
        ("it stops below 0.35 now", ["0.35"]),
    ],
)
def test_the_scan_catches_a_hand_typed_number_and_only_that(sentence, caught):
    assert [number for number, _ in unregistered_numbers(sentence)] == caught


def test_a_changed_table_makes_the_quoted_value_differ(tmp_path):
    (tmp_path / "02_predictive_summary.csv").write_text(
        "method,variants,n_edits,n_missing,spearman_loss_vs_unit,auc_loss_for_miss\npooled,lar,144,62,-0.5,0.9\n"
    )
    text = "AUC <!-- value:predictive.pooled.lar.auc -->0.786<!-- /value --> here"
    filled, missing = readme_values.fill(text, tmp_path)
    assert filled == "AUC <!-- value:predictive.pooled.lar.auc -->0.900<!-- /value --> here" and not missing
    with pytest.raises(KeyError, match="'no.such.key'"):
        readme_values.fill("<!-- value:no.such.key -->1<!-- /value -->", tmp_path)
    assert readme_values.fill(text.replace("lar.auc", "noise.auc"), tmp_path)[1], "a missing row is reported"
