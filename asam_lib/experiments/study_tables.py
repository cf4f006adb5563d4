"""The tables of notebook 04 (edit and evaluate), computed from the study's per-edit rows.

:func:`asam_lib.experiments.study.run_study` returns the rows (one per method, seed, case, tier, metric and protocol;
the sequential study's with the number of edits applied ``T``; one per evaluated unit member). The functions here
turn them into the tables the notebook prints, saves under ``results/`` and draws
(:mod:`asam_lib.figures.study_figures`); the summaries and the threshold checks themselves are
:mod:`asam_lib.evaluation.summaries`'. Each function is pure: same rows, same table.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import pandas as pd

from asam_lib.evaluation.harness import FIRING_METRICS
from asam_lib.evaluation.summaries import (
    SEQUENTIAL_TARGETS,
    distance_curve,
    paired_differences,
    primary_rows,
    sequential_target_checks,
    summary_over_edits,
)
from asam_lib.experiments.sensitivity import knob, with_default_settings

IMAGE_DISTANCE_EDGES = [0, 0.3, 0.4, 0.5, 0.6, 0.8, 1.5]  # notebook 04's image-distance bins
LATENT_QUANTILES = [0, 0.2, 0.4, 0.6, 0.8, 1]  # ... and its latent-distance quintiles


def interval_cells(table: pd.DataFrame, index: str, columns, signed: bool = False) -> pd.DataFrame:
    """``table``'s intervals as text cells ``"mean [low, high]"`` (3 decimals; ``signed``: with their sign, for
    differences), pivoted to ``index`` x ``columns``. The value is ``mean`` or, in a paired table, ``mean_diff``."""
    value = "mean_diff" if "mean_diff" in table else "mean"
    form = "{:+.3f}" if signed else "{:.3f}"
    cells = [
        f"{form.format(v)} [{form.format(lo)}, {form.format(hi)}]"
        for v, lo, hi in zip(table[value], table.ci_low, table.ci_high)
    ]
    return table.assign(cell=cells).pivot(index=index, columns=columns, values="cell")


def binary_overstatement(means: pd.DataFrame) -> pd.DataFrame:
    """Per (task, method): the binary I-Gen, and how far it is above the standard tier's (the unit's) and the hard
    tier's I-Gen. ``means``: mean per metric (columns), indexed by (task, tier, method)."""
    binary = means.xs("binary", level="tier")["I-Gen"]
    return pd.DataFrame(
        {
            "binary I-Gen": binary,
            "- unit I-Gen": binary - means.xs("standard", level="tier")["I-Gen"],
            "- hard I-Gen": binary - means.xs("hard", level="tier")["I-Gen"],
        }
    )


def per_edit_mean(rows: pd.DataFrame, group: str = "main", metric: str | None = None) -> pd.DataFrame:
    """Mean per edit of ``metric`` (None: every row, e.g. the wall-clock table) in ``group``: tasks x methods."""
    rows = rows[rows.group == group]
    if metric is not None:
        rows = rows[rows.metric == metric]
    return rows.groupby(["task", "method"]).value.mean().unstack()


def steps_table(single: pd.DataFrame) -> pd.DataFrame:
    """The cost of an edit, exact, of every editor of the main table (its same-budget control too) and of the
    ablations: columns group, task, method, ``steps`` (optimiser steps per edit, mean), ``forward_passes``
    (passes through the edit block per edit in the training loop, mean;
    :func:`asam_lib.evaluation.harness.edit_and_evaluate`) and ``n_edits``."""
    keys = ["group", "task", "method"]
    rows = single[single.group.isin(["main", "ablation"])]
    steps = rows[rows.metric == "steps"].groupby(keys).value.agg(["mean", "count"])
    passes = rows[rows.metric == "forward passes"].groupby(keys).value.mean().rename("forward_passes")
    table = steps.rename(columns={"mean": "steps", "count": "n_edits"}).join(passes)
    return table[["steps", "forward_passes", "n_edits"]].reset_index()


def steps_on_edits(single: pd.DataFrame, edits: pd.DataFrame, task: str, order: Sequence[str]) -> pd.Series:
    """Mean optimiser steps per edit of each method (in ``order``) of the main and ablation runs on ``task``,
    over the edits ``edits`` (columns seed, case) only."""
    steps = single[(single.metric == "steps") & single.group.isin(["main", "ablation"]) & (single.task == task)]
    return steps.merge(edits, on=["seed", "case"]).groupby("method").value.mean().reindex(order)


