"""RCSL: Rank-Constrained Subspace Learning - align the edit-layer representations of the edit input and
its variants on one low-rank subspace.

Stack the edit-layer *output* representations (after the edited FFN, at the answer-predicting position;
the layer's input does not depend on the edit) of the anchor and its K variants as the rows of

    H = [h_0; h_1; ...; h_K]  in R^{(K+1) x d},     singular values s_1 >= s_2 >= ... >= 0.

If every row expresses the same fact, H should be close to rank r (r = 1 by default: all rows on one
line). The objective penalises the energy outside the top-r directions. [Reconstruction: the paper says
"rank-constrained" and "singular-value objective"; the exact form is ours, and so are the alternatives.]

    tail_energy (default):  L = sum_{i>r} s_i^2 / sum_i s_i^2
    tail_sum:               L = sum_{i>r} s_i   / sum_i s_i
    nuclear:                L = |H|_* / |H|_F = sum_i s_i / sqrt(sum_i s_i^2)

All three are scale-invariant (they measure shape, not size). With ds_i/dH = u_i v_i^T, the default's
gradient is

    dL/dH = 2 / |H|_F^2 · ( (1 - L) H - sum_{i<=r} s_i u_i v_i^T )      (= 2/|H|_F^2 · (H_tail - L H))

i.e. it removes the tail of H and rescales the rest. **Asymmetric flow**: the anchor row h_0 is detached
(stop-gradient), so only the variants move towards the subspace the anchor fixes.

Numerics: sum_i s_i^2 is computed as |H|_F^2 (no singular-value gradient needed for it), the top-r
singular values come from ``torch.linalg.svdvals``, whose gradient u_i v_i^T stays finite when H is
exactly rank one or rows coincide (tested); a small ``eps`` keeps the ratios finite at H = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from asam_lib.mllm.precision import at_least_float32

OBJECTIVES = ("tail_energy", "tail_sum", "nuclear")
# Where the rows of H are read, all at the answer-predicting position of the edit layer (asam_lib.editors.asam):
SITES = (
    "block_output",  # the output of the edit layer's block (the residual stream after the edited FFN)
    "edit_delta",  # that output minus the unedited model's on the same input: what the edit adds
    "ffn_hidden",  # the FFN's intermediate activations (input of its down projection); moves only if gate/up train
    "patch_keys",  # the activations of Patch's key-value neurons (Patch as the base editor only)
)


@dataclass(frozen=True)
class RCSLConfig:
    """RCSL hyper-parameters. Defaults reproduce the committed figures."""

    objective: str = "tail_energy"  # one of OBJECTIVES
    rank: int = 1  # r: the rank the rows should share (tail_energy and tail_sum)
    asymmetric: bool = True  # detach the anchor row: variants move to the anchor, not the reverse
    centre: bool = False  # subtract the row mean before the SVD (affine instead of linear subspace)
    normalise: bool = False  # scale every row to unit norm before the SVD (directions only, not sizes)
    site: str = "block_output"  # where H is read: one of SITES

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"RCSLConfig.objective = {self.objective!r}; choose one of {OBJECTIVES}")
        if self.site not in SITES:
            raise ValueError(f"RCSLConfig.site = {self.site!r}; choose one of {SITES}")
        if self.rank < 1:
            raise ValueError(f"RCSLConfig.rank must be >= 1 (got {self.rank})")


def stack_representations(anchor: torch.Tensor, variants: torch.Tensor, asymmetric: bool = True) -> torch.Tensor:
    """H (K+1, d): the anchor's representation (d,) on top of the variants' (K, d); the anchor row is
    detached when ``asymmetric``."""
    return torch.cat([(anchor.detach() if asymmetric else anchor)[None], variants], dim=0)


def rank_loss(H: torch.Tensor, objective: str = "tail_energy", rank: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """The RCSL objective of H (n, d) (see the module docstring); a scalar in [0, 1]."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown RCSL objective {objective!r}; choose one of {OBJECTIVES}")
    if objective == "tail_energy":
        total = H.pow(2).sum()
        head = torch.linalg.svdvals(H)[:rank].pow(2).sum()
        return (total - head) / (total + eps)
    s = torch.linalg.svdvals(H)
    if objective == "tail_sum":
        return s[rank:].sum() / (s.sum() + eps)
    return s.sum() / (H.pow(2).sum() + eps).sqrt()


def rcsl_loss(anchor: torch.Tensor, variants: torch.Tensor, config: RCSLConfig = RCSLConfig()) -> torch.Tensor:
    """L_rank of the anchor's (d,) and the variants' (K, d) representations under ``config``."""
    H = at_least_float32(stack_representations(anchor, variants, config.asymmetric))
    if config.normalise:
        H = H / H.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    if config.centre:
        H = H - H.mean(0, keepdim=True)
    return rank_loss(H, config.objective, config.rank)


def tail_energy_gradient(H: torch.Tensor, rank: int = 1) -> torch.Tensor:
    """The closed-form gradient of the default objective (module docstring), for the notebook's check."""
    U, S, Vh = torch.linalg.svd(H, full_matrices=False)
    total = H.pow(2).sum()
    loss = 1 - S[:rank].pow(2).sum() / total
    head = (U[:, :rank] * S[:rank]) @ Vh[:rank]
    return 2 / total * ((1 - loss) * H - head)


def spectrum(H: torch.Tensor) -> torch.Tensor:
    """Singular values of H normalised to unit total energy (s_i^2 / sum s_j^2), for plots: (min(n, d),)."""
    s = torch.linalg.svdvals(H.detach().double())
    return (s.pow(2) / s.pow(2).sum().clamp_min(1e-30)).float()
