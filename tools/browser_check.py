"""Open the notebooks in JupyterLab in headless Chromium, press the playground's Edit button, keep
screenshots: ``make test-browser``.

Starts JupyterLab on a free localhost port with a random token, serving a temporary copy of the notebooks (a
browser run never saves into ``notebooks/``), and headless Chromium with its DevTools protocol on another
free port. Through that protocol (:class:`DevTools`, a small client over ``websocket-client``, which
``jupyter_server`` already depends on) it

- opens each notebook and screenshots it once its cells are rendered;
- for the playground (``--edit``), runs every cell, fails if one raised, presses the **Edit** button (the
  notebook's method, ASAM), waits for the edit's result and its figures in the widget's output area and
  screenshots them; then drives the other controls as a user would: chooses another method in the method menu
  (:data:`SECOND_METHOD`), checks that exactly the sliders that method does not read are greyed out
  (:func:`asam_lib.figures.playground.active_sliders`), types a new K into its slider's readout, presses **Edit** again
  and checks that result and its figures too. Each edit is made twice: the second must show byte-identical
  figures (an edit is deterministic; a figure drawn wrong once, by a race, differs).

It fails if a screenshot is missing or blank (nearly one colour, which is what a page that did not render
looks like), a cell raised, an edit showed no result, a slider is greyed out when it should not be (or the
other way round), or a figure of an edit did not render: for each image in the widget's output area
(:data:`asam_lib.figures.playground.FIGURES`, in order) its box in the screenshot must be inside the screenshot, have
the size of the PNG it shows (scaled down to the output area's width, as JupyterLab does) and not be blank
(:func:`figure_problem`). Screenshots and the server's log go to ``build/browser/``. Needs a Chromium binary
(Debian: ``apt-get install chromium``); not part of ``make test``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from asam_lib.common import paths
from asam_lib.figures.playground import FIGURES, SLIDERS, active_sliders
from tools.run_notebooks import QUIET_ENV

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
WINDOW = (1280, 900)
EDIT_WINDOW = (1280, 1400)  # tall enough for the playground's widgets, its result and its three figures
SECOND_METHOD, SECOND_K = "Patch", 2  # the second edit: another method, and K typed into its slider
FIGURE_INK = 0.05  # a drawn figure has at least this share of pixels off its background (see figure_problem)
BOX_SLACK_PX = 2.0  # CSS layout rounds a scaled image's box to sub-pixels; 2 px covers it with room to spare
LAB_SETTINGS = {  # no news pop-up over the screenshots
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"},
}


def free_port() -> int:
    """A TCP port on localhost that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(url: str, timeout_s: float = 90) -> None:
    """Poll ``url`` until it answers 200, or raise TimeoutError."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"no answer from {url.split('?')[0]} within {timeout_s:.0f} s")


def blank_reason(png: Path) -> str | None:
    """Why the screenshot ``png`` looks blank (None if it shows something)."""
    if not png.exists() or png.stat().st_size == 0:
        return f"no screenshot at {png}"
    pixels = np.asarray(Image.open(png).convert("L"), dtype=np.float32)
    dark = float((pixels < 128).mean())  # share of dark pixels: text, icons, toolbars
    if pixels.std() < 8 or dark < 0.002:
        return f"screenshot {png.name} is blank (pixel std {pixels.std():.1f}, {dark:.2%} dark pixels)"
    return None


@dataclass(frozen=True)
class ShownFigure:
    """One image of the widget's output area as the browser shows it: the figure's name, the size of its PNG
    (``natural``, pixels), its box on the page (``box``: x, y, width, height in CSS pixels, which are screenshot
    pixels at scale 1) and the width the output area gives it (``room``)."""

    name: str
    natural: tuple[int, int]
    box: tuple[float, float, float, float]
    room: float


def ink_share(pixels: np.ndarray) -> float:
    """Share of the pixels of ``pixels`` (H, W, 3) that differ from its most common colour by more than 24 levels
    in some channel (anti-aliasing and JPEG-free PNG noise stay below that)."""
    flat = pixels.reshape(-1, pixels.shape[-1]).astype(np.int16)
    colours, counts = np.unique(flat, axis=0, return_counts=True)
    return float((np.abs(flat - colours[counts.argmax()]).max(axis=1) > 24).mean())


def figure_problem(figure: ShownFigure, screenshot: np.ndarray) -> str | None:
    """Why ``figure`` did not render in ``screenshot`` (H, W, 3), or None: its PNG did not load, its box lies
    (partly) outside the screenshot, the box has not the PNG's size (scaled down to ``room``, aspect kept, within
    :data:`BOX_SLACK_PX`), or the box is blank: less than :data:`FIGURE_INK` of its pixels off the background.
    In JupyterLab the playground's figures have 10% (spectrum), 22-26% (metrics) and 55% (members) of their pixels
    off white; figures whose drawing failed showed 0-2.3% (a stray title, tick labels or one image), so 5% sits a
    factor of two from both. A figure drawn only in part can pass; the repeated edit of :func:`drive_playground`
    catches that."""
    name = f"figure {figure.name!r}"
    width, height = figure.natural
    if width == 0 or height == 0:
        return f"{name} did not load (its image has no pixels)"
    x, y, w, h = figure.box
    if x < 0 or y < 0 or x + w > screenshot.shape[1] + BOX_SLACK_PX or y + h > screenshot.shape[0] + BOX_SLACK_PX:
        return (
            f"{name} lies outside the {screenshot.shape[1]}x{screenshot.shape[0]} screenshot (box at {x:.0f},{y:.0f}, "
            f"{w:.0f}x{h:.0f})"
        )
    shown_width = min(width, figure.room)
    shown_height = height * shown_width / width
    if abs(w - shown_width) > BOX_SLACK_PX or abs(h - shown_height) > BOX_SLACK_PX:
        return (
            f"{name} is shown at {w:.0f}x{h:.0f} px, not at the size of its {width}x{height} image "
            f"({shown_width:.0f}x{shown_height:.0f} in the output area's {figure.room:.0f} px)"
        )
    inside = screenshot[int(np.ceil(y)) : int(y + h), int(np.ceil(x)) : int(x + w)]
    ink = ink_share(inside)
    if ink < FIGURE_INK:
        return (
            f"{name} is blank: {ink:.1%} of its {w:.0f}x{h:.0f} px differ from its background "
            f"(a drawn figure has at least {FIGURE_INK:.0%})"
        )
    return None


class BrowserCheckError(RuntimeError):
    """A page that did not render, a cell that raised, or an edit that showed no result."""


class DevTools:
    """A minimal Chrome DevTools protocol client on one page: commands, JavaScript, screenshots."""

    def __init__(self, socket_):
        self.socket, self.next_id = socket_, 0

    def call(self, method: str, **params) -> dict:
        """Send one command and return its result (events arriving meanwhile are skipped)."""
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise BrowserCheckError(f"{method}: {message['error'].get('message', message['error'])}")
                return message.get("result", {})

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserCheckError(
                f"JavaScript error: {details.get('exception', {}).get('description', details.get('text'))}"
            )
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout_s: float = 120, poll_s: float = 0.5):
        """Poll a JavaScript expression until it is truthy; return its value or raise naming ``what``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(poll_s)
        raise BrowserCheckError(f"timed out after {timeout_s:.0f} s waiting for {what}")

    def screenshot(self, png: Path, size: tuple[int, int]) -> Path:
        """A PNG of the page at ``size`` (width, height) in CSS pixels."""
        self.call(
            "Emulation.setDeviceMetricsOverride", width=size[0], height=size[1], deviceScaleFactor=1, mobile=False
        )
        time.sleep(1.0)  # let the layout settle at the new size
        png.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return png


