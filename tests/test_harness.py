"""The harness on the shipped base model: disjoint locality pools, tidy rows, exact rollback."""

import pytest
import torch

from asam_lib.benchmark import locality_pools
from asam_lib.harness import HarnessConfig, build_cases, run_sequential, run_single
from asam_lib.patch import Patch
from asam_lib.pretrain import base_model
from asam_lib.prompting import PromptEncoder
from asam_lib.world import World


@pytest.fixture(scope="module")
def setup():
    model, processor = base_model()
    encoder = PromptEncoder(processor)
    world = World()
    cases = build_cases(model, encoder, world, HarnessConfig(n_edits=4, n_support=3, n_locality=3, unit_text=4, unit_image=4, unit_both=4), seed=0)
    return model, encoder, world, cases


def _text_names(world, items):
    names = {t.name for t in world.text_entities}
    return {w for q, _, image in items if image is None for w in q.split() if w in names}


def test_support_and_evaluation_locality_items_never_share_an_entity(setup):
    _, _, world, cases = setup
    pools = locality_pools(world)
    support_names = {world.text_entities[i].name for i in pools.text_support}
    for case in cases:
        used_support = _text_names(world, case.request.locality_support)
        used_eval = _text_names(world, case.locality)
        assert used_support and used_eval
        assert used_support <= support_names and not used_support & used_eval


def test_cases_are_counterfactual_edits_of_known_facts(setup):
    _, _, _, cases = setup
    assert len(cases) == 4
    for case in cases:
        assert case.unit.new_answer != case.unit.old_answer
        assert case.unit.members[0].latent_distance == pytest.approx(0.0, abs=1e-5)


def test_single_and_sequential_runs_give_tidy_rows_and_restore_the_model(setup):
    model, encoder, _, cases = setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    single = run_single(model, encoder, {"Patch": Patch()}, cases[:2], seed=0)
    assert set(single.metric) == {"Rel", "T-Gen", "I-Gen", "TI-Gen", "Unit", "T-Loc", "I-Loc", "seconds", "steps"}
    assert set(single.protocol) == {"token_acc", "exact", "answer_span", "easyedit_topk", "wall", "count"}
    assert single[single.metric.eq("Rel") & single.protocol.eq("exact")].value.eq(1.0).all()
    sequential = run_sequential(model, encoder, "Patch", Patch(), cases, seed=0, checkpoints=(1, 3))
    assert sorted(sequential.groupby("T").case.nunique().to_dict().items()) == [(1, 1), (3, 3)]
    after = model.state_dict()
    assert set(after) == set(before) and all(torch.equal(after[k], before[k]) for k in before)
