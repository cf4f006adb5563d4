"""The checks of make test-browser: a blank page fails, a rendered one passes; the DevTools client."""

from __future__ import annotations

import json

import pytest
from PIL import Image, ImageDraw

from tools.browser_check import BrowserCheckError, DevTools, blank_reason


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
