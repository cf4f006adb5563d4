"""The command line on a generated MMEdit fixture and the tiny random LLaVA: the study end to end,
resuming after an interruption without redoing edits, and clear errors that keep partial results."""

import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest
import torch

import asam_lib.experiments.mmedit_study
from asam_lib.data.benchmark import export_mmedit
from asam_lib.data.records import load_records
from asam_lib.editors import methods
from asam_lib.editors.editing import EditError
from asam_lib.evaluation.harness import editor_config
from asam_lib.experiments.mmedit_study import choose_records
from asam_lib.frontends import preflight
from asam_lib.frontends.cli import main

N_EDITS = 4


@pytest.fixture(scope="module")
def assets(tmp_path_factory, small_world, tiny_parts):
    """(model folder, MMEdit JSON) on disk."""
    root = tmp_path_factory.mktemp("assets")
    model, processor = tiny_parts
    model.save_pretrained(root / "model")
    processor.save_pretrained(root / "model")
    return root / "model", export_mmedit(small_world, root / "data", "vqa")


def _study_argv(assets, out, *extra):
    """The command line of the small study every test runs (``extra``: further options)."""
    model, data = assets
    options = ["--model", model, "--data", data, "--out", out, "--methods", "FT-L,Patch", "--n-edits", N_EDITS]
    return ["study", *map(str, options), "--steps", "2", "--n-support", "2", *extra]


def _study(assets, out, *extra):
    return main(_study_argv(assets, out, *extra))


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
    assert list(summary.columns) == ["method", "metric", "protocol", "mean", "ci_low", "ci_high", "n_seeds", "n_edits"]
    assert set(pd.read_csv(uninterrupted / "sequential.csv")["T"]) == {1, 2}


def test_an_interrupted_study_resumes_without_redoing_finished_edits(
    assets, uninterrupted, tmp_path, monkeypatch, capsys
):
    calls = []
    real = asam_lib.experiments.mmedit_study.edit_and_evaluate

    def counting(*args, **kwargs):
        calls.append(args[4].request.name)
        if fail_after is not None and len(calls) > fail_after:
            raise KeyboardInterrupt  # the user presses Ctrl-C during an edit
        return real(*args, **kwargs)

    monkeypatch.setattr(asam_lib.experiments.mmedit_study, "edit_and_evaluate", counting)
    fail_after = N_EDITS + 1  # all FT-L edits and one Patch edit finish
    assert _study(assets, tmp_path) == 130
    err = capsys.readouterr().err  # progress bars, then one line
    assert "Traceback" not in err
    assert (
        err.strip().splitlines()[-1]
        == f"interrupted: finished edits are kept under {tmp_path}; run the same command again to resume"
    )
    assert len(_lines(tmp_path / "progress" / "FT-L.jsonl")) == N_EDITS
    assert len(_lines(tmp_path / "progress" / "Patch.jsonl")) == 1
    assert not (tmp_path / "summary.csv").exists()
    finished, calls[:], fail_after = list(calls[: N_EDITS + 1]), [], None
    assert _study(assets, tmp_path) == 0
    assert sorted(calls) == sorted(set(finished[:N_EDITS]) - {finished[N_EDITS]})  # only the Patch edits not yet done
    pd.testing.assert_frame_equal(_without_time(tmp_path / "edits.csv"), _without_time(uninterrupted / "edits.csv"))
    calls[:] = []
    assert _study(assets, tmp_path) == 0 and calls == []  # a finished study redoes nothing


@pytest.mark.parametrize("newline", [True, False], ids=["cut line ends", "cut mid-line"])
def test_a_truncated_last_progress_line_is_redone_and_cut_off(newline, assets, uninterrupted, tmp_path):
    (tmp_path / "progress").mkdir()
    for method in ("FT-L", "Patch"):
        lines = (uninterrupted / "progress" / f"{method}.jsonl").read_text().splitlines()[:2]
        (tmp_path / "progress" / f"{method}.jsonl").write_text(
            "\n".join(lines[:1] + [lines[1][:40]]) + ("\n" if newline else "")
        )
    (tmp_path / "study.json").write_text((uninterrupted / "study.json").read_text())
    assert _study(assets, tmp_path, "--sequential", "1,2") == 0
    for method in ("FT-L", "Patch"):
        assert len(_lines(tmp_path / "progress" / f"{method}.jsonl")) == N_EDITS + 1  # every line whole
    pd.testing.assert_frame_equal(_without_time(tmp_path / "edits.csv"), _without_time(uninterrupted / "edits.csv"))


