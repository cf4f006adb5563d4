"""Experiments on LAR variants for notebook 02: where variants sit among the unit's members, how coherence
and diversity change with the radius, and whether an edit's failure on its variants predicts its failure
on the real held-out members of its knowledge unit.

Every function returns a tidy ``pandas.DataFrame``; :mod:`asam_lib.figures.plots` draws them.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from asam_lib.common.progress import tqdm
from asam_lib.common.seeding import torch_generator
from asam_lib.data.units import member_items
from asam_lib.editors.editing import Editor, edited_forward, joint_embeddings, unedited_forward
from asam_lib.editors.lar import (
    LARConfig,
    Variants,
    adversarial_variants,
    forward_variants,
    noise_variants,
    variant_diagnostics,
)
from asam_lib.editors.overrides import with_overrides
from asam_lib.evaluation.harness import EditCase
from asam_lib.evaluation.metrics import evaluate_edit
from asam_lib.evaluation.summaries import crossed_weights
from asam_lib.mllm.architectures import edit_layer_mlp
from asam_lib.mllm.hooks import module_input
from asam_lib.mllm.prompting import PromptEncoder, answer_positions


def member_states(model, encoder: PromptEncoder, items: Sequence, layer: int) -> torch.Tensor:
    """Input of the FFN of ``layer`` at the answer-predicting position of each item: (N, d)."""
    batch = encoder.batch(list(items))
    states = module_input(edit_layer_mlp(model, layer), lambda: model(**batch.model_inputs()))
    return answer_positions(states, batch)


def variant_states(model, anchor_embeds: torch.Tensor, batch, variants: Variants, layer: int) -> torch.Tensor:
    """The same representation for the K variants of the edit input: (K, d)."""
    rows = batch.repeat(len(variants))
    run = lambda: forward_variants(model, edited_forward(model), anchor_embeds, variants.delta, rows, variants.block)  # noqa: E731
    states = module_input(edit_layer_mlp(model, layer), run)
    return answer_positions(states, rows)


def pca_2d(points: torch.Tensor) -> np.ndarray:
    """The first two principal coordinates of ``points`` (N, d), signs fixed (largest |loading| positive)."""
    centred = points.double() - points.double().mean(0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    axes = vh[:2] * torch.sign(vh[:2].gather(1, vh[:2].abs().argmax(1, keepdim=True)))
    return (centred @ axes.T).numpy()


def latent_map(
    model, encoder: PromptEncoder, case: EditCase, variants: dict[str, Variants], layer: int
) -> pd.DataFrame:
    """Where variants land among the unit's members: the edit layer's input at the answer-predicting position of
    the members (``kind``: anchor / text / image / both) and of each set of ``variants`` (kind = its key).
    Columns: kind; pc1, pc2 (a 2-D PCA fitted on exactly these points); ``anchor_distance`` (L2 distance from
    the anchor in the full space, (d,)) and ``member_distance`` (to the nearest real member other than the
    anchor and the point itself)."""
    unit = case.unit
    anchor_batch = encoder.batch([case.request.anchor_item])
    anchor_embeds = joint_embeddings(model, anchor_batch)
    blocks, kinds = (
        [member_states(model, encoder, member_items(unit.members, unit.old_answer), layer)],
        [m.kind for m in unit.members],
    )
    for name, v in variants.items():
        blocks.append(variant_states(model, anchor_embeds, anchor_batch, v, layer))
        kinds += [name] * len(v)
    states = torch.cat(blocks).double()
    members = states[1 : len(unit.members)]
    to_members = torch.cdist(states, members)
    to_members[1 : len(unit.members)].fill_diagonal_(float("inf"))  # a member's nearest other member
    xy = pca_2d(states)
    return pd.DataFrame(
        {
            "kind": kinds,
            "pc1": xy[:, 0],
            "pc2": xy[:, 1],
            "anchor_distance": (states - states[0]).norm(dim=1).numpy(),
            "member_distance": to_members.min(1).values.numpy(),
        }
    )


def eps_sweep(
    model,
    encoder: PromptEncoder,
    cases: Sequence[EditCase],
    editor: Editor,
    eps_values: Sequence[float],
    config: LARConfig,
    seed: int,
) -> pd.DataFrame:
    """For each case, edit with ``editor`` once, then compute LAR variants at each radius in
    ``eps_values`` (other fields from ``config``) and their diagnostics. One row per (case, eps)."""
    rows = []
    for case in tqdm(cases, desc="eps sweep", leave=False):
        batch = encoder.batch([case.request.anchor_item])
        embeds = joint_embeddings(model, batch)
        with editor.edit(model, encoder, case.request, seed=seed) as handle:
            post, pre = edited_forward(model), unedited_forward(model, handle.originals)
            for eps in eps_values:
                lar = with_overrides(config, {"eps": eps})
                for source in ("LAR", "noise"):
                    generator = torch_generator(seed, "eps-sweep", source, case.request.name, eps)
                    v = (
                        adversarial_variants(
                            model, post, pre, embeds, batch, lar, generator, shared_below=editor.config.layer
                        )
                        if source == "LAR"
                        else noise_variants(model, embeds, batch, lar, generator)
                    )
                    rows.append(
                        {
                            "case": case.request.name,
                            "eps": eps,
                            "variants": source,
                            **variant_diagnostics(model, post, pre, embeds, batch, v),
                        }
                    )
    return pd.DataFrame(rows)


def predictive_study(
    model, encoder: PromptEncoder, cases: Sequence[EditCase], editors: dict[str, Editor], config: LARConfig, seed: int
) -> pd.DataFrame:
    """For every editor and case: edit, then measure (a) the edit on K LAR variants and on K random
    variants of the same radius and (b) the edit on the unit's real held-out members. One row per
    (method, case) with ``lar_failure`` / ``noise_failure`` (share of variants not answering the new
    target), ``lar_loss`` / ``noise_loss`` (their mean CE), and the unit's exact-match metrics."""
    rows = []
    for method, editor in editors.items():
        for case in tqdm(cases, desc=f"{method} variants vs unit", leave=False):
            batch = encoder.batch([case.request.anchor_item])
            embeds = joint_embeddings(model, batch)
            with editor.edit(model, encoder, case.request, seed=seed) as handle:
                post, pre = edited_forward(model), unedited_forward(model, handle.originals)
                lar = adversarial_variants(
                    model,
                    post,
                    pre,
                    embeds,
                    batch,
                    config,
                    torch_generator(seed, "predict", case.request.name),
                    shared_below=editor.config.layer,
                )
                noise = noise_variants(
                    model, embeds, batch, config, torch_generator(seed, "predict-noise", case.request.name)
                )
                lar_report = variant_diagnostics(model, post, pre, embeds, batch, lar)
                noise_report = variant_diagnostics(model, post, pre, embeds, batch, noise)
                metrics = {
                    m["metric"]: m["value"]
                    for m in evaluate_edit(model, encoder, case.unit, None)
                    if m["protocol"] == "exact"
                }
            rows.append(
                {
                    "method": method,
                    "case": case.request.name,
                    "seed": seed,
                    "lar_failure": 1 - lar_report["edit_success"],
                    "lar_loss": lar_report["edit_loss"],
                    "lar_coherence": lar_report["coherence"],
                    "noise_failure": 1 - noise_report["edit_success"],
                    "noise_loss": noise_report["edit_loss"],
                    **metrics,
                }
            )
    return pd.DataFrame(rows)


