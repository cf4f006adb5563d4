"""Half precision: every editor edits a tiny LLaVA and Qwen2-VL in float32, bfloat16 and float16 with exact
rollback; the float32 path computes what it computed before half precision was supported, up to the float
rounding that differs between CPUs."""

import pytest
import torch

from asam_lib.editors import methods
from asam_lib.editors.asam import ASAM
from asam_lib.editors.editing import FTL, EditConfig
from asam_lib.editors.lar import LARConfig
from asam_lib.editors.lora import LoRA
from asam_lib.editors.patch import Patch, selective_key
from asam_lib.mllm.precision import adam, at_least_float32
from asam_lib.mllm.prompting import PromptEncoder

from helpers import changed_weights, make_request, weights
from tiny_models import build

DTYPES = (torch.float32, torch.bfloat16, torch.float16)
ARCHITECTURES = ("LlavaForConditionalGeneration", "Qwen2VLForConditionalGeneration")
CONFIG = EditConfig(layer=1, steps=3, lr=0.05, stop_loss=0.0)


@pytest.fixture(scope="module")
def models(small_world):
    """(architecture, dtype) -> the tiny model in that dtype with its encoder, built on first use."""
    cache = {}

    def get(name, dtype):
        if (name, dtype) not in cache:
            tiny = build(name, small_world.all_words())
            cache[name, dtype] = tiny.model.to(dtype), PromptEncoder(tiny.processor)
        return cache[name, dtype]

    return get


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("method", methods.names())
def test_every_editor_edits_in_the_models_dtype_and_rolls_back_exactly(
    method, dtype, architecture, models, small_world
):
    model, encoder = models(architecture, dtype)
    request = make_request(small_world)
    before = weights(model)
    batch = encoder.batch([request.anchor_item])
    with torch.no_grad():
        logits_before = model(**batch.model_inputs()).logits
    handle = methods.method(method).editor(CONFIG).edit(model, encoder, request)
    with torch.no_grad():
        assert not torch.equal(model(**batch.model_inputs()).logits, logits_before)
    assert {v.dtype for v in model.state_dict().values() if v.is_floating_point()} == {dtype}
    assert handle.steps == CONFIG.steps
    assert handle.losses[-1]["edit"] < handle.losses[0]["edit"]
    handle.restore()
    assert not changed_weights(model, before)


def test_sequential_half_precision_edits_roll_back_exactly(models, small_world):
    model, encoder = models("LlavaForConditionalGeneration", torch.bfloat16)
    before = weights(model)
    editor = methods.method("ASAM").editor(CONFIG)
    first = editor.edit(model, encoder, make_request(small_world, name="first"))
    second = editor.edit(
        model, encoder, make_request(small_world, target=small_world.entities[2].facts["home"], name="second")
    )
    second.restore()
    first.restore()
    assert not changed_weights(model, before)


# What one float32 edit of the tiny embedded model changes: (entries changed, their L1 norm, L2 norm, projection on
# a seeded random direction), over every tensor of the edited state (new tensors, as a patch's, count whole).
# Recorded on a Xeon with AVX-512. The bits of an edit differ between CPUs (MKL and oneDNN pick their kernels by
# instruction set): with AVX2 kernels forced, or none at all, the three statistics moved by at most 6e-6 relative,
# so a change beyond 1e-4 is a change of the numerics (a step, a rate, a loss term), and with it of the figures.
FLOAT32_FINGERPRINTS = {
    "FT-L": (2048, 337.20167270567254, 7.762222670390923, 4.498024173977064),
    "LoRA": (6144, 318.4827299538156, 5.409571256260413, 2.382739711787754),
    "Patch": (6404, 161.59032754979853, 5.8381140812707155, 8.263077208579595),
    "ASAM": (6404, 161.76725782344874, 5.845670428157918, 7.9052736837825375),
    "ASAM-FTL": (2048, 336.11265779944006, 7.714831795078305, 0.5439299138936979),
}
RELATIVE_TOLERANCE = 1e-4
PINNED = EditConfig(layer=1, steps=4, lr=0.05, stop_loss=0.0)
PINNED_LAR = LARConfig(k=3, steps=2, refresh=2)
PINNED_EDITORS = {
    "FT-L": lambda: FTL(PINNED),
    "LoRA": lambda: LoRA(PINNED),
    "Patch": lambda: Patch(PINNED),
    "ASAM": lambda: ASAM(Patch(PINNED), PINNED_LAR),
    "ASAM-FTL": lambda: ASAM(FTL(PINNED), PINNED_LAR),
}


def edit_fingerprint(before: dict, after: dict) -> tuple[int, float, float, float]:
    """(entries changed, L1, L2, projection on a seeded random direction) of ``after`` minus ``before`` (a tensor
    that ``before`` lacks counts whole), in float64."""
    delta = torch.cat(
        [(after[k].double() - (before[k].double() if k in before else 0)).flatten() for k in sorted(after)]
    )
    direction = torch.randn(delta.numel(), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return int((delta != 0).sum()), delta.abs().sum().item(), delta.norm().item(), (delta @ direction).item()


@pytest.mark.parametrize("name", PINNED_EDITORS)
def test_float32_edits_match_the_recorded_ones_up_to_float_rounding(name, small_world, tiny_parts, tiny_encoder):
    model, _ = tiny_parts
    before = weights(model)
    handle = PINNED_EDITORS[name]().edit(model, tiny_encoder, make_request(small_world), seed=1)
    try:
        changed, *norms = edit_fingerprint(before, model.state_dict())
    finally:
        handle.restore()
    recorded_changed, *recorded = FLOAT32_FINGERPRINTS[name]
    assert changed == recorded_changed
    assert norms == pytest.approx(recorded, rel=RELATIVE_TOLERANCE, abs=0), (
        f"{name}: the float32 edit changed beyond float rounding"
    )


def test_float32_and_float64_tensors_pass_through_unchanged():
    for dtype in (torch.float32, torch.float64):
        t = torch.ones(2, dtype=dtype)
        assert at_least_float32(t) is t
    assert at_least_float32(torch.ones(2, dtype=torch.bfloat16)).dtype == torch.float32


def test_adam_is_plain_adam_for_float32_and_keeps_float16_updates_finite():
    weight = torch.nn.Parameter(torch.ones(3))
    assert (
        type(adam([weight], lr=0.1)) is torch.optim.Adam
        and adam([weight], lr=0.1).param_groups[0]["params"][0] is weight
    )
    half = torch.nn.Parameter(torch.ones(3, dtype=torch.float16))
    optimiser = adam([{"params": [half], "lr": 0.1}], lr=0.5)
    half.grad = torch.full(
        (3,), 1e-4, dtype=torch.float16
    )  # its square underflows in float16, and Adam's eps is 0 there
    optimiser.step()
    assert half.dtype == torch.float16 and half.grad is None
    assert torch.allclose(half.float(), torch.full((3,), 0.9), atol=1e-3)


def test_the_selective_key_of_half_precision_states_matches_float32():
    generator = torch.Generator().manual_seed(0)
    edit_x, memory_x = torch.randn(16, generator=generator), torch.randn(8, 16, generator=generator)
    key, bias = selective_key(edit_x, memory_x, 1.0, 0.5, 0.1)
    half_key, half_bias = selective_key(edit_x.bfloat16(), memory_x.bfloat16(), 1.0, 0.5, 0.1)
    assert half_key.dtype == half_bias.dtype == torch.bfloat16
    assert torch.allclose(half_key.float() @ edit_x + half_bias.float(), key @ edit_x + bias, atol=0.05)