def test_a_killed_restarted_reoptioned_and_partly_failed_study_ends_with_the_clean_tables(
    assets, uninterrupted, tmp_path, monkeypatch, capsys
):
    edited, _ = choose_records(load_records(assets[1]), N_EDITS, seed=0)
    trouble = {"broken": f"vqa-{edited[1].index}", "kill after": N_EDITS + 3, "calls": 0}
    real = asam_lib.experiments.mmedit_study.edit_and_evaluate

    def flaky(*args, **kwargs):
        name = args[4].request.name
        trouble["calls"] += 1
        if trouble["kill after"] is not None and trouble["calls"] > trouble["kill after"]:
            raise KeyboardInterrupt
        if name == trouble["broken"]:
            raise EditError(f"{name}: the cause of this failure")
        return real(*args, **kwargs)

    monkeypatch.setattr(asam_lib.experiments.mmedit_study, "edit_and_evaluate", flaky)
    sequential = ("--sequential", "1,2")
    assert _study(assets, tmp_path, *sequential) == 130  # killed during Patch's third edit, after one FT-L edit failed
    patch = tmp_path / "progress" / "Patch.jsonl"
    patch.write_bytes(patch.read_bytes()[:-30])  # ... in the middle of writing Patch's second line
    capsys.readouterr()
    assert _study(assets, tmp_path, *sequential, "--n-support", "3") == 2  # re-optioned: refused, nothing touched
    assert re.match(
        r"error: .* holds a study with other settings: --n-support 2 there, 3 now;", capsys.readouterr().err.strip()
    )
    trouble["kill after"] = None
    assert _study(assets, tmp_path, *sequential, "--methods", "FT-L") == 0  # FT-L alone; its failed edit fails again
    assert (
        f"FT-L: {N_EDITS - 1} edit(s) finished, 1 failed (first: {trouble['broken']}: the cause of this failure)"
        in capsys.readouterr().out
    )
    assert set(pd.read_csv(tmp_path / "edits.csv").groupby("method").case.nunique().items()) == {
        ("FT-L", N_EDITS - 1),
        ("Patch", 1),
    }
    trouble["broken"] = None
    trouble["calls"] = 0
    assert (
        _study(assets, tmp_path, *sequential) == 0
    )  # the cause fixed: the failed and unfinished edits run, nothing else
    assert trouble["calls"] == 1 + N_EDITS - 1
    pd.testing.assert_frame_equal(_without_time(tmp_path / "edits.csv"), _without_time(uninterrupted / "edits.csv"))
    pd.testing.assert_frame_equal(_without_time(tmp_path / "summary.csv"), _without_time(uninterrupted / "summary.csv"))
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "sequential.csv"), pd.read_csv(uninterrupted / "sequential.csv")
    )


def test_out_per_settings_gives_each_set_of_settings_its_own_folder(assets, uninterrupted, tmp_path):
    for n_support in ("2", "3", "2"):
        assert _study(assets, tmp_path, "--methods", "FT-L", "--n-support", n_support, "--out-per-settings") == 0
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert len(folders) == 2 and all(f.startswith("settings-") for f in folders)
    assert all((tmp_path / f / "summary.csv").exists() for f in folders)


