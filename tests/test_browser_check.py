"""The screenshot check of make test-browser: a blank page fails, a rendered one passes."""

from __future__ import annotations

from PIL import Image, ImageDraw

from asam_lib.browser_check import blank_reason


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
