"""Prompts of each real architecture against hand-built expectations: the chat template's text, the
number of image tokens, where the target sits and what is masked (teacher forcing on the target and its
end token only), and the image inputs the model needs."""

import pytest
import torch

from asam_lib.mllm.prompting import PromptEncoder

from helpers import rows_match

QUESTION, ANSWER = "what colour is it ?", "red"

# Per architecture: the prompt with an image (IMG = the image placeholder, expanded below), without one,
# and what separates the prompt from the answer (generation starts there).
EXPECTED = {
    "LlavaForConditionalGeneration": ("USER: IMG\n{q} ASSISTANT:", "USER: {q} ASSISTANT:", " "),
    "LlavaNextForConditionalGeneration": ("[INST] IMG\n{q} [/INST]", "[INST] {q} [/INST]", " "),
    "LlavaOnevisionForConditionalGeneration": (
        "<|im_start|>user IMG\n{q}<|im_end|><|im_start|>assistant\n",
        "<|im_start|>user \n{q}<|im_end|><|im_start|>assistant\n",
        "",
    ),
    "Qwen2VLForConditionalGeneration": (
        "<|im_start|>system\nYou are a helpful "
        "assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|>IMG<|vision_end|>{q}<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>system\nYou are a helpful "
        "assistant.<|im_end|>\n<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n",
        "",
    ),
}

# Image tokens for a (width, height) image. LLaVA-1.5: (16/8)^2 patches, CLS dropped, whatever the size.
# NeXT / OneVision (anyres, 8-pixel patches, 16-pixel crops): a 2x2 base grid plus the grid of the best
# crop layout unpadded to the image's aspect ratio with one newline token per row: 4 + (2x2 + 2) for a
# square image, 4 + (2x4 + 2) for a 2:1 one. Qwen2-VL: (H/4)(W/4) patches merged 2x2.
IMAGE_TOKENS = {
    "LlavaForConditionalGeneration": {(16, 16): 4, (32, 16): 4},
    "LlavaNextForConditionalGeneration": {(16, 16): 10, (32, 16): 14},
    "LlavaOnevisionForConditionalGeneration": {(16, 16): 10, (32, 16): 14},
    "Qwen2VLForConditionalGeneration": {(16, 16): 4, (32, 16): 8},
}


def _expected_row(tiny_arch, text: str) -> tuple[list[int], int]:
    """Token ids of ``text`` followed by the answer and the end token, tokenised in one go, and where
    the answer starts."""
    tokenizer = tiny_arch.processor.tokenizer
    separator = EXPECTED[tiny_arch.name][2]
    prompt = tokenizer(text).input_ids
    full = tokenizer(text + separator + ANSWER + tokenizer.eos_token).input_ids
    assert full[: len(prompt)] == prompt, "the hand-built prompt must tokenise to a prefix of the full text"
    return full, len(prompt)


@pytest.mark.parametrize("size", [(16, 16), (32, 16)])
def test_prompts_targets_and_masks_match_the_hand_built_expectation(tiny_arch, small_world, size):
    processor = tiny_arch.processor
    with_image, text_only, _ = EXPECTED[tiny_arch.name]
    image = small_world.image(0, "eval", 0).resize(size)
    n_image = IMAGE_TOKENS[tiny_arch.name][size]
    rows = [
        _expected_row(tiny_arch, with_image.replace("IMG", processor.image_token * n_image).format(q=QUESTION)),
        _expected_row(tiny_arch, text_only.format(q=QUESTION)),
    ]
    batch = PromptEncoder(processor).batch([(QUESTION, ANSWER, image), (QUESTION, ANSWER, None)])
    assert batch.input_ids.shape == (2, max(len(ids) for ids, _ in rows))
    for i, (ids, start) in enumerate(rows):
        n = len(ids)
        assert batch.input_ids[i, :n].tolist() == ids
        assert batch.attention_mask[i].tolist() == [1] * n + [0] * (batch.input_ids.shape[1] - n)
        assert batch.input_ids[i, n:].eq(processor.tokenizer.pad_token_id).all()
        assert (batch.answer_start[i].item(), batch.answer_len[i].item()) == (start, n - start - 1)
        assert batch.labels[i, :start].eq(-100).all() and batch.labels[i, n:].eq(-100).all()
        assert batch.labels[i, start:n].tolist() == ids[start:]  # the answer and its end token
    assert processor.tokenizer.decode(batch.input_ids[0, rows[0][1] : len(rows[0][0]) - 1]).strip() == ANSWER
    reference = processor(
        text=with_image.replace("IMG", processor.image_token).format(q=QUESTION), images=image, return_tensors="pt"
    )
    assert reference.input_ids[0].tolist() == rows[0][0][: rows[0][1]]
    for name, value in batch.model_inputs().items():
        if name not in ("input_ids", "attention_mask", "mm_token_type_ids"):
            assert torch.equal(value, reference[name]), name
    if "mm_token_type_ids" in batch.extra:
        assert batch.extra["mm_token_type_ids"][0, : rows[0][1]].tolist() == reference["mm_token_type_ids"][0].tolist()


