"""GRACE: the codebook makes the edit input answer the new target, leaves inputs outside its radii bit-identical,
follows GRACE's add / expand / split rules, and rolls back exactly, one edit or several in reverse order."""

import pickle
from contextlib import contextmanager

import pytest
import torch

from asam_lib.editors.editing import EditConfig, EditError, EditRequest, joint_embeddings
from asam_lib.editors.grace import COVER_MARGIN, GRACE, Codebook, CodebookEntry, GRACESettings
from asam_lib.editors.patch import ffn_inputs
from asam_lib.mllm.architectures import edit_layer_mlp
from asam_lib.mllm.prompting import PromptEncoder, score_items

from helpers import changed_weights, weights
from tiny_models import build

CONFIG = EditConfig(layer=1, steps=30, lr=1.0, lambda_loc=0.0)
RADIUS = 0.1  # the tiny model's keys: ~5.7 in norm, 0.3 apart between questions on one image, ~1 between images


def _request(world, relation="home", entity=0, target=None, name=None) -> EditRequest:
    """Entity ``entity``'s ``relation`` question on its image, moved to ``target`` (default: another answer)."""
    old = world.entities[entity].facts[relation]
    target = target or next(a for a in world.candidate_answers(relation) if a != old)
    question = world.phrasings(relation, heldout=False)[0].render()
    return EditRequest(question, target, world.image(entity, "eval", 0), name=name or f"{relation}-{entity}")


def _logits(model, encoder, item):
    batch = encoder.batch([item])
    with torch.no_grad():
        return model(**batch.model_inputs()).logits


def _answers(model, encoder, request) -> bool:
    return score_items(model, encoder, [request.anchor_item])[0]["exact"] == 1.0


def _first_key(model, encoder, request, layer=1):
    batch = encoder.batch([request.anchor_item])
    return ffn_inputs(model, joint_embeddings(model, batch), batch, layer)[0, int(batch.answer_start[0]) - 1]


@contextmanager
def _edits(model):
    """A list to put edit handles in; whatever happens inside, they are rolled back in reverse order on exit."""
    handles = []
    try:
        yield handles
    finally:
        for handle in reversed(handles):
            handle.restore()


def _codebook(model) -> Codebook:
    codebook = edit_layer_mlp(model, CONFIG.layer)
    assert isinstance(codebook, Codebook)
    return codebook


def test_an_edit_makes_the_anchor_answer_the_new_target_and_leaves_another_input_bit_identical(
    small_world, tiny_parts, tiny_encoder
):
    model, _ = tiny_parts
    request = _request(small_world)
    unrelated = ("where does this live ?", small_world.entities[1].facts["home"], small_world.image(1, "eval", 0))
    assert (
        float(
            (_first_key(model, tiny_encoder, request) - _first_key(model, tiny_encoder, EditRequest(*unrelated))).norm()
        )
        > RADIUS
    )
    before = _logits(model, tiny_encoder, unrelated)
    assert not _answers(model, tiny_encoder, request)
    handle = GRACE(CONFIG, GRACESettings(radius=RADIUS)).edit(model, tiny_encoder, request)
    try:
        assert _answers(model, tiny_encoder, request)
        assert torch.equal(_logits(model, tiny_encoder, unrelated), before)
    finally:
        handle.restore()


def test_restore_puts_back_the_original_module_and_weights_bit_exact(small_world, tiny_parts, tiny_encoder):
    model, _ = tiny_parts
    before, ffn = weights(model), edit_layer_mlp(model, CONFIG.layer)
    request = _request(small_world)
    logits = _logits(model, tiny_encoder, request.anchor_item)
    with _edits(model) as handles:
        handles.append(GRACE(CONFIG, GRACESettings(radius=RADIUS)).edit(model, tiny_encoder, request))
        assert len(_codebook(model).entries) == 1 and changed_weights(model, before)
    assert edit_layer_mlp(model, CONFIG.layer) is ffn and not changed_weights(model, before)
    assert torch.equal(_logits(model, tiny_encoder, request.anchor_item), logits)


def test_sequential_edits_add_one_entry_each_keep_earlier_edits_and_roll_back_in_reverse(
    small_world, tiny_parts, tiny_encoder
):
    model, _ = tiny_parts
    before, ffn = weights(model), edit_layer_mlp(model, CONFIG.layer)
    editor = GRACE(CONFIG, GRACESettings(radius=RADIUS))
    requests = [_request(small_world, relation) for relation in ("home", "food", "maker")]
    with _edits(model) as handles:
        for count, request in enumerate(requests, start=1):
            handles.append(editor.edit(model, tiny_encoder, request))
            assert len(_codebook(model).entries) == count
        assert all(_answers(model, tiny_encoder, r) for r in requests)
        with pytest.raises(EditError, match="home-0: GRACE edits are rolled back in reverse order"):
            handles[0].restore()
    assert edit_layer_mlp(model, CONFIG.layer) is ffn and not changed_weights(model, before)


