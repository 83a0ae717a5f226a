"""The market report's HTML in a real browser, offline: every chart drawn, no error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from browsing import ARTIFACTS, OFFLINE_BLOCKED
from jupyter import drawn_canvases

from cryptolab.batch import candles_from_ticks, frame_to_candles
from cryptolab.notebooks import render_report
from cryptolab.sources.synthetic import Injection, SyntheticMarket
from cryptolab.store import Store

pytestmark = [pytest.mark.browser, pytest.mark.notebooks]

T0 = 1_700_000_040_000


def test_market_report_html_draws_its_charts_offline(context: Any, tmp_path: Path) -> None:
    market = SyntheticMarket(symbols=2, seed=3, start_ms=T0, duration_ms=2 * 3_600_000,
                             ticks_per_second=2.0,
                             injections=[Injection(symbol="BTC-USD", at_ms=T0 + 3_600_000,
                                                   kind="spike", magnitude=0.09)])
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    store.init()
    store.commit_batch(group="g", topic="t", alerts=[],
                       candles=frame_to_candles(candles_from_ticks(market.to_frame(), intervals="1m")))
    store.close()
    html = render_report(url, tmp_path / "out", interval="1m")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(html.as_uri(), wait_until="load", timeout=60_000)
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=60_000)
    page.wait_for_function("() => document.querySelectorAll('.bk-Figure, .bk-Column').length > 0",
                           timeout=60_000)
    page.wait_for_timeout(1000)
    for i in range(page.locator("canvas").count()):  # draw every chart, as a reader scrolling would
        page.locator("canvas").nth(i).scroll_into_view_if_needed()
    inked = drawn_canvases(page, "canvas")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "market-report.png"), full_page=True)
    assert inked >= 2, f"{inked} drawn chart panels in the report"
    assert "BTC-USD" in page.inner_text("body")
    assert errors == []
    assert OFFLINE_BLOCKED == [], f"the report tried to reach beyond loopback: {OFFLINE_BLOCKED[:3]}"
    page.close()
