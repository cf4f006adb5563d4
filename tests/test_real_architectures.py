"""End to end on tiny random models of every supported architecture: each editor edits an MMEdit-format
record, the metrics come out, rollback is bit-exact, and sequential editing works.

The editors come from the method registry (:mod:`asam_lib.editors.methods`), so a new editor registered there is
covered here with no change to this file."""

import json

import pytest
import torch

from asam_lib.data.records import load_records
from asam_lib.editors import methods
from asam_lib.editors.editing import EditConfig
from asam_lib.evaluation.harness import edit_and_evaluate, run_sequential
from asam_lib.evaluation.metrics import locality_reference
from asam_lib.experiments.mmedit_study import case_from_record
from asam_lib.mllm.prompting import PromptEncoder

from helpers import changed_weights, weights

CONFIG = EditConfig(layer=1, steps=3, lr=0.05, stop_loss=0.0)


@pytest.fixture(scope="module")
def mmedit_records(tmp_path_factory, small_world):
    """Three MMEdit records over images of two sizes (size-dependent image tokens get exercised)."""
    root = tmp_path_factory.mktemp("mmedit")
    (root / "img").mkdir()
    for k, size in enumerate([(16, 16), (32, 16), (16, 16)]):
        small_world.image(k, "eval", 0).resize(size).save(root / "img" / f"{k}.png")
        small_world.image(k, "eval", 1).resize(size).save(root / "img" / f"{k}b.png")
    home = small_world.phrasings("home", heldout=False)
    text = small_world.text_entities[0]
    records = [
        {
            "src": home[0].render(),
            "rephrase": home[1].render(),
            "pred": small_world.entities[k].facts["home"],
            "alt": small_world.entities[(k + 1) % 3].facts["home"],
            "image": f"img/{k}.png",
            "image_rephrase": f"img/{k}b.png",
            "loc": f"what does the {text.name} eat ?",
            "loc_ans": text.facts["food"],
            "m_loc": f"img/{(k + 1) % 3}.png",
            "m_loc_q": home[0].render(),
            "m_loc_a": small_world.entities[(k + 1) % 3].facts["home"],
        }
        for k in range(3)
    ]
    (root / "edits.json").write_text(json.dumps(records))
    return load_records(root / "edits.json")


@pytest.mark.parametrize("method", methods.names())
def test_an_edit_changes_the_model_is_evaluated_and_rolls_back_exactly(method, tiny_arch, mmedit_records):
    model, encoder = tiny_arch.model, PromptEncoder(tiny_arch.processor)
    case = case_from_record(mmedit_records[0], mmedit_records[1:], n_support=1, seed=0)
    assert case.request.locality_support and case.locality
    before = weights(model)
    anchor = encoder.batch([case.request.anchor_item])
    with torch.no_grad():
        logits_before = model(**anchor.model_inputs()).logits
    handle = methods.method(method).editor(CONFIG).edit(model, encoder, case.request)
    with torch.no_grad():
        assert not torch.equal(model(**anchor.model_inputs()).logits, logits_before)
    handle.restore()
    assert not changed_weights(model, before)
    rows = edit_and_evaluate(
        model,
        encoder,
        method,
        methods.method(method).editor(CONFIG),
        case,
        locality_reference(model, encoder, case.locality),
        seed=0,
    )
    metrics = {(r["metric"], r["protocol"]): r["value"] for r in rows}
    counts = ("seconds", "steps", "forward passes")
    assert {m for m, _ in metrics} == {"Rel", "T-Gen", "I-Gen", "TI-Gen", "Unit", "T-Loc", "I-Loc", *counts}
    assert all(0.0 <= v <= 1.0 for (m, _), v in metrics.items() if m not in counts)
    # every step passes through the edit block at least once (the edit input's loss)
    assert metrics[("forward passes", "count")] >= metrics[("steps", "count")] >= 1
    assert not changed_weights(model, before)


@pytest.mark.parametrize("method", methods.names())
def test_sequential_edits_are_all_re_evaluated_and_rolled_back(method, tiny_arch, mmedit_records):
    model, encoder = tiny_arch.model, PromptEncoder(tiny_arch.processor)
    cases = [case_from_record(r, [], n_support=0, seed=0) for r in mmedit_records]
    before = weights(model)
    table = run_sequential(
        model, encoder, method, methods.method(method).editor(CONFIG), cases, seed=0, checkpoints=(1, 3)
    )
    assert table.groupby("T").case.nunique().to_dict() == {1: 1, 3: 3}
    assert not changed_weights(model, before)
