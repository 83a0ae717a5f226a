"""CandleAggregator.add_columns (the consumer's vectorised fold) against add() tick by tick.

The pipeline folds each partition's part of a consumer batch with ``add_columns``; it
must leave the aggregator exactly as ``add`` per tick would: same late ticks, same
emissions (values to the last bit, and order), same snapshots.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryptolab.candles import kernels, stream
from cryptolab.windows import CandleAggregator, state_to_bytes

T0 = 1_700_000_040_000
SYMS = ["BTC-USD", "ETH-USD", "SOL-USD", "ADA-USD"]

sizes = st.one_of(st.none(), st.just(0.0), st.just(-0.0), st.just(1.0), st.floats(0.001, 5.0))
rows_strategy = st.lists(
    st.tuples(
        st.sampled_from(SYMS),
        st.integers(0, 30 * 60_000),
        st.floats(0.5, 2.0).map(lambda x: round(x, 1)),  # coarse prices: many ties
        sizes,
        st.integers(0, 2),  # partition
    ),
    min_size=1,
    max_size=250,
)


def _emission_key(em):
    return ([c for c in em.updates], [c for c in em.finals], [c for c in em.first_finals])


def _run(rows, cuts, *, columnar, intervals, ooo, lateness, gap_fill=False, restart_at=None, idle_at=None):
    """Feed rows in batches (split at ``cuts``), per partition in order of first appearance."""
    agg = CandleAggregator(intervals=intervals, out_of_orderness_ms=ooo, allowed_lateness_ms=lateness,
                           gap_fill=gap_fill)
    late: list[int] = []
    out = []
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(rows))), len(rows)]
    for bi, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        parts: dict[int, list[int]] = {}
        for i in range(a, b):
            parts.setdefault(rows[i][4], []).append(i)
        for part, idx in parts.items():
            if columnar:
                names = sorted({rows[i][0] for i in idx})
                code = {s: j for j, s in enumerate(names)}
                mask = agg.add_columns(
                    [code[rows[i][0]] for i in idx], names, [T0 + rows[i][1] for i in idx],
                    [rows[i][2] for i in idx], [math.nan if rows[i][3] is None else rows[i][3] for i in idx],
                    part,
                )
                late += [i for i, m in zip(idx, mask.tolist(), strict=True) if m]
            else:
                for i in idx:
                    s, dt, price, size, _ = rows[i]
                    if not agg.add(s, T0 + dt, price, size, part):
                        late.append(i)
        if idle_at is not None and bi == idle_at:
            for q in agg.partitions:  # an idle close between batches, as the pipeline does
                agg.close_partition(q)
        em = agg.drain()
        out.append(_emission_key(em))
        out.append([state_to_bytes(agg.snapshot(q)) for q in agg.partitions])
        if restart_at is not None and bi == restart_at:
            snaps = {q: agg.snapshot(q) for q in agg.partitions}
            too_late = agg.too_late
            agg = CandleAggregator(intervals=intervals, out_of_orderness_ms=ooo,
                                   allowed_lateness_ms=lateness, gap_fill=gap_fill)
            agg.too_late = too_late
            for q, snap in snaps.items():
                agg.restore(q, snap)
    agg.close_all()
    out.append(_emission_key(agg.drain()))
    return sorted(late), out, agg.too_late


def _same(got, want):
    """Equal, treating -0.0 and 0.0 as different (bit-exact)."""
    assert got == want
    assert repr(got) == repr(want)


@pytest.fixture(params=[1, 256], ids=["vector-always", "default-threshold"])
def vector_min(request, monkeypatch):
    # the same value for every generated example: no per-example state to reset
    monkeypatch.setattr(stream, "_VECTOR_MIN", request.param)
    return request.param


@given(rows=rows_strategy, cuts=st.lists(st.integers(0, 250), max_size=6),
       ooo=st.sampled_from([0, 1_000, 30_000]), lateness=st.sampled_from([0, 30_000, 120_000]),
       intervals=st.sampled_from(["1m", "1m,5m", "2m,5m,15m", "1s,1m"]),
       sort=st.booleans(), gap_fill=st.booleans(), restart=st.one_of(st.none(), st.integers(0, 5)),
       idle=st.one_of(st.none(), st.integers(0, 5)))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_add_columns_equals_add_per_tick(vector_min, rows, cuts, ooo, lateness, intervals, sort, gap_fill,
                                         restart, idle):
    if sort:
        rows = sorted(rows, key=lambda r: r[1])
    kw = dict(intervals=intervals, ooo=ooo, lateness=lateness, gap_fill=gap_fill, restart_at=restart,
              idle_at=idle)
    want = _run(rows, cuts, columnar=False, **kw)
    got = _run(rows, cuts, columnar=True, **kw)
    _same(got, want)


def test_add_columns_large_batch_matches_add():
    """A realistic batch (thousands of ticks, windows closing mid-batch) on the numpy path."""
    rng = np.random.default_rng(7)
    n = 20_000
    ts = np.sort(rng.integers(0, 40 * 60_000, n)) + T0
    jitter = rng.integers(-3_000, 1, n)  # mildly out of order
    ts = ts + jitter
    codes = rng.integers(0, len(SYMS), n)
    price = np.round(rng.uniform(1.0, 2.0, n), 2)
    size = np.where(rng.random(n) < 0.1, np.nan, rng.uniform(0.0, 3.0, n))
    rows = [(SYMS[c], int(t - T0), float(p), None if math.isnan(z) else float(z), int(c) % 2)
            for c, t, p, z in zip(codes, ts, price, size, strict=True)]
    kw = dict(intervals="1m,5m,15m", ooo=1_000, lateness=60_000)
    cuts = [5_000, 12_000, 12_001]
    want = _run(rows, cuts, columnar=False, **kw)
    got = _run(rows, cuts, columnar=True, **kw)
    _same(got, want)
    assert want[2] > 0 or want[0] == []


def test_add_columns_checks_lengths():
    agg = CandleAggregator(intervals="1m")
    with pytest.raises(ValueError, match="same length"):
        agg.add_columns([0, 0], ["X"], [T0], [1.0], [1.0])


def test_late_ticks_for_a_window_never_seen_count_revisions_like_add(monkeypatch):
    """Two in-lateness ticks for a closed window that had no candle: revision 1, as with add()."""
    monkeypatch.setattr(stream, "_VECTOR_MIN", 1)
    rows = [("BTC-USD", 0, 1.0, 1.0, 0), ("BTC-USD", 70_000, 1.1, 1.0, 0),  # 1st minute closes
            ("ETH-USD", 10_000, 2.0, 1.0, 0), ("ETH-USD", 20_000, 2.5, 2.0, 0)]  # late, no candle yet
    kw = dict(intervals="1m", ooo=0, lateness=60_000)
    want = _run(rows, [2], columnar=False, **kw)
    got = _run(rows, [2], columnar=True, **kw)
    _same(got, want)
    revised = [c for c in want[1][2][1] if c.symbol == "ETH-USD"]
    assert [(c.trades, c.revision) for c in revised] == [(2, 1)]


@pytest.mark.parametrize("shape", ["even", "skewed", "uneven"], ids=["grid", "per-group", "by-position"])
def test_sequential_sums_round_like_a_loop(shape):
    """Group sums are added one value after the other (np.sum would pair them up)."""
    rng = np.random.default_rng(3)
    lengths = {
        "even": rng.integers(1, 400, 60),
        "skewed": np.array([5_000] + [1] * 300),
        "uneven": np.array([3_000] * 4 + [1, 2] * 2_500),
    }[shape]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    values = rng.random((int(lengths.sum()), 2)) * rng.choice([1e-3, 1.0, 1e3, 1e7], (int(lengths.sum()), 2))
    init = rng.random((len(lengths), 2)) * 100
    init[::7] = -0.0
    got = kernels.sequential_sums(values.T.copy(), starts, lengths, init.T.copy()).T  # (columns, n) rows
    for g, (s, n) in enumerate(zip(starts, lengths, strict=True)):
        for col in range(2):
            acc = init[g, col]
            for x in values[s : s + n, col].tolist():
                acc += x
            assert repr(got[g, col].item()) == repr(float(acc))