def weighted_auc(scores: Sequence[float], labels: Sequence[bool], weights: np.ndarray) -> np.ndarray:
    """Area under the ROC curve of ``scores`` for binary ``labels`` with row multiplicities ``weights`` (B, N):
    (B,), each the Mann-Whitney AUC of the rows repeated as often as their weight (ties count half); NaN where
    one class has no weight."""
    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    pos, neg = s[y], s[~y]
    wins = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])  # (P, Q)
    w = np.asarray(weights, float)
    w_pos, w_neg = w[:, y], w[:, ~y]
    pairs = w_pos.sum(1) * w_neg.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.einsum("bp,pq,bq->b", w_pos, wins, w_neg) / pairs


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (Mann-Whitney; ties count half).
    NaN when one class is empty."""
    return float(weighted_auc(scores, labels, np.ones((1, len(scores))))[0])


def roc_curve(scores: Sequence[float], labels: Sequence[bool]) -> pd.DataFrame:
    """False and true positive rates at every threshold of ``scores`` (columns fpr, tpr)."""
    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    thresholds = np.r_[np.inf, np.unique(s)[::-1]]
    tpr = [(s[y] >= t).mean() if y.any() else np.nan for t in thresholds]
    fpr = [(s[~y] >= t).mean() if (~y).any() else np.nan for t in thresholds]
    return pd.DataFrame({"fpr": fpr, "tpr": tpr})


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    return float(pd.Series(list(x)).rank().corr(pd.Series(list(y)).rank()))


# --- the predictive study's summary: AUCs with intervals, LAR against random variants ---------------------

VARIANT_SOURCES = {"lar": "LAR", "noise": "random"}  # the study's columns ``{source}_loss`` and their names


def misses_a_member(study: pd.DataFrame) -> pd.Series:
    """The binary outcome the variants' loss should predict: the edit misses some held-out member (Unit < 1)."""
    return study.Unit < 1


