"""Prompts, padded batches with answer masks, and teacher-forced answers.

An *item* is ``(question, answer, image)`` where ``image`` is a PIL image, an already processed
``pixel_values`` tensor ``(3, H, W)``, or ``None`` for a text-only question. A batch puts the prompt
(``USER: <image> question ASSISTANT:``, the LLaVA-1.5 format) before the answer tokens and ``</s>``,
right-padded, with ``labels`` = -100 everywhere except the answer and ``</s>``.

Teacher-forced exact match (every answer token is the argmax given the true prefix) is the same event
as greedy decoding starting with the answer, so it is computed from one forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence, Union

import torch
from PIL import Image
from transformers import LlavaProcessor

ImageLike = Union[Image.Image, torch.Tensor, None]
Item = tuple[str, str, ImageLike]

USER, ASSISTANT = "USER:", "ASSISTANT:"


def build_prompt(question: str, with_image: bool, image_token: str = "<image>") -> str:
    """The LLaVA-1.5 prompt for ``question``."""
    image = f"{image_token} " if with_image else ""
    return f"{USER} {image}{question} {ASSISTANT}"


@dataclass
class Batch:
    """A padded batch. ``input_ids``/``attention_mask``/``labels``: (B, L); ``pixel_values``: (N, 3, H, W)
    for the N items that have an image (in item order) or None; ``answer_start``/``answer_len``: (B,)
    position and length of the answer tokens (``</s>`` excluded)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    pixel_values: torch.Tensor | None
    answer_start: torch.Tensor
    answer_len: torch.Tensor

    def model_inputs(self) -> dict[str, torch.Tensor]:
        inputs = {"input_ids": self.input_ids, "attention_mask": self.attention_mask}
        if self.pixel_values is not None:
            inputs["pixel_values"] = self.pixel_values
        return inputs

    def __len__(self) -> int:
        return self.input_ids.shape[0]


class PromptEncoder:
    """Turns items into :class:`Batch` es with a processor, caching prompt and answer token ids."""

    def __init__(self, processor: LlavaProcessor):
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self._dummy = Image.new("RGB", (8, 8))
        self.prompt_ids = lru_cache(maxsize=None)(self._prompt_ids)
        self.answer_ids = lru_cache(maxsize=None)(self._answer_ids)

    def _prompt_ids(self, question: str, with_image: bool) -> tuple[int, ...]:
        prompt = build_prompt(question, with_image, self.processor.image_token)
        if with_image:
            size = self.processor.image_processor.crop_size
            dummy = self._dummy.resize((size["width"], size["height"]))
            ids = self.processor(text=prompt, images=dummy, return_tensors="pt").input_ids[0]
        else:
            ids = self.tokenizer(prompt, return_tensors="pt").input_ids[0]
        if (ids == self.tokenizer.unk_token_id).any():
            words = [w for w in question.split() if self.tokenizer.convert_tokens_to_ids(w.lower()) == self.tokenizer.unk_token_id]
            raise ValueError(f"question {question!r} has words outside the tokenizer's vocabulary: {words}")
        return tuple(ids.tolist())

    def _answer_ids(self, answer: str) -> tuple[int, ...]:
        ids = self.tokenizer(" " + answer, add_special_tokens=False).input_ids
        if not ids:
            raise ValueError(f"answer {answer!r} tokenises to nothing: give a non-empty target")
        if self.tokenizer.unk_token_id in ids:
            raise ValueError(f"answer {answer!r} has words outside the tokenizer's vocabulary")
        return tuple(ids)

    def pixel_values(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Processed images, (N, 3, H, W)."""
        return self.processor.image_processor(list(images), return_tensors="pt").pixel_values

    def batch(self, items: Sequence[Item]) -> Batch:
        """Encode ``items`` into one right-padded :class:`Batch`."""
        rows, starts, lengths, pil, tensors, order = [], [], [], [], [], []
        for k, (question, answer, image) in enumerate(items):
            prompt = self.prompt_ids(question, image is not None)
            answer_ids = self.answer_ids(answer)
            rows.append(list(prompt) + list(answer_ids) + [self.tokenizer.eos_token_id])
            starts.append(len(prompt))
            lengths.append(len(answer_ids))
            if isinstance(image, Image.Image):
                order.append(("pil", len(pil)))
                pil.append(image)
            elif isinstance(image, torch.Tensor) and image.dim() == 3:
                order.append(("tensor", len(tensors)))
                tensors.append(image)
            elif image is not None:
                raise ValueError(f"item {k} ({question!r}): image is a {type(image).__name__}, expected a PIL image, a (3, H, W) pixel tensor or None")
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        for i, (row, start) in enumerate(zip(rows, starts)):
            input_ids[i, : len(row)] = torch.tensor(row)
            attention[i, : len(row)] = 1
            labels[i, start : len(row)] = input_ids[i, start : len(row)]
        pixel_values = None
        if order:
            processed = self.pixel_values(pil) if pil else None
            pixel_values = torch.stack([processed[j] if kind == "pil" else tensors[j] for kind, j in order])
        return Batch(input_ids, attention, labels, pixel_values, torch.tensor(starts), torch.tensor(lengths))


def answer_logits(logits: torch.Tensor, batch: Batch) -> list[torch.Tensor]:
    """Per item, the logits that predict each answer token: a list of (answer_len, V)."""
    return [logits[i, s - 1 : s - 1 + n] for i, (s, n) in enumerate(zip(batch.answer_start.tolist(), batch.answer_len.tolist()))]


def answer_targets(batch: Batch) -> list[torch.Tensor]:
    """Per item, the answer token ids: a list of (answer_len,)."""
    return [batch.input_ids[i, s : s + n] for i, (s, n) in enumerate(zip(batch.answer_start.tolist(), batch.answer_len.tolist()))]


@torch.no_grad()
def score_items(model, encoder: PromptEncoder, items: Sequence[Item], batch_size: int = 64) -> list[dict[str, float]]:
    """Teacher-forced scores of each item: ``token_acc`` (share of answer tokens that are the argmax),
    ``exact`` (1.0 if all are) and ``prediction`` (the argmax tokens as text)."""
    out: list[dict[str, float]] = []
    for lo in range(0, len(items), batch_size):
        batch = encoder.batch(items[lo : lo + batch_size])
        logits = model(**batch.model_inputs()).logits
        for pred_logits, target in zip(answer_logits(logits, batch), answer_targets(batch)):
            pred = pred_logits.argmax(-1)
            hits = (pred == target).float()
            out.append(
                {
                    "token_acc": hits.mean().item(),
                    "exact": float(hits.all().item()),
                    "prediction": encoder.tokenizer.decode(pred),
                }
            )
    return out
