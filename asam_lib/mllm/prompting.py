"""Prompts, padded batches with answer masks, and teacher-forced answers.

An *item* is ``(question, answer, image)`` where ``image`` is a PIL image, an already processed
``pixel_values`` tensor ``(3, H, W)``, or ``None`` for a text-only question. A batch puts the prompt
before the answer tokens and the end-of-answer token (the tokenizer's ``eos_token``: ``</s>`` for
LLaVA, ``<|im_end|>`` for chat-tuned Qwen models), right-padded, with ``labels`` = -100 everywhere
except the answer and its end token (teacher forcing on the target span only).

The prompt is the processor's own chat template applied to one user turn (image, then question) with
the generation prompt, when the processor has a template (every real checkpoint brings its own);
otherwise the LLaVA-1.5 format ``USER: <image> question ASSISTANT:`` (the embedded model). The
processor expands the image placeholder into as many image tokens as the image needs (a fixed count
for LLaVA-1.5, one that depends on the image size for LLaVA-NeXT / OneVision and Qwen2-VL), and its
image processor supplies whatever else the model needs (``image_sizes``, ``image_grid_thw``, ...).

Teacher-forced exact match (every answer token is the argmax given the true prefix) is the same event
as greedy decoding starting with the answer, so it is computed from one forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Sequence, Union

import torch
from PIL import Image
from transformers import ProcessorMixin

ImageLike = Union[Image.Image, torch.Tensor, None]
Item = tuple[str, str, ImageLike]

USER, ASSISTANT = "USER:", "ASSISTANT:"

# The model inputs in Batch.extra with one entry per item; every other one has one entry per image.
ROW_INPUTS = frozenset({"mm_token_type_ids"})


def build_prompt(question: str, with_image: bool, image_token: str = "<image>") -> str:
    """The LLaVA-1.5 prompt for ``question``."""
    image = f"{image_token} " if with_image else ""
    return f"{USER} {image}{question} {ASSISTANT}"


@dataclass
class Batch:
    """A padded batch. ``input_ids``/``attention_mask``/``labels``: (B, L); ``pixel_values``: the processed
    images of the items that have one, in item order, or None (``(N, 3, H, W)`` for LLaVA-1.5; the
    image processor's own layout for other architectures); ``answer_start``/``answer_len``: (B,)
    position and length of the answer tokens (end token excluded); ``extra``: the other model inputs
    the processor makes for this architecture (``image_sizes``, ``image_grid_thw``, ``mm_token_type_ids``);
    ``image_rows``: (N,) the item each image belongs to (an item has at most one).

    Every copy of a batch's items (:meth:`rows`, :meth:`repeat`) keeps all of these together: a Qwen2-VL
    row without its ``image_grid_thw`` would run with other positions than the item it copies."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    pixel_values: torch.Tensor | None
    answer_start: torch.Tensor
    answer_len: torch.Tensor
    extra: dict[str, torch.Tensor] = field(default_factory=dict)
    image_rows: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))

    def model_inputs(self) -> dict[str, torch.Tensor]:
        inputs = {"input_ids": self.input_ids, "attention_mask": self.attention_mask}
        if self.pixel_values is not None:
            inputs["pixel_values"] = self.pixel_values
        inputs.update(self.extra)
        return inputs

    def to(self, device: torch.device | str) -> "Batch":
        """The same batch with every tensor on ``device``."""
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in moved.items()}
        moved["extra"] = {k: v.to(device) for k, v in self.extra.items()}
        return Batch(**moved)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def rows(self, index: slice | Sequence[int]) -> "Batch":
        """The items ``index`` (a slice, or item numbers in any order, repeats allowed) as a batch of their
        own: their token rows, their images and every other model input that belongs to them."""
        picked = list(range(len(self)))[index] if isinstance(index, slice) else [int(i) for i in index]
        if not picked or not all(0 <= i < len(self) for i in picked):
            raise ValueError(f"Batch.rows: {index!r} must pick at least one of the batch's {len(self)} items")
        image_of = {row: j for j, row in enumerate(self.image_rows.tolist())}
        images = [image_of[i] for i in picked if i in image_of]
        per_row = lambda t: t[torch.tensor(picked, device=t.device)]  # noqa: E731
        per_image = lambda t: t[torch.tensor(images, dtype=torch.long, device=t.device)]  # noqa: E731
        pixel_values = None
        if images and self.pixel_values is not None:
            pixel_values = self.pixel_values[self._pixel_index(images).to(self.pixel_values.device)]
        extra = {
            k: per_row(v) if k in ROW_INPUTS else per_image(v)
            for k, v in self.extra.items()
            if k in ROW_INPUTS or images
        }
        image_rows = torch.tensor([n for n, i in enumerate(picked) if i in image_of], dtype=torch.long)
        return Batch(
            per_row(self.input_ids),
            per_row(self.attention_mask),
            per_row(self.labels),
            pixel_values,
            per_row(self.answer_start),
            per_row(self.answer_len),
            extra,
            image_rows.to(self.image_rows.device),
        )

    def repeat(self, k: int) -> "Batch":
        """Each item ``k`` times in a row (a one-item batch: ``k`` copies of it, e.g. LAR's ``K`` variants)."""
        if k < 1:
            raise ValueError(f"Batch.repeat: k = {k}; give k >= 1")
        return self.rows([i for i in range(len(self)) for _ in range(k)])

    def _pixel_index(self, images: list[int]) -> torch.Tensor:
        """The entries of ``pixel_values`` that hold ``images``: one per image, or, where the image processor
        flattens all images' patches into one sequence (Qwen2-VL), each image's ``t * h * w`` patches."""
        n = len(self.image_rows)
        grid = self.extra.get("image_grid_thw")
        sizes = grid.prod(-1).tolist() if grid is not None else [1] * n
        if len(sizes) != n or sum(sizes) != self.pixel_values.shape[0]:
            raise ValueError(
                f"Batch.rows: pixel_values has {self.pixel_values.shape[0]} entries, which do not split over the "
                f"batch's {n} images; build the batch with PromptEncoder.batch"
            )
        ends = torch.tensor(sizes).cumsum(0).tolist()
        return torch.cat([torch.arange(ends[j] - sizes[j], ends[j]) for j in images])


