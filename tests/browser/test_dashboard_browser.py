"""The dashboard in a real browser: headless Chromium shows the chart and sees it grow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browsing import BARS, OFFLINE_BLOCKED, TITLE, open_dashboard, screenshot, serve_cli

pytestmark = pytest.mark.browser


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[str]:
    yield from serve_cli(tmp_path, ["dashboard", "--demo", "--port", "0", "--demo-symbols", "3", "--speed", "120"],
                         "cryptolab dashboard:", timeout=90)


def test_dashboard_shows_the_chart_and_it_updates(context: Any, dashboard: str) -> None:
    page, errors = open_dashboard(context, dashboard)
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
    assert page.evaluate(TITLE) == "BTC-USD · 1m"
    # Picking another symbol switches the chart (server-side, via the document).
    page.locator("select").first.select_option("ETH-USD")
    page.wait_for_function(f"({TITLE})() === 'ETH-USD · 1m'", timeout=30_000)
    page.wait_for_function(f"({BARS})() > 0", timeout=60_000)
    # The demo market injects a spike five simulated minutes in (then one every 15): the
    # alerts panel lists it, and its series' chart carries a marker.
    rows = "() => Bokeh.documents[0].get_model_by_name('alerts_table').get_length() ?? 0"
    page.wait_for_function(f"({rows})() > 0", timeout=90_000)
    assert page.locator(".slick-row").count() >= 1
    screenshot(page, "dashboard")
    assert errors == []
    assert OFFLINE_BLOCKED == [], "the dashboard tried to reach beyond loopback"
    page.close()
