"""EasyEdit's multimodal front door over this library's editors, so a script written for EasyEdit runs ASAM.

A script written against EasyEdit's ``MultimodalEditor`` works unchanged but for the import::

    from asam_lib.frontends.easyedit import MultimodalEditor
    editor = MultimodalEditor.from_hparams("hparams/ASAM/llava-1.5-7b.yaml")   # or (hparams, model=(model, processor))
    metrics, edited_model, _ = editor.edit(
        prompts=[...], targets=[...], image=[...], rephrase_prompts=[...], rephrase_image=[...],
        locality_inputs={"text": {"prompt": [...], "ground_truth": [...]},
                         "vision": {"prompt": [...], "ground_truth": [...], "image": [...]}},
        keep_original_weight=True)
    mean(m["post"]["rewrite_acc"].item() for m in metrics)                      # EasyEdit's print_result

Arguments keep EasyEdit's names and meaning (``easyeditor/editors/multimodal_editor.py``): one request per
prompt; ``image`` / ``rephrase_image`` / ``locality_inputs["vision"]["image"]`` are image paths (relative to
``image_root``) or PIL images; ``sequential_edit=False`` edits each request from the unedited model and puts
the weights back after it (EasyEdit's ``restore_after_edit``); ``sequential_edit=True`` lets the edits add up,
the *pre* numbers and the locality reference all taken from the unedited model before the first edit (EasyEdit
#643), each request's *post* measured right after its own edit as EasyEdit does, and, beside it,
``post_after_all_edits`` measured once every edit is in (the definition in EasyEdit's README, and VLKEB's).
``keep_original_weight=True`` hands the model back unedited; otherwise sequential edits stay in it and the
third value returned undoes them (call it, as EasyEdit's ``restore_after_edit`` calls a callable
``weights_copy``).

What the editor keeps unchanged while editing (its locality support: the KL term, and the inputs a patch must
stay silent on) is this library's, not EasyEdit's: by default each request gets the locality inputs of the
*other* requests, never its own, which measure it (``locality_support=`` gives them instead). Patch and ASAM
cannot edit without any, and say so.

Each request gives one dict in EasyEdit's shape: ``case_id``, ``time`` (seconds of the edit), ``pre`` and
``post`` with ``rewrite_acc``, ``rephrase_acc``, ``image_rephrase_acc`` (pre and post) and ``locality_acc``,
``multimodal_locality_acc`` (post only), each a ``numpy.float64`` (a float with EasyEdit's ``.item()``), and
``metric_meta``: the protocol of every number (EasyEdit's own tagging). Where this library measures
differently, both numbers are kept (``docs/easyedit.md`` lists every difference):

- ``*_acc`` of rewrite / rephrase / image_rephrase: teacher-forced token accuracy of the target (EasyEdit's
  ``masked_label_token_accuracy``); ``*_exact_acc``: all target tokens (EasyEdit's ``exact_match=True``);
  ``*_generation_acc``: the generated answer equals the target (:mod:`asam_lib.mllm.generation`).
- ``locality_acc`` / ``multimodal_locality_acc``: EasyEdit's top-1 / top-10 token agreement of the edited and
  unedited model at every position of prompt and answer; ``*_answer_span_acc``: the share of answer positions
  whose argmax is unchanged (this library's locality, which prompt and image positions do not dilute).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
from PIL import Image

from asam_lib.common.progress import tqdm
from asam_lib.data.units import KnowledgeUnit, Member
from asam_lib.editors.editing import EditHandle, EditRequest
from asam_lib.editors.hparams import HParams, configured_editor, load_hparams
from asam_lib.editors.patch import Patch
from asam_lib.evaluation.metrics import evaluate_edit, locality_reference
from asam_lib.mllm.generation import PROTOCOL as GENERATION
from asam_lib.mllm.generation import generation_scores
from asam_lib.mllm.model import load_pretrained
from asam_lib.mllm.prompting import Item, PromptEncoder

LOG = logging.getLogger(__name__)

# EasyEdit's result sections -> this library's metric of the same inputs
GENERALITY_SECTIONS = {"rewrite": "Rel", "rephrase": "T-Gen", "image_rephrase": "I-Gen"}
LOCALITY_SECTIONS = {"locality": "T-Loc", "multimodal_locality": "I-Loc"}
EASYEDIT_META_SECTION = {"locality": "locality.text", "multimodal_locality": "locality.image"}
TOP_K = {"locality": 1, "multimodal_locality": 10}
# this library's protocol -> (EasyEdit-style protocol name, scorer) of a result key
SCORERS = {
    "token_acc": ("teacher_forcing", "target_token_accuracy"),
    "exact": ("teacher_forcing", "sequence_exact_match"),
    GENERATION: ("greedy_generation", "generated_exact_match"),
    "answer_span": ("pre_post_answer_span_top1_match", "answer_span_top1_match"),
}
SUFFIX = {"token_acc": "_acc", "exact": "_exact_acc", GENERATION: "_generation_acc"}


class EasyEditInputError(ValueError):
    """An argument of :meth:`MultimodalEditor.edit` that cannot be used; the message names it and the fix."""


@dataclass
class MultimodalRequest:
    """One request of :meth:`MultimodalEditor.edit`: the edit input and target, the generality inputs it has
    and its locality items (text first, then image)."""

    prompt: str
    target: str
    image: Image.Image = field(repr=False)
    rephrase_prompt: str | None = None
    image_rephrase: Image.Image | None = field(default=None, repr=False)
    locality: list[Item] = field(default_factory=list, repr=False)

    def unit(self) -> KnowledgeUnit:
        """The request's members as a knowledge unit: anchor, rephrased question, rephrased image."""
        members = [Member(self.prompt, self.image, "anchor", "support", 0.0, 0.0)]
        if self.rephrase_prompt is not None:
            members.append(Member(self.rephrase_prompt, self.image, "text", "eval", 1.0, 0.0))
        if self.image_rephrase is not None:
            members.append(Member(self.prompt, self.image_rephrase, "image", "eval", 0.0, 1.0))
        return KnowledgeUnit(self.prompt, "", self.target, members)

    def generality_items(self) -> dict[str, Item]:
        """EasyEdit section -> the item it is scored on, for the sections this request has."""
        items = {"rewrite": (self.prompt, self.target, self.image)}
        if self.rephrase_prompt is not None:
            items["rephrase"] = (self.rephrase_prompt, self.target, self.image)
        if self.image_rephrase is not None:
            items["image_rephrase"] = (self.prompt, self.target, self.image_rephrase)
        return items


