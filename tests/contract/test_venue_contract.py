"""Venue symbols (``VENUE:BASE-QUOTE``) through every store and cache backend.

The same pair from two venues and without a venue is three series: stored, read back,
exported, forgotten and cached apart, on SQLite and PostgreSQL, MemoryCache and Redis.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

from cryptolab.cache import Cache, Subscription, series_of, series_pattern, updates_channel
from cryptolab.models import Alert, Candle, decode_candle
from cryptolab.models.venues import symbol_from_file
from cryptolab.store import Store

T0 = 1_700_000_040_000
MIN = 60_000
SYMBOLS = ["BINANCE:BTC-USDT", "COINBASE:BTC-USDT", "BTC-USDT"]


def candle(symbol: str, i: int, *, close: float, interval: str = "1m", final: bool = True) -> Candle:
    step = {"1m": MIN, "5m": 5 * MIN}[interval]
    ws = T0 - T0 % step + i * step
    return Candle(symbol=symbol, interval=interval, window_start=ws, window_end=ws + step, open=close,
                  high=close + 1, low=close - 1, close=close, volume=1.0, vwap=close, trades=1,
                  first_ts=ws, last_ts=ws, high_ts=ws, low_ts=ws, final=final)


def _series(store: Store) -> None:
    """Three series of one pair, told apart by their prices (venue k: 100 * (k + 1) + minute)."""
    candles = [candle(s, i, close=100.0 * (k + 1) + i) for k, s in enumerate(SYMBOLS) for i in range(4)]
    candles += [candle(SYMBOLS[0], 0, close=7.0, interval="5m")]
    alerts = [Alert(symbol=s, interval="1m", window_start=T0 + MIN, detector="rule", severity="HIGH",
                    score=float(k), ts_ms=T0 + 2 * MIN) for k, s in enumerate(SYMBOLS)]
    store.commit_batch(group="g", topic="t", candles=candles, alerts=alerts)


def test_venue_series_are_stored_read_and_listed_apart(store: Store) -> None:
    _series(store)
    for k, symbol in enumerate(SYMBOLS):
        frame = store.history(symbol, "1m")
        assert list(frame["close"]) == [100.0 * (k + 1) + i for i in range(4)], symbol
        assert set(frame["symbol"]) == {symbol}
        assert [c.close for c in store.candles(symbol, "1m")] == list(frame["close"])
        assert [a.score for a in store.alert_list(symbol=symbol)] == [float(k)]
    info = store.info()
    assert {(s["symbol"], s["interval"]) for s in info["series"]} == {
        *((s, "1m") for s in SYMBOLS), (SYMBOLS[0], "5m")}
    assert info["venues"] == [
        {"venue": "BINANCE", "symbols": ["BINANCE:BTC-USDT"], "series": 2, "candles": 5},
        {"venue": "COINBASE", "symbols": ["COINBASE:BTC-USDT"], "series": 1, "candles": 4},
        {"venue": None, "symbols": ["BTC-USDT"], "series": 1, "candles": 4},
    ]


def test_forget_takes_only_the_venue_named(store: Store) -> None:
    _series(store)
    assert store.forget(["COINBASE:BTC-USDT"], T0, T0 + 10 * MIN) == 4
    assert store.candles("COINBASE:BTC-USDT") == [] and store.alert_list(symbol="COINBASE:BTC-USDT") == []
    assert len(store.candles("BINANCE:BTC-USDT", "1m")) == len(store.candles("BTC-USDT")) == 4


def test_per_series_export_names_files_safely_and_keeps_the_symbols(store: Store, tmp_path: Path) -> None:
    _series(store)
    written = store.export_series(tmp_path / "{symbol}_{interval}.csv")
    names = sorted(p.name for p in written)
    assert names == ["BINANCE~BTC-USDT_1m.csv", "BINANCE~BTC-USDT_5m.csv", "BTC-USDT_1m.csv",
                     "COINBASE~BTC-USDT_1m.csv"]
    assert not any(c in name for name in names for c in '<>:"/\\|?*')  # legal on Windows too
    for path, n in written.items():
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        symbol, interval = path.stem.rsplit("_", 1)
        assert len(rows) == n and {(r["symbol"], r["interval"]) for r in rows} == {
            (symbol_from_file(symbol), interval)}
    alerts = store.export_series(tmp_path / "alerts" / "{symbol}.csv", "alerts")
    assert {p.name: n for p, n in alerts.items()} == {
        "BINANCE~BTC-USDT.csv": 1, "BTC-USDT.csv": 1, "COINBASE~BTC-USDT.csv": 1}
    only = store.export_series(tmp_path / "one" / "{interval}.csv", symbol="BINANCE:BTC-USDT")
    assert {p.name: n for p, n in only.items()} == {"1m.csv": 4, "5m.csv": 1}


def _collect(sub: Subscription, want: int, deadline_s: float = 30.0) -> list[tuple[str, bytes]]:
    got: list[tuple[str, bytes]] = []
    deadline = time.monotonic() + deadline_s
    while len(got) < want and time.monotonic() < deadline:
        msg = sub.get(0.5)
        if msg is not None:
            got.append(msg)
    return got


def test_cache_keeps_venue_series_apart_and_channels_parse_back(cache: Cache) -> None:
    venue_sub = cache.subscribe([series_pattern(venue="BINANCE", interval="1m")])
    all_sub = cache.subscribe([series_pattern(interval="1m")])
    one_sub = cache.subscribe([updates_channel("COINBASE:BTC-USDT", "1m")])
    batch = [candle(s, 0, close=100.0 * (k + 1), final=False) for k, s in enumerate(SYMBOLS)]
    cache.publish(batch)
    for c in batch:
        assert cache.latest(c.symbol, "1m") == c
    every = _collect(all_sub, 3)
    assert sorted(series_of(ch) for ch, _ in every) == sorted(("candles", s, "1m") for s in SYMBOLS)
    for ch, payload in every:  # the channel names the series its payload belongs to
        assert series_of(ch)[1] == decode_candle(payload).symbol
    assert [series_of(ch)[1] for ch, _ in _collect(venue_sub, 1)] == ["BINANCE:BTC-USDT"]
    assert [decode_candle(p).symbol for _, p in _collect(one_sub, 1)] == ["COINBASE:BTC-USDT"]
    # nothing else arrives on the narrow subscriptions (the wide one had all three)
    assert venue_sub.get(0.5) is None and one_sub.get(0.1) is None
    for sub in (venue_sub, all_sub, one_sub):
        sub.close()


def test_recent_finals_per_venue(cache: Cache) -> None:
    finals = [candle(s, i, close=100.0 * (k + 1) + i) for k, s in enumerate(SYMBOLS) for i in range(3)]
    cache.publish(finals)
    for k, s in enumerate(SYMBOLS):
        got: list[Any] = [c.close for c in cache.recent(s, "1m")]
        assert got == [100.0 * (k + 1) + i for i in range(3)], s
