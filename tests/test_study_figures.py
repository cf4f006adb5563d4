"""Notebook 04's figures drawn from small tables: each passes the layout check, the distance figure writes each
latent bin's number of edits, and the coverage panel spans its data instead of 0-1."""

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from asam_lib.figures import plots
from asam_lib.figures.study_figures import (
    distance_figure,
    edits_per_bin,
    firing_figure,
    main_table_figure,
    sequential_figure,
    share_range,
    steps_figure,
)

COLOURS = {"Patch": "#1f77b4", "ASAM": "#d62728"}


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _lines(metrics, values):
    rows = [
        {"method": m, "T": t, "metric": metric, "mean": v, "ci_low": v - 0.01, "ci_high": v + 0.01}
        for metric in metrics
        for m in COLOURS
        for t, v in zip([1, 5, 10], values)
    ]
    return pd.DataFrame(rows)


def test_the_coverage_panel_spans_its_intervals_not_zero_to_one():
    summary = pd.concat([_lines(["misfire rate"], [0.1, 0.5, 1.2]), _lines(["own patch fires"], [0.97, 0.98, 0.99])])
    fig = firing_figure(summary, list(COLOURS), COLOURS)
    low, high = fig.axes[1].get_ylim()
    assert 0.9 < low < 0.96 and 1.0 <= high <= 1.01  # around 0.96-1.0 (the intervals), not 0-1.05
    plots.check_layout(fig)


def test_share_range_widens_a_flat_line_downwards_and_stays_within_the_shares():
    low, high = share_range(pd.DataFrame({"ci_low": [1.0], "ci_high": [1.0]}))  # every member covered
    assert low == pytest.approx(0.945) and high == pytest.approx(1.005)  # 0.95-1.0 with a 10% margin
    low, high = share_range(pd.DataFrame({"ci_low": [0.5, 0.6], "ci_high": [0.7, 0.9]}))
    assert low == pytest.approx(0.46) and high == pytest.approx(0.94)
    assert share_range(pd.DataFrame({"ci_low": [0.0], "ci_high": [1.0]})) == (0.0, 1.1)


def test_the_distance_figure_writes_each_latent_bins_number_of_edits():
    curve = pd.DataFrame(
        {
            "method": ["Patch", "Patch", "ASAM", "ASAM"] * 2,
            "seed": [0] * 4 + [1] * 4,
            "distance": [0.1, 0.4] * 4,
            "exact": [1.0, 0.5, 1.0, 0.9] * 2,
            "n_edits": [3, 2, 3, 2, 4, 1, 4, 1],
        }
    )
    assert edits_per_bin(curve).to_dict() == {0.1: 7, 0.4: 3}  # summed over seeds, one method's
    fig = distance_figure(curve, curve.drop(columns="n_edits"), list(COLOURS), COLOURS)
    assert fig._suptitle.get_text().endswith("(edits per latent bin: 7, 3)")  # nearest bin first
    plots.check_layout(fig)


def test_the_other_figures_draw_every_method_and_pass_the_layout_check():
    summary = pd.DataFrame(
        [
            {"task": "vqa", "tier": t, "metric": m, "method": method, "mean": 0.8, "ci_low": 0.7, "ci_high": 0.9}
            for t, m in plots.TIER_PANELS
            for method in COLOURS
        ]
    )
    steps = pd.DataFrame({"task": "vqa", "method": ["Patch", "ASAM"] * 3, "value": [10.0, 16.0] * 3})
    sequential = _lines(["Rel", "TI-Gen", "T-Loc", "I-Loc"], [1.0, 0.9, 0.8])
    for fig in [
        main_table_figure(summary, ["vqa"], list(COLOURS), COLOURS),
        sequential_figure(sequential, list(COLOURS), COLOURS, "a title"),
        steps_figure(steps, list(COLOURS), COLOURS),
    ]:
        plots.check_layout(fig)
        labels = {text for ax in fig.axes for text in ax.get_legend_handles_labels()[1]}
        assert set(COLOURS) <= labels