def _listed(value: object, name: str, n: int) -> list:
    """EasyEdit's ``str or list``: ``value`` as a list of ``n`` entries."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(values) != n:
        raise EasyEditInputError(f"{name} has {len(values)} entries for {n} prompts: give one per prompt")
    return values


def _image(value: object, name: str, root: Path) -> Image.Image:
    """A PIL image, or the RGB image at ``root / value``."""
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if not isinstance(value, (str, Path)):
        raise EasyEditInputError(f"{name} is a {type(value).__name__}: give an image path or a PIL image")
    path = root / value
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise EasyEditInputError(f"{name}: {value} -> {path} not found (set image_root=...)") from None
    except OSError as err:
        raise EasyEditInputError(f"{name}: {path} is not a readable image ({err})") from None


def prepare_requests(
    prompts: str | Sequence[str],
    targets: str | Sequence[str],
    image: object,
    rephrase_prompts: str | Sequence[str] | None = None,
    rephrase_image: object = None,
    locality_inputs: Mapping | None = None,
    image_root: str | Path = ".",
) -> list[MultimodalRequest]:
    """EasyEdit's ``_prepare_requests``: one :class:`MultimodalRequest` per prompt, every argument checked."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    n, root = len(prompts), Path(image_root)
    if n == 0:
        raise EasyEditInputError("prompts is empty: give at least one prompt to edit")
    targets = _listed(targets, "targets", n)
    images = [_image(v, f"image[{i}]", root) for i, v in enumerate(_listed(image, "image", n))]
    rephrases = _listed(rephrase_prompts, "rephrase_prompts", n) if rephrase_prompts is not None else [None] * n
    others = (
        [_image(v, f"rephrase_image[{i}]", root) for i, v in enumerate(_listed(rephrase_image, "rephrase_image", n))]
        if rephrase_image is not None
        else [None] * n
    )
    locality: list[list[Item]] = [[] for _ in range(n)]
    inputs = dict(locality_inputs or {})
    unknown = set(inputs) - {"text", "vision"}
    if unknown:
        raise EasyEditInputError(f"locality_inputs has keys {sorted(unknown)}: use 'text' and/or 'vision'")
    for kind in ("text", "vision"):
        if kind not in inputs:
            continue
        fields_needed = ("prompt", "ground_truth", "image") if kind == "vision" else ("prompt", "ground_truth")
        missing = [f for f in fields_needed if f not in inputs[kind]]
        if missing:
            raise EasyEditInputError(f"locality_inputs['{kind}'] lacks {missing}: give {list(fields_needed)}")
        questions = _listed(inputs[kind]["prompt"], f"locality_inputs['{kind}']['prompt']", n)
        answers = _listed(inputs[kind]["ground_truth"], f"locality_inputs['{kind}']['ground_truth']", n)
        pictures = (
            [
                _image(v, f"locality_inputs['vision']['image'][{i}]", root)
                for i, v in enumerate(_listed(inputs[kind]["image"], "locality_inputs['vision']['image']", n))
            ]
            if kind == "vision"
            else [None] * n
        )
        for i, item in enumerate(zip(questions, answers, pictures)):
            locality[i].append(item)
    for i, (prompt, target) in enumerate(zip(prompts, targets)):
        if not (isinstance(prompt, str) and prompt.strip() and isinstance(target, str) and target.strip()):
            raise EasyEditInputError(f"request {i}: prompt {prompt!r} and target {target!r} must be non-empty strings")
    return [
        MultimodalRequest(p, t, img, r, other, loc)
        for p, t, img, r, other, loc in zip(prompts, targets, images, rephrases, others, locality)
    ]


