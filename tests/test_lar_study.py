"""The predictive study's summary (notebook 02 section 5): AUCs, their crossed-bootstrap intervals, the paired
difference LAR - random, and the ROC curves per editor and pooled, on small synthetic studies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from asam_lib.evaluation.summaries import crossed_weights
from asam_lib.experiments.lar_study import (
    auc_replicates,
    predictive_paired,
    predictive_summary,
    roc_auc,
    roc_curves,
    weighted_auc,
)


def synthetic_study(n_cases: int = 20, seeds=(0,), signal: float = 3.0) -> pd.DataFrame:
    """Two editors on the same cases: half the edits miss a member (Unit < 1); the log of the LAR loss is ``signal``
    higher on those (standard deviation 1), the random variants' loss is unrelated noise."""
    rng = np.random.default_rng(0)
    rows = []
    for method in ("A", "B"):
        for seed in seeds:
            for i in range(n_cases):
                misses = i % 2 == 0
                rows.append(
                    {
                        "method": method,
                        "case": f"c{i}",
                        "seed": seed,
                        "lar_loss": float(np.exp(rng.normal() + (signal if misses else 0.0))),  # CE: positive
                        "noise_loss": float(np.exp(rng.normal())),
                        "Unit": 0.75 if misses else 1.0,
                    }
                )
    return pd.DataFrame(rows)


def test_roc_auc_counts_ordered_pairs_and_ties_half():
    assert roc_auc([3, 4], [False, True]) == 1.0
    assert roc_auc([4, 3], [False, True]) == 0.0
    assert roc_auc([1, 1, 1], [True, False, False]) == 0.5
    assert np.isnan(roc_auc([1, 2], [True, True]))  # one class empty


def test_weighted_auc_is_the_auc_of_the_repeated_rows():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 5, 12).astype(float)  # ties on purpose
    labels = rng.random(12) < 0.5
    weights = rng.integers(0, 4, size=(6, 12))
    got = weighted_auc(scores, labels, weights)
    for b in range(6):
        expected = roc_auc(np.repeat(scores, weights[b]), np.repeat(labels, weights[b]))
        assert got[b] == pytest.approx(expected, nan_ok=True, abs=1e-12)


def test_auc_replicates_resample_seeds_and_cases_as_the_crossed_bootstrap_does():
    study = synthetic_study(n_cases=6, seeds=(0, 1))
    group = study[study.method == "A"]
    seed_w, case_w = crossed_weights(2, 6, n_boot=5, seed=0)
    got = auc_replicates(group, "lar", n_boot=5, seed=0)
    for b in range(5):
        w = seed_w[b, group.seed.to_numpy()] * case_w[b, group.case.str[1:].astype(int).to_numpy()]
        repeat = w.astype(int)
        expected = roc_auc(np.repeat(group.lar_loss, repeat), np.repeat(group.Unit < 1, repeat))
        assert got[b] == pytest.approx(expected, nan_ok=True, abs=1e-12)


def test_the_summary_gives_each_auc_its_interval_and_keeps_the_point_values():
    study = synthetic_study()
    summary = predictive_summary(study, n_boot=400).set_index(["method", "variants"])
    assert list(summary.index.get_level_values("method").unique()) == ["A", "B", "pooled"]
    for method, group in [*study.groupby("method"), ("pooled", study)]:
        for source in ("lar", "noise"):
            row = summary.loc[(method, source)]
            assert row.auc_loss_for_miss == roc_auc(group[f"{source}_loss"], group.Unit < 1)
            assert row.n_edits == len(group) and row.n_missing == (group.Unit < 1).sum()
            assert 0 <= row.auc_ci_low <= row.auc_ci_high <= 1
    # a strong signal (3 standard deviations) over 20 edits: LAR's interval clears chance by a wide margin
    assert (summary.xs("lar", level="variants").auc_ci_low > 0.7).all()


def test_the_paired_difference_uses_the_same_replicates_for_both_aucs():
    study = synthetic_study()
    paired = predictive_paired(study, n_boot=400).set_index("method")
    summary = predictive_summary(study, n_boot=400).set_index(["method", "variants"])
    for method in ["A", "B", "pooled"]:
        row = paired.loc[method]
        lar, noise = summary.loc[(method, "lar")], summary.loc[(method, "noise")]
        assert row.comparison == "LAR - random" and row.n_seeds == 1
        assert row.mean_diff == pytest.approx(lar.auc_loss_for_miss - noise.auc_loss_for_miss, abs=1e-12)
        assert row.ci_low > 0  # a 3-sigma signal against noise: the paired interval excludes zero
    # without a signal, the paired interval straddles zero (both losses noise)
    flat = predictive_paired(synthetic_study(signal=0.0), n_boot=400).set_index("method")
    assert flat.loc["pooled", "ci_low"] < 0 < flat.loc["pooled", "ci_high"]


def test_roc_curves_run_from_the_origin_to_one_one_per_editor_and_pooled():
    curves = roc_curves(synthetic_study(n_cases=8))
    assert set(curves.method) == {"A", "B", "pooled"} and set(curves.variants) == {"lar", "noise"}
    for _, curve in curves.groupby(["method", "variants"]):
        assert (curve.fpr.iloc[0], curve.tpr.iloc[0]) == (0.0, 0.0)
        assert (curve.fpr.iloc[-1], curve.tpr.iloc[-1]) == (1.0, 1.0)
        assert curve.fpr.is_monotonic_increasing and curve.tpr.is_monotonic_increasing


def test_the_figure_draws_the_pooled_and_per_editor_rocs_without_overlapping_labels():
    from asam_lib.figures import plots

    study = synthetic_study(n_cases=8)
    colours = {"A": "#1f77b4", "B": "#2ca02c"}
    fig = plots.predictive_value(study, predictive_summary(study, n_boot=50), roc_curves(study), colours, "#d62728")
    try:
        plots.check_layout(fig)
        pooled, per_editor = fig.axes[1], fig.axes[2]
        assert len(pooled.get_legend().get_texts()) == 2 and len(per_editor.get_legend().get_texts()) == 4
        assert all("[" in t.get_text() for t in per_editor.get_legend().get_texts())  # each AUC with its interval
    finally:
        plots.plt.close(fig)
