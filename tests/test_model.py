import pytest
import torch

from asam_lib.mllm.model import load_model
from asam_lib.mllm.prompting import PromptEncoder, score_items


def _items(world):
    ent, text_ent = world.entities[0], world.text_entities[0]
    q = world.phrasings("home", heldout=False)[0].render()
    t = world.phrasings("food", heldout=False, text=True)[0].render(f"the {text_ent.name}")
    return [
        (q, ent.facts["home"], world.image(0, "eval", 0)),
        (t, text_ent.facts["food"], None),
        ("describe the image .", ent.caption, world.image(1, "eval", 0)),
    ]


def test_save_and_load_give_identical_logits(tmp_path, small_world, tiny_parts, tiny_encoder):
    model, processor = tiny_parts
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded, loaded_processor = load_model(tmp_path)
    batch = tiny_encoder.batch(_items(small_world))
    again = PromptEncoder(loaded_processor).batch(_items(small_world))
    assert torch.equal(batch.input_ids, again.input_ids) and torch.equal(batch.pixel_values, again.pixel_values)
    with torch.no_grad():
        assert torch.equal(model(**batch.model_inputs()).logits, loaded(**again.model_inputs()).logits)


def test_batches_mask_everything_but_the_answer(small_world, tiny_parts, tiny_encoder):
    model, _ = tiny_parts
    batch = tiny_encoder.batch(_items(small_world))
    n_image = (batch.input_ids == model.config.image_token_index).sum(1)
    assert n_image.tolist() == [model.config.image_seq_length, 0, model.config.image_seq_length]
    for i in range(len(batch)):
        start, n = batch.answer_start[i].item(), batch.answer_len[i].item()
        supervised = (batch.labels[i] != -100).nonzero().flatten().tolist()
        assert supervised == list(range(start, start + n + 1))  # answer tokens and </s>
    assert batch.answer_len.tolist() == [1, 1, 3]


def test_scores_are_the_same_alone_and_in_a_batch(small_world, tiny_parts, tiny_encoder):
    model, _ = tiny_parts
    items = _items(small_world)
    together = score_items(model, tiny_encoder, items)
    alone = [score_items(model, tiny_encoder, [item])[0] for item in items]
    assert [s["prediction"] for s in together] == [s["prediction"] for s in alone]


def test_unknown_words_and_empty_answers_are_named(tiny_encoder):
    with pytest.raises(ValueError, match="outside the tokenizer's vocabulary.*'zebra'"):
        tiny_encoder.prompt_ids("where does the zebra live ?", False)
    with pytest.raises(ValueError, match="tokenises to nothing"):
        tiny_encoder.answer_ids("  ")


def test_a_missing_model_folder_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="make model"):
        load_model(tmp_path / "nothing")
