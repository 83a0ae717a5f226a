"""Closing a window costs the same however many windows the aggregator holds.

Not timed: the windows each close touches are counted. Every interval's windows are
swapped for a dict that counts the window entries read (iterated, looked up, listed),
on a stream holding 100,000 windows and on one holding ten, built from snapshots (a
restore holds them without closing anything). Each following tick closes one window;
the reads per close must be the same small number for both.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cryptolab.candles import CandleAggregator
from cryptolab.candles.accumulator import Accumulator

T0 = 1_700_000_040_000
MIN = 60_000
HELD = 100_000
CLOSES = 50


class CountingDict(dict[int, Any]):
    """A window dict counting the entries read through it."""

    reads = 0

    def __iter__(self) -> Iterator[int]:
        for key in super().__iter__():
            CountingDict.reads += 1
            yield key

    def keys(self) -> Any:
        CountingDict.reads += len(self)
        return super().keys()

    def values(self) -> Any:
        CountingDict.reads += len(self)
        return super().values()

    def items(self) -> Any:
        CountingDict.reads += len(self)
        return super().items()

    def __getitem__(self, key: int) -> Any:
        CountingDict.reads += 1
        return super().__getitem__(key)

    def get(self, key: int, default: Any = None) -> Any:
        CountingDict.reads += 1
        return super().get(key, default)

    def pop(self, key: int, *default: Any) -> Any:
        CountingDict.reads += 1
        return super().pop(key, *default)


def _row(ws: int, closed: bool) -> list[Any]:
    acc = Accumulator(1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1, ws, ws, ws, ws, 0, True, closed, False, None)
    return [0, ws, "BTC-USD", *acc.state(), None]


def _aggregator(held: int, kind: str) -> tuple[CandleAggregator, int]:
    """A one-minute aggregator holding ``held`` windows, and the watermark it stands at.

    ``open``: windows ahead of the watermark (a large out-of-orderness, a backfill);
    ``closed``: windows already closed, kept for late ticks (a long allowed lateness).
    """
    agg = CandleAggregator(intervals="1m", out_of_orderness_ms=0, allowed_lateness_ms=10**12)
    if kind == "open":
        wm = T0
        rows = [_row(T0 + i * MIN, False) for i in range(held)]
    else:
        wm = T0 + held * MIN
        rows = [_row(T0 + i * MIN, True) for i in range(held)]
        rows.append(_row(wm, False))
    agg.restore(0, {"v": 1, "intervals": ["1m"], "max_ts": wm, "wm": wm, "floor": [None],
                    "windows": rows, "last": []})
    return agg, wm


def _reads_per_close(held: int, kind: str) -> list[int]:
    agg, wm = _aggregator(held, kind)
    p = agg._parts[0]
    p.windows = [CountingDict(w) for w in p.windows]
    reads = []
    for i in range(1, CLOSES + 1):
        CountingDict.reads = 0
        # in "open", the watermark moves a minute and closes the window it passes; in
        # "closed", the tick is a minute ahead and closes the one open window
        assert agg.add("BTC-USD", wm + i * MIN, 2.0, 1.0)
        reads.append(CountingDict.reads)
        em = agg.drain()
        assert len(em.first_finals) == 1
    assert agg.open_windows() >= held
    return reads


@pytest.mark.parametrize("kind", ["open", "closed"])
def test_window_close_reads_do_not_grow_with_windows_held(kind):
    few = _reads_per_close(10, kind)
    many = _reads_per_close(HELD, kind)
    assert max(many) <= max(few) <= 8, (kind, max(few), max(many))


def test_sparse_batch_closes_each_window_once():
    """One 20,000-tick batch of a sparse stream (a tick every 40 minutes): 60,000 windows
    close and are held until the drain; the windows read stay proportional to the ticks."""
    agg = CandleAggregator(intervals="1m,5m,15m")
    n = 20_000
    agg.add("BTC-USD", T0, 1.0, 1.0)
    p = agg._parts[0]
    p.windows = [CountingDict(w) for w in p.windows]
    CountingDict.reads = 0
    ts = [T0 + (i + 1) * 40 * MIN for i in range(n)]
    late = agg.add_columns([0] * n, ["BTC-USD"], ts, [1.0 + i % 7 for i in range(n)], [1.0] * n)
    assert not late.any()
    assert CountingDict.reads <= 4 * 3 * n
    assert len(agg.drain().first_finals) == 3 * n
