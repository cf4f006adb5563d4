"""The README's claims table has a row for every claim of the paper's abstract, each with a verdict in plain words
from one vocabulary and its evidence linked (tests/test_links.py checks that the links resolve)."""

from __future__ import annotations

import re

from asam_lib.common import paths

VERDICTS = (
    "supported",
    "supported only with a condition",
    "not separable from another ingredient",
    "not tested",
)
ABSTRACT_CLAIMS = (  # a phrase of each claim of the abstract, as the table's first column quotes it
    "achieves strong reliability and locality",
    "consistent predictions within each unit",
    "Three causes",
    "adversarial yet semantically coherent variants",
    "low-rank alignment of adversarial representations",
    "demonstrates the effectiveness of ASAM",
)


def claims_rows(text: str) -> list[list[str]]:
    """The rows of the table under ``## The paper's claims and this companion``, as lists of cells."""
    section = text.split("## The paper's claims and this companion", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")][2:]  # without header and rule
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]


def test_every_claim_of_the_abstract_has_a_row_with_a_verdict_and_evidence():
    rows = claims_rows((paths.REPO_ROOT / "README.md").read_text())
    assert all(len(row) == 4 for row in rows), [row[0] for row in rows if len(row) != 4]
    missing = [claim for claim in ABSTRACT_CLAIMS if not any(claim in row[0] for row in rows)]
    assert not missing, f"claims of the abstract without a row in the README's claims table: {missing}"
    for claim, _, verdict, evidence in rows:
        word = re.match(r"\*\*(.+?)\*\*", verdict)
        assert word and word[1] in VERDICTS, f"{claim[:40]}: verdict {verdict[:50]!r} is not one of {VERDICTS}"
        assert word[1] == "not tested" or "](" in evidence, f"{claim[:40]}: a verdict needs its evidence linked"