def _stop(process: subprocess.Popen) -> None:
    """End ``process`` and the processes it started (its own session), politely first."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@contextmanager
def lab_server(notebooks: list[Path], out: Path) -> Iterator[tuple[str, str]]:
    """JupyterLab serving copies of ``notebooks`` in a temporary folder; yields (base URL, token).

    The Lab app is exposed to page scripts (``window.jupyterapp``), settings and workspaces live in the
    temporary folder, and progress bars are off in its kernels.
    """
    port, token = free_port(), secrets.token_hex(16)
    root_flag = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    with tempfile.TemporaryDirectory() as tmp:
        root, settings = Path(tmp) / "root", Path(tmp) / "settings"
        for notebook in notebooks:
            target = root / notebook.resolve().relative_to(paths.REPO_ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(notebook, target)
        for name, values in LAB_SETTINGS.items():
            (settings / name).parent.mkdir(parents=True, exist_ok=True)
            (settings / name).write_text(json.dumps(values))
        command = [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            f"--ServerApp.port={port}",
            "--ServerApp.ip=127.0.0.1",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.expose_app_in_browser=True",
            f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={Path(tmp) / 'workspaces'}",
            *root_flag,
        ]
        with open(out / "jupyterlab.log", "w") as log:
            server = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **QUIET_ENV}, start_new_session=True
            )
            try:
                base = f"http://127.0.0.1:{port}"
                wait_for_server(f"{base}/api/status?token={token}")
                yield base, token
            finally:
                _stop(server)


@contextmanager
def chromium() -> Iterator[DevTools]:
    """Headless Chromium with its DevTools protocol on a free port; yields a client on its page."""
    import websocket  # websocket-client, a dependency of jupyter_server

    browser = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if browser is None:
        raise SystemExit("test-browser: no Chromium found (install it: apt-get install chromium)")
    port = free_port()
    with tempfile.TemporaryDirectory() as profile:
        command = [
            browser,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--hide-scrollbars",
            "--disable-breakpad",
            f"--remote-debugging-port={port}",
            f"--user-data-dir={profile}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            "about:blank",
        ]
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        try:
            wait_for_server(f"http://127.0.0.1:{port}/json/version", timeout_s=30)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as response:
                page = next(t for t in json.load(response) if t["type"] == "page")
            connection = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
            try:
                yield DevTools(connection)
            finally:
                connection.close()
        finally:
            _stop(process)


def _panel(relative: str) -> str:
    """JavaScript: the open notebook panel of ``relative`` (a path under the served root), or undefined."""
    path = json.dumps(relative)
    return f"[...window.jupyterapp.shell.widgets('main')].find(w => w.context && w.context.path === {path})"


def open_notebook(page: DevTools, base: str, token: str, notebook: Path) -> str:
    """Load ``notebook`` in Lab (fresh workspace) and wait until its cells are rendered; return its relative path."""
    relative = notebook.resolve().relative_to(paths.REPO_ROOT).as_posix()
    page.call("Page.enable")
    page.call("Page.navigate", url=f"{base}/lab/tree/{relative}?reset&token={token}")
    page.wait_for(
        f"window.jupyterapp && ({_panel(relative)}) !== undefined && "
        f"({_panel(relative)}).content.widgets.length > 0 && document.querySelectorAll('.jp-Cell').length > 0",
        f"{notebook.name} to render in JupyterLab",
        timeout_s=120,
    )
    time.sleep(2.0)  # Markdown and maths typeset asynchronously
    return relative


def run_all(page: DevTools, relative: str, timeout_s: float = 600) -> None:
    """Run every cell of the open notebook ``relative``; raise naming the first cell that raised."""
    panel = _panel(relative)
    page.wait_for(f"({panel}).sessionContext.session?.kernel?.status === 'idle'", "the kernel to start", timeout_s=120)
    page.evaluate(f"window.jupyterapp.shell.activateById(({panel}).id)")
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells'), true")  # not awaited: polled below
    progress = f"""(() => {{
        const cells = ({panel}).content.widgets.filter(c => c.model.type === 'code');
        for (const [i, c] of cells.entries()) {{
            const error = c.model.outputs.toJSON().find(o => o.output_type === 'error');
            if (error) return {{error: `code cell ${{i + 1}}: ${{error.ename}}: ${{error.evalue}}`}};
        }}
        const done = cells.every(c => c.model.executionCount !== null)
            && ({panel}).sessionContext.session.kernel.status === 'idle';
        return done ? {{ran: cells.length}} : null;
    }})()"""
    status = page.wait_for(progress, "every cell to run", timeout_s=timeout_s)
    if "error" in status:
        raise BrowserCheckError(f"{relative}: {status['error']}")


BUTTON = "[...document.querySelectorAll('.jupyter-widgets button')].find(b => b.textContent.trim() === 'Edit')"
AREA = "document.querySelector('.jupyter-widgets.widget-output')"  # the playground's output area


def _control(kind: str, label: str) -> str:
    """JavaScript: the widget of class ``kind`` (``widget-dropdown``, ``widget-slider``) labelled ``label``."""
    return (
        f"[...document.querySelectorAll('.jupyter-widgets.{kind}')]"
        f".find(w => w.querySelector('.widget-label')?.textContent.trim() === {json.dumps(label)})"
    )


GREYED = (  # JavaScript: the labels of the greyed-out (disabled) sliders, sorted
    "[...document.querySelectorAll('.jupyter-widgets.widget-slider')]"
    ".filter(w => w.querySelector('.slider')?.hasAttribute('disabled')"
    " || w.querySelector('.widget-readout')?.contentEditable === 'false')"
    ".map(w => w.querySelector('.widget-label').textContent.trim()).sort()"
)


def expect_greyed(page: DevTools, method: str, timeout_s: float = 30) -> None:
    """Wait until exactly the sliders ``method`` does not read are greyed out; raise naming both sets if not."""
    expected = sorted(set(SLIDERS) - set(active_sliders(method)))
    try:
        page.wait_for(
            f"JSON.stringify({GREYED}) === {json.dumps(json.dumps(expected, separators=(',', ':')))}",
            f"the sliders of {method}",
            timeout_s=timeout_s,
        )
    except BrowserCheckError:
        raise BrowserCheckError(
            f"with method {method} the greyed-out sliders are {page.evaluate(GREYED)}, expected {expected}"
        ) from None


def choose_method(page: DevTools, method: str) -> None:
    """Choose ``method`` in the playground's method menu as a user's pick does: set the value and fire a
    ``change`` event that bubbles (the widget listens for it on its root element)."""
    select = f"({_control('widget-dropdown', 'method')}).querySelector('select')"
    page.evaluate(
        f"{select}.value = {json.dumps(method)}; {select}.dispatchEvent(new Event('change', {{bubbles: true}})); true"
    )


def type_into_slider(page: DevTools, label: str, value: float) -> None:
    """Type ``value`` into the readout of the slider ``label`` and press Enter (a real key event); wait until the
    slider holds it."""
    slider = _control("widget-slider", label)
    page.evaluate(
        f"(() => {{ const r = ({slider}).querySelector('.widget-readout'); r.focus(); r.textContent = "
        f"{json.dumps(str(value))}; return true; }})()"
    )
    for kind in ("keyDown", "keyUp"):
        page.call("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter", windowsVirtualKeyCode=13)
    page.wait_for(
        f"Number(({slider}).querySelector('[role=slider]').getAttribute('aria-valuenow')) === {value}",
        f"slider {label} to hold {value}",
        timeout_s=30,
    )
    page.evaluate("document.activeElement?.blur(); true")  # no focus ring in the screenshot


def press_edit(page: DevTools, method: str, timeout_s: float = 600) -> str:
    """Press Edit and wait until the output area shows the ``method`` edit's result, the button is back and every
    image in the area has loaded; scroll the playground to the top of the window; return the area's text."""
    page.wait_for(f"{BUTTON} !== undefined", "the playground's Edit button", timeout_s=60)
    stale = f"{AREA}?.querySelectorAll('.jp-OutputArea-child').forEach(c => c.dataset.stale = 'yes')"
    page.evaluate(f"{stale}; {BUTTON}.scrollIntoView({{block: 'start'}}); {BUTTON}.click(); true")
    head = f"PlaygroundResult({method} edit"
    text = page.wait_for(  # the outputs of an earlier edit are marked stale: wait until this edit's replace them
        f"(() => {{ const a = {AREA}; if (!a || a.querySelector('[data-stale]')) return null; "
        "if (a.innerText.includes('cannot edit')) return a.innerText; "
        f"return a.innerText.includes({json.dumps(head)}) && {BUTTON} !== undefined && !{BUTTON}.disabled "
        f"&& [...a.querySelectorAll('img')].every(i => i.complete) ? a.innerText : null; }})()",
        f"the {method} edit's result and figures",
        timeout_s=timeout_s,
    )
    if head not in text:
        raise BrowserCheckError(f"the {method} edit showed no result: {text.strip()[:300]}")
    page.evaluate("document.querySelector('.jupyter-widgets.widget-vbox')?.scrollIntoView({block: 'start'}); true")
    time.sleep(1.0)  # the page scrolled: let it lay out before the screenshot
    return text


