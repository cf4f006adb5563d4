"""The harness on the shipped base model: disjoint locality pools, tidy rows, exact rollback."""

import pandas as pd
import pytest
import torch

from asam_lib.data.benchmark import locality_pools
from asam_lib.data.pretrain import base_model
from asam_lib.data.world import World
from asam_lib.editors.patch import Patch
from asam_lib.evaluation.harness import (
    HarnessConfig,
    build_cases,
    in_split,
    run_sequential,
    run_single,
    save_table,
    tidy,
)
from asam_lib.mllm.prompting import PromptEncoder

from helpers import changed_weights, weights


@pytest.fixture(scope="module")
def setup():
    model, processor = base_model()
    encoder = PromptEncoder(processor)
    world = World()
    cases = build_cases(
        model,
        encoder,
        world,
        HarnessConfig(n_edits=4, n_support=3, n_locality=3, unit_text=4, unit_image=4, unit_both=4),
        seed=0,
    )
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
    before = weights(model)
    single = run_single(model, encoder, {"Patch": Patch()}, cases[:2], seed=0)
    counts = {"seconds", "steps", "forward passes"}
    assert set(single.metric) == {"Rel", "T-Gen", "I-Gen", "TI-Gen", "Unit", "T-Loc", "I-Loc", *counts}
    assert set(single.protocol) == {
        "token_acc",
        "exact",
        "exact_known",
        "answer_span",
        "easyedit_topk",
        "wall",
        "count",
    }
    assert single[single.metric.eq("Rel") & single.protocol.eq("exact")].value.eq(1.0).all()
    assert set(single.tier) == {"standard", "hard", "binary"}
    other_tiers = single[single.tier.ne("standard")]
    assert set(other_tiers.metric) == {"T-Gen", "I-Gen", "TI-Gen", "Unit"}  # Rel and locality: standard tier only
    sequential = run_sequential(model, encoder, "Patch", Patch(), cases, seed=0, checkpoints=(1, 3))
    assert sorted(sequential.groupby("T").case.nunique().to_dict().items()) == [(1, 1), (3, 3)]
    after = model.state_dict()
    assert set(after) == set(before) and all(torch.equal(after[k], before[k]) for k in before)


def test_cases_are_prefix_stable_and_independent_of_each_other(setup):
    model, encoder, world, cases = setup
    config = HarnessConfig(n_edits=2, n_support=3, n_locality=3, unit_text=4, unit_image=4, unit_both=4)
    first_two = build_cases(model, encoder, world, config, seed=0)
    rest = build_cases(model, encoder, world, HarnessConfig(**{**config.__dict__, "n_edits": 4}), seed=0, start=2)
    assert [c.request.name for c in first_two + rest] == [c.request.name for c in cases]
    for a, b in zip(first_two + rest, cases):
        assert [q for q, _, _ in a.request.memory] == [q for q, _, _ in b.request.memory]
        assert [q for q, _, _ in a.locality] == [q for q, _, _ in b.locality]
        assert [m.question for m in a.unit.members] == [m.question for m in b.unit.members]
    other_seed = build_cases(model, encoder, world, config, seed=1)
    assert [c.request.name for c in other_seed] != [c.request.name for c in first_two]


def test_editors_sharing_the_unedited_forward_passes_give_the_same_rows(setup):
    from asam_lib.editors.asam import ASAM
    from asam_lib.editors.lar import LARConfig

    model, encoder, _, cases = setup
    editors = {"Patch": Patch(), "ASAM": ASAM(lar=LARConfig(k=2, steps=2))}
    shared = run_single(model, encoder, editors, cases[:2], seed=0)
    alone = pd.concat(
        [run_single(model, encoder, {name: editor}, cases[:2], seed=0) for name, editor in editors.items()],
        ignore_index=True,
    )
    keep = ~shared.metric.eq("seconds")
    pd.testing.assert_frame_equal(
        shared[keep].reset_index(drop=True), alone[~alone.metric.eq("seconds")].reset_index(drop=True)
    )


def test_a_saved_table_reads_back_as_its_tidy_form(tmp_path):
    table = pd.DataFrame(
        {
            "method": ["b", "a", "a"],
            "seed": [1, 0, 2],
            "metric": ["Rel", "Rel", "I-Gen"],
            "value": [1 / 3, 2 / 3, 0.1234567891],
        }
    )
    expected = tidy(table)
    assert list(expected.method) == ["a", "a", "b"] and expected.value.tolist() == [0.666667, 0.123457, 0.333333]
    saved = pd.read_csv(save_table(table, "t", tmp_path))
    pd.testing.assert_frame_equal(saved, expected, check_dtype=False)
    assert tidy(expected).equals(expected)


