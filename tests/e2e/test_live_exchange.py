"""A live market on an exchange, end to end, against the stand-in exchange (REST and websocket on
one local port, one market): `cryptolab run --source binance` as a real subprocess and
`cryptolab.live("binance", ...)` backfill the exchange's klines, then stream its trades from the
end of that history (the open windows' trades over REST, then the live ones), on the embedded
defaults. The market is a tape generated around the wall clock: its past is served over REST,
its future is published on the websocket as its time comes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fakes.exchange import StandInExchange, Tape

import cryptolab
from cryptolab.candles.batch import candles_from_ticks
from cryptolab.config import Settings
from cryptolab.store import Store, to_ms

REPO = Path(__file__).resolve().parents[2]
SYMBOL = "BINANCE:BTC-USDT"
MINUTE, HOUR = 60_000, 3_600_000
COLS = ["window_start", "open", "high", "low", "close", "volume", "trades"]


def market(seed: int = 5) -> Tape:
    """Two hours and ten minutes of past trades, then an hour of future ones (a trade every ~0.6 s)."""
    now = int(time.time() * 1000)
    return Tape.generated("BTC/USDT", now - 2 * HOUR - 10 * MINUTE, now + HOUR, seed=seed, mean_gap_ms=600,
                          price=42_000.0)


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOLAB_")}
    env["CRYPTOLAB_DATA_DIR"] = str(tmp_path / "data")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def served_klines(tape: Tape, start: int, end: int) -> pd.DataFrame:
    """The stand-in's 1m klines of the whole windows in ``[start, end)``, as stored candles read."""
    rows = [k for k in tape.klines("BTC/USDT", MINUTE) if start <= k[0] and k[0] + MINUTE <= end]
    return pd.DataFrame({"window_start": [k[0] for k in rows], "open": [float(k[1]) for k in rows],
                         "high": [float(k[2]) for k in rows], "low": [float(k[3]) for k in rows],
                         "close": [float(k[4]) for k in rows], "volume": [float(k[5]) for k in rows],
                         "trades": [k[8] for k in rows]})


def frame(stored: pd.DataFrame) -> pd.DataFrame:
    out = stored[COLS].copy()
    out["window_start"] = [to_ms(w) for w in out["window_start"]]
    return out.reset_index(drop=True)


def live_reference(tape: Tape, since: int, delivered: int) -> pd.DataFrame:
    """The candles of the market's first ``delivered`` trades from ``since`` on (the batch path)."""
    ticks = tape.ticks("BTC/USDT", since)[:delivered]
    built = candles_from_ticks(pd.DataFrame({"symbol": [t.symbol for t in ticks], "ts_ms": [t.ts_ms for t in ticks],
                                             "price": [t.price for t in ticks], "size": [t.size for t in ticks]}),
                               intervals="1m")
    return frame(built.sort_values("window_start"))


def check_history_then_live(tape: Tape, ex: StandInExchange, stored: pd.DataFrame, backfill_ms: int) -> None:
    """Backfilled windows are the served klines up to where the live trades start; the live windows
    are the candles of an unbroken run of the market's trades from there (none lost, none doubled)."""
    assert stored["final"].all(), stored[~stored["final"]]
    seam = ex.data_requests("/api/v3/aggTrades")
    assert seam, "the trades of the open window were not fetched over REST"
    since = int(seam[0].query["startTime"]) + 1  # ccxt asks since - 1
    assert since % MINUTE == 0
    starts = [to_ms(w) for w in stored["window_start"]]
    history = stored[[s < since for s in starts]]
    live = stored[[s >= since for s in starts]]
    assert len(history) == backfill_ms // MINUTE  # every whole window of the span, up to the seam
    ohlcv = COLS[:-1]  # ccxt's candles carry no trade count
    pd.testing.assert_frame_equal(frame(history)[ohlcv], served_klines(tape, since - backfill_ms, since)[ohlcv],
                                  check_dtype=False)
    delivered = int(live["trades"].sum())
    at_seam = len(tape.trades("BTC/USDT", since, ex.published[0].ts_ms)) if ex.published else 0
    assert delivered > at_seam, "no live trade was delivered"
    assert ex.published and delivered <= at_seam + len(ex.published) + 5
    pd.testing.assert_frame_equal(frame(live), live_reference(tape, since, delivered), check_dtype=False)