def shown_figures(page: DevTools) -> list[ShownFigure]:
    """The images of the playground's output area, named by :data:`asam_lib.figures.playground.FIGURES` in order."""
    shown = page.evaluate(
        f"[...{AREA}.querySelectorAll('img')].map(i => {{ const b = i.getBoundingClientRect(), "
        "p = i.parentElement, s = getComputedStyle(p); return {natural: [i.naturalWidth, i.naturalHeight], "
        "box: [b.x, b.y, b.width, b.height], "
        "room: p.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight)}; })"
    )
    names = [*FIGURES, *(f"image {k + 1}" for k in range(len(FIGURES), len(shown)))]
    return [ShownFigure(n, tuple(f["natural"]), tuple(f["box"]), f["room"]) for n, f in zip(names, shown)]


def figure_problems(figures: list[ShownFigure], png: Path) -> list[str]:
    """What is wrong with the figures an edit shows in the screenshot ``png`` (empty: all rendered)."""
    problems = []
    if len(figures) != len(FIGURES):
        problems.append(
            f"the output area shows {len(figures)} images, not the {len(FIGURES)} figures of an edit "
            f"({', '.join(FIGURES)})"
        )
    screenshot = np.asarray(Image.open(png).convert("RGB"))
    problems += [p for f in figures if (p := figure_problem(f, screenshot))]
    return [f"{p} (screenshot {png.name})" for p in problems]


