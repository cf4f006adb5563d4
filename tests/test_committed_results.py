"""The committed figures, tables and README tables are what today's code writes.

A figure or table is today's when its provenance sidecar names today's notebook code (or, for a table a command of
``tools/`` wrote, that command's source) and ``asam_lib`` source (``tools.repro.stale_files``); the README's
generated tables are today's when rewriting them from ``results/`` and ``checkpoints/base/asam_meta.json`` changes
nothing. The claims those files support are checked in ``test_claims.py``.
"""

from __future__ import annotations

import difflib
import json
import shutil

import pandas as pd
import pytest

from asam_lib.common import paths
from asam_lib.common.provenance import command_source, library_fingerprint, notebook_code_sha256, write_sidecar
from tools import readme_tables, repro

NOTEBOOK = "notebooks/01_knowledge_units.ipynb"


def test_committed_figures_and_tables_come_from_todays_notebooks_and_library():
    stale = [
        f"{folder}/{line}" for folder in ("figures", "results") for line in repro.stale_files(paths.REPO_ROOT / folder)
    ]
    assert not stale, (
        f"{len(stale)} committed figures/tables were not written by today's notebooks, tools and asam_lib; "
        "`make figures` refreshes them and their sidecars, except a table a command of tools/ wrote, whose line "
        "names the command that does (`make sequential-causes`):\n" + "\n".join(stale)
    )


def test_the_readme_tables_are_the_ones_results_and_the_base_model_give(tmp_path):
    readme = tmp_path / "README.md"
    shutil.copy(paths.REPO_ROOT / "README.md", readme)
    written = readme_tables.update(readme, paths.REPO_ROOT / "results", paths.CHECKPOINTS / "base")
    blocks = {*readme_tables.BLOCKS, "accuracy"}
    assert set(written) == blocks, (
        f"README.md lacks the markers of the generated blocks {sorted(blocks - set(written))}"
    )
    committed, regenerated = (paths.REPO_ROOT / "README.md").read_text(), readme.read_text()
    diff = "".join(
        difflib.unified_diff(committed.splitlines(True), regenerated.splitlines(True), "README.md", "from results/")
    )
    assert not diff, (
        "README.md's generated tables differ from what results/ and checkpoints/base/asam_meta.json give "
        "(`python -m tools.readme_tables` rewrites them; `make figures` runs it):\n" + diff
    )


def _saved_table(folder, name="t", library=None, code=None):
    """A table with a sidecar as harness.save_table writes it after provenance.declare(NOTEBOOK stem)."""
    path = folder / f"{name}.csv"
    pd.DataFrame({"a": [1, 2]}).to_csv(path, index=False)
    write_sidecar(
        [path],
        {
            "table": name,
            "notebook": NOTEBOOK,
            "notebook_code_sha256": code or notebook_code_sha256(paths.REPO_ROOT / NOTEBOOK),
            "asam_lib_source_sha256": library or library_fingerprint()["asam_lib_source_sha256"],
        },
    )
    return path


def test_a_file_written_by_todays_code_is_current(tmp_path):
    _saved_table(tmp_path)
    assert repro.stale_files(tmp_path) == []


def test_a_library_change_makes_every_saved_file_stale(tmp_path):
    _saved_table(tmp_path, "a")
    _saved_table(tmp_path, "b")
    assert repro.stale_files(tmp_path, library_sha256="0" * 64) == [
        "a.csv: asam_lib's source changed since",
        "b.csv: asam_lib's source changed since",
    ]


def test_a_notebook_change_a_missing_sidecar_and_edited_bytes_are_stale(tmp_path):
    _saved_table(tmp_path, "code", code="0" * 64)
    (tmp_path / "bare.csv").write_text("a\n1\n")
    _saved_table(tmp_path, "edited").write_text("a\n3\n")
    assert repro.stale_files(tmp_path) == [
        "bare.csv: no provenance sidecar bare.json",
        f"code.csv: the code of {NOTEBOOK} changed since",
        "edited.csv: its bytes differ from the sha256 in edited.json",
    ]


TOOL = "tools/sequential_causes.py"


def _commanded_table(folder, name="c", library=None):
    """A table with a sidecar as a command of tools/ writes it (harness.save_table with a command_source)."""
    path = folder / f"{name}.csv"
    pd.DataFrame({"a": [1, 2]}).to_csv(path, index=False)
    source = command_source(TOOL, {"split": "report", "seeds": [0]}, "make sequential-causes")
    if library:
        source["asam_lib_source_sha256"] = library
    write_sidecar([path], {"table": name, **source})
    return path


def test_a_table_a_command_wrote_names_the_command_and_is_current_with_todays_code(tmp_path):
    _commanded_table(tmp_path)
    sidecar = json.loads((tmp_path / "c.json").read_text())
    assert "notebook" not in sidecar and sidecar["tool"] == TOOL and sidecar["command"] == "make sequential-causes"
    assert sidecar["arguments"] == {"split": "report", "seeds": [0]} and sidecar["arguments_sha256"]
    assert sidecar["asam_lib_source_sha256"] == library_fingerprint()["asam_lib_source_sha256"]
    assert repro.stale_files(tmp_path) == []


def test_a_library_change_makes_a_commanded_table_stale_and_names_its_command(tmp_path):
    _commanded_table(tmp_path, library="0" * 64)
    assert repro.stale_files(tmp_path) == [
        "c.csv: asam_lib's source changed since; `make sequential-causes` rewrites it (make figures does not)"
    ]


def test_a_change_of_the_command_s_code_makes_its_table_stale(tmp_path):
    _commanded_table(tmp_path)
    sidecar = tmp_path / "c.json"
    sidecar.write_text(sidecar.read_text().replace(command_source(TOOL, {}, "")["tool_code_sha256"], "0" * 64))
    assert repro.stale_files(tmp_path) == [
        f"c.csv: the code of {TOOL} changed since; `make sequential-causes` rewrites it (make figures does not)"
    ]


def test_a_command_source_names_a_tool_that_exists():
    with pytest.raises(FileNotFoundError, match="tools/no_such_tool.py"):
        command_source("tools/no_such_tool.py", {}, "make nothing")
