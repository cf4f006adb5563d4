"""ASAM's calibrated thresholds (ASAMSettings.calibrate_bias, this companion's addition) and where patches fire."""

from dataclasses import replace

import pytest
import torch

from asam_lib.editors.asam import ASAM, ASAMSettings
from asam_lib.editors.editing import FTL, EditConfig
from asam_lib.editors.lar import LARConfig
from asam_lib.editors.patch import Patch, PatchedMLP, PatchSettings, calibrate_patch, patch_firing, stacked_patches
from asam_lib.evaluation.harness import editor_config

from helpers import changed_weights, make_request, weights

CONFIG = EditConfig(layer=1, steps=6, lr=0.05, stop_loss=0.0)
LAR = LARConfig(k=3, steps=2, refresh=2)
CALIBRATED = ASAMSettings(calibrate_bias=True)
WIDE = PatchSettings(threshold=0.05, lambda_mem=0.0)  # neurons that start firing close to the memory centre


def _patch(n=3, d=8, seed=0) -> PatchedMLP:
    torch.manual_seed(seed)
    patch = PatchedMLP(torch.nn.Identity(), torch.randn(n, d), torch.zeros(n), noise=0.0)
    with torch.no_grad():
        patch.value.copy_(torch.randn(d, n))
    return patch


def test_calibration_silences_the_memory_and_keeps_the_edit_inputs_output():
    patch = _patch()
    edit = (patch.key.detach().sum(0) / 2)[None, None]  # (1, 1, d): every neuron fires on it
    memory = torch.cat([torch.randn(64, 8) * 0.5, edit[0] * 0.6])  # one memory state close to the edit input
    assert (patch.neuron_activations(memory) > 0).any(), "the start fires on the memory"
    before = patch(edit[0]).detach()
    shifts = calibrate_patch(patch, edit, memory, margin=0.5)
    assert (shifts >= 0).all() and (shifts > 0).any()
    assert torch.allclose(patch(edit[0]), before, atol=1e-5), "the output on the edit input is unchanged"
    assert (patch.neuron_activations(memory) == 0).all(), "silent on every memory state"
    z_memory = (memory @ patch.key.T + patch.bias).amax(0)
    z_edit = edit[0, 0] @ patch.key.T + patch.bias
    assert (z_memory < 0).all() and (z_edit > 0).all(), "with a margin on both sides"


def test_calibration_covers_the_variants_and_never_widens():
    patch = _patch(seed=1)
    edit = (patch.key.detach().sum(0) / 2)[None]
    variants = edit + 0.1 * torch.randn(4, 8)
    cover = torch.cat([edit, variants])[:, None]  # (5, 1, d)
    far = -5 * edit  # a memory far on the silent side: nothing to move
    bias = patch.bias.detach().clone()
    calibrate_patch(patch, cover, far, margin=0.5)
    assert torch.equal(patch.bias, bias), "a threshold is never lowered"
    calibrate_patch(patch, cover, torch.cat([far, 0.3 * edit]), margin=0.5)
    fires = patch.neuron_activations(cover[:, 0]) > 0
    assert fires[0].all() and fires[1:][:, patch.bias < bias].all(), "still fires on the edit input and variants"


def test_calibrate_bias_is_off_by_default_and_leaves_the_default_hash_alone():
    import pandas as pd

    from asam_lib.common import paths

    assert not ASAMSettings().calibrate_bias
    committed = pd.read_csv(paths.RESULTS / "04_per_edit.csv", usecols=["method", "config"])
    assert editor_config(ASAM()) in set(committed[committed.method == "ASAM"].config), "the committed tables' ASAM"
    assert editor_config(ASAM(settings=CALIBRATED)) != editor_config(ASAM())
    with pytest.raises(ValueError, match="Patch base"):
        ASAM(FTL(CONFIG), settings=CALIBRATED)
    with pytest.raises(ValueError, match="calibration_margin"):
        ASAMSettings(calibrate_bias=True, calibration_margin=1.5)