def figure_images(page: DevTools) -> list[str]:
    """The image data (data URLs) of the figures in the playground's output area, in order."""
    return page.evaluate(f"[...{AREA}.querySelectorAll('img')].map(i => i.src)")


def changed_figures(first: list[str], again: list[str]) -> list[str]:
    """The figures (by :data:`asam_lib.figures.playground.FIGURES` name) whose images differ between two edits of the
    same choice; an edit is deterministic, so a figure that changes was drawn wrong in one of them."""
    if len(first) != len(again):
        return [f"{len(first)} images, then {len(again)}"]
    return [name for name, a, b in zip(FIGURES, first, again) if a != b]


def drive_playground(page: DevTools, relative: str, out: Path, stem: str) -> list[str]:
    """Run every cell; edit with the widget's method and check the screenshot and its figures, twice (an edit is
    deterministic, so the figures must come back byte-identical); choose :data:`SECOND_METHOD` in the method menu
    (its sliders greyed out as :func:`asam_lib.figures.playground.active_sliders` says), type K = :data:`SECOND_K` into
    the K slider, and edit and check twice again. Return the failures."""
    run_all(page, relative)
    first = page.evaluate(f"({_control('widget-dropdown', 'method')}).querySelector('select').value")
    expect_greyed(page, first)
    failures = []
    for method in (first, SECOND_METHOD):
        if method != first:
            choose_method(page, method)
            expect_greyed(page, method)
            type_into_slider(page, "K", SECOND_K)
        previous = None
        for suffix in ("", "_again"):
            start = time.perf_counter()
            text = press_edit(page, method)
            print(
                f"   {method} edit in the browser ({time.perf_counter() - start:.0f} s):\n      "
                + "\n      ".join(text.strip().splitlines()[:3])
            )
            problems = []
            if method != first and f"K={SECOND_K}" not in text:
                problems.append(f"the {method} edit did not use K = {SECOND_K} typed into its slider")
            images = figure_images(page)
            changed = changed_figures(previous, images) if previous is not None else []
            if changed:
                problems.append(f"the same {method} edit twice showed different figures: {', '.join(changed)}")
            previous = images
            figures = shown_figures(page)
            name = f"{stem}_after_edit{'' if method == first else '_' + method}{suffix}.png"
            png = page.screenshot(out / name, EDIT_WINDOW)
            failures += _report(
                png, f"{method} edit, its {len(figures)} figures", problems + figure_problems(figures, png)
            )
    return failures


