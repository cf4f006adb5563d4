"""Experiments on the RCSL objective for notebook 03: its gradient checked in float64, its behaviour near the
rank-one target, gradient descent on small point clouds, the spectrum of H for real edits of the embedded model,
and the design study of where RCSL could act.

Every experiment returns a tidy ``pandas.DataFrame`` (with, where a figure needs them, the raw trajectories or
spectra); :mod:`asam_lib.figures.rcsl_plots` draws them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import pandas as pd
import torch

from asam_lib.common.progress import tqdm
from asam_lib.common.seeding import torch_generator
from asam_lib.data.units import member_items
from asam_lib.editors import rcsl
from asam_lib.editors.asam import ASAM, ASAMSettings, edit_layer_representations
from asam_lib.editors.edit_trace import trace_edit
from asam_lib.editors.editing import Editor, edited_forward, joint_embeddings, unedited_forward
from asam_lib.editors.lar import LARConfig, Variants, adversarial_variants, noise_variants
from asam_lib.editors.patch import Patch
from asam_lib.editors.rcsl import RCSLConfig
from asam_lib.evaluation.harness import EditCase
from asam_lib.evaluation.summaries import paired_differences, primary_rows
from asam_lib.experiments.ablations import rcsl_design_editors
from asam_lib.experiments.study import Job, run_jobs, split_timings
from asam_lib.mllm.architectures import language_layers
from asam_lib.mllm.hooks import module_output
from asam_lib.mllm.prompting import Batch, PromptEncoder

SPECTRUM_ROWS = ("LAR variants", "random variants", "unit members")  # the three sets of rows of H, anchor first


def closed_form_gradients(H: torch.Tensor) -> dict[str, torch.Tensor]:
    """``objective -> dL/dH`` for each of :data:`asam_lib.editors.rcsl.OBJECTIVES` at ``H`` (K+1, d), rank 1, from the
    closed forms (``eps = 0``): the tail energy's is :func:`asam_lib.editors.rcsl.tail_energy_gradient`."""
    U, S, Vh = torch.linalg.svd(H, full_matrices=False)
    F = H.norm()
    return {
        "tail_energy": rcsl.tail_energy_gradient(H),
        "tail_sum": (U[:, 1:] @ Vh[1:] - rcsl.rank_loss(H, "tail_sum", eps=0) * U @ Vh) / S.sum(),
        "nuclear": (U @ Vh - rcsl.rank_loss(H, "nuclear", eps=0) * H / F) / F,
    }


def finite_difference_gradient(H: torch.Tensor, objective: str, h: float = 1e-6) -> torch.Tensor:
    """Central finite differences ``(L(H + h E_jk) - L(H - h E_jk)) / 2h`` of ``rank_loss(., objective, eps=0)``
    over every entry of ``H`` (K+1, d): (K+1, d)."""
    gradient = torch.zeros_like(H)
    for jk in itertools.product(range(H.shape[0]), range(H.shape[1])):
        E = torch.zeros_like(H)
        E[jk] = h
        gradient[jk] = (rcsl.rank_loss(H + E, objective, eps=0) - rcsl.rank_loss(H - E, objective, eps=0)) / (2 * h)
    return gradient


def gradient_checks(H: torch.Tensor, h: float = 1e-6) -> pd.DataFrame:
    """Per objective (the index): ``L(H)``, the largest gradient entry, the largest gap between the closed form
    and autograd and between autograd and finite differences (step ``h``), and ``<dL/dH, H>`` (zero for a
    scale-invariant loss). ``H`` (K+1, d) in float64 for the gaps to be rounding error."""
    closed_form = closed_form_gradients(H)
    checks = []
    for objective in rcsl.OBJECTIVES:
        X = H.clone().requires_grad_(True)
        (autograd,) = torch.autograd.grad(rcsl.rank_loss(X, objective, eps=0), X)
        finite_diff = finite_difference_gradient(H, objective, h)
        checks.append(
            {
                "objective": objective,
                "L(H)": rcsl.rank_loss(H, objective, eps=0).item(),
                "max |dL/dH|": autograd.abs().max().item(),
                "closed form vs autograd": (closed_form[objective] - autograd).abs().max().item(),
                "autograd vs finite diff.": (autograd - finite_diff).abs().max().item(),
                "<dL/dH, H>": (autograd * H).sum().item(),
            }
        )
    return pd.DataFrame(checks).set_index("objective")


def rank_one_gradients(H1: torch.Tensor, direction: torch.Tensor, deltas: Sequence[float]) -> pd.DataFrame:
    """The loss and the scale-free gradient size ``|dL/dH|_F * |H1|_F`` of each objective (default ``eps``) at
    ``H1 + delta * direction`` for each ``delta``: how the gradient behaves as ``H`` approaches the rank-one
    ``H1`` (K+1, d). Columns ``objective``, ``delta``, ``L``, ``|dL/dH|_F * |H|_F``."""
    near = []
    for objective, delta in itertools.product(rcsl.OBJECTIVES, deltas):
        X = (H1 + delta * direction).requires_grad_(True)
        loss = rcsl.rank_loss(X, objective)
        (grad,) = torch.autograd.grad(loss, X)
        near.append(
            {
                "objective": objective,
                "delta": delta,
                "L": loss.item(),
                "|dL/dH|_F * |H|_F": (grad.norm() * H1.norm()).item(),
            }
        )
    return pd.DataFrame(near)


