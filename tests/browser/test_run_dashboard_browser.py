"""The dashboard of `cryptolab run --dashboard` in a real browser: the backfilled history is on
the first page drawn, then the chart grows live; a signal stops the run, which exits 0.

Two sources, both offline: the stand-in exchange (Binance's REST and websocket APIs on one local
port, a market whose past is served as klines and which keeps trading on the wall clock) and the
synthetic market (a simulated minute a second).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browsing import ARTIFACTS, OFFLINE_BLOCKED, REPO
from fakes.exchange import StandInExchange, Tape

pytestmark = pytest.mark.browser

#: One hour of history at 1m: at least this many bars on the first page.
BACKFILLED = 55
BARS = "() => { const s = Bokeh.documents[0].get_model_by_name('candles'); return s.get_length() ?? 0; }"


def _serve(tmp_path: Path, *args: str) -> Iterator[str]:
    """`cryptolab run ... --dashboard --port 0` as a subprocess: yield its dashboard's URL, then
    SIGTERM it and check it exits 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOLAB_")}
    env["CRYPTOLAB_DATA_DIR"] = str(tmp_path / "data")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cryptolab", "run", *args, "--dashboard", "--port", "0", "--quiet"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        url = None
        while url is None:
            try:
                line = lines.get(timeout=180)
            except queue.Empty:
                pytest.fail("cryptolab run did not report its dashboard's URL within 180 s")
            if "cryptolab run: dashboard http" in line:
                url = line.split()[3]
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        assert proc.returncode == 0, err[-2000:]


@pytest.fixture
def run_dashboard(tmp_path: Path) -> Iterator[str]:
    yield from _serve(tmp_path, "--source", "synthetic", "--symbols", "BTC-USD,ETH-USD", "--backfill", "1h",
                      "--speed", "60", "--tps", "5", "--intervals", "1m,5m")


@pytest.fixture
def exchange_dashboard(tmp_path: Path) -> Iterator[str]:
    now = int(time.time() * 1000)
    # an hour and a half of past trades (served as klines), then trades stamped with the wall clock
    tape = Tape.generated("BTC/USDT", now - 90 * 60_000, now + 3_600_000, seed=11, mean_gap_ms=400,
                          price=42_000.0)
    with StandInExchange("binance", tape, paced=True) as ex:
        yield from _serve(tmp_path, "--source", "binance", "--api-url", ex.api_url, "--ws-url", ex.ws_url,
                          "--symbols", "BTC/USDT", "--backfill", "1h", "--intervals", "1m,5m")


def test_run_dashboard_shows_the_backfilled_history_at_once_then_grows(context: Any, run_dashboard: str) -> None:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(run_dashboard, wait_until="load", timeout=60_000)
    page.wait_for_function(
        "() => window.Bokeh && Bokeh.documents.length > 0 && "
        "Bokeh.documents[0].get_model_by_name('candles') != null", timeout=60_000)
    # the first document the page receives already holds the hour of history
    first = page.evaluate(BARS)
    assert first >= BACKFILLED, first
    title = "() => Bokeh.documents[0].get_model_by_name('price').title.text"
    assert page.evaluate(title) == "BTC-USD · 1m"
    # then it grows live (a simulated minute a second)
    page.wait_for_function(f"({BARS})() > {first}", timeout=120_000)
    assert page.evaluate(BARS) > first
    cards = page.locator(".cl-card")
    assert cards.count() == 2 and "BTC-USD" in cards.first.inner_text()
    page.wait_for_timeout(1000)  # let the canvas repaint before the screenshot
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "run-dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert errors == []
    assert OFFLINE_BLOCKED == [], "the dashboard tried to reach beyond loopback"
    page.close()


def test_run_dashboard_on_an_exchange_shows_its_history_at_once_then_grows(context: Any,
                                                                          exchange_dashboard: str) -> None:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(exchange_dashboard, wait_until="load", timeout=60_000)
    page.wait_for_function(
        "() => window.Bokeh && Bokeh.documents.length > 0 && "
        "Bokeh.documents[0].get_model_by_name('candles') != null", timeout=60_000)
    first = page.evaluate(BARS)
    assert first >= BACKFILLED, first  # the hour of klines, on the first document
    title = "() => Bokeh.documents[0].get_model_by_name('price').title.text"
    assert page.evaluate(title) == "BINANCE:BTC-USDT · 1m"
    # the exchange keeps trading on the wall clock: the next minute opens a new bar
    page.wait_for_function(f"({BARS})() > {first}", timeout=180_000)
    assert page.evaluate(BARS) > first
    cards = page.locator(".cl-card")
    assert cards.count() == 1 and "BINANCE:BTC-USDT" in cards.first.inner_text()
    page.wait_for_timeout(1000)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "run-dashboard-exchange.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert errors == []
    assert OFFLINE_BLOCKED == [], "the dashboard tried to reach beyond loopback"
    page.close()
