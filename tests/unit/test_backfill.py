"""``cryptolab backfill`` and :func:`cryptolab.market.backfill.backfill` against the Binance REST
stand-in serving a day of real trades (MtGox BTC/USD, 2013-01-01, relabelled BTC/USDT)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fakes.exchange import StandInExchange, Tape

from cryptolab.candles import candles_from_ticks
from cryptolab.cli import main
from cryptolab.config import Settings
from cryptolab.errors import ValidationError
from cryptolab.market.backfill import backfill
from cryptolab.models import Candle
from cryptolab.store import Store

SYMBOL = "BINANCE:BTC-USDT"
SINCE, UNTIL = 1_356_998_400_000, 1_357_084_800_000  # 2013-01-01T00:00Z .. 2013-01-02T00:00Z
SINCE_ISO, UNTIL_ISO = "2013-01-01T00:00:00Z", "2013-01-02T00:00:00Z"


@pytest.fixture(scope="module")
def tape(shared_data: Path) -> Tape:
    return Tape.from_trade_csv(shared_data / "trades" / "mtgox_btcusd_2013-01-01.csv", "BTC/USDT")


def served_candles(tape: Tape, since: int, until: int, iv: int = 60_000) -> list[tuple[Any, ...]]:
    """The stand-in's klines of whole windows in [since, until), as ccxt parses them."""
    return [(k[0], *(float(v) for v in k[1:6]), float(k[5]) == 0)
            for k in tape.klines("BTC/USDT", iv) if since <= k[0] and k[0] + iv <= until]


def stored(store: Store, symbol: str = SYMBOL, interval: str = "1m") -> list[tuple[Any, ...]]:
    return [(c.window_start, c.open, c.high, c.low, c.close, c.volume, c.gap)
            for c in store.candles(symbol, interval)]


def everything(store: Store) -> list[dict[str, Any]]:
    return [c.to_dict() for c in sorted(store.candles(), key=lambda c: c.key)]


def run_cli(url: str, store_url: str, *extra: str) -> int:
    return main(["backfill", "--exchange", "binance", "--symbol", "BTC/USDT", "--since", SINCE_ISO,
                 "--until", UNTIL_ISO, "--api-url", url, "--store", store_url, "--quiet", *extra])


