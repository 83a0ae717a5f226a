"""What the browser tests share: where Chromium and the artifacts are, the loopback-only rule,
and serving and opening a dashboard."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
IN_CI = os.environ.get("CI") == "true"
#: Requests to anything but loopback that a page tried (and that were refused).
OFFLINE_BLOCKED: list[str] = []


def unavailable(message: str) -> NoReturn:
    """Skip, or fail under ``CI=true``: in CI the browser tests must run."""
    if IN_CI:
        pytest.fail(f"{message} (CI=true: the browser test must run)", pytrace=False)
    pytest.skip(message)


def loopback_only(route: Any) -> None:
    """A Playwright route handler: loopback goes through, anything else is aborted and recorded."""
    url = route.request.url
    host = urlsplit(url).hostname or ""
    if url.startswith(("data:", "blob:", "file:")) or host in ("127.0.0.1", "localhost", "::1"):
        route.continue_()
    else:
        OFFLINE_BLOCKED.append(url)
        route.abort()


#: The number of bars of the dashboard's candlestick chart, as the page holds them.
BARS = "() => { const s = Bokeh.documents[0].get_model_by_name('candles'); return s.get_length() ?? 0; }"
#: The title of the dashboard's price chart.
TITLE = "() => Bokeh.documents[0].get_model_by_name('price').title.text"


def serve_cli(tmp_path: Path, args: list[str], announced: str, *, timeout: float = 180) -> Iterator[str]:
    """``python -m cryptolab ARGS`` as a subprocess on a data directory of its own: yield the
    URL in the stdout line that contains ``announced`` (the word after it), then SIGTERM the
    process and check that it exits 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOLAB_")}
    env["CRYPTOLAB_DATA_DIR"] = str(tmp_path / "data")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.Popen([sys.executable, "-m", "cryptolab", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        url = None
        while url is None:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"cryptolab {args[0]} did not report its URL within {timeout:g} s")
            if announced in line:
                url = line.split(announced, 1)[1].split()[0]
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        assert proc.returncode == 0, err[-2000:]


def open_dashboard(context: Any, url: str) -> tuple[Any, list[str]]:
    """A new page on the dashboard at ``url``, once its candlestick model exists; and the list
    its JavaScript errors go to."""
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url, wait_until="load", timeout=60_000)
    page.wait_for_function(
        "() => window.Bokeh && Bokeh.documents.length > 0 && "
        "Bokeh.documents[0].get_model_by_name('candles') != null", timeout=60_000)
    return page, errors


def screenshot(page: Any, name: str) -> None:
    """Save the whole page as ``test-artifacts/NAME.png`` (after a repaint) and check it has content."""
    page.wait_for_timeout(1000)  # let the canvas repaint before the screenshot
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
