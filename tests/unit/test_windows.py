"""Window logic: streaming aggregator vs the batch twin and a brute-force oracle."""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptolab.batch import candles_from_ticks, candles_to_frame, epoch_ms
from cryptolab.models import Candle, parse_interval
from cryptolab.windows import CandleAggregator, state_from_bytes, state_to_bytes

T0 = 1_700_000_040_000  # a whole minute (and 5m? no: only the minute matters in tests)
SYMS = ["BTC-USD", "ETH-USD", "SOL-USD"]


def _sort(df: pd.DataFrame) -> pd.DataFrame:
    iv = df["interval"].map(parse_interval)
    return df.assign(_iv=iv).sort_values(["symbol", "_iv", "window_start"]).drop(columns="_iv").reset_index(drop=True)


def _stream(rows, *, intervals="1m,5m", ooo=0, lateness=60_000, batch_every=None, partition_of=None,
            restart_at=None):
    """Run rows through the aggregator; return (final candles by key, late rows, first finals)."""
    agg = CandleAggregator(intervals=intervals, out_of_orderness_ms=ooo, allowed_lateness_ms=lateness)
    finals: dict[tuple[str, str, int], Candle] = {}
    first: list[Candle] = []
    late = []
    for i, (sym, ts, price, size) in enumerate(rows):
        p = partition_of(sym) if partition_of else 0
        if not agg.add(sym, ts, price, size, p):
            late.append(i)
        if batch_every and i % batch_every == batch_every - 1:
            em = agg.drain()
            finals.update((c.key, c) for c in em.finals)
            first += em.first_finals
        if restart_at is not None and i == restart_at:
            em = agg.drain()
            finals.update((c.key, c) for c in em.finals)
            first += em.first_finals
            snaps = {q: state_to_bytes(agg.snapshot(q)) for q in agg.partitions}
            agg = CandleAggregator(intervals=intervals, out_of_orderness_ms=ooo, allowed_lateness_ms=lateness)
            for q, blob in snaps.items():
                agg.restore(q, state_from_bytes(blob))
    agg.close_all()
    em = agg.drain()
    finals.update((c.key, c) for c in em.finals)
    first += em.first_finals
    return finals, late, first


def _frame(finals: dict) -> pd.DataFrame:
    return _sort(candles_to_frame(finals.values()))


in_order_rows = st.lists(
    st.tuples(
        st.sampled_from(SYMS),
        st.integers(0, 40 * 60_000),
        st.floats(0.5, 2.0).map(lambda x: round(x, 2)),  # coarse prices: many ties
        st.one_of(st.none(), st.floats(0.001, 5.0)),
    ),
    min_size=1,
    max_size=300,
).map(lambda rows: sorted(((s, T0 + dt, p, z) for s, dt, p, z in rows), key=lambda r: r[1]))


@given(rows=in_order_rows, batch_every=st.one_of(st.none(), st.integers(1, 50)),
       restart=st.one_of(st.none(), st.integers(0, 299)))
@settings(max_examples=150, deadline=None)
def test_stream_equals_batch_on_in_order_ticks(rows, batch_every, restart):
    finals, late, _ = _stream(rows, intervals="1m,5m,15m", ooo=1_000, batch_every=batch_every,
                              restart_at=restart, partition_of=lambda s: SYMS.index(s) % 2)
    assert late == []
    df = pd.DataFrame(rows, columns=["symbol", "ts_ms", "price", "size"])
    df["size"] = df["size"].astype("float64")
    expected = candles_from_ticks(df, "1m,5m,15m")
    got = _frame(finals)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def _oracle(rows, iv_names, ooo, lateness):
    """Brute force per-tick semantics: accepted ticks per interval and revision counts."""
    accepted = {n: [] for n in iv_names}
    revisions: dict[tuple[str, str, int], int] = {}
    exists: set[tuple[str, str, int]] = set()
    too_late = set()
    max_ts = None
    for i, (sym, ts, price, size) in enumerate(rows):
        wm = None if max_ts is None else max_ts - ooo
        for n in iv_names:
            iv = parse_interval(n)
            ws = ts - ts % iv
            we = ws + iv
            key = (sym, n, ws)
            if wm is not None and we <= wm:
                if wm >= we + lateness:
                    too_late.add(i)
                    continue
                if key in exists:
                    revisions[key] = revisions.get(key, 0) + 1
            exists.add(key)
            accepted[n].append((sym, ts, price, size))
        max_ts = ts if max_ts is None else max(max_ts, ts)
    frames = []
    for n, acc in accepted.items():
        if acc:
            df = pd.DataFrame(acc, columns=["symbol", "ts_ms", "price", "size"])
            df["size"] = df["size"].astype("float64")
            frames.append(candles_from_ticks(df, n))
    out = _sort(pd.concat(frames, ignore_index=True))
    out["revision"] = [revisions.get((s, n, w), 0)
                       for s, n, w in zip(out.symbol, out.interval, epoch_ms(out.window_start), strict=True)]
    return out, sorted(too_late)


