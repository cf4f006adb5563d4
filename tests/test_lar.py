"""LAR: bounds, determinism, the coherence penalty, one batched pass per step, and hooks that clean up."""

import pytest
import torch

from asam_lib.common.seeding import torch_generator
from asam_lib.editors.asam import variant_inputs
from asam_lib.editors.editing import (
    FTL,
    EditConfig,
    edited_forward,
    joint_embeddings,
    unedited_forward,
)
from asam_lib.editors.lar import (
    LARConfig,
    added_to_block_output,
    adversarial_variants,
    image_token_id,
    noise_variants,
    role_mask,
    variant_diagnostics,
)
from asam_lib.mllm.prompting import PromptEncoder

from helpers import changed_weights, make_request, rows_match, weights


@pytest.fixture
def edited(small_world, tiny_parts, tiny_encoder):
    """(model, forwards, anchor embeddings, batch) with an FT-L edit in place; rolled back afterwards."""
    model, _ = tiny_parts
    request = make_request(small_world)
    handle = FTL(EditConfig(layer=1, steps=5, lr=0.05, stop_loss=0.0)).edit(model, tiny_encoder, request)
    batch = tiny_encoder.batch([request.anchor_item])
    yield model, edited_forward(model), unedited_forward(model, handle.originals), joint_embeddings(model, batch), batch
    handle.restore()


def _variants(edited, seed=0, **config):
    model, post, pre, embeds, batch = edited
    return adversarial_variants(model, post, pre, embeds, batch, LARConfig(**config), torch_generator(seed, "lar"))


@pytest.mark.parametrize("roles", ["image", "question", "both"])
@pytest.mark.parametrize("block", [None, 0])
def test_every_variant_respects_its_bound_and_role_mask(edited, roles, block):
    variants = _variants(edited, eps=0.4, roles=roles, block=block, steps=3)
    norms = variants.delta.norm(dim=-1)
    assert (norms <= variants.radius[None] * (1 + 1e-5) + 1e-7).all()
    assert (variants.delta[:, ~variants.mask] == 0).all()
    assert norms[:, variants.mask].min() > 0
    model, _, _, embeds, batch = edited
    mask = role_mask(batch, image_token_id(model), roles)
    is_image = batch.input_ids[0] == image_token_id(model)
    assert torch.equal(variants.mask, mask)
    assert (mask & is_image).any() == (roles != "question") and (mask & ~is_image).any() == (roles != "image")
    assert not mask[int(batch.answer_start[0]) :].any()


def test_the_last_trace_is_only_a_record(edited):
    model, post, pre, embeds, batch = edited
    config = LARConfig(steps=3)
    traced = adversarial_variants(model, post, pre, embeds, batch, config, torch_generator(0, "lar"))
    untraced = adversarial_variants(
        model, post, pre, embeds, batch, config, torch_generator(0, "lar"), trace_last=False
    )
    assert torch.equal(traced.delta, untraced.delta)
    assert len(traced.history) == config.steps + 1 and untraced.history == traced.history[:-1]


@pytest.mark.parametrize("block", [None, 0])
def test_sharing_the_blocks_below_the_edit_layer_finds_the_same_variants(edited, block):
    model, post, pre, embeds, batch = edited  # an FT-L edit at layer 1: the models differ from block 1 up
    config = LARConfig(steps=3, block=block)
    apart = adversarial_variants(model, post, pre, embeds, batch, config, torch_generator(0, "lar"))
    shared = adversarial_variants(model, post, pre, embeds, batch, config, torch_generator(0, "lar"), shared_below=1)
    torch.testing.assert_close(shared.delta, apart.delta, rtol=1e-4, atol=1e-5)
    assert [h["edit_loss"] for h in shared.history] == pytest.approx([h["edit_loss"] for h in apart.history], 1e-4)
    with pytest.raises(ValueError, match="must be below the shared edit layer 1"):
        adversarial_variants(
            model, post, pre, embeds, batch, LARConfig(block=1), torch_generator(0, "lar"), shared_below=1
        )