def _meta(result_key: str, protocol: str, scorer: str, note: str) -> dict[str, str]:
    """A ``metric_meta`` entry in EasyEdit's layout, with this library's ``note`` on how it is measured."""
    return {
        "result_key": result_key,
        "protocol": protocol,
        "scorer": scorer,
        "comparable_group": f"asam_lib.{protocol}.{scorer}",
        "note": note,
    }


NOTES = {
    "token_acc": "teacher forcing, share of target tokens that are the argmax (EasyEdit's scorer); the target "
    "follows the prompt as it would in generation",
    "exact": "teacher forcing, every target token is the argmax (EasyEdit's exact_match=True)",
    GENERATION: "greedy decoding until the end token; the answer equals the target (case and final full stop ignored)",
    "easyedit_topk": "edited vs unedited model, top-k token ids agree at every position of prompt and answer "
    "(EasyEdit's, with the end token of the answer included)",
    "answer_span": "edited vs unedited model, argmax unchanged at the answer positions",
}


def section_results(rows: list[dict], generated: Mapping[str, float], with_locality: bool) -> dict:
    """One ``pre`` / ``post`` dict in EasyEdit's shape from :func:`asam_lib.evaluation.metrics.evaluate_edit`'s
    ``rows`` and the ``generation_exact`` score per section."""
    value = {(r["metric"], r["protocol"]): r["value"] for r in rows}
    out: dict[str, object] = {}
    meta: dict[str, dict] = {}
    for section, metric in GENERALITY_SECTIONS.items():
        if section not in generated:
            continue  # EasyEdit leaves out a section the request has no inputs for
        scores = {"token_acc": value[(metric, "token_acc")], "exact": value[(metric, "exact")]}
        scores[GENERATION] = generated[section]
        for protocol, score in scores.items():
            key = section + SUFFIX[protocol]
            out[key] = np.float64(score)
            meta[section if protocol == "token_acc" else key.removesuffix("_acc")] = _meta(
                key, *SCORERS[protocol], NOTES[protocol]
            )
    if with_locality:
        for section, metric in LOCALITY_SECTIONS.items():
            if np.isnan(value[(metric, "easyedit_topk")]):
                continue
            k = TOP_K[section]
            out[f"{section}_acc"] = np.float64(value[(metric, "easyedit_topk")])
            meta[EASYEDIT_META_SECTION[section]] = _meta(
                f"{section}_acc", f"pre_post_top{k}_token_match", f"top{k}_token_match", NOTES["easyedit_topk"]
            )
            key = f"{section}_answer_span_acc"
            out[key] = np.float64(value[(metric, "answer_span")])
            meta[key.removesuffix("_acc")] = _meta(key, *SCORERS["answer_span"], NOTES["answer_span"])
    out["metric_meta"] = meta
    return out


def support_items(requests: Sequence[MultimodalRequest], index: int, given: Sequence[Item] = ()) -> list[Item]:
    """The locality support of request ``index``: ``given`` if any, else the locality items of the other
    requests, leaving out any that equal one of its own (those measure its locality)."""
    own = {(q, a) for q, a, _ in requests[index].locality}
    candidates = list(given) or [item for j, r in enumerate(requests) if j != index for item in r.locality]
    return [item for item in candidates if (item[0], item[1]) not in own]


def needs_support(editor) -> bool:
    """Whether ``editor`` trains a patch (Patch, or ASAM on Patch), which has nothing to stay silent on without
    locality support or memory items, and so cannot make an edit."""
    return isinstance(getattr(editor, "base", editor), Patch)


