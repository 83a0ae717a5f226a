"""What a real pipeline writes besides its closed candles (embedded mock cluster, no services).

A :class:`CandlePipeline` consumes a one-symbol topic (one partition, offsets in produce order)
into a SQLite store and the in-process cache:

* ticks later than the allowed lateness become ``late_ticks`` rows (topic, partition, offset,
  the tick's fields and the watermark that refused them) and are in no candle; a late tick
  still within the lateness revises its candle and is not recorded;
* open candles are published to the cache as they grow: each one published is the candle of
  the first ``trades`` ticks of its window, before its final version; the windows still open
  when the run stops are in the cache as open candles, and not in the store.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from fakes.cache import RecordingCache
from faults.harness import candles_frame, embedded_topic, wait_until

from cryptolab.batch import candles_from_ticks, candles_to_frame, with_ms_windows
from cryptolab.cache import MemoryCache
from cryptolab.models import Tick, encode_tick, parse_interval
from cryptolab.pipeline import CandlePipeline
from cryptolab.store import Store, late_ticks_table

T0 = 1_700_000_040_000  # a minute boundary: minute 4 of a 5-minute window, 14 of a 15-minute one
INTERVALS = "1m,5m,15m"
SYMBOL = "BTC-USD"
LATENESS_MS = 60_000
OOO_MS = 1_000


def trade(i: int, ts: int) -> Tick:
    return Tick(symbol=SYMBOL, ts_ms=ts, price=100.0 + (i * 7) % 13, size=1.0 + i % 3, source="feed",
                trade_id=f"t{i}")


def _store(tmp: Path) -> Store:
    store = Store(f"sqlite:///{(tmp / 'outputs.db').as_posix()}")
    store.init()
    return store


def _pipeline(tmp: Path, ticks: list[Tick], store: Store, cache: MemoryCache, **settings: Any) -> CandlePipeline:
    s = embedded_topic(tmp, [(t.symbol.encode(), encode_tick(t)) for t in ticks], "outputs")
    s = replace(s, out_of_orderness_ms=OOO_MS, allowed_lateness_ms=LATENESS_MS, **settings)
    return CandlePipeline(s, store=store, cache=cache, scorer=None, batch_size=50, batch_timeout=0.05)


def _frame(ticks: list[Tick]) -> pd.DataFrame:
    return pd.DataFrame([t.to_dict() for t in ticks]).rename(columns={"ts": "ts_ms"})


def test_too_late_ticks_become_late_ticks_rows_and_a_late_tick_within_lateness_revises(
    tmp_path: Path,
) -> None:
    ticks = [trade(i, T0 + i * 1_000) for i in range(600)]  # ten minutes, one trade a second
    # after the trade at T0+399s (watermark T0+398s): two too late for every interval (their
    # windows ended at T0+60s), one late but within the lateness (its 1m window ended at T0+360s)
    too_late = [trade(1_000, T0 + 10_000), trade(1_001, T0 + 20_000)]
    allowed = trade(1_002, T0 + 330_000)
    records = [*ticks[:400], too_late[0], allowed, too_late[1], *ticks[400:]]
    store, cache = _store(tmp_path), RecordingCache("outputs")
    pipe = _pipeline(tmp_path, records, store, cache)
    stats = pipe.run(stop_at_end=True)
    assert stats.ticks == len(records) and stats.late_ticks == 2, stats

    with sa.create_engine(store.url).connect() as conn:
        rows = conn.execute(sa.select(late_ticks_table).order_by(late_ticks_table.c.offset)).mappings().all()
    assert store.late_tick_count() == len(rows) == 2
    progress = store.load_progress(pipe.group, pipe.topic)
    (partition,) = [p for p, pr in progress.items() if pr.offset > 0]  # one symbol: one partition
    assert progress[partition].offset == len(records)
    for row, tick, offset in zip(rows, too_late, (400, 402), strict=True):
        assert (row["topic"], row["partition"], row["offset"]) == (pipe.topic, partition, offset)
        assert (row["symbol"], row["ts_ms"], row["price"], row["size"], row["source"], row["trade_id"]) == (
            tick.symbol, tick.ts_ms, tick.price, tick.size, tick.source, tick.trade_id)
        # the watermark recorded is one that makes the tick too late: its windows had expired
        assert T0 + 399_000 - OOO_MS <= row["watermark_ms"] <= T0 + 599_000 - OOO_MS
        assert row["watermark_ms"] >= T0 + 60_000 + LATENESS_MS
    # the candles are the reference of every tick that was not too late, in arrival order
    on_time = [t for t in records if t not in too_late]
    reference = candles_from_ticks(_frame(on_time), INTERVALS)
    got = candles_frame(store)
    pd.testing.assert_frame_equal(got.drop(columns="revision"), reference.drop(columns="revision"),
                                  check_exact=True)
    revised = {(r.interval, r.window_start) for r in with_ms_windows(got).itertuples() if r.revision}
    assert revised == {("1m", T0 + 300_000), ("5m", T0 + 60_000)}  # the windows `allowed` landed in


def test_open_candles_are_published_as_they_grow_and_the_still_open_windows_stay_open(
    tmp_path: Path,
) -> None:
    ticks = [trade(i, T0 + i * 1_500) for i in range(400)]  # ten minutes, a trade every 1.5 s
    store, cache = _store(tmp_path), RecordingCache("outputs")
    pipe = _pipeline(tmp_path, ticks, store, cache)  # embedded_topic turns the idle close off
    thread = threading.Thread(target=pipe.run, name="live-pipeline", daemon=True)  # live: no end
    thread.start()
    try:
        assert wait_until(lambda: sum(p.offset for p in store.load_progress(pipe.group, pipe.topic).values())
                          == len(ticks), 120, 0.05), pipe.stats
    finally:
        pipe.stop()
        thread.join(60)
    assert not thread.is_alive()
    reference = candles_from_ticks(_frame(ticks), INTERVALS)

    opened = [c for c in cache.published if not c.final]
    assert opened, "no open candle was published"
    for c in opened:  # each one is the candle of the first `trades` ticks of its window
        iv = parse_interval(c.interval)
        window = [t for t in ticks if c.window_start <= t.ts_ms < c.window_start + iv]
        want = candles_from_ticks(_frame(window[: c.trades]), c.interval)
        assert len(want) == 1 and c.window_end == c.window_start + iv
        got = candles_to_frame([c]).assign(final=True)
        pd.testing.assert_frame_equal(got, want, check_exact=True, obj=str(c.key))
    # per window, open versions grow, and come before the final one
    seen: dict[tuple[str, str, int], tuple[int, bool]] = {}
    for c in cache.published:
        prev = seen.get(c.key)
        if prev is not None:
            assert not prev[1], f"{c.key} published after its final version"
            assert c.trades >= prev[0], c.key
        seen[c.key] = (c.trades, c.final)
    # the last window of each interval never closed (no idle close, no end of input): it is in the
    # cache as an open candle with every tick of the window, and not in the store
    stored = {(r.interval, r.window_start) for r in candles_frame(store).itertuples()}
    for interval in INTERVALS.split(","):
        last = reference[reference.interval == interval].iloc[-1]
        latest = cache.latest(SYMBOL, interval)
        assert latest is not None and not latest.final, (interval, latest)
        (cached,) = candles_to_frame([latest]).itertuples()
        assert (cached.window_start, cached.open, cached.close, cached.volume, cached.trades) == (
            last.window_start, last.open, last.close, last.volume, last.trades)
        assert (interval, last.window_start) not in stored
    # and the closed windows are stored with the reference's values
    closed = reference[[(r.interval, r.window_start) in stored for r in reference.itertuples()]]
    assert len(closed) == len(reference) - 3
    pd.testing.assert_frame_equal(candles_frame(store), closed.reset_index(drop=True), check_exact=True)


def test_on_batch_sees_every_batch_before_it_is_folded(tmp_path: Path) -> None:
    """The seam a benchmark's clock uses: called once per batch consumed, with its size,
    on the run thread, before a tick of that batch is counted."""
    ticks = [trade(i, T0 + i * 1_000) for i in range(230)]
    store, cache = _store(tmp_path), MemoryCache()
    s = embedded_topic(tmp_path, [(t.symbol.encode(), encode_tick(t)) for t in ticks], "on_batch")
    calls: list[tuple[int, int, str]] = []
    pipe = CandlePipeline(s, store=store, cache=cache, scorer=None, batch_size=50, batch_timeout=0.05,
                          on_batch=lambda n: calls.append((n, pipe.stats.ticks, threading.current_thread().name)))
    stats = pipe.run(stop_at_end=True)
    assert stats.ticks == len(ticks)
    assert len(calls) == stats.batches and all(0 < n <= 50 for n, _, _ in calls)
    assert sum(n for n, _, _ in calls) == len(ticks)  # every record is a tick here
    before = [seen for _, seen, _ in calls]
    assert before == [sum(n for n, _, _ in calls[:i]) for i in range(len(calls))]  # not folded yet
    assert {name for _, _, name in calls} == {threading.current_thread().name}