def check_ohlcv_acceptance(tape: Tape, store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The acceptance: candles equal to the served klines, over pages, a 429; a rerun changes nothing."""
    with StandInExchange("binance", tape, publish=False, retry_after_s=1) as rest:
        rest.script("429", path="/api/v3/klines")
        assert run_cli(rest.api_url, store_url) == 0
        out = capsys.readouterr().out
        klines = rest.data_requests("/api/v3/klines")
        assert [r.status for r in klines][:2] == [429, 200]
        assert sum(r.status == 200 and r.query["limit"] == "1000" for r in klines) >= 2  # > one page
        with Store(store_url) as store:
            expected = served_candles(tape, SINCE, UNTIL)
            assert len(expected) > 1000
            assert stored(store) == expected
            assert any(gap for *_, gap in expected)  # quiet minutes stored flat as gap candles
            before = everything(store)
            assert all(c["final"] and c["revision"] == 0 for c in before)
        assert "1 retries" in out and f"{len(expected)} stored" in out
        assert run_cli(rest.api_url, store_url) == 0
        with Store(store_url) as store:
            assert everything(store) == before  # idempotent: nothing changed, no revision grew


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def test_cli_backfill_ohlcv_acceptance(tape: Tape, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       request: pytest.FixtureRequest, backend: str) -> None:
    """SQLite, and the real PostgreSQL (tests/conftest.py's ``pg_url``: a fresh database)."""
    url = f"sqlite:///{tmp_path / 'bf.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    check_ohlcv_acceptance(tape, url, capsys)


def test_cli_backfill_from_trades_equals_the_batch_aggregator(tape: Tape, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'trades.db'}"
    until = SINCE + 12 * 3_600_000
    with StandInExchange("binance", tape, publish=False, max_limit=200) as rest:
        rest.script("429", path="/api/v3/aggTrades")
        code = main(["backfill", "--exchange", "binance", "--symbol", "BTC/USDT", "--since", SINCE_ISO,
                     "--until", "2013-01-01T12:00:00Z", "--from", "trades", "--interval", "1m,5m,15m",
                     "--api-url", rest.api_url, "--store", url, "--quiet"])
        assert code == 0
    ticks = tape.ticks("BTC/USDT", SINCE, until)
    reference = candles_from_ticks(ticks, intervals="1m,5m,15m", gap_fill=Settings.from_env().gap_fill)
    assert f"trades       {len(ticks)}" in capsys.readouterr().out
    with Store(url) as store:
        for interval in ("1m", "5m", "15m"):
            ref = reference[reference["interval"] == interval]
            got = store.candles(SYMBOL, interval)
            assert len(got) == len(ref) > 0
            cols = ["open", "high", "low", "close", "volume", "vwap", "trades", "first_ts", "last_ts",
                    "high_ts", "low_ts", "gap"]
            assert [tuple(getattr(c, k) for k in cols) for c in got] == list(ref[cols].itertuples(index=False, name=None))
            assert [c.window_start for c in got] == [int(t.timestamp() * 1000) for t in ref["window_start"]]


def test_backfill_resumes_after_an_empty_page(tape: Tape) -> None:
    with StandInExchange("binance", tape, publish=False) as rest, Store("sqlite://") as store:
        rest.script("ok", "empty", path="/api/v3/klines")  # the second page comes back empty
        first = backfill("binance", ["BTC/USDT"], since=SINCE, until=UNTIL, store=store, api_url=rest.api_url,
                         progress=False)
        s = first.series[(SYMBOL, "1m")]
        served = served_candles(tape, SINCE, UNTIL)
        assert s.candles == 1000 < len(served) and s.last_ms == served[999][0]  # told where it stopped
        second = backfill("binance", "BTC/USDT", since=SINCE, until=UNTIL, store=store, api_url=rest.api_url,
                          progress=False)
        assert second.series[(SYMBOL, "1m")].candles == len(served)
        assert stored(store) == served


def test_backfill_python_intervals_and_relative_since(tape: Tape) -> None:
    with StandInExchange("binance", tape, publish=False) as rest, Store("sqlite://") as store:
        report = backfill("binance", ["BTC/USDT"], since=SINCE + 30_000, until=SINCE + 6 * 3_600_000 + 59_000,
                          intervals="5m,1h", store=store, api_url=rest.api_url, progress=False)
        assert report.since_ms == SINCE  # rounded down to a window start
        assert stored(store, interval="5m") == served_candles(tape, SINCE, SINCE + 6 * 3_600_000, 300_000)
        assert [c[0] for c in stored(store, interval="1h")] == [SINCE + h * 3_600_000 for h in range(6)]
        # a duration before now: the tape lies in 2013, so nothing of it is that recent
        recent = backfill("binance", ["BTC/USDT"], since="2h", store=store, api_url=rest.api_url, progress=False)
        assert recent.candles == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--exchange", "nosuchexchange"], "unknown exchange 'nosuchexchange'"),
    (["--symbol", "DOGE/EUR"], "'DOGE/EUR' is not a market of binance"),
    (["--symbol", "BTCUSDT"], "is not BASE/QUOTE"),
    (["--interval", "10m"], "binance has no 10m candles"),
    (["--interval", "7m"], "7m does not divide a day evenly"),
    (["--since", "2013-01-03"], "is not before until"),
    (["--since", "yesterday"], "not a timestamp: 'yesterday'"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tape: Tape, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              args: list[str], message: str) -> None:
    db = tmp_path / "none.db"
    base = {"--exchange": "binance", "--symbol": "BTC/USDT", "--since": SINCE_ISO, "--until": UNTIL_ISO}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    with StandInExchange("binance", tape, publish=False) as rest:
        argv = ["backfill", *[x for kv in base.items() for x in kv], "--api-url", rest.api_url,
                "--store", f"sqlite:///{db}", "--quiet"]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("cryptolab backfill: error: ") and message in err and "\n" not in err
        assert rest.data_requests("/api/v3/klines") == []  # nothing fetched
    assert not db.exists()  # nor stored


def test_cli_unknown_kind_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["backfill", "--exchange", "binance", "--symbol", "BTC/USDT", "--since", SINCE_ISO,
              "--from", "orderbook"])
    assert info.value.code == 2 and "invalid choice: 'orderbook'" in capsys.readouterr().err


def test_python_bad_kind_and_no_symbols() -> None:
    with pytest.raises(ValidationError, match="'book' is not one of ohlcv, trades"):
        backfill("binance", ["BTC/USDT"], since=SINCE, kind="book")
    with pytest.raises(ValidationError, match="at least one symbol"):
        backfill("binance", [], since=SINCE)


def test_candle_rows_are_final_gap_candles_like_the_aggregators() -> None:
    from cryptolab.candles import CandleAggregator

    agg = CandleAggregator(intervals="1m", out_of_orderness_ms=0, gap_fill=True)
    agg.add("X", SINCE + 1_000, 5.0, 1.0)
    agg.add("X", SINCE + 120_000, 6.0, 1.0)
    agg.add("X", SINCE + 180_000, 6.0, 1.0)
    gap = next(c for c in agg.drain().finals if c.gap)
    from cryptolab.market.exchange_candles import candle_from_ohlcv

    ours = candle_from_ohlcv("X", "1m", 60_000, [SINCE + 60_000, 5.0, 5.0, 5.0, 5.0, 0.0])
    assert isinstance(ours, Candle) and ours == gap
