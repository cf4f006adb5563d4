"""RCSL: values on known matrices, gradient checks, finite gradients in degenerate cases, asymmetry."""

import pytest
import torch

from asam_lib.editors.rcsl import (
    OBJECTIVES,
    RCSLConfig,
    rank_loss,
    rcsl_loss,
    spectrum,
    tail_energy_gradient,
)


def _random(n=5, d=7, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_known_values():
    rank_one = torch.outer(torch.tensor([1.0, 2.0, -1.0]), torch.tensor([0.5, 1.0, 0.0, 2.0]))
    assert rank_loss(rank_one).item() == pytest.approx(0.0, abs=1e-6)
    assert rank_loss(rank_one, "nuclear").item() == pytest.approx(1.0, abs=1e-6)
    diagonal = torch.diag(torch.tensor([3.0, 2.0, 1.0]))
    assert rank_loss(diagonal).item() == pytest.approx((4 + 1) / 14)
    assert rank_loss(diagonal, "tail_sum").item() == pytest.approx(3 / 6)
    assert rank_loss(diagonal, "nuclear").item() == pytest.approx(6 / 14**0.5)
    assert rank_loss(diagonal, rank=2).item() == pytest.approx(1 / 14)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_objectives_are_scale_invariant(objective):
    H = _random()
    assert rank_loss(3.7 * H, objective).item() == pytest.approx(rank_loss(H, objective).item(), rel=1e-9)


def test_closed_form_gradient_matches_autograd_and_finite_differences():
    H = _random().requires_grad_(True)
    (auto,) = torch.autograd.grad(rank_loss(H, eps=0.0), H)
    assert torch.allclose(auto, tail_energy_gradient(H.detach()), atol=1e-10)
    assert torch.autograd.gradcheck(lambda X: rank_loss(X, eps=0.0), (H,))


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize(
    "case",
    ["rank_one", "coinciding_rows", "k_equals_one", "zero"],
)
def test_gradients_stay_finite_in_degenerate_cases(objective, case):
    row = torch.tensor([1.0, -2.0, 0.5, 3.0])
    H = {
        "rank_one": torch.outer(torch.tensor([1.0, 2.0, -0.5]), row),
        "coinciding_rows": row.repeat(4, 1),
        "k_equals_one": torch.stack([row, 2 * row + 0.1]),
        "zero": torch.zeros(3, 4),
    }[case].requires_grad_(True)
    loss = rank_loss(H, objective)
    (grad,) = torch.autograd.grad(loss, H)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()


def test_the_asymmetric_flow_leaves_the_anchor_alone():
    anchor, variants = _random(1, 6)[0].requires_grad_(True), _random(3, 6, seed=1).requires_grad_(True)
    rcsl_loss(anchor, variants, RCSLConfig(asymmetric=True)).backward()
    assert anchor.grad is None and variants.grad.abs().sum() > 0
    rcsl_loss(anchor, variants, RCSLConfig(asymmetric=False)).backward()
    assert anchor.grad.abs().sum() > 0


def test_descending_the_loss_collapses_the_secondary_directions():
    H = _random(6, 5).requires_grad_(True)
    optimiser = torch.optim.SGD([H], lr=1.0)
    start = spectrum(H)[1:].sum()
    for _ in range(200):
        optimiser.zero_grad()
        rank_loss(H).backward()
        optimiser.step()
    assert spectrum(H)[1:].sum() < 0.05 * start


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="objective"):
        RCSLConfig(objective="frobenius")
    with pytest.raises(ValueError, match="rank"):
        RCSLConfig(rank=0)
    with pytest.raises(ValueError, match="frobenius"):
        rank_loss(_random(), "frobenius")