def check(notebooks: list[Path], edit: Path | None, out: Path) -> list[str]:
    """Screenshot each notebook (and the playground after two edits); return the failures (empty: all passed)."""
    out = paths.ensure(out)
    failures = []
    opened = [nb for nb in notebooks if edit is None or nb.resolve() != edit.resolve()]
    with lab_server(opened + ([edit] if edit else []), out) as (base, token), chromium() as page:
        for notebook in opened:
            open_notebook(page, base, token, notebook)
            png = page.screenshot(out / f"{notebook.stem}.png", WINDOW)
            failures += _report(png, "opened")
        if edit is not None:
            try:
                relative = open_notebook(page, base, token, edit)
                page.call(
                    "Emulation.setDeviceMetricsOverride",
                    width=EDIT_WINDOW[0],
                    height=EDIT_WINDOW[1],
                    deviceScaleFactor=1,
                    mobile=False,
                )
                failures += drive_playground(page, relative, out, edit.stem)
            except BrowserCheckError as err:
                page.screenshot(out / f"{edit.stem}_failed.png", EDIT_WINDOW)
                return failures + [f"{err} (screenshot {out / f'{edit.stem}_failed.png'})"]
    return failures


def _report(png: Path, what: str, problems: list[str] = ()) -> list[str]:
    """Print whether the screenshot ``png`` passed (not blank, no ``problems`` found in it); return its failures."""
    failures = [reason for reason in [blank_reason(png)] if reason] + list(problems)
    for failure in failures:
        print(f"FAIL: {failure}")
    if failures:
        return failures
    size = Image.open(png).size
    print(
        f"OK ({what}): {png.relative_to(paths.REPO_ROOT) if png.is_relative_to(paths.REPO_ROOT) else png} "
        f"({size[0]}x{size[1]})"
    )
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to open and screenshot")
    parser.add_argument("--edit", type=Path, help="the playground notebook: run every cell, press Edit, screenshot")
    parser.add_argument("--out", type=Path, default=paths.BUILD / "browser")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so a stopped check still stops its server and browser
    start = time.perf_counter()
    failures = check(args.notebooks, args.edit, args.out)
    if failures:
        print(f"FAIL: {len(failures)} problem(s); server log: {args.out / 'jupyterlab.log'}")
        for failure in failures:
            print("  " + failure)
        return 1
    print(f"OK: every page rendered ({time.perf_counter() - start:.0f} s; screenshots in {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