def descend(cloud: torch.Tensor, config: RCSLConfig, n_steps: int, learning_rate: float) -> torch.Tensor:
    """Plain SGD on ``rcsl_loss`` with the rows of ``cloud`` (K+1, d; row 0 the anchor) as parameters:
    the points at every step, (n_steps + 1, K+1, d). With ``config.asymmetric`` the anchor never moves."""
    anchor, variants = torch.nn.Parameter(cloud[0].clone()), torch.nn.Parameter(cloud[1:].clone())
    optimiser = torch.optim.SGD([anchor, variants], lr=learning_rate)
    trajectory = [cloud]
    for _ in range(n_steps):
        optimiser.zero_grad()
        rcsl.rcsl_loss(anchor, variants, config).backward()
        optimiser.step()
        trajectory.append(torch.cat([anchor[None], variants]).detach().clone())
    return torch.stack(trajectory)


def point_cloud_descent(
    cloud: torch.Tensor, n_steps: int, learning_rate: float
) -> dict[tuple[str, bool], torch.Tensor]:
    """``(objective, asymmetric) -> trajectory`` (:func:`descend`) for every objective and both flows."""
    return {
        (objective, asymmetric): descend(
            cloud, RCSLConfig(objective=objective, asymmetric=asymmetric), n_steps, learning_rate
        )
        for objective, asymmetric in itertools.product(rcsl.OBJECTIVES, (False, True))
    }


def descent_summary(descent: dict[tuple[str, bool], torch.Tensor]) -> pd.DataFrame:
    """Per run of :func:`point_cloud_descent`: the tail share ``s2² / Σ s²`` at the start and the end, how far
    the anchor moved, how ``|H|_F`` changed, and the tail reduction ``1 - end / start``."""
    summary = pd.DataFrame(
        [
            {
                "objective": o,
                "flow": "asymmetric" if a else "symmetric",
                "tail share start": rcsl.spectrum(P[0])[1].item(),
                "tail share end": rcsl.spectrum(P[-1])[1].item(),
                "anchor moved by": (P[-1, 0] - P[0, 0]).norm().item(),
                "|H|_F end / start": (P[-1].norm() / P[0].norm()).item(),
            }
            for (o, a), P in descent.items()
        ]
    )
    summary["tail reduction"] = 1 - summary["tail share end"] / summary["tail share start"]
    return summary


def spectrum_editors() -> dict[str, Editor | None]:
    """The conditions of the spectrum study: no edit, Patch, ASAM without its rank term, and ASAM."""
    return {
        "unedited": None,
        "Patch": Patch(),
        "ASAM without RCSL": ASAM(settings=ASAMSettings(lambda_rank=0.0)),  # what the variants alone do
        "ASAM": ASAM(),
    }


def fixed_variants(
    model, encoder: PromptEncoder, case: EditCase, embeds: torch.Tensor, batch: Batch, k: int, seed: int
) -> dict[str, Variants]:
    """The variant rows of H for ``case`` (its edit input ``batch``, joint embeddings ``embeds``: (1, L, d)): K =
    ``k`` LAR variants computed once against a Patch edit (rolled back, also on error) and K random perturbations
    of the same radius, each from its own named stream."""
    handle = Patch().edit(model, encoder, case.request, seed=seed)
    try:
        lar = adversarial_variants(
            model,
            edited_forward(model),
            unedited_forward(model, handle.originals),
            embeds,
            batch,
            LARConfig(k=k),
            torch_generator(seed, "nb03-lar", case.request.name),
        )
    finally:
        handle.restore()
    noise = noise_variants(model, embeds, batch, LARConfig(k=k), torch_generator(seed, "nb03-noise", case.request.name))
    return {"LAR variants": lar, "random variants": noise}


