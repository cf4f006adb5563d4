"""Metrics on hand-made examples whose answers are known."""

import pandas as pd
import pytest
import torch

from asam_lib.data.units import KnowledgeUnit, Member
from asam_lib.evaluation.harness import summarize
from asam_lib.evaluation.metrics import evaluate_edit, locality_reference
from asam_lib.evaluation.summaries import ci95


class _Always:
    """A stand-in model whose argmax is the same word at every position (second choice: ``runner_up``)."""

    def __init__(self, tokenizer, word, runner_up="forest"):
        self.vocab = len(tokenizer)
        self.best = tokenizer.convert_tokens_to_ids(word)
        self.second = tokenizer.convert_tokens_to_ids(runner_up)

    def __call__(self, input_ids, attention_mask, pixel_values=None):
        logits = torch.zeros(*input_ids.shape, self.vocab)
        logits[..., self.second] = 1.0
        logits[..., self.best] = 2.0
        return type("Out", (), {"logits": logits})()


def _unit(world, new_answer):
    image = world.image(0, "eval", 0)
    kinds = ["anchor", "text", "text", "image", "both"]
    members = [
        Member(
            "where does this live ?",
            None if k == "text" else image,
            k,
            "support" if k == "anchor" else "eval",
            0.0,
            0.0,
        )
        for k in kinds
    ]
    return KnowledgeUnit("where does this live ?", "island", new_answer, members)


def _value(rows, metric, protocol):
    (row,) = [r for r in rows if r["metric"] == metric and r["protocol"] == protocol]
    return row["value"]


def test_generality_of_a_model_that_always_says_the_target(small_world, tiny_encoder):
    model = _Always(tiny_encoder.tokenizer, "desert")
    rows = evaluate_edit(model, tiny_encoder, _unit(small_world, "desert"), None)
    for metric in ("Rel", "T-Gen", "I-Gen", "TI-Gen", "Unit"):
        assert _value(rows, metric, "exact") == 1.0 and _value(rows, metric, "token_acc") == 1.0


def test_token_accuracy_and_exact_match_differ_on_a_partly_right_answer(small_world, tiny_encoder):
    model = _Always(tiny_encoder.tokenizer, "desert")
    rows = evaluate_edit(model, tiny_encoder, _unit(small_world, "desert desert forest"), None)
    assert _value(rows, "Rel", "token_acc") == pytest.approx(2 / 3)
    assert _value(rows, "Rel", "exact") == 0.0


def test_locality_is_one_when_nothing_changed_and_zero_when_every_answer_moved(small_world, tiny_encoder):
    items = [
        (f"where does the {small_world.text_entities[0].name} live ?", "desert", None),
        ("what does this eat ?", "fish", small_world.image(1, "eval", 0)),
    ]
    unedited = _Always(tiny_encoder.tokenizer, "desert")
    reference = locality_reference(unedited, tiny_encoder, items)
    same = evaluate_edit(unedited, tiny_encoder, _unit(small_world, "desert"), reference)
    assert _value(same, "T-Loc", "answer_span") == 1.0 and _value(same, "I-Loc", "easyedit_topk") == 1.0
    moved = evaluate_edit(
        _Always(tiny_encoder.tokenizer, "ocean"), tiny_encoder, _unit(small_world, "desert"), reference
    )
    assert _value(moved, "T-Loc", "answer_span") == 0.0 and _value(moved, "I-Loc", "answer_span") == 0.0
    assert _value(moved, "T-Loc", "easyedit_topk") == 0.0  # top-1 moved at every position
    # top-10 lists: the first two ids changed at every position, so agreement drops below one
    assert _value(moved, "I-Loc", "easyedit_topk") < 1.0


def test_confidence_intervals_and_summaries():
    assert ci95([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)
    mean, lo, hi = ci95([0.0, 1.0, 0.0, 1.0])
    assert mean == 0.5 and 0.0 <= lo < 0.5 < hi <= 1.0
    table = pd.DataFrame(
        {"method": "A", "metric": "Rel", "protocol": "exact", "seed": [0, 0, 1, 1], "value": [1.0, 0.0, 1.0, 1.0]}
    )
    (row,) = summarize(table).to_dict("records")
    assert row["mean"] == pytest.approx(0.75) and row["n_seeds"] == 2