def test_the_same_seed_gives_the_same_variants(edited):
    first, again, other = _variants(edited, seed=0), _variants(edited, seed=0), _variants(edited, seed=1)
    assert torch.equal(first.latents, again.latents)
    assert not torch.equal(first.latents, other.latents)


def test_ascent_raises_the_edit_loss_over_the_random_start(edited):
    variants = _variants(edited, eps=0.5, steps=5, mu=0.0)
    assert variants.history[-1]["edit_loss"] > variants.history[0]["edit_loss"]


def test_the_coherence_penalty_lowers_the_kl_to_the_unedited_model(edited):
    def kl(mu):
        return sum(_variants(edited, seed=s, eps=1.0, steps=5, mu=mu).history[-1]["coherence_kl"] for s in range(3))

    assert kl(mu=20.0) < 0.8 * kl(mu=0.0)


def test_k_variants_cost_one_batched_pass_per_model_and_step(edited):
    model = edited[0]
    calls = []
    handle = model.model.language_model.register_forward_pre_hook(
        lambda m, a, kw: calls.append(kw["inputs_embeds"].shape[0]), with_kwargs=True
    )
    try:
        _variants(edited, k=6, steps=3)
    finally:
        handle.remove()
    assert calls[1:] == [6] * (2 * 3 + 2)  # after the clean reference: edited + unedited per step, then a final check


def test_noise_variants_sit_on_the_bound(edited):
    model, _, _, embeds, batch = edited
    variants = noise_variants(model, embeds, batch, LARConfig(eps=0.2), torch_generator(0, "noise"))
    norms = variants.delta.norm(dim=-1)[:, variants.mask]
    assert torch.allclose(norms, variants.radius[variants.mask].expand_as(norms), rtol=1e-5)


def test_diagnostics_are_shares_and_finite(edited):
    model, post, pre, embeds, batch = edited
    report = variant_diagnostics(model, post, pre, embeds, batch, _variants(edited))
    assert 0 <= report["coherence"] <= 1 and 0 <= report["edit_success"] <= 1
    assert all(torch.isfinite(torch.tensor(v)) for v in report.values())


def test_a_block_hook_is_removed_and_the_model_unchanged_after_an_exception(tiny_parts):
    model, _ = tiny_parts
    state = weights(model)
    with pytest.raises(RuntimeError, match="inside"):
        with added_to_block_output(model, 0, torch.zeros(1)):
            raise RuntimeError("inside the context")
    assert all(not block._forward_hooks for block in model.model.language_model.layers)
    assert not changed_weights(model, state)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="roles"):
        LARConfig(roles="audio")
    with pytest.raises(ValueError, match="k >= 1"):
        LARConfig(k=0)


def test_a_variant_at_radius_zero_reads_like_its_anchor_on_every_architecture(tiny_arch, small_world):
    """LAR's variants and ASAM's variant rows run with their anchor's inputs besides the embeddings (Qwen2-VL: its
    M-RoPE positions): at radius 0, every row that LAR and ASAM run gives the anchor's logits."""
    model, encoder = tiny_arch.model, PromptEncoder(tiny_arch.processor)
    question = small_world.phrasings("home", heldout=False)[0].render()
    image = small_world.image(0, "eval", 0).resize((32, 16))  # not square: image positions differ in rows and columns
    batch = encoder.batch([(question, small_world.entities[1].facts["home"], image)])
    with torch.no_grad():
        anchor = model(**batch.model_inputs()).logits
    embeds = joint_embeddings(model, batch)
    seen = []

    def forward(embeds, rows):
        logits = edited_forward(model)(embeds, rows)
        seen.append(logits.detach())
        return logits

    config = LARConfig(k=3, eps=0.0, steps=1)
    variants = adversarial_variants(model, forward, forward, embeds, batch, config, torch_generator(0, "lar"))
    assert not variants.delta.any()
    assert [len(logits) for logits in seen] == [1] + [config.k] * 4  # the clean input; both models, 1 step + trace
    assert all(rows_match(logits, anchor) for logits in seen)
    with torch.no_grad():
        rows = variant_inputs(model, 1, embeds, batch, variants.delta).logits(model)
    assert len(rows) == config.k + 1 and rows_match(rows, anchor)