def spectrum_study(
    model,
    encoder: PromptEncoder,
    cases: Sequence[EditCase],
    editors: dict[str, Editor | None],
    layer: int,
    k: int,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[tuple[str, str, str], torch.Tensor]]:
    """H at the output of ``layer`` and the answer-predicting position, for each case, condition (``editors``:
    name -> editor, None for the unedited model; each edit rolled back) and set of rows (:data:`SPECTRUM_ROWS`).

    Returns the tidy table (``case``, ``condition``, ``rows``, ``K + 1``, ``tail energy`` and ``tail energy,
    centred``: :func:`asam_lib.editors.rcsl.rank_loss` of H and of H minus its row mean) and ``(case, condition, rows)
    -> spectrum`` (:func:`asam_lib.editors.rcsl.spectrum`), both computed from H in float64."""
    spectra, tails = {}, []
    for case in tqdm(cases, desc="spectrum of H"):
        batch = encoder.batch([case.request.anchor_item])
        embeds = joint_embeddings(model, batch)
        variants = fixed_variants(model, encoder, case, embeds, batch, k, seed)
        members = encoder.batch(member_items(case.unit.members, case.unit.new_answer))
        for condition, editor in editors.items():
            handle = editor.edit(model, encoder, case.request, seed=seed) if editor else None
            try:
                with torch.no_grad():
                    H = {
                        rows: edit_layer_representations(model, layer, embeds, batch, v.delta)[1]
                        for rows, v in variants.items()
                    }
                    with module_output(language_layers(model)[layer]) as captured:
                        model(**members.model_inputs())
            finally:
                if handle is not None:
                    handle.restore()
            H["unit members"] = captured["y"][torch.arange(len(members)), members.answer_start - 1]
            for rows, Hc in H.items():
                Hc = Hc.double()
                tails.append(
                    {
                        "case": case.request.name,
                        "condition": condition,
                        "rows": rows,
                        "K + 1": len(Hc),
                        "tail energy": rcsl.rank_loss(Hc).item(),
                        "tail energy, centred": rcsl.rank_loss(Hc - Hc.mean(0)).item(),
                    }
                )
                spectra[case.request.name, condition, rows] = rcsl.spectrum(Hc)
    return pd.DataFrame(tails), spectra


@dataclass
class DesignStudy:
    """The RCSL design study's results: ``editors`` (name -> editor,
    :func:`asam_lib.experiments.ablations.rcsl_design_editors`), ``rows`` (primary metric rows per edit), ``pairs``
    ((form, its control) in ``editors``' order) and ``paired`` (:func:`asam_lib.evaluation.summaries.paired_differences`
    of each pair)."""

    editors: dict[str, Editor]
    rows: pd.DataFrame
    pairs: list[tuple[str, str]]
    paired: pd.DataFrame

    @property
    def means(self) -> pd.DataFrame:
        """Mean of each metric per editor (index), columns ``(tier, metric)``."""
        return self.rows.groupby(["method", "tier", "metric"]).value.mean().unstack(["tier", "metric"])

    @property
    def n_edits(self) -> int:
        """The number of (seed, case) edits each editor made."""
        return self.rows.groupby(["seed", "case"]).ngroups


def design_controls(names: Sequence[str]) -> list[tuple[str, str]]:
    """``(form, control)`` for each RCSL form in ``names``: an FT-L3 form's control is "FT-L3 without RCSL", every
    other's "without RCSL"; the controls themselves are not paired."""
    controls = {name: "FT-L3 without RCSL" if name.startswith("FT-L3") else "without RCSL" for name in names}
    return [(name, control) for name, control in controls.items() if name != control]


def design_study(seed: int, n_edits: int, workers: int = 1) -> DesignStudy:
    """Every editor of :func:`asam_lib.experiments.ablations.rcsl_design_editors` on ``n_edits`` VQA edits of the
    development split, in ``workers`` processes, each form paired with its control on the same edits."""
    editors = rcsl_design_editors()
    jobs = [Job("design", "vqa", seed, n_edits, {name: editor}, split="dev") for name, editor in editors.items()]
    rows = primary_rows(split_timings(run_jobs(jobs, workers=workers)[0])[0])
    pairs = design_controls(list(editors))
    return DesignStudy(editors, rows, pairs, paired_differences(rows, pairs))


def selection_gains(
    means: pd.DataFrame, paired: pd.DataFrame, min_rel: float = 0.99, min_loc: float = 0.97
) -> pd.DataFrame:
    """The selection rule's candidates, best first: the paired gains in hard-tier ``Unit`` (rows of ``paired``,
    indexed by comparison) of the forms whose ``means`` keep standard-tier Rel >= ``min_rel`` and T-Loc and
    I-Loc >= ``min_loc``. The selected form is the first row's ``comparison.split(" - ")[0]``."""
    keeps = means[
        (means[("standard", "Rel")] >= min_rel)
        & (means[("standard", "T-Loc")] >= min_loc)
        & (means[("standard", "I-Loc")] >= min_loc)
    ].index
    gain = paired[(paired.tier == "hard") & (paired.metric == "Unit")].set_index("comparison")
    return gain[gain.index.str.split(" - ").str[0].isin(keeps)].sort_values("mean_diff", ascending=False)


def gradient_share_traces(
    model,
    encoder: PromptEncoder,
    editors: dict[str, Editor],
    names: Sequence[str],
    cases: Sequence[EditCase],
    seed: int,
) -> pd.DataFrame:
    """:func:`asam_lib.editors.edit_trace.trace_edit` of every case by each editor named in ``names``, one table with
    the columns ``config`` (the editor's name) and ``case`` added."""
    return pd.concat(
        [
            trace_edit(model, encoder, editors[name], case.request, seed=seed).assign(
                config=name, case=case.request.name
            )
            for name in tqdm(names, desc="traced configurations")
            for case in cases
        ],
        ignore_index=True,
    )
