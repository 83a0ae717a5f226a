"""An idle close emits the open windows, and never makes the ticks that follow it "too late".

The pipeline closes a partition's open windows when it has received nothing
for ``CRYPTOLAB_IDLE_TIMEOUT`` of wall-clock time (default 30 s), by
:meth:`CandleAggregator.close_partition`. That raises each interval's own
watermark to the end of its open windows (so their candles are emitted) but
leaves the partition's event-time watermark where the data put it. When the
partition was not idle but stalled (a broker or store outage, a frozen
consumer, a market pause), the ticks that come next are newer than anything
seen: they must stay on time, and a tick for a window closed this way revises
its candle.

The last test drives the real pipeline (embedded mock cluster, SQLite store,
in-process cache): a live run whose topic falls silent stores and publishes
the candles of the windows it still had open, by the wall-clock idle close.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from fakes.cache import RecordingCache
from harness import candles_frame, embedded_topic, market, wait_until

from cryptolab.batch import candles_from_ticks, candles_to_frame, with_ms_windows
from cryptolab.models import Candle, encode_tick, parse_interval
from cryptolab.pipeline import CandlePipeline
from cryptolab.store import Store
from cryptolab.windows import CandleAggregator, state_from_bytes, state_has_open_windows

pytestmark = [pytest.mark.faults]

T0 = 1_700_000_040_000  # a minute boundary: minute 4 of a 5-minute window, 14 of a 15-minute one
INTERVALS = "1m,5m,15m"


def test_ticks_newer_than_everything_seen_are_never_too_late_after_an_idle_close() -> None:
    agg = CandleAggregator(intervals="1m,5m,15m", out_of_orderness_ms=1_000, allowed_lateness_ms=60_000)
    for s in range(180):  # three minutes of trades, one a second
        assert agg.add("BTC-USD", T0 + s * 1_000, 100.0 + s % 7, 1.0, 0)
    agg.drain()
    agg.close_partition(0)  # what the pipeline does after CRYPTOLAB_IDLE_TIMEOUT of silence
    agg.drain()
    # the market goes on where it paused: every tick is newer than all before it
    too_late = [s for s in range(180, 1_200) if not agg.add("BTC-USD", T0 + s * 1_000, 100.0, 1.0, 0)]
    assert too_late == [], f"{len(too_late)} ticks after the idle close were too late"


def _ticks(n: int) -> pd.DataFrame:
    """``n`` seconds of BTC-USD trades from T0, one a second, prices and sizes varying."""
    return pd.DataFrame({"symbol": "BTC-USD", "ts_ms": [T0 + s * 1_000 for s in range(n)],
                         "price": [100.0 + (s * 7) % 13 for s in range(n)],
                         "size": [1.0 + s % 3 for s in range(n)]})


def _latest(candles: list[Candle]) -> pd.DataFrame:
    """The last version of each window, in the batch reference's row order."""
    last: dict[tuple[str, str, int], Candle] = {}
    for c in candles:
        last[c.key] = c
    df = candles_to_frame(last.values())
    order = df["interval"].map(parse_interval)
    return (df.assign(_o=order).sort_values(["symbol", "_o", "window_start"]).drop(columns="_o")
            .reset_index(drop=True))


def test_windows_closed_by_an_idle_close_are_revised_to_the_reference_by_the_ticks_that_follow() -> None:
    ticks = _ticks(1_200)
    agg = CandleAggregator(intervals=INTERVALS, out_of_orderness_ms=1_000, allowed_lateness_ms=60_000)
    emitted: list[Candle] = []
    rows = list(ticks.itertuples(index=False))
    for r in rows[:180]:
        agg.add(r.symbol, r.ts_ms, r.price, r.size, 0)
    emitted += agg.drain().finals
    agg.close_partition(0)
    idle = agg.drain().finals  # the windows that were open: closed by the idle close
    assert {(c.interval, c.window_start) for c in idle} == {
        ("1m", T0 + 120_000), ("5m", T0 + 60_000), ("15m", T0 + 60_000)}
    assert all(c.final and c.revision == 0 for c in idle)
    emitted += idle
    for r in rows[180:]:
        assert agg.add(r.symbol, r.ts_ms, r.price, r.size, 0)
    emitted += agg.drain().finals
    agg.close_all()
    emitted += agg.drain().finals
    got = _latest(emitted)
    reference = candles_from_ticks(ticks, INTERVALS)
    # every value equals the batch reference: nothing the idle close closed lost a later tick
    pd.testing.assert_frame_equal(got.drop(columns="revision"), reference.drop(columns="revision"),
                                  check_exact=True)
    # each tick that came after the close into a window it closed revised that window once
    # (the 5m and 15m ones; the 1m one had no more ticks)
    later = ticks.ts_ms.iloc[180:]
    expected = {(c.interval, c.window_start): int(later.between(c.window_start, c.window_end - 1).sum())
                for c in idle}
    revised = {(r.interval, r.window_start): r.revision for r in with_ms_windows(got).itertuples() if r.revision}
    assert revised == {k: n for k, n in expected.items() if n}
    assert set(revised) == {("5m", T0 + 60_000), ("15m", T0 + 60_000)}


def test_a_live_pipeline_stores_and_publishes_its_open_windows_after_the_idle_timeout(
    tmp_path: Path,
) -> None:
    m = market(6_000, seed=11)  # 100 s of trades: every window but the first minute's stays open
    records = [(t.symbol.encode(), encode_tick(t)) for t in m.iter_ticks()]
    reference = candles_from_ticks(m.to_frame(), INTERVALS)
    s = replace(embedded_topic(tmp_path, records, "idle"), idle_timeout_ms=2_000)
    store = Store(f"sqlite:///{(tmp_path / 'idle.db').as_posix()}")
    store.init()
    cache = RecordingCache("idle")
    pipe = CandlePipeline(s, store=store, cache=cache, scorer=None, batch_size=500, batch_timeout=0.05)
    group, topic = pipe.group, pipe.topic

    def everything_closed_and_stored() -> bool:
        progress = store.load_progress(group, topic)
        return (sum(pr.offset for pr in progress.values()) == len(records)
                and not any(state_has_open_windows(state_from_bytes(pr.state)) for pr in progress.values()))

    thread = threading.Thread(target=pipe.run, name="idle-pipeline", daemon=True)  # a live run: no end
    thread.start()
    try:
        assert wait_until(everything_closed_and_stored, 120, 0.1), (
            f"the open windows were not closed and stored ({pipe.stats.idle_closes} idle closes)")
    finally:
        pipe.stop()
        thread.join(60)
    assert not thread.is_alive()
    assert pipe.stats.idle_closes >= 1
    # the store holds every window, the idle-closed ones included, with the reference's values
    # (a stall mid-stream on a busy machine may idle-close a window early: its ticks revise it)
    pd.testing.assert_frame_equal(candles_frame(store).drop(columns="revision"),
                                  reference.drop(columns="revision"), check_exact=True)
    # ...and the cache was given them as final candles: the latest of each series is the last window
    last = with_ms_windows(reference.groupby(["symbol", "interval"], sort=False).tail(1))  # as Candle holds them
    assert len(last) == 20 * 3
    for row in last.itertuples():
        latest = cache.latest(row.symbol, row.interval)
        assert latest is not None and latest.final, (row.symbol, row.interval, latest)
        assert (latest.window_start, latest.close, latest.trades) == (row.window_start, row.close, row.trades)
    finals = {c.key for c in cache.published if c.final}
    assert {(r.symbol, r.interval, r.window_start) for r in last.itertuples()} <= finals
