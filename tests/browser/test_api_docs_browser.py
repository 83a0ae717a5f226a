"""The HTTP API's own page, ``/docs``, in a real browser, offline: Swagger UI draws every route
from ``/openapi.json`` with its files served by ``cryptolab serve`` itself (no CDN), and a person
can try a route from it: ``GET /api/v1/latest`` answers the store's newest candle on the page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browsing import OFFLINE_BLOCKED, screenshot, serve_cli

from cryptolab.models import Candle
from cryptolab.store import Store

pytest.importorskip("fastapi", reason="the API needs the api extra")
pytestmark = pytest.mark.browser

T0 = 1_700_000_040_000
NEWEST_CLOSE = 43_210.5


def _candle(i: int, close: float) -> Candle:
    ws = T0 + i * 60_000
    return Candle(symbol="BTC-USD", interval="1m", window_start=ws, window_end=ws + 60_000, open=43_000.0,
                  high=max(43_000.0, close), low=min(43_000.0, close), close=close, volume=2.5, vwap=None,
                  trades=7, first_ts=ws + 1, last_ts=ws + 59_000, high_ts=ws + 2, low_ts=ws + 3, final=True)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[str]:
    db = f"sqlite:///{(tmp_path / 'docs.db').as_posix()}"
    with Store(db) as store:
        store.init()
        store.commit_batch(group="g", topic="t", candles=[_candle(0, 43_100.0), _candle(1, NEWEST_CLOSE)])
    yield from serve_cli(tmp_path, ["serve", "--store", db, "--port", "0"], "cryptolab serve:", timeout=90)


def test_docs_draw_every_route_offline_and_a_route_can_be_tried(context: Any, api: str) -> None:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{api}/docs", wait_until="load", timeout=60_000)
    page.wait_for_selector(".opblock", timeout=60_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    drawn = {p.replace("\u200b", "").strip() for p in paths}
    assert {"/api/v1/symbols", "/api/v1/candles/{symbol}/{interval}", "/api/v1/latest/{symbol}/{interval}",
            "/api/v1/alerts", "/api/v1/rules", "/health"} <= drawn, drawn
    assert "cryptolab" in page.locator(".info .title").inner_text()

    latest = page.locator(".opblock-get").filter(has_text="/api/v1/latest/")
    latest.locator(".opblock-summary").first.click()
    latest.locator(".try-out__btn").click()
    latest.locator("input[placeholder='symbol']").fill("BTC-USD")
    latest.locator("input[placeholder='interval']").fill("1m")
    latest.locator(".execute").click()
    body = latest.locator(".live-responses-table .response-col_description .microlight").first
    body.wait_for(timeout=60_000)
    shown = body.inner_text()
    assert '"window_start": 1700000100000' in shown and str(NEWEST_CLOSE) in shown, shown
    assert latest.locator(".live-responses-table tr.response .response-col_status").first.inner_text().strip() == "200"
    screenshot(page, "api-docs")
    assert errors == []
    assert OFFLINE_BLOCKED == [], "the docs page tried to reach beyond loopback"
    page.close()
