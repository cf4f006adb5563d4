"""The layout check every saved or shown figure passes (overlapping texts and texts off the canvas raise), the
shared labels of the tier panels, and figures made outside pyplot."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import pytest
from PIL import Image

from asam_lib.figures import plots


@pytest.fixture(autouse=True)
def _close_figures():
    plots.set_style()
    yield
    plt.close("all")


def _clean_figure():
    fig, axes = plt.subplots(1, 2, figsize=(7, 3))
    for ax in axes:
        ax.plot([0, 1, 2], [1, 0, 1], label="line")
        ax.plot([0, 1, 2], [0, 1, 0], label="other line")
        ax.set(xlabel="x (units)", ylabel="y (units)", title="a title")
        ax.legend(loc="upper center")
    axes[0].text(1, 0.5, "a note", ha="center")
    fig.suptitle("A figure that passes")
    fig.tight_layout()
    return fig


def test_a_clean_figure_passes():
    fig = _clean_figure()
    assert plots.layout_problems(fig) == []
    plots.check_layout(fig)


def test_every_problem_is_listed():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.text(0.2, 0.5, "first note", ha="center")
    ax.text(0.22, 0.5, "second note", ha="center")
    ax.text(0.8, 0.5, "third note", ha="center")
    ax.text(0.82, 0.5, "fourth note", ha="center")
    fig.tight_layout()
    assert len(plots.layout_problems(fig)) == 2
    with pytest.raises(plots.FigureLayoutError, match="first note.*second note.*; .*third note.*fourth note"):
        plots.check_layout(fig)


def test_a_log_axis_and_rotated_tick_labels_pass():
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    axes[0].semilogy([1, 10, 100, 1000, 1e5])
    axes[1].bar(range(6), range(6))
    axes[1].set_xticks(range(6), [f"a long category {k}" for k in range(6)], rotation=45, ha="right")
    fig.tight_layout()
    plots.check_layout(fig)


def test_two_texts_on_top_of_each_other_raise_and_are_named():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.text(0.5, 0.5, "first note", ha="center")
    ax.text(0.52, 0.5, "second note", ha="center")
    with pytest.raises(plots.FigureLayoutError, match="first note") as raised:
        plots.check_layout(fig)
    assert "second note" in str(raised.value) and "axes 1" in str(raised.value)


def test_overlapping_tick_labels_raise():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.set_xticks(range(6), [f"a long category {k}" for k in range(6)])
    fig.tight_layout()
    with pytest.raises(plots.FigureLayoutError, match="x tick label of axes 1"):
        plots.check_layout(fig)


def test_a_label_outside_the_canvas_raises():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1])
    fig.suptitle("a title above the canvas", y=1.08)
    with pytest.raises(plots.FigureLayoutError, match="'a title above the canvas' \\(suptitle\\) runs off"):
        plots.check_layout(fig)


def test_a_legend_over_the_title_raises():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1], label="a line with a long name")
    ax.set_title("the title of the plot")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 0.98))
    fig.tight_layout()
    with pytest.raises(plots.FigureLayoutError) as raised:
        plots.check_layout(fig)
    message = str(raised.value)
    assert "'the title of the plot' (title of axes 1)" in message
    assert "'a line with a long name' (legend entry of axes 1)" in message


def test_hidden_and_empty_texts_are_ignored():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.text(0.5, 0.5, "shown", ha="center")
    ax.text(0.5, 0.5, "hidden", ha="center", visible=False)
    ax.text(0.5, 0.5, "   ", ha="center")
    ax.set_title("")
    plots.check_layout(fig)


def test_save_and_show_check_the_layout(tmp_path):
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.set_xlabel("a label far too long for a figure this narrow, which runs off both of its sides")
    with pytest.raises(plots.FigureLayoutError, match="runs off"):
        plots.save(fig, "bad", folder=tmp_path)
    with pytest.raises(plots.FigureLayoutError, match="runs off"):
        plots.show(fig, "bad", folder=tmp_path, save=False)
    assert not list(tmp_path.iterdir())
    plots.show(_clean_figure(), "good", folder=tmp_path, save=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.pdf", "good.png"]


def test_image_grid_wraps_long_titles():
    images = [Image.new("RGB", (8, 8), colour) for colour in ("red", "green", "blue")]
    question = "please answer : what food is the object shown here fed ?"
    fig = plots.image_grid(images, ncols=3, titles=[f"image\n{question}"] * 3, cell=2.2, title="Three images")
    plots.check_layout(fig)
    assert all(len(line) < len(question) for ax in fig.axes for line in ax.get_title().split("\n"))


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def test_detached_figures_stay_out_of_pyplot_and_draw_the_same_pixels():
    images = [Image.new("RGB", (16, 16), colour) for colour in ("red", "green", "blue")]
    grid = dict(ncols=2, titles=["anchor: a", "text: b", "image: c"], row_labels=["before", "after"], title="a grid")
    managed = plots.image_grid(images, **grid)
    open_figures = plt.get_fignums()
    with plots.detached_figures():
        detached = plots.image_grid(images, **grid)
        fig, axes = plots.subplots(1, 2, figsize=(4, 2), width_ratios=[1, 3], squeeze=False)
    assert plt.get_fignums() == open_figures  # neither is registered with pyplot
    assert fig.get_size_inches().tolist() == [4, 2] and axes.shape == (1, 2)
    assert axes[0, 1].get_position().width > 2.5 * axes[0, 0].get_position().width
    assert _png(detached) == _png(managed)  # the same rcParams and an Agg canvas: the same bytes
    plots.check_layout(detached)  # the layout check draws a detached figure too
    assert plots.subplots(1, 1)[0].number in plt.get_fignums()  # outside the context: pyplot's figures again


def test_texts_of_an_inset_are_checked_and_named():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.text(0.75, 0.75, "a note under the inset", ha="center", transform=ax.transAxes)
    inset = ax.inset_axes((0.5, 0.5, 0.45, 0.45))
    inset.set_title("inset title", y=0.6)
    fig.tight_layout()
    with pytest.raises(plots.FigureLayoutError, match="title of axes 2"):
        plots.check_layout(fig)


def test_tier_labels_keep_the_shown_rows_in_reading_order():
    table = pd.DataFrame(
        {
            "tier": ["hard", "binary", "standard", "hard"],
            "metric": ["Unit", "I-Gen", "Rel", "Rel"],
            "value": [1, 2, 3, 4],
        }
    )
    labelled = plots.tier_labelled(table)
    assert labelled.label.tolist() == ["Unit\nhard", "I-Gen\nbinary", "Rel"]  # the hard tier has no Rel of its own
    order = list(plots.TIER_PANELS.values())
    lo, hi = plots.BINARY_SPAN
    assert [label for i, label in enumerate(order, start=0) if lo < i < hi] == ["T-Gen\nbinary", "I-Gen\nbinary"]


def _paired(rows: dict[str, tuple[float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"tier": "hard", "metric": "Unit", "comparison": name, "mean_diff": m, "ci_low": lo, "ci_high": hi}
            for name, (m, lo, hi) in rows.items()
        ]
    )


def test_a_clipped_forest_draws_an_outlier_as_an_arrow_with_its_value_and_keeps_the_small_effects_readable():
    paired = _paired({"small": (0.02, 0.0, 0.05), "collapse": (-0.7, -0.94, -0.44), "wide": (0.01, -0.3, 0.2)})
    fig = plots.paired_forest(paired, ["small", "collapse", "wide"], [("hard", "Unit", "Unit")], "t", clip=0.15)
    ax = fig.axes[0]
    assert ax.get_xlim() == pytest.approx((-0.1725, 0.1725)), "the axis spans the clip, not the outlier"
    assert [t.get_text() for t in ax.texts] == ["-0.70"], "the clipped mean's value is written beside its arrow"
    drawn = [x for line in ax.lines[:-1] for x in line.get_xdata()]  # the last line is the one at zero
    assert max(abs(x) for x in drawn) <= 1.1 * 0.15 + 1e-12, "every interval, point and arrow inside the axis"
    plots.check_layout(fig)
    unclipped = plots.paired_forest(paired, ["small", "collapse", "wide"], [("hard", "Unit", "Unit")], "t")
    assert unclipped.axes[0].get_xlim()[0] < -0.9 and not unclipped.axes[0].texts
    plt.close("all")


def test_metric_loss_term_and_member_kind_colours_are_no_methods_colour():
    from asam_lib.editors import methods

    taken = {c.lower() for c in methods.colours().values() if c.startswith("#")}
    assert not taken & {c.lower() for c in plots.QUANTITY_COLOURS}
    assert not taken & {c.lower() for c in plots.KIND_COLOURS.values()}, "a unit member's kind is no method"
    assert list(plots.quantity_colours(["a", "b"]).values()) == list(plots.QUANTITY_COLOURS[:2])
    with pytest.raises(ValueError, match="7 quantities"):
        plots.quantity_colours(list("abcdefg"))
