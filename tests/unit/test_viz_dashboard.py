"""The dashboard app: one document per tab with the chart, cards, alerts and periodic updates."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from cryptolab.cache import MemoryCache
from cryptolab.models import Alert, Candle
from cryptolab.viz.dashboard import DashboardConfig, dashboard_app, price_card, price_change

T0 = 1_700_000_040_000


def candle(sym: str, k: int, close: float, *, final: bool = True) -> Candle:
    ws = T0 + k * 60_000
    return Candle(symbol=sym, interval="1m", window_start=ws, window_end=ws + 60_000, open=close,
                  high=close, low=close, close=close, volume=1.0, vwap=None, trades=1,
                  first_ts=ws, last_ts=ws, high_ts=ws, low_ts=ws, final=final)


@pytest.fixture
def cache() -> Any:
    c = MemoryCache(f"test-dash-{uuid.uuid4().hex}")
    yield c
    c.clear()
    c.close()


def test_price_change_over_an_hour_or_what_history_there_is() -> None:
    hist = [candle("X", k, 100.0 + k) for k in range(10)]
    price, change, span = price_change(hist, candle("X", 10, 120.0, final=False), 3_600_000)
    assert (price, span) == (120.0, 600_000) and change == pytest.approx(0.2)  # since the oldest
    assert price_change([], None, 3_600_000)[1] is None
    assert price_change([], candle("X", 0, 5.0), 3_600_000) == (5.0, None, 0)


def test_price_card_colours_the_change() -> None:
    up, down = price_card("A", 2.0, 0.01, 3_600_000), price_card("A", 2.0, -0.01, 3_600_000)
    assert "▲ +1.00%" in up and "▼ -1.00%" in down and "1h" in up
    assert "waiting for data" in price_card("A", float("nan"), None, 0)
    assert "&lt;b&gt;" in price_card("<b>", 1.0, None, 0)  # escaped


def test_a_document_gets_the_chart_cards_alerts_and_periodic_callbacks(cache: MemoryCache) -> None:
    cache.publish([candle(s, k, 10.0 + k) for s in ("BTC-USD", "ETH-USD") for k in range(5)])
    cache.publish_alerts([Alert(symbol="ETH-USD", interval="1m", window_start=T0, detector="rule",
                                severity="HIGH", score=0.2, ts_ms=T0 + 60_000)])
    app = dashboard_app(cache, config=DashboardConfig(symbols=("BTC-USD", "ETH-USD")))
    doc = app.create_document()
    assert doc.get_model_by_name("candles").data["close"] == [10.0, 11.0, 12.0, 13.0, 14.0]
    cards = doc.get_model_by_name("price_cards").text
    assert cards.count('data-symbol=') == 2 and 'cl-card sel" data-symbol="BTC-USD"' in cards
    assert doc.get_model_by_name("alerts_table").data["detector"] == ["rule"]
    assert len(doc.session_callbacks) == 2  # the chart's poll and the cards' refresh
    select = doc.get_model_by_name("symbol_select")
    assert select.options == ["BTC-USD", "ETH-USD"]
    select.value = "ETH-USD"  # as if picked in the browser
    assert doc.get_model_by_name("price").title.text == "ETH-USD · 1m"
    pause = doc.get_model_by_name("pause")
    pause.active = True
    assert pause.label == "Resume"


def test_symbols_are_discovered_when_not_configured(cache: MemoryCache) -> None:
    cache.publish([candle("SOL-USD", k, 1.0 + k) for k in range(3)])
    app = dashboard_app(cache, discover=lambda interval: ["SOL-USD"])
    doc = app.create_document()
    assert doc.get_model_by_name("price").title.text == "SOL-USD · 1m"
    assert len(doc.get_model_by_name("candles").data["close"]) == 3
