"""Candles as columns (cryptolab.models.blocks): the aggregator's sealed windows are emitted as
blocks; read as candles they are add()'s, read as columns they are never built."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cryptolab.candles import CandleAggregator
from cryptolab.models import CANDLE_FIELDS, Candle
from cryptolab.models.blocks import CandleBlock, CandleList, candle_columns

T0 = 1_700_000_040_000
MIN = 60_000


def sparse(n: int, seed: int = 0) -> tuple[list[int], list[str], list[int], list[float], list[float]]:
    """Three symbols, a tick every few minutes, some pairs of ticks in one window, some sizes missing."""
    rng = np.random.default_rng(seed)
    ts = (T0 + np.cumsum(rng.choice([1_000, 7 * MIN, 23 * MIN], n))).tolist()
    price = np.round(100 + rng.normal(0, 1, n), 2).tolist()
    size = np.where(rng.random(n) < 0.2, np.nan, np.round(rng.exponential(1.0, n), 4)).tolist()
    return rng.integers(0, 3, n).tolist(), ["BTC-USD", "ETH-USD", "SOL-USD"], ts, price, size


def emissions(columnar: bool, gap_fill: bool = False) -> list[tuple[list[Candle], list[Candle]]]:
    agg = CandleAggregator(intervals="1m,5m,15m", out_of_orderness_ms=0, allowed_lateness_ms=0, gap_fill=gap_fill)
    codes, symbols, ts, price, size = sparse(3_000)
    out = []
    for a in range(0, len(ts), 1_000):
        if columnar:
            agg.add_columns(codes[a:a + 1_000], symbols, ts[a:a + 1_000], price[a:a + 1_000], size[a:a + 1_000])
        else:
            for i in range(a, a + 1_000):
                agg.add(symbols[codes[i]], ts[i], price[i], None if size[i] != size[i] else size[i])
        em = agg.drain()
        out.append((em.finals, em.first_finals))
    return out


@pytest.mark.parametrize("gap_fill", [False, True])
def test_blocks_read_as_the_candles_add_makes(gap_fill: bool) -> None:
    columnar, per_tick = emissions(True, gap_fill), emissions(False, gap_fill)
    assert sum(finals.blocks for finals, _ in columnar) >= 3  # the sealed path ran
    for (finals, firsts), (want_finals, want_firsts) in zip(columnar, per_tick, strict=True):
        assert isinstance(finals, CandleList) and finals.blocks
        # the columns, read before any candle is built, are those of add()'s candles
        assert finals.columns() == candle_columns(list(want_finals))
        assert all(p[0]._candles is None for p in finals._parts if isinstance(p, tuple))
        assert list(finals) == list(want_finals) and list(firsts) == list(want_firsts)
        assert [type(v) for v in dataclasses.astuple(finals[0])] == [type(v) for v in dataclasses.astuple(want_finals[0])]
        # read again, the columns are the same; and both lists share their candle objects
        assert finals.columns() == candle_columns(list(want_finals))
        same = {id(c) for c in finals}
        assert sum(id(c) in same for c in firsts) >= len(firsts) * 0.9


def test_append_after_a_block_keeps_the_order() -> None:
    one = np.array([1])
    block = CandleBlock(["X"], ["1m"], code=np.array([0]), k=np.array([0]), window_start=np.array([MIN]),
                        window_end=np.array([2 * MIN]), open=np.array([2.0]), high=np.array([2.0]),
                        low=np.array([2.0]), close=np.array([2.0]), volume=np.array([0.0]),
                        vwap=np.array([0.0]), has_vwap=np.array([False]), trades=one, first_ts=one,
                        last_ts=one, high_ts=one, low_ts=one)
    base = Candle(symbol="X", interval="1m", window_start=0, window_end=MIN, open=1.0, high=1.0, low=1.0,
                  close=1.0, volume=0.0, vwap=None, trades=1, first_ts=0, last_ts=0, high_ts=0, low_ts=0,
                  final=True)
    later = dataclasses.replace(base, window_start=2 * MIN, window_end=3 * MIN)
    out = CandleList([base])
    out.add_block(block, slice(0, 1))
    out.append(later)
    out.add_block(block, np.array([0]))
    assert [c.window_start for c in out] == [0, MIN, 2 * MIN, MIN] and len(out) == 4 and out.blocks == 2
    assert out[1] is out[3] and out[1].vwap is None and out[1].trades == 1
    assert out == [base, out[1], later, out[1]] and out + [] == list(out) and [] + out == list(out)
    assert candle_columns(out)[CANDLE_FIELDS.index("window_start")] == [0, MIN, 2 * MIN, MIN]
    assert CandleList() == [] and not CandleList() and CandleList() != "x"
