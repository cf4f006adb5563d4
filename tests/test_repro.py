"""Reproducibility helpers: the two-run comparison catches differences, sidecars are deterministic."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from asam_lib.common import paths, provenance
from asam_lib.figures import plots
from tools import repro


def test_compare_reports_a_changed_and_a_missing_file():
    first = {"figures/a.png": "1" * 64, "figures/b.png": "2" * 64, "results/t.csv": "3" * 64}
    second = {"figures/a.png": "1" * 64, "figures/b.png": "f" * 64, "results/u.csv": "4" * 64}
    rows = {r.path: r.status for r in repro.compare(first, second)}
    assert rows == {
        "figures/a.png": "identical",
        "figures/b.png": "DIFFERS",
        "results/t.csv": "only in run 1",
        "results/u.csv": "only in run 2",
    }
    assert [r.path for r in repro.compare(first, second) if not r.ok] == [
        "figures/b.png",
        "results/t.csv",
        "results/u.csv",
    ]
    assert "DIFFERS" in repro.format_table(repro.compare(first, second))


def test_digest_folder_sees_one_changed_byte(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.csv").write_text("a,b\n1,2\n")
    before = provenance.digest_folder(tmp_path)
    (tmp_path / "sub" / "x.csv").write_text("a,b\n1,3\n")
    after = provenance.digest_folder(tmp_path)
    assert list(before) == ["sub/x.csv"]
    assert [r.status for r in repro.compare(before, after)] == ["DIFFERS"]


def test_content_hash_ignores_key_order_but_not_values():
    assert provenance.content_hash({"a": 1, "b": [0, 1]}) == provenance.content_hash({"b": [0, 1], "a": 1})
    assert provenance.content_hash({"a": 1}) != provenance.content_hash({"a": 2})


def _figure():
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1, 2], [1, 0, 1], label="line")
    ax.set(xlabel="x (units)", ylabel="y (units)")
    fig.tight_layout()  # plots.save checks that every label is on the canvas
    return fig


def test_saved_figure_and_sidecar_are_byte_identical_across_saves(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "_declared", None)
    namespace = {
        "quick": True,
        "seed": 0,
        "n_units": 24,
        "n_edits": 6,
        "seeds": [0],
        "workers": 2,
        "save_figures": True,
    }
    recorded = provenance.declare("01_knowledge_units", namespace)
    assert recorded["parameters"] == namespace
    for run in ("a", "b"):
        fig = _figure()
        plots.save(fig, "demo", folder=tmp_path / run)
        plt.close(fig)
    assert provenance.digest_folder(tmp_path / "a") == provenance.digest_folder(tmp_path / "b")
    sidecar = json.loads((tmp_path / "a" / "demo.json").read_text())
    assert sidecar["notebook"] == "notebooks/01_knowledge_units.ipynb"
    assert sidecar["files"]["demo.png"] == provenance.sha256_file(tmp_path / "a" / "demo.png")
    text = (tmp_path / "a" / "demo.json").read_text()
    assert str(paths.REPO_ROOT) not in text and str(tmp_path) not in text


def test_provenance_names_missing_parameters(monkeypatch):
    monkeypatch.setattr(provenance, "_declared", None)
    with pytest.raises(KeyError, match="n_edits"):
        provenance.declare(
            "01_knowledge_units", {"quick": True, "seed": 0, "n_units": 24, "seeds": [0], "save_figures": True}
        )


def test_committed_figures_match_their_sidecars():
    figures = sorted((paths.REPO_ROOT / "figures").glob("*.png"))
    assert figures
    for png in figures:
        sidecar = png.with_suffix(".json")
        assert sidecar.exists(), f"{png.name} has no provenance sidecar (run make figures)"
        files = json.loads(sidecar.read_text())["files"]
        for name, sha in files.items():
            assert provenance.sha256_file(png.parent / name) == sha, f"{name} differs from its sidecar {sidecar.name}"


def test_a_reading_copy_keeps_outputs_and_drops_what_changes_between_runs():
    import nbformat

    from tools.run_notebooks import for_reading

    notebook = nbformat.v4.new_notebook(
        metadata={
            "papermill": {"start_time": "2026-12-02T05:00", "parameters": {"quick": False}},
            "widgets": {"state": {"a1b2": {}}},
        }
    )
    injected = nbformat.v4.new_code_cell("quick = False", metadata={"tags": ["injected-parameters"]})
    cell = nbformat.v4.new_code_cell("print(1)", metadata={"papermill": {"duration": 1.5}, "execution": {"iopub": "t"}})
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text=f"table written to {paths.REPO_ROOT}/results/x.csv\n"),
        nbformat.v4.new_output("stream", name="stderr", text="seconds per edit: 0.25\n"),
        nbformat.v4.new_output("display_data", data={"image/png": "iVBOR", "text/plain": "<Figure>"}),
        nbformat.v4.new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "a1b2"}}),
    ]
    notebook.cells = [injected, cell]
    copy = for_reading(notebook)
    assert copy.cells[0].id == "injected-parameters", "papermill's random id of the cell it injects is replaced"
    copy.cells = copy.cells[1:]
    assert copy.metadata == {"papermill": {"parameters": {"quick": False}}}
    assert copy.cells[0].metadata == {}
    assert [o.get("name", o.output_type) for o in copy.cells[0].outputs] == ["stdout", "display_data"]
    assert copy.cells[0].outputs[0].text == "table written to <repository>/results/x.csv\n"
    assert copy.cells[0].outputs[1].data == {"image/png": "iVBOR", "text/plain": "<Figure>"}
    assert notebook.cells[1].outputs[1].name == "stderr", "the executed notebook itself is left as it is"
