"""Open the notebooks in JupyterLab in headless Chromium, press the playground's Edit button, keep
screenshots: ``make test-browser``.

Starts JupyterLab on a free localhost port with a random token, serving a temporary copy of the notebooks (a
browser run never saves into ``notebooks/``), and headless Chromium with its DevTools protocol on another
free port. Through that protocol (:class:`DevTools`, a small client over ``websocket-client``, which
``jupyter_server`` already depends on) it

- opens each notebook and screenshots it once its cells are rendered;
- for the playground (``--edit``), runs every cell, fails if one raised, presses the **Edit** button, waits
  for the edit's result and its figures in the widget's output area and screenshots them.

It fails if a screenshot is missing or blank (nearly one colour, which is what a page that did not render
looks like), a cell raised, or the edit showed no result. Screenshots and the server's log go to
``build/browser/``. Needs a Chromium binary (Debian: ``apt-get install chromium``); not part of ``make test``.
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
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from asam_lib import paths
from tools.run_notebooks import QUIET_ENV

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
WINDOW = (1280, 900)
EDIT_WINDOW = (1280, 1300)  # tall enough for the playground's widgets, its result and its three figures
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


def run_all_and_edit(page: DevTools, relative: str, timeout_s: float = 600) -> str:
    """Run every cell of the open playground, press its Edit button and wait for the result; return its text."""
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
    button = "[...document.querySelectorAll('.jupyter-widgets button')].find(b => b.textContent.trim() === 'Edit')"
    page.wait_for(f"{button} !== undefined", "the playground's Edit button", timeout_s=60)
    page.evaluate(f"{button}.scrollIntoView({{block: 'start'}}); {button}.click(); true")
    area = "document.querySelector('.jupyter-widgets.widget-output')"
    text = page.wait_for(
        f"(() => {{ const a = {area}; return a && a.querySelectorAll('img').length >= 3 && {button} !== undefined "
        f"&& !{button}.disabled ? a.innerText : null; "
        f"}})() || ({area}?.innerText.includes('cannot edit') ? {area}.innerText : null)",
        "the edit's result and figures",
        timeout_s=timeout_s,
    )
    if "PlaygroundResult(" not in text:
        raise BrowserCheckError(f"{relative}: the edit showed no result: {text.strip()[:300]}")
    page.evaluate("document.querySelector('.jupyter-widgets.widget-vbox')?.scrollIntoView({block: 'start'}); true")
    time.sleep(2.0)  # the figures decode and lay out after they arrive
    return text


def check(notebooks: list[Path], edit: Path | None, out: Path) -> list[str]:
    """Screenshot each notebook (and the playground after an edit); return the failures (empty: all passed)."""
    out = paths.ensure(out)
    failures = []
    opened = [nb for nb in notebooks if edit is None or nb.resolve() != edit.resolve()]
    with lab_server(opened + ([edit] if edit else []), out) as (base, token), chromium() as page:
        for notebook in opened:
            open_notebook(page, base, token, notebook)
            png = page.screenshot(out / f"{notebook.stem}.png", WINDOW)
            failures += _report(png, "opened")
        if edit is not None:
            start = time.perf_counter()
            try:
                relative = open_notebook(page, base, token, edit)
                page.call(
                    "Emulation.setDeviceMetricsOverride",
                    width=EDIT_WINDOW[0],
                    height=EDIT_WINDOW[1],
                    deviceScaleFactor=1,
                    mobile=False,
                )
                result = run_all_and_edit(page, relative)
            except BrowserCheckError as err:
                page.screenshot(out / f"{edit.stem}_failed.png", EDIT_WINDOW)
                return failures + [f"{err} (screenshot {out / f'{edit.stem}_failed.png'})"]
            print(
                f"   edit result in the browser ({time.perf_counter() - start:.0f} s):\n      "
                + "\n      ".join(result.strip().splitlines()[:3])
            )
            failures += _report(
                page.screenshot(out / f"{edit.stem}_after_edit.png", EDIT_WINDOW), "ran every cell, pressed Edit"
            )
    return failures


def _report(png: Path, what: str) -> list[str]:
    reason = blank_reason(png)
    if reason:
        print(f"FAIL: {reason}")
        return [reason]
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
