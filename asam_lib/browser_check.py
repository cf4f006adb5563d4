"""Open a notebook in JupyterLab in headless Chromium and keep a screenshot: ``make test-browser``.

Starts JupyterLab on a free localhost port with a random token, points ``chromium --headless
--screenshot`` at the notebook's Lab URL, and fails if the screenshot is missing or blank (nearly one
colour, which is what a page that did not render looks like). The screenshot and the server's log go to
``build/browser/``. Needs a Chromium binary (Debian: ``apt-get install chromium``); it is not part of
``make test``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

from asam_lib import paths

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
WINDOW = (1280, 900)


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
    raise TimeoutError(f"JupyterLab did not answer {url.split('?')[0]} within {timeout_s:.0f} s")


def blank_reason(png: Path) -> str | None:
    """Why the screenshot ``png`` looks blank (None if it shows something)."""
    if not png.exists() or png.stat().st_size == 0:
        return f"no screenshot at {png}"
    pixels = np.asarray(Image.open(png).convert("L"), dtype=np.float32)
    dark = float((pixels < 128).mean())  # share of dark pixels: text, icons, toolbars
    if pixels.std() < 8 or dark < 0.002:
        return f"screenshot {png.name} is blank (pixel std {pixels.std():.1f}, {dark:.2%} dark pixels)"
    return None


def screenshot(notebook: Path, out: Path, budget_ms: int = 30000) -> Path:
    """Serve the repository with JupyterLab, open ``notebook`` in headless Chromium, save a PNG in ``out``."""
    browser = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if browser is None:
        raise SystemExit("test-browser: no Chromium found (install it: apt-get install chromium)")
    out = paths.ensure(out)
    png = out / f"{notebook.stem}.png"
    png.unlink(missing_ok=True)
    port, token = free_port(), secrets.token_hex(16)
    root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    server_command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--ServerApp.port={port}",
        "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={paths.REPO_ROOT}",
        *root,
    ]
    with open(out / "jupyterlab.log", "w") as log:
        server = subprocess.Popen(server_command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_server(f"http://127.0.0.1:{port}/api/status?token={token}")
            relative = notebook.resolve().relative_to(paths.REPO_ROOT).as_posix()
            url = f"http://127.0.0.1:{port}/lab/tree/{relative}?token={token}"
            with tempfile.TemporaryDirectory() as profile:
                subprocess.run(
                    [browser, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
                     f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                     f"--virtual-time-budget={budget_ms}", f"--screenshot={png}", url],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=180, check=False,
                )
        finally:
            server.terminate()
            server.wait(timeout=30)
    return png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--out", type=Path, default=paths.BUILD / "browser")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    png = screenshot(args.notebook, args.out)
    reason = blank_reason(png)
    if reason:
        print(f"FAIL: {reason} (server log: {args.out / 'jupyterlab.log'})")
        return 1
    print(f"OK: {png} ({Image.open(png).size[0]}x{Image.open(png).size[1]}, {time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