def test_the_hard_tier_shifts_images_and_phrasings_and_marks_the_members_the_model_knows(setup):
    _, _, world, cases = setup
    for case in cases:
        standard, hard = case.unit, case.hard_unit
        assert hard.anchor.question == standard.anchor.question and hard.anchor.known
        anchor_core = next(q for q in world.phrasings(case.record.extra["relation"]) if q.render() == hard.src).parts[1]
        for m in hard.select("text") + hard.select("both"):
            q = next(q for q in world.phrasings(case.record.extra["relation"]) if q.render() == m.question)
            assert q.heldout and q.parts[1] != anchor_core
        assert all(isinstance(m.known, bool) for m in hard.members + standard.members)
    standard_distance = [m.image_distance for c in cases for m in c.unit.select("image")]
    hard_distance = [m.image_distance for c in cases for m in c.hard_unit.select("image")]
    assert sum(hard_distance) / len(hard_distance) > 1.3 * sum(standard_distance) / len(standard_distance)


def test_the_binary_tier_is_the_records_own_rephrase_and_other_image(setup):
    _, _, _, cases = setup
    for case in cases:
        binary = case.binary_unit
        assert [m.kind for m in binary.members] == ["anchor", "text", "image", "both"]
        assert binary.select("text")[0].question == case.record.rephrase


def test_the_dev_and_report_splits_edit_disjoint_facts(setup):
    model, encoder, world, _ = setup
    small = dict(n_support=2, n_locality=2, unit_text=2, unit_image=2, unit_both=2, hard_strength=0.0)
    dev = build_cases(model, encoder, world, HarnessConfig(n_edits=6, split="dev", **small), seed=0)
    report = build_cases(model, encoder, world, HarnessConfig(n_edits=6, **small), seed=0)
    assert all(in_split(c.record, "dev") and not in_split(c.record, "report") for c in dev)
    assert {c.record.extra["entity"] for c in dev}.isdisjoint(c.record.extra["entity"] for c in report)
    assert all(c.hard_unit is None for c in dev)
    with pytest.raises(ValueError, match="unknown split 'test'"):
        in_split(dev[0].record, "test")


def test_firing_rows_count_where_each_edit_s_patch_fires_and_none_without_patches(setup):
    from asam_lib.editors.grace import GRACE
    from asam_lib.editors.patch import patch_firing
    from asam_lib.evaluation.harness import FIRING_METRICS, firing_rows

    model, encoder, _, cases = setup
    table = run_sequential(model, encoder, "Patch", Patch(), cases[:3], seed=0, checkpoints=(1, 3), firing_probe=2)
    firing = table[table.metric.isin(FIRING_METRICS)]
    # misfires on one fixed set, the first two cases' locality items; own coverage for the edits made so far
    assert firing.groupby(["T", "metric"]).size().to_dict() == {
        (1, "misfire rate"): 2,
        (1, "own patch fires"): 1,
        (3, "misfire rate"): 2,
        (3, "own patch fires"): 2,
    }
    assert firing.value.between(0, 1).all()
    # the edit input is a member of its own unit, and its patch was trained to fire there
    assert firing[firing.metric.eq("own patch fires")].value.gt(0).all()
    handle = Patch().edit(model, encoder, cases[0].request, seed=0)
    try:
        rows = firing_rows(model, encoder, cases[:1], cases[:1], layer=2)
        expected = (patch_firing(model, encoder, cases[0].locality, 2) > 0).float().mean().item()
        assert rows[0]["metric"] == "misfire rate" and rows[0]["value"] == pytest.approx(expected)
        with pytest.raises(ValueError, match="1 patch.* for 2 edits"):
            firing_rows(model, encoder, cases[:2], cases[:1], layer=2)
    finally:
        handle.restore()
    handle = GRACE().edit(model, encoder, cases[0].request, seed=0)
    try:
        assert firing_rows(model, encoder, cases[:1], cases[:1], layer=2) == []
    finally:
        handle.restore()


def test_forward_passes_count_every_pass_of_the_training_loop_exactly(setup):
    """Patch: one pass of the edit input and one of the support items per step (none without the locality term).
    ASAM: the same per step, plus a fixed number per LAR search, one search every ``refresh`` steps (at step 0)."""
    from dataclasses import replace

    from asam_lib.editors.asam import ASAM

    model, encoder, _, cases = setup
    before = weights(model)

    def passes(editor, steps: int, **config) -> int:
        editor = editor.with_config(replace(editor.config, steps=steps, stop_loss=0.0, **config))  # all steps
        handle = editor.edit(model, encoder, cases[0].request, seed=0)
        try:
            assert handle.steps == steps
            return handle.forward_passes
        finally:
            handle.restore()

    assert passes(Patch(), 3) == 6 and passes(Patch(), 3, lambda_loc=0.0) == 3
    refresh = ASAM().lar.refresh
    one_search, two_searches = passes(ASAM(), refresh), passes(ASAM(), refresh + 2)
    per_search = one_search - 2 * refresh
    assert per_search > 0 and two_searches == 2 * (refresh + 2) + 2 * per_search
    assert not changed_weights(model, before)
