"""Generation-based scoring: the answer the model *generates*, compared with the target.

Half of the field scores an edit by teacher forcing (the target's tokens are fed in and each is checked
against the argmax: :mod:`asam_lib.evaluation.metrics`' ``token_acc`` and ``exact``), half by generating an answer and
comparing it with the target (VLKEB's and MMKE-Bench's generation settings, EasyEdit's
``free_generation_exact_match``). The two differ: teacher-forced ``exact`` asks whether greedy decoding
*starts* with the target; generation also asks that the model *stops* there, so an answer that runs on
("cat cat", "cat is") counts as wrong.

Protocol ``generation_exact``: greedy decoding from the prompt, at most ``len(target tokens) +``
:data:`EXTRA_TOKENS` new tokens, cut at the end-of-answer token; the decoded text equals the target after
:func:`normalise` (case, surrounding space and a final full stop ignored). Decoding is a plain loop of full
forward passes (no cache), the same for every architecture and every transformers version; answers are
a few tokens long.
"""

from __future__ import annotations

from typing import Sequence

import torch

from asam_lib.mllm.prompting import Batch, Item, PromptEncoder

EXTRA_TOKENS = 4  # tokens a generated answer may run past the target's length before it counts as a miss
PROTOCOL = "generation_exact"
PER_TOKEN_INPUTS = ("input_ids", "attention_mask", "mm_token_type_ids")  # model inputs with one entry per token


def normalise(text: str) -> str:
    """``text`` lower-cased, with single spaces and no final full stop: what exact match compares."""
    return " ".join(text.lower().split()).removesuffix(".").strip()


def _prompt_only(batch: Batch) -> dict[str, torch.Tensor]:
    """The model inputs of a one-item ``batch`` cut before its answer (every per-token input cut alike)."""
    start = int(batch.answer_start[0])
    return {k: v[:, :start] if k in PER_TOKEN_INPUTS else v for k, v in batch.model_inputs().items()}


@torch.no_grad()
def generate_answer(model, encoder: PromptEncoder, item: Item, max_new_tokens: int) -> str:
    """The greedy answer of ``model`` to ``item``'s question and image (its answer is ignored), decoded."""
    inputs = _prompt_only(encoder.batch([item]))
    eos = encoder.tokenizer.eos_token_id
    new: list[int] = []
    for _ in range(max_new_tokens):
        token = int(model(**inputs).logits[0, -1].argmax())
        if token == eos:
            break
        new.append(token)
        step = torch.tensor([[token]], device=inputs["input_ids"].device)
        inputs["input_ids"] = torch.cat([inputs["input_ids"], step], 1)
        inputs["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones_like(step)], 1)
        if "mm_token_type_ids" in inputs:
            inputs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(step)], 1)
    return encoder.tokenizer.decode(new, skip_special_tokens=True)


def generation_scores(model, encoder: PromptEncoder, items: Sequence[Item]) -> list[dict[str, object]]:
    """Per item: ``generated`` (the decoded answer) and ``generation_exact`` (1.0 if it matches the item's
    answer after :func:`normalise`, else 0.0)."""
    out = []
    for question, answer, image in items:
        budget = len(encoder.answer_ids(answer)) + EXTRA_TOKENS
        generated = generate_answer(model, encoder, (question, answer, image), budget)
        out.append({"generated": generated, PROTOCOL: float(normalise(generated) == normalise(answer))})
    return out
