"""No relative link of the README, ``docs/``, the notebooks or their reading copies is broken.

A link is broken when its file does not exist or its ``#anchor`` is no heading of the file it points to (GitHub's
anchors: the heading lower-cased, punctuation dropped, spaces as hyphens). Links to the web are not followed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from asam_lib.common import paths

ROOT = paths.REPO_ROOT
DOCUMENTS = sorted(
    [
        ROOT / "README.md",
        *(ROOT / "docs").glob("*.md"),
        *(ROOT / "docs" / "notebooks").glob("*.ipynb"),
        *(ROOT / "notebooks").glob("*.ipynb"),
    ]
)
LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|(?:href|src)=\"([^\"]+)\"")


def markdown(path: Path) -> str:
    """The Markdown of ``path``: the file, or a notebook's Markdown cells joined."""
    if path.suffix != ".ipynb":
        return path.read_text()
    cells = json.loads(path.read_text())["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def without_code(text: str) -> str:
    """``text`` without fenced code blocks and inline code (links there are examples, not links)."""
    return re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", text, flags=re.S))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of ``path``'s headings (repeated headings get ``-1``, ``-2``, ... as on GitHub)."""
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", without_code(markdown(path)), flags=re.M):
        base = slug(heading.replace("`", ""))
        count = seen.get(base, 0)
        found.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return found


def broken_links(path: Path) -> list[str]:
    """The relative links of ``path`` whose file or anchor does not exist, one line each."""
    broken = []
    for match in LINK.finditer(without_code(markdown(path))):
        target = match[1] or match[2]
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        destination = (path.parent / file).resolve() if file else path
        if not destination.exists():
            broken.append(f"{target}: {destination.relative_to(ROOT) if ROOT in destination.parents else file} missing")
        elif anchor and destination.suffix in (".md", ".ipynb") and anchor not in anchors(destination):
            broken.append(f"{target}: no heading #{anchor} in {destination.name}")
    return broken


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_relative_link_is_broken(document):
    broken = broken_links(document)
    assert not broken, f"{document.relative_to(ROOT)} has broken links:\n" + "\n".join(broken)


def test_the_checker_finds_a_missing_file_and_a_missing_anchor(tmp_path):
    (tmp_path / "method.md").write_text("# Method\n\n## The loss: $L$ (RCSL)\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](method.md#the-loss-l-rcsl) [gone](missing.md) [bad anchor](method.md#nothing) "
        '[here](#top) <img src="method.md"> [web](https://example.org/x) `[code](nowhere.md)`\n# Top\n'
    )
    assert broken_links(page) == [
        "missing.md: missing.md missing",
        "method.md#nothing: no heading #nothing in method.md",
    ]


def test_a_reading_copy_points_its_links_at_the_same_files():
    import nbformat

    from tools.run_notebooks import relinked

    cell = nbformat.v4.new_markdown_cell(
        "[m](../docs/method.md#the-loss), ![f](../figures/a.png), [w](https://x.org/../y), [s](#here)"
    )
    code = nbformat.v4.new_code_cell("'[m](../docs/method.md)'")
    notebook = relinked(nbformat.v4.new_notebook(cells=[cell, code]))
    assert notebook.cells[0].source == (
        "[m](../method.md#the-loss), ![f](../../figures/a.png), [w](https://x.org/../y), [s](#here)"
    )
    assert notebook.cells[1].source == "'[m](../docs/method.md)'", "code cells are left as they are"