def test_set_options_change_asam_s_settings_are_recorded_and_a_rerun_with_others_is_refused(
    assets, tiny_parts, tmp_path, capsys
):
    """The issue's command: ``--set lar.eps=0.1 --set settings.lambda_rank=10`` runs, reaches ASAM (the only editor
    with those settings) and is recorded in study.json; resuming with another value stops with one line."""
    sets = ("--set", "lar.eps=0.1", "--set", "settings.lambda_rank=10")
    assert _study(assets, tmp_path, "--methods", "Patch,ASAM", "--n-edits", "2", *sets) == 0
    recorded = json.loads((tmp_path / "study.json").read_text())
    assert recorded["settings"]["hparams"] == {"ASAM": {"lar.eps": 0.1, "settings.lambda_rank": 10}}
    overrides = {"ASAM": {"lar.eps": 0.1, "settings.lambda_rank": 10}}
    config = asam_lib.experiments.mmedit_study.StudyConfig(methods=("ASAM",), steps=2, n_support=2, overrides=overrides)
    asam = asam_lib.experiments.mmedit_study.build_editors(tiny_parts[0], config)["ASAM"]
    assert (asam.lar.eps, asam.settings.lambda_rank) == (0.1, 10.0)
    assert recorded["editors"]["ASAM"] == editor_config(asam)  # the editor that ran is the one --set describes
    capsys.readouterr()
    other = ("--set", "lar.eps=0.2", "--set", "settings.lambda_rank=10")
    assert _study(assets, tmp_path, "--methods", "Patch,ASAM", "--n-edits", "2", *other) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a study with other settings: --hparams / --set" in err[0], err


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _copy_folder(source, target, skip=()):
    target.mkdir()
    for f in source.iterdir():
        if f.is_file() and f.name not in skip:
            (target / f.name).write_bytes(f.read_bytes())
    return target


def _records_file(data, name, change):
    """A copy of the MMEdit file next to its images, its records passed through ``change``."""
    records = json.loads(data.read_text())[: N_EDITS + 2]
    change(records)
    (data.parent / name).write_text(json.dumps(records))
    return data.parent / name


def _bad_input(case, assets, tmp_path):
    """(model, data, extra options) of one bad input."""
    model, data = assets
    if case == "no model":
        return tmp_path / "nowhere", data, ()
    if case == "unsupported model":
        (tmp_path / "gpt2").mkdir()
        (tmp_path / "gpt2" / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
        return tmp_path / "gpt2", data, ()
    if case == "no processor files":
        return _copy_folder(model, tmp_path / "weights-only", skip=("processor_config.json",)), data, ()
    if case == "qwen2-vl without torchvision":
        folder = _copy_folder(model, tmp_path / "qwen")
        (folder / "config.json").write_text(json.dumps({"architectures": ["Qwen2VLForConditionalGeneration"]}))
        return folder, data, ()
    if case == "another model":
        folder = _copy_folder(model, tmp_path / "other")
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "vocab_size": config.get("vocab_size", 0)}, indent=3))
        return folder, data, ()
    if case == "no data":
        return model, tmp_path / "missing.json", ()
    if case == "malformed data":
        return model, _records_file(data, "malformed.json", lambda r: r[1].pop("alt")), ()
    if case == "no rephrase":
        return model, _records_file(data, "no-rephrase.json", lambda r: r[2].pop("rephrase")), ()
    if case == "corrupt image":
        (data.parent / "corrupt.png").write_bytes(b"\x89PNG not really")
        return model, _records_file(data, "corrupt.json", lambda r: r[3].update(image_rephrase="corrupt.png")), ()
    options = {
        "unknown method": ("--methods", "FT-L,ROME"),
        "negative n-edits": ("--n-edits", "-1"),
        "zero steps": ("--steps", "0"),
        "zero lr": ("--lr", "0"),
        "zero sequential": ("--sequential", "0,2"),
        "sequential beyond n-edits": ("--sequential", "1,9"),
        "layer beyond the model": ("--layer", "7"),
        "unknown device map": ("--device-map", "foo"),
        "absent device": ("--device-map", "cuda:0"),
        "other dtype": ("--dtype", "bfloat16"),
        "known only": ("--known-only",),
        "unknown setting": ("--set", "lar.epz=0.1"),
        "setting no method has": ("--set", "lar.eps=0.1"),
        "refused setting": ("--set", "config.steps=2.5"),
        "malformed setting": ("--set", "lar.eps"),
        "other setting": ("--set", "config.steps=3"),
        "other n-edits": ("--n-edits", "3"),
    }
    return model, data, options[case]