def headroom_table(single: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """The development edits' hard-tier unit consistency (known members) of the ``"headroom"`` group, per method
    in ``names``: columns ``Unit (hard)`` (mean) and ``n_edits``."""
    dev = primary_rows(single[single.group == "headroom"])
    return (
        dev[(dev.tier == "hard") & (dev.metric == "Unit")]
        .groupby("method")
        .value.agg(["mean", "count"])
        .reindex(list(names))
        .rename(columns={"mean": "Unit (hard)", "count": "n_edits"})
    )


def distance_curves(members: pd.DataFrame, methods: Sequence[str], task: str = "vqa"):
    """(latent, image): the main run's unit consistency on ``task`` by distance bin
    (:func:`asam_lib.evaluation.summaries.distance_curve`) for ``methods``. Latent: the standard tier's members in
    quintiles of their latent distance; image: the image and both-kind members of both tiers in the fixed
    :data:`IMAGE_DISTANCE_EDGES`."""
    main = members[(members.group == "main") & (members.task == task) & members.method.isin(methods)]
    standard = main[main.tier == "standard"]
    quantiles = standard[standard.kind != "anchor"].latent_distance.quantile(LATENT_QUANTILES)
    edges = sorted(set(quantiles.round(4)))
    latent = distance_curve(standard, "latent_distance", edges)
    image = distance_curve(main[main.kind.isin(["image", "both"])], "image_distance", IMAGE_DISTANCE_EDGES)
    return latent, image


def sequential_tables(
    sequential: pd.DataFrame, paired: pd.DataFrame, checkpoints: Sequence[int], n_every_seed: int, option: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary, checks) of the sequential study: each metric's mean and 95% CI per (method, T) over every (seed,
    earlier edit), and ``option``'s thresholds (:func:`asam_lib.evaluation.summaries.sequential_target_checks`, with its
    single-edit cost read from ``paired``, the ablations' paired table) at the largest checkpoint that every seed
    reaches, at most :data:`asam_lib.evaluation.summaries.SEQUENTIAL_TARGETS`'s ``at_T``."""
    summary = summary_over_edits(primary_rows(sequential.astype({"T": int})), by=("method", "T", "metric"))
    at_T = judged_checkpoint(checkpoints, n_every_seed)
    checks = sequential_target_checks(summary, paired, option, targets=replace(SEQUENTIAL_TARGETS, at_T=at_T))
    return summary, checks


def judged_checkpoint(checkpoints: Sequence[int], n_every_seed: int) -> int:
    """The number of edits applied at which the sequential thresholds are judged: the largest of ``checkpoints``
    that every seed reaches (``n_every_seed``), at most :data:`asam_lib.evaluation.summaries.SEQUENTIAL_TARGETS`'s
    ``at_T``."""
    return max(t for t in checkpoints if t <= min(n_every_seed, SEQUENTIAL_TARGETS.at_T))


def firing_summary(sequential: pd.DataFrame) -> pd.DataFrame:
    """Where the patches fire, per (method, T): mean and 95% CI of the firing rows
    (:data:`asam_lib.evaluation.harness.FIRING_METRICS`), the misfire rate turned into patches firing per input (times
    T)."""
    firing = sequential[sequential.metric.isin(FIRING_METRICS)]
    firing = firing.assign(value=firing.value.where(firing.metric != "misfire rate", firing.value * firing["T"]))
    return summary_over_edits(firing, by=("method", "T", "metric"))


def sensitivity_comparisons(
    single: pd.DataFrame, settings: Sequence[str], task: str = "vqa"
) -> tuple[pd.DataFrame, int]:
    """(paired differences, edits): the sensitivity study on ``task``
    (:func:`asam_lib.evaluation.summaries.paired_differences`), each setting in ``settings`` (names ``"knob=value"``,
    :func:`asam_lib.experiments.sensitivity.sensitivity_editors`) minus ASAM on the same edits and each ``"Patch
    layer=value"`` minus Patch (the main run supplies ASAM and Patch), and the number of (seed, case) edits the settings
    ran."""
    rows = primary_rows(pd.concat([single[single.group == "sensitivity"], single[single.group == "main"]]))
    rows = rows[rows.task == task]
    pairs = [(name, "Patch" if name.startswith("Patch") else "ASAM") for name in settings]
    return paired_differences(rows, pairs), rows[rows.method.isin(list(settings))].groupby(["seed", "case"]).ngroups


def wall_clock(timings: pd.DataFrame, methods: Sequence[str]) -> tuple[pd.DataFrame, pd.Series]:
    """(seconds per edit of the main run, tasks x ``methods``; ASAM's seconds per edit at each setting of the
    sensitivity knobs K and T, the default's taken from the main run) from the wall-clock ``timings``."""
    sensitivity = with_default_settings(timings[timings.group == "sensitivity"], timings[timings.group == "main"])
    sensitivity[["knob", "setting"]] = sensitivity.method.map(knob).tolist()
    growth = sensitivity[sensitivity.knob.isin(["K", "T"])].groupby(["knob", "setting"]).value.mean()
    return per_edit_mean(timings)[list(methods)], growth