def _memory(world):
    """Items the patch must stay silent on: other entities' images and text questions."""
    question = world.phrasings("home", heldout=False)[0].render()
    images = [
        (question, world.entities[i].facts["home"], world.image(i, "support", j)) for i in (1, 2, 3) for j in (0, 1)
    ]
    texts = [
        (world.phrasings(rel, heldout=False, text=True)[0].render(f"the {t.name}"), t.facts[rel], None)
        for t in world.text_entities
        for rel in ("food", "home")
    ]
    return images + texts


def test_a_calibrated_asam_edit_fires_on_its_input_and_not_on_the_memory(small_world, tiny_parts, tiny_encoder):
    model, _ = tiny_parts
    before = weights(model)
    memory = _memory(small_world)
    request = replace(make_request(small_world), memory=memory)
    firing = {}
    for name, settings in {"default": ASAMSettings(), "calibrated": CALIBRATED}.items():
        handle = ASAM(Patch(CONFIG, WIDE), LAR, settings=settings).edit(model, tiny_encoder, request)
        assert len(stacked_patches(model, CONFIG.layer)) == 1
        firing[name] = patch_firing(model, tiny_encoder, [request.anchor_item, *memory], CONFIG.layer)[:, 0]
        handle.restore()
    assert not changed_weights(model, before), "rollback is exact with the option too"
    assert firing["default"][1:].max() > 0, "without the option the patch fires on memory states"
    assert firing["calibrated"][0] > 0 and torch.allclose(firing["calibrated"][0], firing["default"][0], rtol=0.5)
    assert firing["calibrated"][1:].max() == 0, "with it, on none of them"


def test_patch_firing_reports_each_patch_of_a_sequence_in_edit_order(small_world, tiny_parts, tiny_encoder):
    model, _ = tiny_parts
    first, second = (
        make_request(small_world, name="first"),
        make_request(
            small_world,
            target=small_world.entities[2].facts["home"],
            image=small_world.image(2, "eval", 0),
            name="second",
        ),
    )
    items = [first.anchor_item, second.anchor_item, *_memory(small_world)]
    assert patch_firing(model, tiny_encoder, items, CONFIG.layer).shape == (len(items), 0)
    handles = [Patch(CONFIG).edit(model, tiny_encoder, r) for r in (first, second)]
    patches = stacked_patches(model, CONFIG.layer)
    assert len(patches) == 2 and patches[1].mlp is patches[0], "the first edit's patch first"
    answer = patch_firing(model, tiny_encoder, items, CONFIG.layer)
    everywhere = patch_firing(model, tiny_encoder, items, CONFIG.layer, positions="all")
    assert answer.shape == (len(items), 2) and (everywhere >= answer).all()
    assert answer[0, 0] > 0 and answer[1, 1] > 0, "each patch fires on its own edit input"
    with pytest.raises(ValueError, match="positions"):
        patch_firing(model, tiny_encoder, items, CONFIG.layer, positions="prompt")
    for handle in reversed(handles):
        handle.restore()


def test_stacked_patches_run_as_one_layer_with_the_nested_sum():
    torch.manual_seed(0)
    ffn = torch.nn.Linear(8, 8)
    stack = ffn
    for _ in range(3):
        stack = PatchedMLP(stack, torch.randn(2, 8), torch.randn(2), noise=0.0)
        with torch.no_grad():
            stack.value.normal_()
    patches, base = stack.chain()
    assert base is ffn and patches[-1] is stack and [p.mlp for p in patches[1:]] == patches[:-1]
    x = torch.randn(5, 8)
    nested = ffn(x) + sum(p.neuron_activations(x) @ p.value.T for p in patches)
    torch.testing.assert_close(stack(x), nested)
    for p in patches[:-1]:
        p.requires_grad_(False)
    stack(x).sum().backward()
    assert stack.value.grad is not None and all(p.value.grad is None for p in patches[:-1])
