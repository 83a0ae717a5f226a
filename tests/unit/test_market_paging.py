"""Paging an exchange's history through ccxt against the Binance REST stand-in; the retry policy."""

from __future__ import annotations

import ccxt
import pytest
from fakes.exchange import StandInExchange, Tape

from cryptolab.errors import SourceError
from cryptolab.market.paging import Pacer, ohlcv_pages, trade_pages
from cryptolab.sources.ccxt_open import open_exchange

T0 = 1_700_000_040_000 - 1_700_000_040_000 % 3_600_000  # an hour boundary
END = T0 + 4 * 3_600_000


@pytest.fixture(scope="module")
def tape() -> Tape:
    return Tape.generated("BTC/USDT", T0, END, seed=3, mean_gap_ms=15_000,
                          quiet=[(T0 + 3_600_000, T0 + 2 * 3_600_000)])  # an hour without trades


def _pacer(waits: list[float]) -> Pacer:
    return Pacer(sleep=waits.append)


def test_ohlcv_pages_walk_past_a_small_server_limit(tape: Tape) -> None:
    waits: list[float] = []
    with StandInExchange("binance", tape, publish=False, max_limit=50) as rest:
        ex = open_exchange("binance", api_url=rest.api_url)
        ex.load_markets()
        rest.script(("limit", 7), path="/api/v3/klines")  # a page shorter than even the cap
        pages = list(ohlcv_pages(ex, _pacer(waits), "BTC/USDT", "1m", 60_000, T0, END))
    rows = [r for p in pages for r in p]
    assert [r[0] for r in rows] == list(range(T0, END - 60_000 + 1, 60_000))  # every window once
    assert len(pages[0]) == 7 and len(pages) > 4
    served = {k[0]: [k[0], *(float(v) for v in k[1:6])] for k in tape.klines("BTC/USDT", 60_000)}
    assert rows == [served[r[0]] for r in rows]
    assert waits == []


def test_ohlcv_pages_stop_at_an_empty_page_and_at_until(tape: Tape) -> None:
    with StandInExchange("binance", tape, publish=False, max_limit=60) as rest:
        ex = open_exchange("binance", api_url=rest.api_url)
        ex.load_markets()
        end = T0 + 90 * 60_000 + 30_000  # mid-window: that window is not whole
        rows = [r for p in ohlcv_pages(ex, Pacer(), "BTC/USDT", "1m", 60_000, T0, end) for r in p]
        assert rows[-1][0] == T0 + 89 * 60_000 and len(rows) == 90
        rest.script("ok", "empty", path="/api/v3/klines")
        pages = list(ohlcv_pages(ex, Pacer(), "BTC/USDT", "1m", 60_000, T0, END))
        assert len(pages) == 1 and len(pages[0]) == 60  # the empty answer ended the walk


def test_trade_pages_lose_and_double_nothing_with_short_pages(tape: Tape) -> None:
    with StandInExchange("binance", tape, publish=False, max_limit=40) as rest:  # ccxt asks 1000, gets 40
        ex = open_exchange("binance", api_url=rest.api_url)
        ex.load_markets()
        rest.script(("limit", 3), path="/api/v3/aggTrades")
        seen: list[int] = []
        trades = [t for p in trade_pages(ex, Pacer(), "BTC/USDT", T0 + 1, END - 1, limit=1000,
                                         on_window=seen.append) for t in p]
    expected = tape.trades("BTC/USDT", T0 + 1, END - 1)
    assert [int(t["id"]) for t in trades] == [t.id for t in expected]
    assert seen == sorted(seen) and seen[-1] == END - 1
    queries = [r.query for r in rest.data_requests("/api/v3/aggTrades")]
    assert all(int(q["endTime"]) - int(q["startTime"]) < 3_600_000 for q in queries)


def test_pacer_waits_retry_after_then_succeeds(tape: Tape) -> None:
    waits: list[float] = []
    with StandInExchange("binance", tape, publish=False, retry_after_s=4) as rest:
        ex = open_exchange("binance", api_url=rest.api_url)
        pacer = _pacer(waits)
        pacer.call(ex, "load_markets", ex.load_markets)
        rest.script("429", "418", "500", path="/api/v3/klines")
        rows = pacer.call(ex, "fetch_ohlcv", lambda: ex.fetch_ohlcv("BTC/USDT", "1m", since=T0, limit=5))
    assert len(rows) == 5
    assert waits == [4.0, 4.0, 4.0]  # Retry-After of the 429 and the 418, back-off for the 500
    assert pacer.retries == 3 and [r.status for r in rest.data_requests()] == [429, 418, 500, 200]


def test_pacer_backs_off_without_retry_after_and_gives_up(tape: Tape) -> None:
    waits: list[float] = []
    with StandInExchange("binance", tape, publish=False) as rest:
        ex = open_exchange("binance", api_url=rest.api_url)
        pacer = Pacer(max_retries=2, backoff_s=0.5, sleep=waits.append)
        pacer.call(ex, "load_markets", ex.load_markets)
        rest.script(*["429-no-retry-after"] * 3, path="/api/v3/klines")
        with pytest.raises(SourceError, match="gave up after 3 attempts"):
            pacer.call(ex, "fetch_ohlcv", lambda: ex.fetch_ohlcv("BTC/USDT", "1m", since=T0))
    assert waits == [0.5, 1.0]


def test_pacer_refuses_a_long_ban_and_passes_other_errors_as_one_line(tape: Tape) -> None:
    waits: list[float] = []
    with StandInExchange("binance", tape, publish=False, retry_after_s=3600) as rest:
        ex = open_exchange("binance", api_url=rest.api_url)
        pacer = _pacer(waits)
        pacer.call(ex, "load_markets", ex.load_markets)
        rest.script("418", path="/api/v3/klines")
        with pytest.raises(SourceError, match="asks to wait 3600 s"):
            pacer.call(ex, "fetch_ohlcv", lambda: ex.fetch_ohlcv("BTC/USDT", "1m", since=T0))
        with pytest.raises(SourceError, match="Invalid symbol") as info:
            pacer.call(ex, "aggTrades", lambda: ex.publicGetAggTrades({"symbol": "NOPE"}))
    assert waits == [] and "\n" not in str(info.value)
    assert isinstance(info.value.__cause__, ccxt.BadSymbol)