out_of_order_rows = st.lists(
    st.tuples(
        st.sampled_from(SYMS),
        st.integers(0, 20 * 60_000),
        st.floats(0.5, 2.0).map(lambda x: round(x, 1)),
        st.one_of(st.none(), st.just(1.0), st.floats(0.001, 5.0)),
    ),
    min_size=1,
    max_size=200,
).map(lambda rows: [(s, T0 + dt, p, z) for s, dt, p, z in rows])


@given(rows=out_of_order_rows, ooo=st.sampled_from([0, 5_000, 30_000]),
       lateness=st.sampled_from([0, 30_000, 120_000]), batch_every=st.one_of(st.none(), st.integers(1, 40)),
       restart=st.one_of(st.none(), st.integers(0, 199)))
@settings(max_examples=200, deadline=None)
def test_out_of_order_matches_per_tick_oracle(rows, ooo, lateness, batch_every, restart):
    finals, late, _ = _stream(rows, intervals="1m,5m", ooo=ooo, lateness=lateness,
                              batch_every=batch_every, restart_at=restart)
    expected, too_late = _oracle(rows, ["1m", "5m"], ooo, lateness)
    assert late == too_late
    got = _frame(finals)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_late_tick_within_lateness_revises_and_beyond_is_rejected():
    agg = CandleAggregator(intervals="1m", out_of_orderness_ms=0, allowed_lateness_ms=30_000)
    assert agg.add("BTC-USD", T0 + 10_000, 100.0, 1.0)
    assert agg.add("BTC-USD", T0 + 65_000, 101.0, 1.0)  # watermark passes the first window's end
    em = agg.drain()
    assert [(c.window_start, c.final, c.revision) for c in em.finals] == [(T0, True, 0)]
    assert [c.window_start for c in em.first_finals] == [T0]
    # late by 5 s < 30 s allowed: revision 1, low updated, first final unchanged
    assert agg.add("BTC-USD", T0 + 20_000, 90.0, 2.0)
    em = agg.drain()
    assert [(c.revision, c.low, c.trades, c.volume) for c in em.finals] == [(1, 90.0, 2, 3.0)]
    assert em.first_finals == []
    # watermark to T0+95s: window end (T0+60s) + lateness (30s) passed -> too late
    assert agg.add("BTC-USD", T0 + 95_000, 102.0, 1.0)
    assert not agg.add("BTC-USD", T0 + 30_000, 50.0, 1.0)
    assert agg.too_late == 1
    em = agg.drain()
    assert all(c.low != 50.0 for c in em.finals + em.updates)


def test_open_close_ties_break_by_arrival_and_high_low_keep_earliest_time():
    agg = CandleAggregator(intervals="1m", out_of_orderness_ms=10_000, allowed_lateness_ms=0)
    for ts, price in [(T0 + 5_000, 1.0), (T0 + 5_000, 2.0), (T0 + 1_000, 3.0), (T0 + 1_000, 4.0),
                      (T0 + 50_000, 5.0), (T0 + 50_000, 6.0), (T0 + 40_000, 6.0)]:
        agg.add("X", ts, price, None)
    agg.close_all()
    (c,) = agg.drain().finals
    assert (c.open, c.first_ts) == (3.0, T0 + 1_000)  # earliest time, first arrival among ties
    assert (c.close, c.last_ts) == (6.0, T0 + 50_000)  # latest time, last arrival among ties
    assert (c.high, c.high_ts) == (6.0, T0 + 40_000)  # earliest time the high was reached
    assert c.vwap is None and c.volume == 0.0


