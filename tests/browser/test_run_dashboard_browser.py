"""The dashboard of `cryptolab run --dashboard` in a real browser: the backfilled history is on
the first page drawn, then the chart grows live; a signal stops the run, which exits 0.

Two sources, both offline: the stand-in exchange (Binance's REST and websocket APIs on one local
port, a market whose past is served as klines and which keeps trading on the wall clock) and the
synthetic market (a simulated minute a second).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browsing import BARS, OFFLINE_BLOCKED, TITLE, open_dashboard, screenshot, serve_cli
from fakes.exchange import StandInExchange, Tape

pytestmark = pytest.mark.browser

#: One hour of history at 1m: at least this many bars on the first page.
BACKFILLED = 55


def _serve(tmp_path: Path, *args: str) -> Iterator[str]:
    """`cryptolab run ... --dashboard --port 0`: its dashboard's URL, then SIGTERM and exit 0."""
    yield from serve_cli(tmp_path, ["run", *args, "--dashboard", "--port", "0", "--quiet"],
                         "cryptolab run: dashboard")


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
    page, errors = open_dashboard(context, run_dashboard)
    # the first document the page receives already holds the hour of history
    first = page.evaluate(BARS)
    assert first >= BACKFILLED, first
    assert page.evaluate(TITLE) == "BTC-USD · 1m"
    # then it grows live (a simulated minute a second)
    page.wait_for_function(f"({BARS})() > {first}", timeout=120_000)
    assert page.evaluate(BARS) > first
    cards = page.locator(".cl-card")
    assert cards.count() == 2 and "BTC-USD" in cards.first.inner_text()
    screenshot(page, "run-dashboard")
    assert errors == []
    assert OFFLINE_BLOCKED == [], "the dashboard tried to reach beyond loopback"
    page.close()


def test_run_dashboard_on_an_exchange_shows_its_history_at_once_then_grows(context: Any,
                                                                          exchange_dashboard: str) -> None:
    page, errors = open_dashboard(context, exchange_dashboard)
    first = page.evaluate(BARS)
    assert first >= BACKFILLED, first  # the hour of klines, on the first document
    assert page.evaluate(TITLE) == "BINANCE:BTC-USDT · 1m"
    # the exchange keeps trading on the wall clock: the next minute opens a new bar
    page.wait_for_function(f"({BARS})() > {first}", timeout=180_000)
    assert page.evaluate(BARS) > first
    cards = page.locator(".cl-card")
    assert cards.count() == 1 and "BINANCE:BTC-USDT" in cards.first.inner_text()
    screenshot(page, "run-dashboard-exchange")
    assert errors == []
    assert OFFLINE_BLOCKED == [], "the dashboard tried to reach beyond loopback"
    page.close()