def test_a_preprocessed_pixel_tensor_is_refused_where_the_image_token_count_depends_on_the_size(tiny_arch, small_world):
    encoder = PromptEncoder(tiny_arch.processor)
    if encoder.fixed_image_tokens:
        pixels = encoder.pixel_values([small_world.image(0, "eval", 0)])[0]
        assert torch.equal(encoder.batch([(QUESTION, ANSWER, pixels)]).pixel_values[0], pixels)
    else:
        with pytest.raises(ValueError, match="item 0 .*pass a PIL image"):
            encoder.batch([(QUESTION, ANSWER, torch.zeros(3, 16, 16))])


def _mixed_items(small_world) -> list:
    """A wide image, a text-only question and a square image (size-dependent image token counts differ)."""
    question, answer = small_world.phrasings("home", heldout=False)[0].render(), small_world.entities[1].facts["home"]
    text = small_world.text_entities[0]
    text_question = small_world.phrasings("food", heldout=False, text=True)[0].render(f"the {text.name}")
    image = small_world.image(0, "eval", 0)
    return [(question, answer, image.resize((32, 16))), (text_question, answer, None), (question, answer, image)]


def test_rows_keep_their_images_and_inputs(tiny_arch, small_world):
    """Rows picked in another order, repeated and without images run like they do in the batch they come from."""
    model, encoder = tiny_arch.model, PromptEncoder(tiny_arch.processor)
    batch = encoder.batch(_mixed_items(small_world))
    picked = [2, 1, 0, 2]
    rows = batch.rows(picked)
    assert rows.image_rows.tolist() == [0, 2, 3] and set(rows.extra) == set(batch.extra)
    assert torch.equal(batch.rows(slice(1, 2)).input_ids, batch.input_ids[1:2])
    assert batch.rows([1]).pixel_values is None and not set(batch.rows([1]).extra) - {"mm_token_type_ids"}
    with torch.no_grad():
        full, picked_logits = model(**batch.model_inputs()).logits, model(**rows.model_inputs()).logits
    assert all(rows_match(picked_logits[n : n + 1], full[i : i + 1]) for n, i in enumerate(picked))


def test_k_copies_of_an_item_give_k_identical_rows(tiny_arch, small_world):
    model, encoder = tiny_arch.model, PromptEncoder(tiny_arch.processor)
    batch = encoder.batch(_mixed_items(small_world)[:1])
    copies = batch.repeat(3)
    assert len(copies) == 3 and copies.image_rows.tolist() == [0, 1, 2]
    with torch.no_grad():
        assert rows_match(model(**copies.model_inputs()).logits, model(**batch.model_inputs()).logits)


def test_rows_that_are_not_in_the_batch_are_named(tiny_encoder, small_world):
    batch = tiny_encoder.batch(_mixed_items(small_world))
    for bad in ([], [3], [-1]):
        with pytest.raises(ValueError, match="Batch.rows.*3 items"):
            batch.rows(bad)
    with pytest.raises(ValueError, match="k >= 1"):
        batch.repeat(0)
