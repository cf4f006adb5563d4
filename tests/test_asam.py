"""The ASAM editor: end to end on the tiny model, exact rollback, determinism, NaN guard, ablations."""

import pytest
import torch

import asam_lib.asam as asam_module
from asam_lib.asam import ASAM, ASAMSettings
from asam_lib.editing import FTL, EditConfig, EditError
from asam_lib.lar import LARConfig
from asam_lib.patch import Patch
from asam_lib.rcsl import RCSLConfig
from conftest import make_request

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
}


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(model, state):
    now = model.state_dict()
    return set(now) == set(state) and all(torch.equal(now[k], state[k]) for k in state)


@pytest.mark.parametrize("name", VARIANTS)
def test_an_asam_edit_runs_its_terms_and_restores_bit_exactly(name, small_world, tiny_parts, tiny_encoder):
    model, _ = tiny_parts
    before = _state(model)
    editor = VARIANTS[name]()
    handle = editor.edit(model, tiny_encoder, make_request(small_world))
    assert handle.steps == 4
    expected = {"edit", "adversarial", "locality"} | ({"rank"} if editor.settings.lambda_rank > 0 else set())
    assert expected <= set(handle.losses[0])
    assert not _same(model, before)
    handle.restore()
    assert _same(model, before)


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
    before = _state(model)
    editor = VARIANTS["Patch base"]()
    first = editor.edit(model, tiny_encoder, make_request(small_world, name="first"))
    second = editor.edit(model, tiny_encoder, make_request(small_world, target=small_world.entities[2].facts["home"], name="second"))
    second.restore()
    first.restore()
    assert _same(model, before)


@pytest.mark.parametrize("term", ["rank", "adversarial"])
def test_a_nan_in_any_term_raises_and_leaves_the_weights_alone(term, small_world, tiny_parts, tiny_encoder, monkeypatch):
    model, _ = tiny_parts
    before = _state(model)
    if term == "rank":
        monkeypatch.setattr(asam_module, "rcsl_loss", lambda *args, **kwargs: torch.tensor(float("nan"), requires_grad=True))
    else:
        real = asam_module.answer_ce
        monkeypatch.setattr(asam_module, "answer_ce", lambda logits, rows: real(logits, rows) * torch.tensor([1.0] + [float("nan")] * (len(rows) - 1)))
    with pytest.raises(EditError, match=f"test-request: non-finite .*{term}"):
        VARIANTS["Patch base"]().edit(model, tiny_encoder, make_request(small_world))
    assert _same(model, before)


def test_variants_must_pass_through_the_edit_layer():
    with pytest.raises(ValueError, match="below the edit layer"):
        ASAM(Patch(CONFIG), LARConfig(block=1))


def test_asam_shares_its_config_with_the_base_editor():
    editor = ASAM(Patch(CONFIG))
    editor.config = EditConfig(layer=0)
    assert editor.base.config.layer == 0 and editor.config is editor.base.config