def test_run_binance_backfills_the_klines_then_streams_the_trades(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    tape = market()
    with StandInExchange("binance", tape, paced=True) as ex:
        ex.script("429", path="/api/v3/klines")  # the exchange's rate limit first
        done = subprocess.run(
            [sys.executable, "-m", "cryptolab", "run", "--source", "binance", "--api-url", ex.api_url,
             "--ws-url", ex.ws_url, "--symbols", "BTC/USDT", "--backfill", "2h", "--duration", "20",
             "--store", f"sqlite:///{db}", "--intervals", "1m", "--composite", "BTC-USDT"],
            cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=400)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "every open window closed and committed" in done.stderr
        assert [r.status for r in ex.data_requests("/api/v3/klines")][:2] == [429, 200]
        with Store(f"sqlite:///{db}") as store:
            # the venue's series, and the cross-venue composite (one venue here) of its live trades
            assert {c.symbol for c in store.candles()} == {SYMBOL, "BTC-USDT"}
            stored = store.history(SYMBOL, "1m")
            composite = store.history("BTC-USDT", "1m")
        check_history_then_live(tape, ex, stored, 2 * HOUR)
        live = stored[stored["window_start"] >= composite["window_start"].min()]
        pd.testing.assert_frame_equal(frame(composite), frame(live), check_dtype=False)
        assert composite["final"].all() and len(composite) >= 1


def _until(condition: Any, what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:g}s")
        time.sleep(0.2)


def test_live_session_on_an_exchange_has_its_history_at_once_then_grows(tmp_path: Path) -> None:
    tape = market(seed=9)
    settings = Settings.from_env({}, data_dir=str(tmp_path / "data"))
    with StandInExchange("binance", tape, paced=True) as ex:
        session = cryptolab.live("binance", symbols=["BTC/USDT"], intervals="1m", backfill="2h",
                                 settings=settings, api_url=ex.api_url, ws_url=ex.ws_url)
        try:
            assert session.symbols == [SYMBOL]
            first = session.history("BTC/USDT")  # the market's ccxt symbol names the series too
            assert len(first) >= 2 * 60 and first["final"].all()  # two hours, at once
            chart = session.chart("BTC/USDT", "1m")
            assert chart.attached and len(chart) >= len(first)  # the chart shows the history at once
            newest = first["window_start"].max()
            _until(lambda: session.stats.consumed >= 20, "twenty live trades were not consumed")
            _until(lambda: session.history(SYMBOL)["window_start"].max() > newest, "no live candle")
        finally:
            stats = session.stop()
        assert stats.errors == [] and stats.source == "stopped"
        assert stats.source_stats.get("gaps", 0) == 0
        stored = session.history(SYMBOL)
        check_history_then_live(tape, ex, stored, 2 * HOUR)
        assert not chart.attached
        session.close()


def test_trades_the_exchange_cannot_give_back_are_a_recorded_counted_marked_gap(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A network drop mid-stream while the exchange's trade history fails: the trades missed
    meanwhile are lost for good, so the span is recorded in the store's ``trade_gaps``, counted
    on the session and by ``cryptolab db info``, and the windows it overlaps are marked
    ``gap_affected``; the stored candles are exactly those of the trades delivered."""
    from cryptolab.cli import main

    tape = market(seed=13)
    settings = Settings.from_env({}, data_dir=str(tmp_path / "data"))
    with StandInExchange("binance", tape, paced=True, drop_after=12, missed=6, rest_fail=True) as ex:
        session = cryptolab.live("binance", symbols=["BTC/USDT"], intervals="1m", backfill=0,
                                 settings=settings, api_url=ex.api_url, ws_url=ex.ws_url)
        try:
            _until(lambda: session.stats.gaps >= 1, "no gap was recorded")
            _until(lambda: session.stats.consumed >= 20, "the stream did not resume after the drop")
        finally:
            stats = session.stop()
        missed = list(ex.missed_trades)
        published = list(ex.published)
    assert stats.errors == [] and stats.gaps == 1 and stats.source_stats["gaps"] == 1
    assert "1 trade gaps" in stats.line()
    assert len(missed) == 6
    (gap,) = session.gaps().itertuples()
    # the gap spans from the last trade delivered before the drop to the first one after it
    before = max(t.ts_ms for t in published if t.ts_ms < missed[0].ts_ms)
    assert (gap.symbol, to_ms(gap.start)) == (SYMBOL, before)
    assert to_ms(gap.end) > missed[-1].ts_ms and "fetch_trades failed" in gap.reason
    history = session.history(SYMBOL, "1m")
    starts = [to_ms(w) for w in history["window_start"]]
    spoiled = {w for w in starts if w <= to_ms(gap.end) and w + MINUTE > to_ms(gap.start)}
    assert spoiled and {w for w, g in zip(starts, history["gap_affected"], strict=True) if g} == spoiled
    # never silently wrong: the candles are those of the trades delivered, the missed ones absent
    delivered = sorted({t.id: t for t in published}.values(), key=lambda t: t.ts_ms)
    ticks = [t for t in tape.ticks("BTC/USDT") if int(t.trade_id or 0) in {d.id for d in delivered}]
    assert not {t.id for t in missed} & {int(t.trade_id or 0) for t in ticks}
    want = candles_from_ticks(pd.DataFrame({"symbol": [t.symbol for t in ticks], "ts_ms": [t.ts_ms for t in ticks],
                                            "price": [t.price for t in ticks], "size": [t.size for t in ticks]}),
                              intervals="1m")
    got = frame(history)
    want = frame(want.sort_values("window_start"))
    assert int(got["trades"].sum()) == stats.consumed <= len(delivered)
    pd.testing.assert_frame_equal(got, want.iloc[:len(got)].reset_index(drop=True), check_dtype=False)
    session.close()
    assert main(["db", "info", "--store", session.store_url]) == 0
    assert "trade gaps 1" in capsys.readouterr().out
