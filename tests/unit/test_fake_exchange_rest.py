"""The Binance REST stand-in, driven by ccxt itself: shapes, derivation from the tape, faults."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import ccxt
import pytest
from fakes.exchange import StandInExchange, Tape

from cryptolab.sources.ccxt_open import open_exchange

T0 = 1_700_000_040_000  # a minute boundary


@pytest.fixture(scope="module")
def tape() -> Tape:
    return Tape.generated("BTC/USDT", T0, T0 + 3 * 3_600_000, seed=7, mean_gap_ms=20_000,
                          quiet=[(T0 + 600_000, T0 + 900_000)])


@pytest.fixture(scope="module")
def mtgox(shared_data: Path) -> Tape:
    return Tape.from_trade_csv(shared_data / "trades" / "mtgox_btcusd_2013-01-01.csv", "BTC/USDT")


def test_load_markets_sees_the_tape(tape: Tape) -> None:
    with StandInExchange("binance", tape, publish=False) as rest:
        ex = open_exchange("binance", api_url=rest.api_url)
        markets = ex.load_markets()
        assert list(markets) == ["BTC/USDT"]
        assert markets["BTC/USDT"]["spot"] and markets["BTC/USDT"]["id"] == "BTCUSDT"
        assert {r.path for r in rest.requests} >= {"/api/v3/exchangeInfo"}


def test_klines_are_derived_from_the_trades(tape: Tape) -> None:
    rows = tape.klines("BTC/USDT", 60_000)
    assert rows[0][0] == T0 and all(b[0] - a[0] == 60_000 for a, b in zip(rows, rows[1:], strict=False))
    for row in rows:
        trades = tape.trades("BTC/USDT", row[0], row[0] + 60_000)
        assert row[6] == row[0] + 59_999 and row[8] == len(trades)
        if trades:
            prices = [Decimal(t.price) for t in trades]
            assert (Decimal(row[1]), Decimal(row[4])) == (prices[0], prices[-1])
            assert (Decimal(row[2]), Decimal(row[3])) == (max(prices), min(prices))
            assert Decimal(row[5]) == sum(Decimal(t.size) for t in trades)
        else:  # Binance's flat zero-volume kline at the previous close
            assert row[1] == row[2] == row[3] == row[4] and Decimal(row[5]) == 0
    quiet = [r for r in rows if T0 + 600_000 <= r[0] < T0 + 900_000]
    assert len(quiet) == 5 and all(r[8] == 0 for r in quiet)


def test_fetch_ohlcv_pages_and_limits(tape: Tape) -> None:
    with StandInExchange("binance", tape, publish=False, max_limit=40) as rest:
        ex = open_exchange("binance", api_url=rest.api_url)
        page = ex.fetch_ohlcv("BTC/USDT", "1m", since=T0, params={"until": T0 + 3_600_000})
        assert len(page) == 40  # the server's cap, below the 1000 ccxt asked for
        assert rest.data_requests()[-1].query["limit"] == "1000"
        rest.script(("limit", 7), path="/api/v3/klines")
        assert len(ex.fetch_ohlcv("BTC/USDT", "1m", since=T0)) == 7
        rest.script("empty", path="/api/v3/klines")
        assert ex.fetch_ohlcv("BTC/USDT", "1m", since=T0) == []
        served = tape.klines("BTC/USDT", 60_000)[:40]
        assert page == [[k[0], *(float(v) for v in k[1:6])] for k in served]


def test_rate_limit_answers_carry_retry_after(tape: Tape) -> None:
    with StandInExchange("binance", tape, publish=False, retry_after_s=3) as rest:
        ex = open_exchange("binance", api_url=rest.api_url)
        ex.load_markets()
        rest.script("429", "418", path="/api/v3/klines")
        with pytest.raises(ccxt.DDoSProtection, match="429"):  # ccxt's binance maps 418 and 429 so
            ex.fetch_ohlcv("BTC/USDT", "1m", since=T0)
        assert ex.last_response_headers["retry-after"] == "3"
        with pytest.raises(ccxt.DDoSProtection, match="418"):
            ex.fetch_ohlcv("BTC/USDT", "1m", since=T0)
        assert len(ex.fetch_ohlcv("BTC/USDT", "1m", since=T0)) == 180  # then served again: 3 hours
        assert [r.status for r in rest.data_requests()] == [429, 418, 200]


def test_agg_trades_by_time_and_by_id(tape: Tape) -> None:
    with StandInExchange("binance", tape, publish=False) as rest:
        ex = open_exchange("binance", api_url=rest.api_url)
        trades = ex.fetch_trades("BTC/USDT", since=T0, limit=1000)
        expected = tape.trades("BTC/USDT", T0, T0 + 3_600_001)
        assert [int(t["id"]) for t in trades] == [t.id for t in expected]
        assert [(t["price"], t["amount"]) for t in trades] == [(float(t.price), float(t.size)) for t in expected]
        later = ex.fetch_trades("BTC/USDT", limit=5, params={"fromId": expected[-1].id + 1})
        assert [int(t["id"]) for t in later] == list(range(expected[-1].id + 1, expected[-1].id + 6))
        with pytest.raises(ccxt.BadRequest):  # Binance's -1127: more than an hour
            ex.fetch_trades("BTC/USDT", since=T0, params={"until": T0 + 2 * 3_600_000})
        with pytest.raises(ccxt.BadSymbol):
            ex.publicGetAggTrades({"symbol": "NOPEUSDT"})


def test_real_trades_make_more_than_one_page_of_klines(mtgox: Tape) -> None:
    rows = mtgox.klines("BTC/USDT", 60_000)
    assert len(rows) > 1000  # a day of minutes: pagination is needed
    assert sum(r[8] for r in rows) == len(mtgox.trades("BTC/USDT")) == 2331
    assert any(r[8] == 0 for r in rows)  # quiet minutes: flat zero-volume klines


def test_binance_capture_tape(shared_data: Path) -> None:
    tape = Tape.from_binance_capture(shared_data / "ws" / "binance_futures_stream_capture.txt")
    assert "SUSHI/USDT" in tape.markets
    assert sum(len(tape.trades(m)) for m in tape.markets) == 91  # the capture's aggTrade frames
