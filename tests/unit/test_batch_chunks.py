"""candles_from_ticks' fast path for time-ordered ticks (chunked, threaded, bincount sums)
against the streaming aggregator, bit for bit (including the sign of a zero volume)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryptolab.batch import candles_from_ticks, candles_to_frame
from cryptolab.candles import batch
from cryptolab.models import parse_interval
from cryptolab.windows import CandleAggregator

T0 = 1_700_000_040_000
SYMS = ["BTC-USD", "ETH-USD", "SOL-USD", "XRP-USD"]

rows_strategy = st.lists(
    st.tuples(
        st.sampled_from(SYMS),
        st.integers(0, 50 * 60_000),
        st.floats(0.5, 2.0).map(lambda x: round(x, 1)),  # coarse prices: many ties
        st.one_of(st.none(), st.just(0.0), st.just(-0.0), st.floats(0.001, 5.0)),
    ),
    min_size=1,
    max_size=300,
).map(lambda rows: sorted(((s, T0 + dt, p, z) for s, dt, p, z in rows), key=lambda r: r[1]))


def _streamed(rows, intervals: str) -> pd.DataFrame:
    agg = CandleAggregator(intervals=intervals, out_of_orderness_ms=0)
    for sym, ts, price, size in rows:
        agg.add(sym, ts, price, size)
    agg.close_all()
    df = candles_to_frame(agg.drain().finals)
    order = df["interval"].map(parse_interval)
    return df.assign(_o=order).sort_values(["symbol", "_o", "window_start"]).drop(columns="_o").reset_index(drop=True)


@pytest.fixture(params=[(1 << 20, 1), (7, 1), (5, 3)], ids=["one-chunk", "small-chunks", "threads"])
def chunking(request, monkeypatch):
    # the same value for every generated example: no per-example state to reset
    target, threads = request.param
    monkeypatch.setattr(batch, "_CHUNK_TICKS", target)
    monkeypatch.setattr(batch, "_THREADS", threads)
    return request.param


@given(rows=rows_strategy, intervals=st.sampled_from(["1m,5m,15m", "1m", "1s,1m,1h", "5m,15m,1h"]))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_in_order_batch_equals_stream_bit_for_bit(chunking, rows, intervals):
    df = pd.DataFrame(rows, columns=["symbol", "ts_ms", "price", "size"])
    df["size"] = df["size"].astype("float64")
    got = candles_from_ticks(df, intervals)
    want = _streamed(rows, intervals)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert repr(got.to_dict("list")) == repr(want.to_dict("list"))  # -0.0 is not 0.0


def test_time_chunks_cut_only_at_window_boundaries():
    ts = pd.Series(range(T0, T0 + 10 * 60_000, 7_000)).to_numpy()
    chunks = batch._time_chunks(ts, 60_000, target=5)
    assert chunks[0][0] == 0 and chunks[-1][1] == len(ts)
    assert all(a < b for a, b in chunks) and all(b == c for (_, b), (c, _) in zip(chunks, chunks[1:], strict=False))
    for a, _ in chunks[1:]:
        assert ts[a] // 60_000 != ts[a - 1] // 60_000  # a cut never splits a window
    assert len(chunks) > 1


def test_vwap_is_none_when_no_tick_has_a_size():
    df = pd.DataFrame({"symbol": ["X", "X"], "ts_ms": [T0, T0 + 1], "price": [1.0, 2.0], "size": [math.nan] * 2})
    out = candles_from_ticks(df, "1m")
    assert out["vwap"].isna().all() and out["volume"].tolist() == [0.0]
