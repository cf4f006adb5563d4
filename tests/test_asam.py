"""The ASAM editor: end to end on the tiny model, exact rollback, determinism, NaN guard, ablations."""

from dataclasses import replace

import pytest
import torch

import asam_lib.editors.asam as asam_module
from asam_lib.editors.asam import ASAM, ASAMSettings
from asam_lib.editors.editing import FTL, EditConfig, EditError, Editor
from asam_lib.editors.lar import LARConfig
from asam_lib.editors.patch import Patch, PatchSettings, patch_firing, stacked_patches
from asam_lib.editors.rcsl import RCSLConfig

from helpers import changed_weights, make_request, weights

CONFIG = EditConfig(layer=1, steps=4, lr=0.05, stop_loss=0.0)
LAR = LARConfig(k=3, steps=2, refresh=2)
VARIANTS = {
    "Patch base": lambda: ASAM(Patch(CONFIG), LAR),
    "FT-L base": lambda: ASAM(FTL(CONFIG), LAR),
    "no LAR": lambda: ASAM(Patch(CONFIG), LAR, settings=ASAMSettings(variants="noise")),
    "no RCSL": lambda: ASAM(Patch(CONFIG), LAR, settings=ASAMSettings(lambda_rank=0.0)),
    "no asymmetry": lambda: ASAM(Patch(CONFIG), LAR, RCSLConfig(asymmetric=False)),
    "nuclear": lambda: ASAM(Patch(CONFIG), LAR, RCSLConfig(objective="nuclear")),
    "block latents": lambda: ASAM(Patch(CONFIG), LARConfig(k=3, steps=2, refresh=2, block=0)),
    "H: what the edit adds": lambda: ASAM(Patch(CONFIG), LAR, RCSLConfig(site="edit_delta")),
    "H: Patch's neurons": lambda: ASAM(Patch(CONFIG), LAR, RCSLConfig(site="patch_keys")),
    "H: FFN hidden, FT-L on gate/up/down": lambda: ASAM(
        FTL(CONFIG, modules=("gate_proj", "up_proj", "down_proj")), LAR, RCSLConfig(site="ffn_hidden", centre=True)
    ),
    "H: row-normalised": lambda: ASAM(Patch(CONFIG), LAR, RCSLConfig(normalise=True)),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_an_asam_edit_runs_its_terms_and_restores_bit_exactly(name, small_world, tiny_parts, tiny_encoder):
    model, _ = tiny_parts
    before = weights(model)
    editor = VARIANTS[name]()
    handle = editor.edit(model, tiny_encoder, make_request(small_world))
    assert handle.steps == 4
    expected = {"edit", "adversarial", "locality"} | ({"rank"} if editor.settings.lambda_rank > 0 else set())
    assert expected <= set(handle.losses[0])
    assert changed_weights(model, before)
    handle.restore()
    assert not changed_weights(model, before)


def test_asam_is_deterministic_under_a_seed(small_world, tiny_parts, tiny_encoder):
    model, _ = tiny_parts
    runs = []
    for seed in (0, 0, 1):
        handle = VARIANTS["Patch base"]().edit(model, tiny_encoder, make_request(small_world), seed=seed)
        runs.append([row["adversarial"] for row in handle.losses])
        handle.restore()
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_sequential_asam_edits_roll_back(small_world, tiny_parts, tiny_encoder):
    model, _ = tiny_parts
    before = weights(model)
    editor = VARIANTS["Patch base"]()
    first = editor.edit(model, tiny_encoder, make_request(small_world, name="first"))
    second = editor.edit(
        model, tiny_encoder, make_request(small_world, target=small_world.entities[2].facts["home"], name="second")
    )
    second.restore()
    first.restore()
    assert not changed_weights(model, before)


def _patch_tensors(patch):
    return [t.detach().clone() for t in (patch.key, patch.bias, patch.value)]


def test_calibrating_against_earlier_edits_changes_nothing_alone_and_separates_the_patches_of_a_sequence(
    small_world, tiny_parts, tiny_encoder
):
    model, _ = tiny_parts
    before = weights(model)
    wide = PatchSettings(threshold=0.05, lambda_mem=0.0)  # neurons that fire far around their edit input
    first = make_request(small_world, name="first")
    second = make_request(
        small_world, target=small_world.entities[2].facts["home"], image=small_world.image(2, "eval", 0), name="second"
    )
    items = [first.anchor_item, second.anchor_item]
    settings = {
        "default": ASAMSettings(),
        "edits": ASAMSettings(
            calibrate_bias=True, calibrate_memory=False, calibrate_edits="input", calibration_margin=0.0
        ),
    }
    alone, firing = {}, {}
    for name, setting in settings.items():
        editor = ASAM(Patch(CONFIG, wide), LAR, settings=setting)
        handles = [editor.edit(model, tiny_encoder, first)]
        alone[name] = _patch_tensors(stacked_patches(model, CONFIG.layer)[0])
        handles.append(editor.edit(model, tiny_encoder, second))
        firing[name] = patch_firing(model, tiny_encoder, items, CONFIG.layer)  # (item, patch)
        handles.pop().restore()
        assert all(map(torch.equal, _patch_tensors(stacked_patches(model, CONFIG.layer)[0]), alone[name])), (
            "rolling back the second edit restores the first patch as the first edit left it"
        )
        handles.pop().restore()
        assert not changed_weights(model, before)
    assert all(map(torch.equal, alone["default"], alone["edits"])), "a single edit is exactly default ASAM's"
    assert firing["default"][0, 1] > 0 and firing["default"][1, 0] > 0, "by default each patch fires on the other input"
    assert firing["edits"][0, 1] < 1e-5 and firing["edits"][1, 0] < 1e-5, "calibrated against each other, neither does"
    assert firing["edits"][0, 0] > 0 and firing["edits"][1, 1] > 0, "each still fires on its own edit input"
    with pytest.raises(ValueError, match="calibrate_edits"):
        ASAMSettings(calibrate_edits="all")


@pytest.mark.parametrize("term", ["rank", "adversarial"])
def test_a_nan_in_any_term_raises_and_leaves_the_weights_alone(
    term, small_world, tiny_parts, tiny_encoder, monkeypatch
):
    model, _ = tiny_parts
    before = weights(model)
    if term == "rank":
        monkeypatch.setattr(
            asam_module, "rcsl_loss", lambda *args, **kwargs: torch.tensor(float("nan"), requires_grad=True)
        )
    else:
        real = asam_module.answer_ce_per_row
        monkeypatch.setattr(
            asam_module,
            "answer_ce_per_row",
            lambda logits, rows: real(logits, rows) * torch.tensor([1.0] + [float("nan")] * (len(rows) - 1)),
        )
    with pytest.raises(EditError, match=f"test-request: non-finite .*{term}"):
        VARIANTS["Patch base"]().edit(model, tiny_encoder, make_request(small_world))
    assert not changed_weights(model, before)


def test_variants_must_pass_through_the_edit_layer():
    with pytest.raises(ValueError, match="below the edit layer"):
        ASAM(Patch(CONFIG), LARConfig(block=1))


def test_asam_owns_its_config_and_builds_its_base_editor_with_it():
    base = Patch(CONFIG)
    editor = ASAM(base)
    assert editor.config == CONFIG and editor.base.config == CONFIG and editor.base is not base
    moved = editor.with_config(replace(CONFIG, layer=0, steps=2))
    assert moved.config.layer == 0 and moved.base.config.layer == 0 and moved.base.config.steps == 2
    assert editor.config == CONFIG and editor.base.config == CONFIG and base.config == CONFIG, (
        "with_config changes nothing in place"
    )
    assert isinstance(moved, ASAM) and moved.lar == editor.lar and moved.settings == editor.settings
    assert ASAM(config=replace(CONFIG, lr=0.5)).base.config.lr == 0.5


def test_a_term_added_to_the_shared_loss_reaches_asam(tiny_parts, tiny_encoder, small_world, monkeypatch):
    """ASAM extends Editor.losses (through edit_losses and extra_losses) instead of rewriting it."""
    model, _ = tiny_parts
    seen = []

    def locality_with_a_new_term(self, model, context):
        seen.append(type(self).__name__)
        return {"new shared term": torch.zeros(())}

    monkeypatch.setattr(Editor, "locality_losses", locality_with_a_new_term)
    handle = VARIANTS["Patch base"]().edit(model, tiny_encoder, make_request(small_world))
    handle.restore()
    assert seen and set(seen) == {"ASAM"} and all("new shared term" in step for step in handle.losses)
    assert all({"edit", "adversarial", "rank", "memory"} <= set(step) for step in handle.losses)


@pytest.mark.parametrize("site", ["block_output", "edit_delta", "ffn_hidden", "patch_keys"])
def test_every_rcsl_site_gives_the_rank_term_a_gradient_on_what_the_edit_trains(
    site, small_world, tiny_parts, tiny_encoder
):
    model, _ = tiny_parts
    base = FTL(CONFIG, modules=("gate_proj", "up_proj", "down_proj")) if site == "ffn_hidden" else Patch(CONFIG)
    editor = ASAM(base, LAR, RCSLConfig(site=site), ASAMSettings(lambda_rank=10.0))
    handle = editor.edit(model, tiny_encoder, make_request(small_world), trace_gradients=True)
    handle.restore()
    assert {"grad edit", "grad adversarial", "grad rank", "grad locality"} <= set(handle.losses[0])
    assert all(row["grad edit"] > 0 for row in handle.losses)
    assert max(row["grad rank"] for row in handle.losses) > 0


def test_tracing_gradients_does_not_change_the_edit(small_world, tiny_parts, tiny_encoder):
    model, _ = tiny_parts
    edited = []
    for trace in (False, True):
        handle = VARIANTS["Patch base"]().edit(model, tiny_encoder, make_request(small_world), trace_gradients=trace)
        edited.append(weights(model))
        handle.restore()
    assert edited[0].keys() == edited[1].keys() and all(torch.equal(edited[0][k], edited[1][k]) for k in edited[0])


def test_a_site_the_base_editor_lacks_is_named_in_the_error(small_world, tiny_parts, tiny_encoder):
    model, _ = tiny_parts
    before = weights(model)
    with pytest.raises(ValueError, match="RCSL site 'patch_keys' needs a module named 'activation'"):
        ASAM(FTL(CONFIG), LAR, RCSLConfig(site="patch_keys")).edit(model, tiny_encoder, make_request(small_world))
    assert not changed_weights(model, before)
    with pytest.raises(ValueError, match="RCSLConfig.site = 'residual'"):
        RCSLConfig(site="residual")


def test_an_edit_trace_has_every_term_per_step_with_shares_that_sum_to_one(small_world, tiny_parts, tiny_encoder):
    from asam_lib.editors.edit_trace import trace_edit

    model, _ = tiny_parts
    before = weights(model)
    trace = trace_edit(model, tiny_encoder, VARIANTS["Patch base"](), make_request(small_world))
    assert not changed_weights(model, before)
    assert set(trace.term) >= {"edit", "adversarial", "rank", "locality"} and trace.step.nunique() == 4
    assert trace.groupby("step").grad_share.sum().round(6).eq(1.0).all()
    assert trace[trace.refreshed].step.unique().tolist() == [0, 2] and trace[trace["last"]].step.unique().tolist() == [
        3
    ]
