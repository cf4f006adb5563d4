"""The checks of make test-browser: a blank page fails, a rendered one passes; each figure of a playground edit is
checked for its size and for ink, and named when it did not render; the DevTools client."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tools.browser_check import (
    BrowserCheckError,
    DevTools,
    ShownFigure,
    blank_reason,
    changed_figures,
    figure_problem,
    ink_share,
)


def test_blank_and_missing_screenshots_are_reported(tmp_path):
    assert "no screenshot" in blank_reason(tmp_path / "missing.png")
    Image.new("RGB", (320, 200), "white").save(tmp_path / "white.png")
    assert "blank" in blank_reason(tmp_path / "white.png")


def test_a_page_with_text_passes(tmp_path):
    page = Image.new("RGB", (320, 200), "white")
    draw = ImageDraw.Draw(page)
    draw.rectangle([0, 0, 320, 24], fill=(60, 60, 60))
    for y in range(40, 190, 14):
        draw.text((10, y), "assert summary.loc['anchor', 'mean'] >= 0.85", fill="black")
    page.save(tmp_path / "page.png")
    assert blank_reason(tmp_path / "page.png") is None


class _FakeSocket:
    """Answers each command with the queued messages (events first, then the reply)."""

    def __init__(self, replies):
        self.sent, self.replies = [], list(replies)

    def send(self, text):
        self.sent.append(json.loads(text))

    def recv(self):
        return json.dumps(self.replies.pop(0))


def test_the_devtools_client_skips_events_and_names_errors():
    socket = _FakeSocket(
        [
            {"method": "Page.loadEventFired", "params": {}},
            {"id": 1, "result": {"result": {"value": 3}}},
            {"id": 2, "result": {"exceptionDetails": {"exception": {"description": "ReferenceError: x"}}}},
            {"id": 3, "error": {"message": "Cannot navigate"}},
        ]
    )
    page = DevTools(socket)
    assert page.evaluate("1 + 2") == 3
    assert socket.sent[0] == {
        "id": 1,
        "method": "Runtime.evaluate",
        "params": {"expression": "1 + 2", "awaitPromise": True, "returnByValue": True},
    }
    with pytest.raises(BrowserCheckError, match="ReferenceError: x"):
        page.evaluate("x")
    with pytest.raises(BrowserCheckError, match="Page.navigate: Cannot navigate"):
        page.call("Page.navigate", url="about:nothing")


def _figure_page(ink: float, box=(20, 30, 400, 100), size=(480, 200)) -> np.ndarray:
    """A white screenshot ``size`` (width, height) holding one figure box whose share ``ink`` of pixels is drawn."""
    page = np.full((size[1], size[0], 3), 255, dtype=np.uint8)
    x, y, w, h = box
    drawn = page[y : y + h, x : x + w].reshape(-1, 3)
    drawn[: int(round(ink * len(drawn)))] = (40, 90, 160)  # a stretch of ink in the figure's colour
    page[y : y + h, x : x + w] = drawn.reshape(h, w, 3)
    return page


def test_ink_share_counts_pixels_off_the_background():
    assert ink_share(_figure_page(0.0)) == 0.0
    page = _figure_page(0.25)
    assert ink_share(page) == pytest.approx(0.25 * 400 * 100 / (480 * 200))
    page[0, 0] = (250, 250, 250)  # anti-aliasing-sized differences are background
    assert ink_share(page) == pytest.approx(0.25 * 400 * 100 / (480 * 200))


def test_a_drawn_figure_of_the_right_size_passes():
    figure = ShownFigure("members", natural=(400, 100), box=(20, 30, 400, 100), room=844)
    assert figure_problem(figure, _figure_page(0.10)) is None
    scaled = ShownFigure("members", natural=(800, 200), box=(20, 30, 400, 100), room=400)  # fit to the area's width
    assert figure_problem(scaled, _figure_page(0.10)) is None
    rounded = ShownFigure("members", natural=(800, 200), box=(20, 30, 400.5, 100.75), room=400.5)  # sub-pixel layout
    assert figure_problem(rounded, _figure_page(0.10)) is None


@pytest.mark.parametrize(
    "figure, ink, expected",
    [
        (ShownFigure("metrics", (400, 100), (20, 30, 400, 100), 844), 0.002, "figure 'metrics' is blank: 0.2%"),
        (ShownFigure("spectrum", (0, 0), (20, 30, 0, 0), 844), 0.10, "figure 'spectrum' did not load"),
        (ShownFigure("members", (400, 100), (20, 30, 400, 20), 844), 0.10, "is shown at 400x20 px, not at the size"),
        (ShownFigure("members", (800, 200), (20, 30, 800, 200), 400), 0.10, "lies outside the 480x200 screenshot"),
        (ShownFigure("members", (800, 200), (20, 30, 440, 100), 440), 0.10, "(440x110 in the output area's 440 px)"),
    ],
)
def test_a_figure_that_did_not_render_is_named_with_the_reason(figure, ink, expected):
    assert expected in figure_problem(figure, _figure_page(ink))


def test_a_figure_drawn_differently_by_the_same_edit_is_named():
    assert changed_figures(["a", "b", "c"], ["a", "b", "c"]) == []
    assert changed_figures(["a", "b", "c"], ["a", "x", "c"]) == ["metrics"]
    assert changed_figures(["a", "b", "c"], ["a", "b"]) == ["3 images, then 2"]