BAD_INPUTS = {
    "no model": "error: no model folder at",
    "unsupported model": "error: unsupported architecture GPT2LMHeadModel .*supported: LlavaForConditionalGeneration",
    "no processor files": "error: .*weights-only holds no image processor "
    "\\(preprocessor_config.json or processor_config.json\\)",
    "qwen2-vl without torchvision": "error: torchvision is not installed: the Qwen2VLForConditionalGeneration "
    "processor needs it .*pip install -e '.\\[checkpoints\\]'",
    "another model": "error: .* holds a study with other settings: --model .* there, .* now",
    "no data": "error: no MMEdit file at",
    "malformed data": r"error: .*malformed.json: record 1: field 'alt': missing",
    "no rephrase": r"error: .*no-rephrase.json: record 2: field 'rephrase': missing, "
    r"so the edit's T-Gen and TI-Gen .*--allow-missing-generality",
    "corrupt image": r"error: .*corrupt.json: record 3: field 'image_rephrase': .*corrupt.png is not a readable image",
    "unknown method": "error: unknown method\\(s\\) ROME; choose from FT-L, LoRA, Patch",
    "negative n-edits": "error: argument --n-edits: -1 is below 1",
    "zero steps": "error: argument --steps: 0 is below 1",
    "zero lr": "error: argument --lr: 0 is not a finite number above 0",
    "zero sequential": "error: argument --sequential: 0 is below 1",
    "sequential beyond n-edits": f"error: --sequential 9: only {N_EDITS} records are edited",
    "layer beyond the model": "error: --layer 7 is out of range: .* has 2 language layers",
    "unknown device map": "error: --device-map 'foo' is neither a placement strategy",
    "absent device": "error: --device-map cuda:0: torch sees no cuda device here",
    "other dtype": "error: .* holds a study with other settings: --dtype 'float32' there, 'bfloat16' now",
    "known only": "error: .* holds a study with other settings: --known-only False there, True now",
    "other n-edits": "error: .* holds a study with other settings: --n-edits 4 there, 3 now",
    "unknown setting": "error: --set lar.epz=0.1: unknown setting lar.epz: none of FT-L, Patch has it",
    "setting no method has": "error: --set lar.eps=0.1: unknown setting lar.eps: none of FT-L, Patch has it",
    "refused setting": "error: --set: FT-L: setting config.steps = 2.5: expected an integer",
    "malformed setting": "error: --set 'lar.eps': give a dotted setting and a value, e.g. --set lar.eps=0.1",
    "other setting": "error: .* holds a study with other settings: --hparams / --set None there, "
    "{'FT-L': {'config.steps': 3}, 'Patch': {'config.steps': 3}} now",
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_inputs_give_one_line_before_the_model_loads_and_keep_partial_results(
    case, assets, uninterrupted, tmp_path, capsys, monkeypatch
):
    if case == "qwen2-vl without torchvision" and preflight.torchvision_problem() is None:
        pytest.skip("torchvision imports here")
    if case == "absent device" and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    out = _copy_folder(uninterrupted, tmp_path / "out")
    _copy_folder(uninterrupted / "progress", out / "progress")
    before = _snapshot(out)
    monkeypatch.setattr("asam_lib.frontends.cli.load_pretrained", lambda *a, **k: pytest.fail("the model was loaded"))
    model, data, extra = _bad_input(case, assets, tmp_path)
    assert _study((model, data), out, *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.match(BAD_INPUTS[case], err[0]), err
    assert _snapshot(out) == before


@pytest.mark.parametrize("place", ["a file", "under a file"])
def test_an_out_that_is_not_a_folder_gives_one_line(place, assets, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" if place == "a file" else tmp_path / "file" / "results"
    assert _study(assets, out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.match(r"error: --out .*file.* is a file, not a folder", err[0]), err


def test_records_without_rephrase_are_edited_when_allowed_and_counted_per_metric(assets, tmp_path):
    data = _records_file(assets[1], "some-rephrase.json", lambda records: [r.pop("rephrase") for r in records[::2]])
    assert _study((assets[0], data), tmp_path, "--methods", "FT-L", "--allow-missing-generality") == 0
    summary = pd.read_csv(tmp_path / "summary.csv").set_index(["metric", "protocol"])
    edits = pd.read_csv(tmp_path / "edits.csv")
    with_rephrase = edits[(edits.metric == "T-Gen") & edits.value.notna()].case.nunique()
    assert 0 < with_rephrase < N_EDITS
    assert summary.loc[("Rel", "exact"), "n_edits"] == N_EDITS
    assert summary.loc[("T-Gen", "exact"), "n_edits"] == summary.loc[("TI-Gen", "exact"), "n_edits"] == with_rephrase


def test_a_failed_start_leaves_no_output_folder(assets, tmp_path):
    assert _study((tmp_path / "nowhere", assets[1]), tmp_path / "out") == 2
    assert not (tmp_path / "out").exists()


def _same_tables(folder, reference):
    pd.testing.assert_frame_equal(_without_time(folder / "edits.csv"), _without_time(reference / "edits.csv"))
    pd.testing.assert_frame_equal(_without_time(folder / "summary.csv"), _without_time(reference / "summary.csv"))
    pd.testing.assert_frame_equal(pd.read_csv(folder / "sequential.csv"), pd.read_csv(reference / "sequential.csv"))


def test_shards_of_a_slurm_array_and_merge_give_the_tables_of_one_process(assets, uninterrupted, tmp_path):
    for i in (1, 0):
        assert _study(assets, tmp_path, "--sequential", "1,2", "--shard", f"{i}/2") == 0
    assert sorted(p.name for p in (tmp_path / "progress").iterdir()) == [
        f"{m}.shard-{i}-of-2.jsonl" for m in ("FT-L", "Patch") for i in (0, 1)
    ]
    _same_tables(tmp_path, uninterrupted)  # the last shard to finish wrote every shard's edits
    for name in ("edits.csv", "summary.csv", "sequential.csv"):
        (tmp_path / name).unlink()
    assert main(["merge", "--out", str(tmp_path)]) == 0
    _same_tables(tmp_path, uninterrupted)


def test_two_processes_under_torchrun_give_the_tables_of_one(assets, uninterrupted, tmp_path):
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "asam_lib",
    ]
    command = [*launcher, *_study_argv(assets, tmp_path, "--sequential", "1,2")]
    done = subprocess.run(
        command,
        env={**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "progress").iterdir()) == [
        f"{m}.shard-{i}-of-2.jsonl" for m in ("FT-L", "Patch") for i in (0, 1)
    ]
    _same_tables(tmp_path, uninterrupted)


@pytest.mark.parametrize("value, message", [("2/2", "2/2: i/n needs 0 <= i < n"), ("a", "'a' is not i/n (e.g. 0/4)")])
def test_a_bad_shard_gives_one_line(value, message, assets, tmp_path, capsys):
    assert _study(assets, tmp_path, "--shard", value) == 2
    assert (
        capsys.readouterr().err.strip() == f"error: argument --shard: {message} (see python -m asam_lib study --help)"
    )


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_the_documented_half_precision_study_runs_every_method_without_a_failed_edit(dtype, assets, tmp_path):
    model, data = assets
    assert (
        main(
            [
                "study",
                "--model",
                str(model),
                "--data",
                str(data),
                "--out",
                str(tmp_path),
                "--n-edits",
                "2",
                "--steps",
                "2",
                "--n-support",
                "1",
                "--dtype",
                dtype,
            ]
        )
        == 0
    )
    entries = [e for p in sorted((tmp_path / "progress").glob("*.jsonl")) for e in _lines(p)]
    assert len(entries) == 2 * len(methods.names()) and all("rows" in e for e in entries), [
        e.get("error") for e in entries
    ]
