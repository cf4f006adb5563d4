"""VLKEB and MMKE-Bench files: committed fixtures in their field layout load with the right probes, a bad record
stops with one line naming it, the world exports both layouts, and ``python -m asam_lib study --hparams ...`` runs
on them end to end with portability, knowledge types and generation scoring in summary.csv."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from asam_lib.data.benchmark import export_format
from asam_lib.data.formats import detect_format, load_benchmark
from asam_lib.data.records import MalformedRecord, MissingImage
from asam_lib.experiments.mmedit_study import StudyConfig, run_study
from asam_lib.frontends.cli import main
from asam_lib.mllm.prompting import PromptEncoder

FIXTURES = Path(__file__).parent / "fixtures" / "benchmarks"
ASAM_7B = Path(__file__).parent.parent / "hparams" / "ASAM" / "llava-1.5-7b.yaml"


def test_the_vlkeb_fixture_gives_each_record_its_hops_on_its_image():
    records = load_benchmark(FIXTURES / "vlkeb_eval_multihop.json")
    assert detect_format(records) == "vlkeb"
    assert [(p.metric, p.answer, p.image_field) for p in records[0].probes] == [("Port 2-hop", "London", "image")]
    assert [p.metric for p in records[1].probes] == ["Port 1-hop", "Port 3-hop"]
    metric, (question, answer, image) = records[0].probe_items()[0]
    assert question.startswith("In which city") and isinstance(image, Image.Image)


def test_the_mmke_fixture_reads_every_knowledge_type_and_both_answer_key_spellings():
    entity, visual, user = load_benchmark(FIXTURES / "mmke_eval.json")
    assert [r.extra["knowledge_type"] for r in (entity, visual, user)] == [
        "entity_level",
        "visual_knowledge",
        "user_specific",
    ]
    assert [(p.metric, p.answer, p.image_field) for p in entity.probes] == [
        ("T-Rel", "chess", ""),
        ("T-Rel", "the Arctic Open", ""),
        ("I-Rel", "chess", "image"),
        ("I-Gen-QA", "chess", "image_rephrase"),
        ("I-Rel", "the Arctic Open", "image"),
        ("I-Gen-QA", "the Arctic Open", "image_rephrase"),
    ]
    assert [(p.metric, p.question) for p in visual.probes][2] == (
        "I-Gen-QA",
        "What does the gesture shown here express?",  # visual knowledge asks its own question on the other image
    )
    assert {p.answer for p in user.probes if p.metric == "T-Rel"} == {"piano", "my piano teacher"}  # rel_1_ans
    assert user.probes[-1].metric == "Port 1-hop"


def _broken(tmp_path, name, change):
    """A copy of fixture ``name`` (and its images) with ``change`` applied to its records."""
    folder = tmp_path / "data"
    shutil.copytree(FIXTURES, folder)
    records = json.loads((folder / name).read_text())
    change(records)
    (folder / name).write_text(json.dumps(records))
    return folder / name


@pytest.mark.parametrize(
    "name, change, error, expected",
    [
        (
            "vlkeb_eval_multihop.json",
            lambda r: r[1].update(port_new=[{"port_edit_q": "q", "port_edit_a": "a", "port_q": "q", "port_a": "a"}]),
            MalformedRecord,
            "record 1: field 'port_new[0]': is VLKEB's edit-one-hop form",
        ),
        (
            "vlkeb_eval_multihop.json",
            lambda r: r[0].update(port_new=[{"port_type": "2-hop", "Q&A": {"Question": "q"}}]),
            MalformedRecord,
            "record 0: field 'port_new[0]': has no 'Q&A' with 'Question' and 'Answer'",
        ),
        (
            "mmke_eval.json",
            lambda r: r[2].pop("rel_2_ans"),
            MalformedRecord,
            "record 2: field 'rel_ans_2': missing (a user_specific record needs 'rel_ans_2' or 'rel_2_ans')",
        ),
        (
            "mmke_eval.json",
            lambda r: r[0].update(knowledge_type="entity"),
            MalformedRecord,
            "record 0: field 'knowledge_type': unknown value 'entity'",
        ),
        (
            "mmke_eval.json",
            lambda r: r[1].update(image_rephrase="visual/eval/salute/9.jpg"),
            MissingImage,
            "record 1: field 'image_rephrase': visual/eval/salute/9.jpg -> ",
        ),
    ],
)
def test_a_bad_record_is_named_in_one_line(tmp_path, name, change, error, expected):
    with pytest.raises(error) as err:
        load_benchmark(_broken(tmp_path, name, change))
    assert expected in str(err.value) and "\n" not in str(err.value)


@pytest.fixture(scope="module")
def exports(tmp_path_factory, small_world):
    folder = tmp_path_factory.mktemp("exports")
    return {fmt: export_format(small_world, folder, fmt) for fmt in ("mmedit", "vlkeb", "mmke")}


def test_the_world_exports_every_layout_and_the_loader_reads_it_back(exports, small_world):
    for fmt, path in exports.items():
        records = load_benchmark(path)
        assert detect_format(records) == fmt and len(records) == len(small_world.entities) * 4
    mmke = json.loads(exports["mmke"].read_text())
    assert "rel_ans_1" in mmke[0] and "rel_1_ans" in mmke[1]  # both of MMKE-Bench's spellings
    assert {r["knowledge_type"] for r in mmke} == {"entity_level", "visual_knowledge", "user_specific"}
    vlkeb = load_benchmark(exports["vlkeb"])
    assert all(r.probes[0].answer == r.alt for r in vlkeb)  # the world's one hop asks the edited fact
    assert json.loads(exports["mmedit"].read_text())[0] == {
        k: v for k, v in json.loads(exports["vlkeb"].read_text())[0].items() if k != "port_new"
    }


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory, tiny_parts):
    folder = tmp_path_factory.mktemp("model")
    model, processor = tiny_parts
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _study(model_folder, data, out, *extra):
    options = ["--model", model_folder, "--data", data, "--out", out, "--n-edits", 2, "--steps", 2, "--n-support", 2]
    return main(["study", *map(str, [*options, *extra])])


def test_the_study_with_an_easyedit_hparams_file_reports_vlkeb_portability(model_folder, exports, tmp_path):
    out = tmp_path / "vlkeb"
    assert _study(model_folder, exports["vlkeb"], out, "--hparams", ASAM_7B, "--layer", "1") == 0
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary.method) == {"ASAM"}  # the file's alg_name
    port = summary[summary.metric == "Port 1-hop"]
    assert set(port.protocol) == {"token_acc", "exact"} and set(port.n_edits) == {2}
    settings = json.loads((out / "study.json").read_text())["settings"]
    assert settings["hparams"]["ASAM"]["lar.eps"] == 0.3


def test_the_study_on_mmke_keeps_knowledge_types_and_scores_by_generation(model_folder, exports, tmp_path):
    out = tmp_path / "mmke"
    assert _study(model_folder, exports["mmke"], out, "--methods", "FT-L", "--generation", "--n-edits", "3") == 0
    summary = pd.read_csv(out / "summary.csv")
    assert "knowledge_type" in summary.columns
    assert {"T-Rel", "I-Rel", "I-Gen-QA", "Rel"} <= set(summary.metric)
    generated = summary[summary.protocol == "generation_exact"]
    assert {"Rel", "T-Gen", "I-Gen", "TI-Gen", "T-Rel", "I-Rel", "I-Gen-QA"} <= set(generated.metric)
    edits = pd.read_csv(out / "edits.csv")
    assert edits.groupby("case").knowledge_type.nunique().max() == 1  # one type per edit, on every row of it


def test_an_hparams_layer_beyond_the_model_stops_before_loading_it(model_folder, exports, tmp_path, capsys):
    assert _study(model_folder, exports["vlkeb"], tmp_path / "out", "--hparams", ASAM_7B) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"layers: [...] in {ASAM_7B}: 16 is out of range" in err[0]
    assert not (tmp_path / "out").exists()


def test_a_bad_vlkeb_file_stops_the_command_line_with_exit_status_2(model_folder, tmp_path, capsys):
    data = _broken(tmp_path, "vlkeb_eval_multihop.json", lambda r: r[0].update(port_new="London"))
    assert _study(model_folder, data, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "record 0: field 'port_new': expected a list, got str" in err[0]


def test_portability_and_generation_on_every_tiny_architecture(tiny_arch, exports, tmp_path):
    """The library's study with probes and generation on LLaVA, LLaVA-NeXT, OneVision and Qwen2-VL."""
    records = load_benchmark(exports["vlkeb"])[:4]
    encoder = PromptEncoder(tiny_arch.processor)
    config = StudyConfig(methods=("FT-L",), n_edits=1, layer=1, steps=1, n_support=1, generation=True)
    summary = run_study(tiny_arch.model, encoder, records, config, tmp_path, {"test": tiny_arch.name})
    assert {("Port 1-hop", "exact"), ("Port 1-hop", "generation_exact"), ("Rel", "generation_exact")} <= set(
        zip(summary.metric, summary.protocol)
    )