def test_idle_close_emits_last_candle_and_later_ticks_follow_watermark():
    agg = CandleAggregator(intervals="1m", out_of_orderness_ms=0, allowed_lateness_ms=60_000)
    agg.add("ETH-USD", T0 + 1_000, 10.0, 1.0, partition=3)
    assert agg.drain().finals == []
    agg.close_partition(3)
    em = agg.drain()
    assert [(c.window_start, c.final) for c in em.finals] == [(T0, True)]
    assert agg.watermark(3) == T0 + 1_000  # the event-time watermark stays with the data
    # a straggler for the closed window revises it
    assert agg.add("ETH-USD", T0 + 2_000, 11.0, 1.0, partition=3)
    assert agg.drain().finals[0].revision == 1
    # the feed resumes: newer ticks are on time, in the next window
    assert agg.add("ETH-USD", T0 + 65_000, 12.0, 1.0, partition=3)
    em = agg.drain()
    assert [(c.window_start, c.final) for c in em.updates] == [(T0 + 60_000, False)]
    # and the idle floor survives a snapshot/restore
    snap = agg.snapshot(3)
    other = CandleAggregator(intervals="1m", out_of_orderness_ms=0, allowed_lateness_ms=60_000)
    other.restore(3, state_from_bytes(state_to_bytes(snap)))
    assert other.add("ETH-USD", T0 + 3_000, 9.0, 1.0, partition=3)
    assert other.drain().finals[0].revision == 2


def test_partitions_have_independent_watermarks():
    agg = CandleAggregator(intervals="1m", out_of_orderness_ms=0, allowed_lateness_ms=0)
    agg.add("A", T0 + 1_000, 1.0, 1.0, partition=0)
    agg.add("B", T0 + 600_000, 1.0, 1.0, partition=1)  # far ahead, other partition
    em = agg.drain()
    assert [c.symbol for c in em.finals] == []  # A's window not closed by B's partition
    assert agg.add("A", T0 + 2_000, 2.0, 1.0, partition=0)


def test_gap_fill_flat_candles_between_trades():
    agg = CandleAggregator(intervals="1m", out_of_orderness_ms=0, allowed_lateness_ms=0, gap_fill=True)
    agg.add("X", T0 + 1_000, 5.0, 1.0)
    agg.add("X", T0 + 180_000 + 1_000, 6.0, 1.0)
    agg.close_all()
    finals = sorted(agg.drain().finals, key=lambda c: c.window_start)
    assert [(c.window_start - T0, c.gap, c.close) for c in finals] == [
        (0, False, 5.0), (60_000, True, 5.0), (120_000, True, 5.0), (180_000, False, 6.0)]
    df = pd.DataFrame({"symbol": ["X", "X"], "ts_ms": [T0 + 1_000, T0 + 181_000], "price": [5.0, 6.0],
                       "size": [1.0, 1.0]})
    batch = candles_from_ticks(df, "1m", gap_fill=True)
    assert batch["gap"].tolist() == [False, True, True, False]


def test_many_symbols_and_snapshot_round_trip_is_exact():
    rng = random.Random(5)
    rows = []
    ts = T0
    for _ in range(5_000):
        ts += rng.randint(0, 900)
        rows.append((f"S{rng.randint(0, 299):03d}", ts, round(rng.uniform(1, 100), 3), rng.random()))
    a, _, first_a = _stream(rows, intervals="1m,5m,15m", batch_every=97)
    b, _, first_b = _stream(rows, intervals="1m,5m,15m", batch_every=13, restart_at=2_500)
    assert a == b
    assert [c.key for c in first_a] == [c.key for c in first_b]
    assert len({c.symbol for c in a.values()}) == 300


def test_snapshot_requires_drained_state_and_matching_intervals():
    agg = CandleAggregator(intervals="1m")
    agg.add("X", T0, 1.0, 1.0)
    with pytest.raises(RuntimeError):
        agg.snapshot(0)
    agg.drain()
    snap = agg.snapshot(0)
    other = CandleAggregator(intervals="5m")
    with pytest.raises(ValueError, match="intervals"):
        other.restore(0, snap)