def predictive_groups(study: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The study's rows per editor, then all of them as ``"pooled"``."""
    return [*study.groupby("method", sort=True), ("pooled", study)]


def auc_replicates(group: pd.DataFrame, source: str, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """The AUC of ``{source}_loss`` for :func:`misses_a_member` in each replicate of the crossed bootstrap over
    ``group``'s seeds and edits (:func:`asam_lib.evaluation.summaries.crossed_weights`; edits by case name, so pooled
    rows of one fact under several editors are resampled together): (n_boot,), NaN where a replicate holds one class.
    The same ``seed`` draws the same replicates for every ``source``, so differences of sources are paired."""
    seeds, cases = pd.Index(sorted(group.seed.unique())), pd.Index(sorted(group.case.unique()))
    seed_weights, case_weights = crossed_weights(len(seeds), len(cases), n_boot, seed)
    weights = seed_weights[:, seeds.get_indexer(group.seed)] * case_weights[:, cases.get_indexer(group.case)]
    return weighted_auc(group[f"{source}_loss"], misses_a_member(group), weights)


def interval95(replicates: np.ndarray) -> tuple[float, float]:
    """The 2.5% and 97.5% quantiles of the replicates that are defined (NaN if none is)."""
    kept = replicates[~np.isnan(replicates)]
    if len(kept) == 0:
        return float("nan"), float("nan")
    return float(np.quantile(kept, 0.025)), float(np.quantile(kept, 0.975))


def predictive_summary(study: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per editor and pooled (``method``), per kind of variants (``variants``: lar / noise): ``n_edits``,
    ``n_missing`` (edits missing a member), ``spearman_loss_vs_unit``, ``auc_loss_for_miss`` and its 95%
    interval ``auc_ci_low`` / ``auc_ci_high`` (crossed bootstrap over seeds and edits, :func:`auc_replicates`).
    ``study``: :func:`predictive_study`'s rows."""
    rows = []
    for method, group in predictive_groups(study):
        for source in VARIANT_SOURCES:
            low, high = interval95(auc_replicates(group, source, n_boot, seed))
            rows.append(
                {
                    "method": method,
                    "variants": source,
                    "n_edits": len(group),
                    "n_missing": int(misses_a_member(group).sum()),
                    "spearman_loss_vs_unit": spearman(group[f"{source}_loss"], group.Unit),
                    "auc_loss_for_miss": roc_auc(group[f"{source}_loss"], misses_a_member(group)),
                    "auc_ci_low": low,
                    "auc_ci_high": high,
                }
            )
    return pd.DataFrame(rows)


def predictive_paired(study: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """AUC of the LAR loss minus AUC of the random variants' loss on the same edits, per editor and pooled:
    ``method``, ``comparison`` ("LAR - random"), ``mean_diff`` and its 95% interval ``ci_low`` / ``ci_high`` (the
    same bootstrap replicates for both AUCs, :func:`auc_replicates`), ``n_edits``, ``n_seeds``."""
    lar, noise = VARIANT_SOURCES
    rows = []
    for method, group in predictive_groups(study):
        labels = misses_a_member(group)
        diff = roc_auc(group[f"{lar}_loss"], labels) - roc_auc(group[f"{noise}_loss"], labels)
        low, high = interval95(auc_replicates(group, lar, n_boot, seed) - auc_replicates(group, noise, n_boot, seed))
        rows.append(
            {
                "method": method,
                "comparison": f"{VARIANT_SOURCES[lar]} - {VARIANT_SOURCES[noise]}",
                "mean_diff": diff,
                "ci_low": low,
                "ci_high": high,
                "n_edits": len(group),
                "n_seeds": group.seed.nunique(),
            }
        )
    return pd.DataFrame(rows)


def roc_curves(study: pd.DataFrame) -> pd.DataFrame:
    """:func:`roc_curve` of each kind of variants' loss for :func:`misses_a_member`, per editor and pooled:
    columns method, variants, fpr, tpr."""
    curves = [
        roc_curve(group[f"{source}_loss"], misses_a_member(group)).assign(method=method, variants=source)
        for method, group in predictive_groups(study)
        for source in VARIANT_SOURCES
    ]
    return pd.concat(curves, ignore_index=True)[["method", "variants", "fpr", "tpr"]]


def lar_call_times(
    model, edited, unedited, embeds, batch, ks: Sequence[int], steps: Sequence[int], seed: int
) -> pd.DataFrame:
    """Wall-clock milliseconds of one LAR call (:func:`asam_lib.editors.lar.adversarial_variants`) on the edit input
    for every K in ``ks`` and T in ``steps``: rows K, columns T (this machine, one call each)."""
    timings = []
    for k in ks:
        for t in steps:
            start = time.perf_counter()
            adversarial_variants(
                model, edited, unedited, embeds, batch, LARConfig(k=k, steps=t), torch_generator(seed, "timing")
            )
            timings.append({"K": k, "T": t, "ms": 1000 * (time.perf_counter() - start)})
    return pd.DataFrame(timings).pivot(index="K", columns="T", values="ms")
