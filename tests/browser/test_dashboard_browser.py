"""The dashboard in a real browser: headless Chromium shows the chart and sees it grow."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browsing import ARTIFACTS, OFFLINE_BLOCKED

pytestmark = pytest.mark.browser


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOLAB_")}
    env["CRYPTOLAB_DATA_DIR"] = str(tmp_path / "data")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cryptolab", "dashboard", "--demo", "--port", "0",
         "--demo-symbols", "3", "--speed", "120"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        url = None
        while url is None:
            try:
                line = lines.get(timeout=90)
            except queue.Empty:
                pytest.fail("the dashboard did not report its URL within 90 s")
            if "cryptolab dashboard: http" in line:
                url = line.split()[2]
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        assert proc.returncode == 0, err[-2000:]


BARS = "() => { const s = Bokeh.documents[0].get_model_by_name('candles'); return s.get_length() ?? 0; }"


def test_dashboard_shows_the_chart_and_it_updates(context: Any, dashboard: str) -> None:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(dashboard, wait_until="load", timeout=60_000)
    page.wait_for_function(
        "() => window.Bokeh && Bokeh.documents.length > 0 && "
        "Bokeh.documents[0].get_model_by_name('candles') != null", timeout=60_000)
    page.wait_for_function(f"({BARS})() > 0", timeout=90_000)
    first = page.evaluate(BARS)
    # New candles arrive over the websocket: the number of bars grows.
    page.wait_for_function(f"({BARS})() > {first}", timeout=90_000)
    later = page.evaluate(BARS)
    assert later > first > 0
    # What a person sees: a canvas for each panel, a price card per symbol, the alerts table.
    assert page.locator("canvas").count() >= 2
    cards = page.locator(".cl-card")
    assert cards.count() == 3
    assert "BTC-USD" in cards.first.inner_text()
    assert page.locator(".slick-header-column").count() >= 5  # the alerts table's columns
    title = "() => Bokeh.documents[0].get_model_by_name('price').title.text"
    assert page.evaluate(title) == "BTC-USD · 1m"
    # Picking another symbol switches the chart (server-side, via the document).
    page.locator("select").first.select_option("ETH-USD")
    page.wait_for_function(f"({title})() === 'ETH-USD · 1m'", timeout=30_000)
    page.wait_for_function(f"({BARS})() > 0", timeout=60_000)
    # The demo market injects a spike five simulated minutes in (then one every 15): the
    # alerts panel lists it, and its series' chart carries a marker.
    rows = "() => Bokeh.documents[0].get_model_by_name('alerts_table').get_length() ?? 0"
    page.wait_for_function(f"({rows})() > 0", timeout=90_000)
    assert page.locator(".slick-row").count() >= 1
    page.wait_for_timeout(1500)  # let the canvas repaint before the screenshot
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert errors == []
    assert OFFLINE_BLOCKED == [], "the dashboard tried to reach beyond loopback"
    page.close()