def test_a_conflicting_key_with_another_target_splits_both_radii_at_half_the_distance(
    small_world, tiny_parts, tiny_encoder
):
    model, _ = tiny_parts
    before = weights(model)
    editor = GRACE(CONFIG, GRACESettings(radius=1.0))
    first, second = _request(small_world, "home"), _request(small_world, "food")
    distance = float((_first_key(model, tiny_encoder, first) - _first_key(model, tiny_encoder, second)).norm())
    assert distance < 0.9 * 2 * editor.settings.radius  # the two balls overlap, by more than rounding can undo
    with _edits(model) as handles:
        handles.append(editor.edit(model, tiny_encoder, first))
        handles.append(editor.edit(model, tiny_encoder, second))
        entries = _codebook(model).entries
        assert len(entries) == 2
        assert [float(e.radius) for e in entries] == pytest.approx([distance / 2] * 2, rel=1e-4)
        assert _answers(model, tiny_encoder, first) and _answers(model, tiny_encoder, second)
        handles.pop().restore()
        assert len(entries) == 1 and float(entries[0].radius) == 1.0  # put back from a copy: exact
    assert not changed_weights(model, before)


def test_a_close_key_with_the_same_target_expands_the_nearest_radius_past_it_without_a_new_entry(
    small_world, tiny_parts, tiny_encoder
):
    model, _ = tiny_parts
    before = weights(model)
    first = _request(small_world, "home")
    second = _request(small_world, "maker", target=first.target)
    distance = float((_first_key(model, tiny_encoder, first) - _first_key(model, tiny_encoder, second)).norm())
    editor = GRACE(CONFIG, GRACESettings(radius=0.75 * distance))  # the balls overlap; the first does not reach
    with _edits(model) as handles:
        handles.append(editor.edit(model, tiny_encoder, first))
        handles.append(editor.edit(model, tiny_encoder, second))
        entries = _codebook(model).entries
        # rel=1e-4: the key's distance as this test computes it and as the edit did differ by float rounding only
        assert len(entries) == 1 and float(entries[0].radius) == pytest.approx(distance * (1 + COVER_MARGIN), rel=1e-4)
        assert _answers(model, tiny_encoder, second)
    assert not changed_weights(model, before)


@pytest.mark.parametrize("fraction, fires", [(0.99, True), (1.01, False)])
def test_the_codebook_replaces_the_output_inside_the_radius_and_nowhere_else(fraction, fires):
    torch.manual_seed(0)
    mlp = torch.nn.Linear(8, 8)
    codebook = Codebook(mlp)
    key, value, radius = torch.randn(1, 8), torch.randn(1, 8), 2.0
    codebook.entries.append(CodebookEntry(key, value, radius, "forest"))
    direction = torch.randn(1, 8)
    query = key + fraction * radius * direction / direction.norm()  # 1% from the radius: far beyond rounding
    with torch.no_grad():
        out = codebook(query[None])[0]
        assert torch.equal(out, value if fires else mlp(query))


class _NaNGRACE(GRACE):
    def extra_losses(self, model, context, step):
        return {"poison": torch.tensor(float("nan"))} if step == 2 else {}


def test_a_nan_loss_raises_and_removes_the_codebook(small_world, tiny_parts, tiny_encoder):
    model, _ = tiny_parts
    before, ffn = weights(model), edit_layer_mlp(model, CONFIG.layer)
    with pytest.raises(EditError, match="home-0: non-finite poison loss at step 2"):
        _NaNGRACE(CONFIG, GRACESettings(radius=RADIUS)).edit(model, tiny_encoder, _request(small_world))
    assert edit_layer_mlp(model, CONFIG.layer) is ffn and not changed_weights(model, before)


@pytest.mark.parametrize("radius", [-0.5, float("nan"), float("inf")])
def test_a_bad_radius_is_refused_naming_the_field(radius):
    with pytest.raises(ValueError, match="GRACESettings.radius = .*: the deferral radius must be a finite number >= 0"):
        GRACESettings(radius=radius)


def test_the_editor_pickles_for_worker_processes():
    editor = pickle.loads(pickle.dumps(GRACE(CONFIG, GRACESettings(radius=0.5))))
    assert type(editor) is GRACE and editor.config == CONFIG and editor.settings == GRACESettings(radius=0.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_half_precision_edits_answer_the_target_and_roll_back_exactly(dtype, small_world):
    tiny = build("LlavaForConditionalGeneration", small_world.all_words())
    model, encoder = tiny.model.to(dtype), PromptEncoder(tiny.processor)
    before = weights(model)
    editor = GRACE(CONFIG, GRACESettings(radius=RADIUS))
    requests = [_request(small_world, relation) for relation in ("home", "food")]
    with _edits(model) as handles:
        handles.extend(editor.edit(model, encoder, r) for r in requests)
        assert {v.dtype for v in model.state_dict().values() if v.is_floating_point()} == {dtype}
        assert len(_codebook(model).entries) == 2 and all(_answers(model, encoder, r) for r in requests)
    assert not changed_weights(model, before)