class MultimodalEditor:
    """EasyEdit's ``MultimodalEditor`` (see the module docstring): built from a hyper-parameter file, it edits
    ``model`` with the file's method through :meth:`edit`."""

    def __init__(self, hparams: HParams | str | Path, model=None, image_root: str | Path = ".", seed: int = 0):
        """``model``: ``(model, processor)`` (EasyEdit's ``model_name`` given as a tuple); None loads the checkpoint
        folder ``hparams.model_name`` (:func:`asam_lib.mllm.model.load_pretrained`). ``image_root``: the folder image
        paths are relative to; ``seed``: every edit's random streams."""
        self.hparams = hparams if isinstance(hparams, HParams) else load_hparams(hparams)
        self.alg_name = self.hparams.alg_name
        self.editor = configured_editor(self.hparams)
        if model is None:
            model = load_pretrained(self.hparams.model_name, device_map=self.hparams.device)
        self.model, self.processor = model
        self.encoder = PromptEncoder(self.processor, device=self.model.device)
        self.image_root, self.seed = Path(image_root), seed

    @classmethod
    def from_hparams(cls, hparams: HParams | str | Path, model=None, image_root: str | Path = ".", seed: int = 0):
        """EasyEdit's constructor (see :meth:`__init__`)."""
        return cls(hparams, model, image_root, seed)

    def _measure(self, request: MultimodalRequest, reference) -> dict:
        rows = evaluate_edit(self.model, self.encoder, request.unit(), reference)
        items = request.generality_items()
        scores = generation_scores(self.model, self.encoder, list(items.values()))
        generated = {section: s[GENERATION] for section, s in zip(items, scores)}
        return section_results(rows, generated, reference is not None)

    def _edit_one(self, request: MultimodalRequest, index: int, support: Sequence[Item]) -> EditHandle:
        edit = EditRequest(request.prompt, request.target, request.image, list(support), name=f"case-{index}")
        return self.editor.edit(self.model, self.encoder, edit, seed=self.seed)

    def edit(
        self,
        prompts: str | Sequence[str],
        targets: str | Sequence[str],
        image: object,
        file_type: str | Sequence[str] | None = None,
        rephrase_prompts: str | Sequence[str] | None = None,
        rephrase_image: object = None,
        locality_inputs: Mapping | None = None,
        keep_original_weight: bool = False,
        verbose: bool = True,
        sequential_edit: bool = False,
        locality_support: Sequence[Item] = (),
        **kwargs,
    ) -> tuple[list[dict], object, Callable[[], None]]:
        """Edit every request and measure it before and after; return ``(metrics, model, restore)`` as EasyEdit
        does (see the module docstring). ``file_type``: EasyEdit's, only ``"image"`` here.
        ``locality_support``: this library's addition, items ``(question, answer, image)`` the editor keeps
        unchanged while editing (its KL term, and the inputs a patch must stay silent on); by default each request
        gets the locality items of the *other* requests (:func:`support_items`), never its own, which measure it."""
        if kwargs:
            raise EasyEditInputError(
                f"edit() got {sorted(kwargs)}, which this interface does not use (IKE's train_ds and WISE's "
                "loc_prompts belong to EasyEdit's methods): leave them out"
            )
        kinds = {file_type} if isinstance(file_type, str) else set(file_type or ["image"])
        if kinds != {"image"}:
            raise EasyEditInputError(f"file_type {file_type!r}: only 'image' requests are supported here")
        requests = prepare_requests(
            prompts, targets, image, rephrase_prompts, rephrase_image, locality_inputs, self.image_root
        )
        references = [
            locality_reference(self.model, self.encoder, r.locality) if r.locality else None for r in requests
        ]
        supports = [support_items(requests, i, locality_support) for i in range(len(requests))]
        if needs_support(self.editor) and not all(supports):
            raise EasyEditInputError(
                f"{self.alg_name} needs locality support items (the inputs its patch must stay silent on): pass "
                "locality_support=[(question, answer, image), ...] or several prompts with locality_inputs"
            )
        pre = [self._measure(r, None) for r in tqdm(requests, desc="pre-edit metrics", leave=False)]
        handles: list[EditHandle] = []

        def restore() -> None:
            for handle in reversed(handles):
                handle.restore()

        metrics = []
        try:
            for i, (request, reference) in enumerate(
                tqdm(list(zip(requests, references)), desc=f"{self.alg_name} edits", leave=False)
            ):
                handle = self._edit_one(request, i, supports[i])
                handles.append(handle)
                try:
                    post = self._measure(request, reference)
                finally:
                    if not sequential_edit:
                        handle.restore()
                metrics.append({"case_id": i, "time": handle.seconds, "pre": pre[i], "post": post})
                if verbose:
                    LOG.info("%d editing: %s -> %s  %s", i, request.prompt, request.target, post)
            if sequential_edit:
                for entry, request, reference in zip(metrics, requests, references):
                    entry["post_after_all_edits"] = self._measure(request, reference)
        except BaseException:
            restore()
            raise
        if keep_original_weight:
            restore()
        return metrics, self.model, restore
