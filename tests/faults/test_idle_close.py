"""An idle close never makes the ticks that follow it "too late".

The pipeline closes a partition's open windows when it has received nothing
for ``CRYPTOLAB_IDLE_TIMEOUT`` of wall-clock time (default 30 s), by
:meth:`CandleAggregator.close_partition`. That raises each interval's own
watermark to the end of its open windows (so their candles are emitted) but
leaves the partition's event-time watermark where the data put it. When the
partition was not idle but stalled (a broker or store outage, a frozen
consumer, a market pause), the ticks that come next are newer than anything
seen: they must stay on time, and a tick for a window closed this way revises
its candle.
"""

from __future__ import annotations

import pytest

from cryptolab.windows import CandleAggregator

pytestmark = [pytest.mark.faults]

T0 = 1_700_000_040_000  # a minute boundary, 8m 40s into a 15-minute window


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


def test_without_an_idle_close_the_same_ticks_are_all_on_time() -> None:
    agg = CandleAggregator(intervals="1m,5m,15m", out_of_orderness_ms=1_000, allowed_lateness_ms=60_000)
    too_late = [s for s in range(1_200) if not agg.add("BTC-USD", T0 + s * 1_000, 100.0, 1.0, 0)]
    assert too_late == []