class PromptEncoder:
    """Turns items into :class:`Batch` es with a processor, caching prompt and answer token ids.

    ``device``: where batches are put (the model's device; None keeps them on the CPU)."""

    def __init__(self, processor: ProcessorMixin, device: torch.device | str | None = None):
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.device = device
        self.chat_template = getattr(processor, "chat_template", None)
        image_processor = processor.image_processor
        # LLaVA-1.5's image processor makes only pixel_values: the image token count is fixed and a
        # pre-processed pixel tensor can stand in for an image. Elsewhere it depends on the image size.
        self.fixed_image_tokens = list(image_processor.model_input_names) == ["pixel_values"]
        crop = getattr(image_processor, "crop_size", None)
        self.default_image_size = (crop["width"], crop["height"]) if crop else None
        self.prompt_ids = lru_cache(maxsize=None)(self._prompt_ids)
        self.answer_ids = lru_cache(maxsize=None)(self._answer_ids)

    def prompt_text(self, question: str, with_image: bool) -> str:
        """The prompt before the answer: the processor's chat template if it has one, else LLaVA-1.5's."""
        if self.chat_template is None:
            return build_prompt(question, with_image, self.processor.image_token)
        content = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": question}]
        return self.processor.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
        )

    def _tokenize(self, text: str, image: Image.Image | None = None) -> torch.Tensor:
        """Token ids ``(L,)`` of ``text`` (image placeholders expanded for ``image``); a template that
        already starts with the BOS token gets no second one."""
        bos = self.tokenizer.bos_token
        special = {"add_special_tokens": False} if bos and text.startswith(bos) else {}
        if image is None:
            return self.tokenizer(text, return_tensors="pt", **special).input_ids[0]
        return self.processor(text=text, images=image, return_tensors="pt", **special).input_ids[0]

    def _prompt_ids(
        self, question: str, with_image: bool, image_size: tuple[int, int] | None = None
    ) -> tuple[int, ...]:
        """Prompt token ids; ``image_size`` (width, height) sets the number of image tokens where it
        depends on it (default: the image processor's crop size)."""
        prompt = self.prompt_text(question, with_image)
        if with_image:
            size = image_size or self.default_image_size
            if size is None:
                raise ValueError(
                    f"question {question!r}: give the image size; {type(self.processor).__name__} has no fixed image "
                    "size"
                )
            ids = self._tokenize(prompt, Image.new("RGB", size))
        else:
            ids = self._tokenize(prompt)
        unk = self.tokenizer.unk_token_id
        if unk is not None and (ids == unk).any():
            words = [w for w in question.split() if self.tokenizer.convert_tokens_to_ids(w.lower()) == unk]
            raise ValueError(f"question {question!r} has words outside the tokenizer's vocabulary: {words}")
        return tuple(ids.tolist())

    def _answer_ids(self, answer: str) -> tuple[int, ...]:
        """The answer's token ids as they follow the prompt: the prompt and the answer are tokenised
        together (so spaces and merges come out as in generation) and the prompt's ids are cut off. A
        space separates them unless the prompt ends with whitespace (chat templates end with a newline)."""
        context = self.prompt_text("", False)
        separator = "" if context[-1:].isspace() else " "
        before = self._tokenize(context).tolist()
        full = self._tokenize(context + separator + answer.strip()).tolist()
        if full[: len(before)] != before:
            raise ValueError(
                f"answer {answer!r} merges with the end of the prompt when tokenised; check the chat template"
            )
        ids = full[len(before) :]
        if not ids:
            raise ValueError(f"answer {answer!r} tokenises to nothing: give a non-empty target")
        if self.tokenizer.unk_token_id in ids:
            raise ValueError(f"answer {answer!r} has words outside the tokenizer's vocabulary")
        return tuple(ids)

    def image_inputs(self, images: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
        """What the image processor makes of ``images``: ``pixel_values`` and, depending on the
        architecture, ``image_sizes`` / ``image_grid_thw`` / ``batch_num_images``."""
        return dict(self.processor.image_processor(list(images), return_tensors="pt"))

    def pixel_values(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Processed images, (N, 3, H, W)."""
        return self.image_inputs(images)["pixel_values"]

    def batch(self, items: Sequence[Item]) -> Batch:
        """Encode ``items`` into one right-padded :class:`Batch`."""
        rows, starts, lengths, pil, tensors, order = [], [], [], [], [], []
        for k, (question, answer, image) in enumerate(items):
            if isinstance(image, Image.Image):
                order.append(("pil", len(pil)))
                pil.append(image)
            elif isinstance(image, torch.Tensor) and image.dim() == 3:
                if not self.fixed_image_tokens:
                    raise ValueError(
                        f"item {k} ({question!r}): a pre-processed pixel tensor cannot stand in for an image with "
                        f"{type(self.processor).__name__} (its image token count depends on the image size): "
                        "pass a PIL image"
                    )
                order.append(("tensor", len(tensors)))
                tensors.append(image)
            elif image is not None:
                raise ValueError(
                    f"item {k} ({question!r}): image is a {type(image).__name__}, expected a PIL image, a (3, H, W) "
                    "pixel tensor or None"
                )
            size = image.size if isinstance(image, Image.Image) and not self.fixed_image_tokens else None
            prompt = self.prompt_ids(question, image is not None, size)
            answer_ids = self.answer_ids(answer)
            rows.append(list(prompt) + list(answer_ids) + [self.tokenizer.eos_token_id])
            starts.append(len(prompt))
            lengths.append(len(answer_ids))
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        for i, (row, start) in enumerate(zip(rows, starts)):
            input_ids[i, : len(row)] = torch.tensor(row)
            attention[i, : len(row)] = 1
            labels[i, start : len(row)] = input_ids[i, start : len(row)]
        pixel_values, extra = None, {}
        if order:
            processed = self.image_inputs(pil) if pil else {}
            if tensors:
                pixel_values = torch.stack(
                    [processed["pixel_values"][j] if kind == "pil" else tensors[j] for kind, j in order]
                )
            else:
                pixel_values = processed.pop("pixel_values")
                extra = processed
        if getattr(self.processor, "return_mm_token_type_ids", False):
            extra["mm_token_type_ids"] = (input_ids == self.processor.image_token_id).long()
        image_rows = torch.tensor([k for k, (_, _, image) in enumerate(items) if image is not None], dtype=torch.long)
        batch = Batch(
            input_ids, attention, labels, pixel_values, torch.tensor(starts), torch.tensor(lengths), extra, image_rows
        )
        return batch if self.device is None else batch.to(self.device)


def answer_logits(logits: torch.Tensor, batch: Batch) -> list[torch.Tensor]:
    """Per item, the logits that predict each answer token: a list of (answer_len, V)."""
    return [
        logits[i, s - 1 : s - 1 + n]
        for i, (s, n) in enumerate(zip(batch.answer_start.tolist(), batch.answer_len.tolist()))
    ]


def answer_positions(states: torch.Tensor, batch: Batch) -> torch.Tensor:
    """``states`` (B, L, d) at each item's answer-predicting position (the last prompt token): (B, d)."""
    return states[torch.arange(len(batch)), batch.answer_start - 1]


def answer_targets(batch: Batch) -> list[torch.Tensor]:
    """Per item, the answer token ids: a list of (answer_len,)."""
    return [
        batch.input_ids[i, s : s + n]
        for i, (s, n) in enumerate(zip(batch.answer_start.tolist(), batch.answer_len.tolist()))
    ]


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
