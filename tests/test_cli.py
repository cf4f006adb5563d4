"""The command line on a generated MMEdit fixture and the tiny random LLaVA: the study end to end,
resuming after an interruption without redoing edits, and clear errors that keep partial results."""

import json
import re

import pandas as pd
import pytest

import asam_lib.mmedit_study
from asam_lib.benchmark import export_mmedit
from asam_lib.cli import main

N_EDITS = 4


@pytest.fixture(scope="module")
def assets(tmp_path_factory, small_world, tiny_parts):
    """(model folder, MMEdit JSON) on disk."""
    root = tmp_path_factory.mktemp("assets")
    model, processor = tiny_parts
    model.save_pretrained(root / "model")
    processor.save_pretrained(root / "model")
    return root / "model", export_mmedit(small_world, root / "data", "vqa")


def _study(assets, out, *extra):
    model, data = assets
    return main(["study", "--model", str(model), "--data", str(data), "--out", str(out), "--methods", "FT-L,Patch",
                 "--n-edits", str(N_EDITS), "--steps", "2", "--n-support", "2", *extra])


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _without_time(csv):
    table = pd.read_csv(csv)
    return table[table.metric != "seconds"].reset_index(drop=True)


@pytest.fixture(scope="module")
def uninterrupted(assets, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    assert _study(assets, out, "--sequential", "1,2") == 0
    return out


def test_the_study_runs_end_to_end_and_writes_the_tables(uninterrupted):
    for method in ("FT-L", "Patch"):
        lines = _lines(uninterrupted / "progress" / f"{method}.jsonl")
        assert [x.get("kind", "single") for x in lines] == ["single"] * N_EDITS + ["sequential"]
        assert all("rows" in x for x in lines)
    edits = pd.read_csv(uninterrupted / "edits.csv")
    assert set(edits.method) == {"FT-L", "Patch"} and edits.case.nunique() == N_EDITS
    assert {"Rel", "T-Gen", "I-Gen", "TI-Gen", "T-Loc", "I-Loc", "seconds"} <= set(edits.metric)
    summary = pd.read_csv(uninterrupted / "summary.csv")
    assert list(summary.columns) == ["method", "metric", "protocol", "mean", "ci_low", "ci_high", "n_seeds"]
    assert set(pd.read_csv(uninterrupted / "sequential.csv")["T"]) == {1, 2}


def test_an_interrupted_study_resumes_without_redoing_finished_edits(assets, uninterrupted, tmp_path, monkeypatch):
    calls = []
    real = asam_lib.mmedit_study.edit_and_evaluate

    def counting(*args, **kwargs):
        calls.append(args[4].request.name)
        if fail_after is not None and len(calls) > fail_after:
            raise KeyboardInterrupt  # the user presses Ctrl-C during an edit
        return real(*args, **kwargs)

    monkeypatch.setattr(asam_lib.mmedit_study, "edit_and_evaluate", counting)
    fail_after = N_EDITS + 1  # all FT-L edits and one Patch edit finish
    with pytest.raises(KeyboardInterrupt):
        _study(assets, tmp_path)
    assert len(_lines(tmp_path / "progress" / "FT-L.jsonl")) == N_EDITS
    assert len(_lines(tmp_path / "progress" / "Patch.jsonl")) == 1
    assert not (tmp_path / "summary.csv").exists()
    finished, calls[:], fail_after = list(calls[: N_EDITS + 1]), [], None
    assert _study(assets, tmp_path) == 0
    assert sorted(calls) == sorted(set(finished[:N_EDITS]) - {finished[N_EDITS]})  # only the Patch edits not yet done
    pd.testing.assert_frame_equal(_without_time(tmp_path / "edits.csv"), _without_time(uninterrupted / "edits.csv"))
    calls[:] = []
    assert _study(assets, tmp_path) == 0 and calls == []  # a finished study redoes nothing


def test_a_truncated_last_progress_line_is_redone(assets, uninterrupted, tmp_path):
    (tmp_path / "progress").mkdir()
    for method in ("FT-L", "Patch"):
        lines = (uninterrupted / "progress" / f"{method}.jsonl").read_text().splitlines()[:2]
        (tmp_path / "progress" / f"{method}.jsonl").write_text("\n".join(lines[:1] + [lines[1][:40]]) + "\n")
    (tmp_path / "study.json").write_text((uninterrupted / "study.json").read_text())
    assert _study(assets, tmp_path) == 0
    pd.testing.assert_frame_equal(_without_time(tmp_path / "edits.csv"), _without_time(uninterrupted / "edits.csv"))


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "case, message",
    [
        ("no model", "error: no model folder at"),
        ("unsupported model", "error: unsupported architecture GPT2LMHeadModel .*supported: LlavaForConditionalGeneration"),
        ("no data", "error: no MMEdit file at"),
        ("malformed data", r"error: .*malformed.json: record 1: field 'alt': missing"),
        ("another model", "error: .* holds a study of other inputs \\(model:"),
        ("unknown method", "error: unknown method\\(s\\) ROME; choose from FT-L, LoRA, Patch"),
    ],
)
def test_bad_inputs_give_one_clear_line_and_keep_partial_results(case, message, assets, uninterrupted, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("progress", "study.json", "edits.csv", "summary.csv"):
        source = uninterrupted / name
        if source.is_dir():
            (out / name).mkdir()
            for f in source.iterdir():
                (out / name / f.name).write_bytes(f.read_bytes())
        else:
            (out / name).write_bytes(source.read_bytes())
    before = _snapshot(out)
    model, data = assets
    if case == "no model":
        model = tmp_path / "nowhere"
    elif case == "unsupported model":
        model = tmp_path / "gpt2"
        model.mkdir()
        (model / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    elif case == "no data":
        data = tmp_path / "missing.json"
    elif case == "malformed data":
        records = json.loads(data.read_text())[:2]
        del records[1]["alt"]
        data = data.parent / "malformed.json"  # next to the images, so only the missing field is wrong
        data.write_text(json.dumps(records))
    elif case == "another model":
        (tmp_path / "copy").mkdir()
        for f in assets[0].iterdir():
            (tmp_path / "copy" / f.name).write_bytes(f.read_bytes())
        model = tmp_path / "copy"
    extra = ("--methods", "FT-L,ROME") if case == "unknown method" else ()
    assert _study((model, data), out, *extra) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and re.match(message, err[0]), err
    assert _snapshot(out) == before


def test_a_failed_start_leaves_no_output_folder(assets, tmp_path):
    assert _study((tmp_path / "nowhere", assets[1]), tmp_path / "out") == 2
    assert not (tmp_path / "out").exists()
