"""Venue symbols and a composite through the pipeline into the real PostgreSQL and Redis.

The embedded broker carries the ticks (the topic is not what is under test); the consumer
writes to a fresh PostgreSQL database and the Redis test database. Then: the stored
candles equal the batch reference per series; ``db info`` lists the venues; Redis holds
each series' latest candle under its own key, and a subscription to one venue's
channels heard only that venue; a chart attached to Redis and PostgreSQL shows the
history of the venue series it names, and no other.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from faults.harness import candles_frame, embedded_topic

from cryptolab.batch import candles_from_ticks
from cryptolab.cache import RedisCache, series_of, series_pattern
from cryptolab.cli import main
from cryptolab.models import Tick, decode_candle, encode_tick
from cryptolab.pipeline import CandlePipeline
from cryptolab.sources import RejectHandler
from cryptolab.sources.composite import with_composite
from cryptolab.store import Store
from cryptolab.viz import CandleChart

pytestmark = pytest.mark.integration

T0 = 1_700_000_040_000
INTERVALS = "1m,5m"
MEMBERS = ["BINANCE:BTC-USD", "COINBASE:BTC-USD"]
SYMBOLS = [*MEMBERS, "BINANCE:BTC-USDT", "BTC-USD.X"]


class ListSource:
    name = "list"
    validated = True

    def __init__(self, ticks: list[Tick]) -> None:
        self.ticks = ticks

    def iter_ticks(self, *, on_reject: RejectHandler | None = None) -> Iterator[Tick]:
        yield from self.ticks


def test_venue_series_and_a_composite_in_postgresql_and_redis(
    tmp_path: Path, pg_url: str, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ticks = [Tick(symbol=SYMBOLS[i % 4], ts_ms=T0 + i * 900, price=100.0 * (1 + i % 4) + (i * 7) % 11,
                  size=0.25 + i % 3, source="test", trade_id=str(i)) for i in range(1_200)]
    sent = list(with_composite(ListSource(ticks), ["BTC-USD"]).iter_ticks())
    store, cache = Store(pg_url), RedisCache(redis_url)
    store.init()
    venue_sub = cache.subscribe([series_pattern("finals", venue="BINANCE", interval="1m")])
    try:
        s = embedded_topic(tmp_path, [(t.symbol.encode(), encode_tick(t)) for t in sent], "venues")
        s = replace(s, intervals=tuple(INTERVALS.split(",")))
        stats = CandlePipeline(s, store=store, cache=cache, scorer=None, batch_size=100,
                               batch_timeout=0.05).run(stop_at_end=True)
        assert stats.ticks == len(sent) and stats.late_ticks == 0 and stats.cache_failures == 0, stats

        merged = [replace(t, symbol="BTC-USD") for t in ticks if t.symbol in MEMBERS]
        want = candles_from_ticks(pd.DataFrame([t.to_dict() for t in ticks + merged])
                                  .rename(columns={"ts": "ts_ms"}), INTERVALS)
        got = candles_frame(store)
        pd.testing.assert_frame_equal(got.drop(columns="revision"), want.drop(columns="revision"),
                                      check_exact=True)

        assert main(["db", "info", "--store", pg_url, "--json"]) == 0
        venues = json.loads(capsys.readouterr().out)["venues"]
        assert [(v["venue"], v["symbols"]) for v in venues] == [
            ("BINANCE", ["BINANCE:BTC-USD", "BINANCE:BTC-USDT"]), ("COINBASE", ["COINBASE:BTC-USD"]),
            (None, ["BTC-USD", "BTC-USD.X"])]

        for symbol in [*SYMBOLS, "BTC-USD"]:  # each series' newest candle under its own key
            newest = got[(got.symbol == symbol) & (got.interval == "1m")].iloc[-1]
            latest = cache.latest(symbol, "1m")
            assert latest is not None and latest.symbol == symbol and latest.close == newest.close

        finals = got[(got.interval == "1m") & got.symbol.str.startswith("BINANCE:")]
        heard: list[tuple[str, str, str]] = []
        deadline = time.monotonic() + 60
        while len(heard) < len(finals) and time.monotonic() < deadline:
            msg = venue_sub.get(0.5)
            if msg is not None:
                heard.append(series_of(msg[0]))
                assert decode_candle(msg[1]).symbol == heard[-1][1]
        assert sorted(heard) == sorted(("finals", s, "1m") for s in finals.symbol)

        chart = CandleChart(symbol="COINBASE:BTC-USD", interval="5m")
        chart.attach(cache, store=store, run=False)
        try:
            shown = chart.candles()
            assert {c.symbol for c in shown} == {"COINBASE:BTC-USD"}
            mine = got[(got.symbol == "COINBASE:BTC-USD") & (got.interval == "5m")]
            assert [c.close for c in shown] == list(mine.close)
        finally:
            chart.detach()
    finally:
        venue_sub.close()
        cache.close()
        store.close()