def test_vwap_and_volume_sums_are_bit_identical_with_batch_for_awkward_floats():
    rng = np.random.default_rng(11)
    n = 20_000
    df = pd.DataFrame({
        "symbol": "BTC-USD",
        "ts_ms": T0 + np.sort(rng.integers(0, 3_600_000, n)),
        "price": rng.uniform(20_000, 70_000, n),
        "size": rng.exponential(0.3, n) * 10.0 ** rng.integers(-6, 3, n),
    })
    finals, _, _ = _stream(list(df.itertuples(index=False, name=None)), intervals="1m,1h", batch_every=333)
    got = _frame(finals)
    exp = candles_from_ticks(df, "1m,1h")
    assert (got["volume"].to_numpy() == exp["volume"].to_numpy()).all()
    assert (got["vwap"].to_numpy() == exp["vwap"].to_numpy()).all()
    assert not math.isnan(got["vwap"].iloc[0])


_ops = st.lists(st.one_of(
    st.tuples(st.just("tick"), st.sampled_from(SYMS[:2]), st.integers(-40_000, 40_000),
              st.sampled_from([1.0, 1.5, 2.0]), st.sampled_from([None, 0.5, 0.1])),
    st.tuples(st.sampled_from(["drain", "idle", "restore", "discard"])),
    st.tuples(st.just("columns"), st.integers(0, 2**16)),  # a batch long enough for numpy
), min_size=1, max_size=120)


@given(ops=_ops, ooo=st.sampled_from([0, 5_000]), lateness=st.sampled_from([0, 30_000]))
@settings(max_examples=200, deadline=None)
def test_same_windows_fast_path_changes_nothing(ops, ooo, lateness):
    """A tick in the same windows as the previous one takes a shortcut in add(): every output is
    the same as without it, through drains, idle closes, restores and discarded output."""
    aggs = [CandleAggregator(intervals="1m,5m,15m", out_of_orderness_ms=ooo, allowed_lateness_ms=lateness)
            for _ in range(2)]
    aggs[1]._nested = False  # the shortcut off
    outs: list[list[object]] = [[], []]
    ts = T0
    for op in ops:
        if op[0] == "tick":
            ts += op[2]
        elif op[0] == "columns":
            rng = np.random.default_rng(op[1])
            t = ts + np.cumsum(rng.integers(0, 150, 300))
            t[-1] += 65_000 * int(rng.integers(0, 2))  # the watermark crossing minutes at the last tick
            cols = (rng.integers(0, 2, 300), SYMS[:2], t, rng.choice([1.0, 2.0], 300), rng.choice([np.nan, 0.5], 300))
            ts = int(t[-1])
        for agg, out in zip(aggs, outs, strict=True):
            if op[0] == "tick":
                out.append(agg.add(op[1], ts, op[3], op[4]))
            elif op[0] == "columns":
                out.append(agg.add_columns(*cols).tolist())
            elif op[0] == "drain":
                em = agg.drain()
                out.append((em.updates, em.finals, em.first_finals))
            elif op[0] == "idle":
                agg.close_partition(0)
            elif op[0] == "discard":
                agg.discard_pending()
            else:
                agg.drain()
                agg.restore(0, state_from_bytes(state_to_bytes(agg.snapshot(0))))
    for agg, out in zip(aggs, outs, strict=True):
        agg.close_all()
        em = agg.drain()
        out.append((em.updates, em.finals, em.first_finals, agg.too_late))
    assert outs[0] == outs[1]


def test_fast_path_is_not_taken_for_windows_a_columnar_batch_closed():
    """A columnar batch folded with numpy moves the watermark past the windows of the tick
    before it; a late tick for them is then a revision (or too late), as without the shortcut."""
    outs = []
    for shortcut in (True, False):
        agg = CandleAggregator(intervals="1m,5m,15m", out_of_orderness_ms=0, allowed_lateness_ms=30_000)
        agg._nested = shortcut
        agg.add("A", T0 + 1_000, 1.0, 1.0)
        t = T0 + 2_000 + np.arange(300) * 10
        t[-1] += 65_000  # the only watermark crossing: the batch is one numpy chunk
        agg.add_columns(np.zeros(300, dtype=np.int64), ["A"], t, np.ones(300), np.ones(300))
        accepted = agg.add("A", T0 + 6_000, 2.0, 1.0)
        em = agg.drain()
        outs.append((accepted, em.finals, em.updates, agg.too_late))
    assert outs[0] == outs[1]
    assert [c.revision for c in outs[0][1] if c.interval == "1m"] == [1]
