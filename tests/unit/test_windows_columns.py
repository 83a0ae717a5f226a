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


# ------------------------------------------------------------------ sealed windows
# On sparse data add_columns folds the windows that open, close and pass allowed lateness
# within a batch with numpy and never holds them (cryptolab.candles.sealed): the emissions,
# late ticks and snapshots must stay those of add() tick by tick.

gaps_ms = st.one_of(
    st.integers(0, 30_000),  # a burst: several ticks per window
    st.integers(60_000, 20 * 60_000),  # a few minutes: windows open and close
    st.integers(15 * 60_000, 3 * 3_600_000),  # hours: every window seals
    st.integers(-90_000, -1),  # out of order: on time, late within lateness or too late
)
sparse_strategy = st.lists(
    st.tuples(st.sampled_from(SYMS[:3]), gaps_ms, st.floats(0.5, 2.0).map(lambda x: round(x, 1)), sizes,
              st.integers(0, 1)),
    min_size=1,
    max_size=400,
)


def _sparse_rows(steps):
    """Rows at the cumulated gaps (never before the first)."""
    rows, now = [], 0
    for symbol, gap, price, size, part in steps:
        now = max(0, now + gap)
        rows.append((symbol, now, price, size, part))
    return rows


@given(steps=sparse_strategy, cuts=st.lists(st.integers(0, 400), max_size=4),
       ooo=st.sampled_from([0, 1_000, 30_000]), lateness=st.sampled_from([0, 60_000, 120_000]),
       intervals=st.sampled_from(["1m,5m,15m", "1m", "2m,5m", "1s,1m"]), gap_fill=st.booleans(),
       restart=st.one_of(st.none(), st.integers(0, 4)), idle=st.one_of(st.none(), st.integers(0, 4)))
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_sparse_batches_equal_add_per_tick(vector_min, steps, cuts, ooo, lateness, intervals, gap_fill,
                                           restart, idle):
    """Gaps of seconds to hours, out-of-order ticks (on time, within lateness and too late),
    batch boundaries, gap fill, restarts from snapshots and idle closes."""
    rows = _sparse_rows(steps)
    kw = dict(intervals=intervals, ooo=ooo, lateness=lateness, gap_fill=gap_fill, restart_at=restart,
              idle_at=idle)
    want = _run(rows, cuts, columnar=False, **kw)
    got = _run(rows, cuts, columnar=True, **kw)
    _same(got, want)


def _counting_sealed(monkeypatch):
    """Count fold_sealed's outcomes (True: a region was sealed; False: it fell back)."""
    from collections import Counter

    seen: Counter[bool] = Counter()
    real = stream.fold_sealed

    def counted(*args, **kwargs):
        done = real(*args, **kwargs)
        seen[done is not None] += 1
        return done

    monkeypatch.setattr(stream, "fold_sealed", counted)
    return seen


@pytest.mark.parametrize("gap_fill", [False, True])
def test_a_sparse_stream_seals_its_windows_and_equals_add(monkeypatch, gap_fill):
    """A thin market in consumer-sized batches: a tick every 7 to 50 minutes with bursts, some
    out of order; nearly every window is sealed, and the output is add()'s."""
    seen = _counting_sealed(monkeypatch)
    rng = np.random.default_rng(11)
    n = 3_000
    gaps = np.where(rng.random(n) < 0.2, rng.integers(0, 20_000, n), rng.integers(7 * 60_000, 50 * 60_000, n))
    ts = np.cumsum(gaps) + np.where(rng.random(n) < 0.05, -rng.integers(0, 90_000, n), 0)
    rows = [(SYMS[int(i) % 2], int(t), float(p), None if z < 0.05 else float(z), 0)
            for i, t, p, z in zip(rng.integers(0, 2, n), ts, np.round(rng.uniform(1, 2, n), 2),
                                  rng.random(n), strict=True)]
    kw = dict(intervals="1m,5m,15m", ooo=1_000, lateness=60_000, gap_fill=gap_fill, restart_at=1)
    cuts = [700, 1_400, 1_401, 2_200]
    want = _run(rows, cuts, columnar=False, **kw)
    got = _run(rows, cuts, columnar=True, **kw)
    _same(got, want)
    assert seen[True] >= 4


def test_a_batch_starting_inside_held_windows_folds_its_head_first(monkeypatch):
    """The batch's first ticks fold into windows held from the last batch (the head, through the
    stateful path); the sparse rest is sealed."""
    seen = _counting_sealed(monkeypatch)
    first = [("BTC-USD", i * 1_000, 1.0, 1.0, 0) for i in range(10)]
    rest = [("BTC-USD", 20_000 + i * 1_000, 1.5, 1.0, 0) for i in range(30)]  # the same windows
    rest += [("BTC-USD", 3_600_000 + i * 40 * 60_000, 1.0 + i % 5, 2.0, 0) for i in range(600)]
    kw = dict(intervals="1m,5m,15m", ooo=1_000, lateness=60_000)
    want = _run(first + rest, [10], columnar=False, **kw)
    got = _run(first + rest, [10], columnar=True, **kw)
    _same(got, want)
    assert seen[True] == 1


def test_sealed_windows_are_not_held():
    """A sparse batch holds only the windows still open or inside allowed lateness at its end."""
    agg = CandleAggregator(intervals="1m,5m,15m", out_of_orderness_ms=1_000, allowed_lateness_ms=60_000)
    n = 1_000
    ts = [T0 + i * 40 * 60_000 for i in range(n)]
    assert not agg.add_columns([0] * n, ["BTC-USD"], ts, [1.0] * n, [1.0] * n).any()
    assert agg.open_windows() == 3  # the last tick's
    out = agg.drain()
    assert (len(out.finals), len(out.first_finals), len(out.updates)) == (3 * (n - 1), 3 * (n - 1), 3)


@pytest.mark.parametrize("gap_fill", [False, True])
def test_sealed_and_held_windows_closing_at_one_tick_keep_their_order(monkeypatch, gap_fill):
    """A batch opens with an out-of-order tick (on time) for the minute before a held window:
    the next tick closes both, the sealed one first (by start, as add() pops them)."""
    seen = _counting_sealed(monkeypatch)
    first = [("BTC-USD", i * 70_000, 1.0 + (i % 4) / 10, 1.0, 0) for i in range(300)]
    end = (first[-1][1] // 60_000 + 2) * 60_000 + 20_000  # 20 s into a minute, none in the last
    first.append(("BTC-USD", end, 2.0, 1.0, 0))
    second = [("BTC-USD", end - 40_000, 3.0, 1.0, 0)]  # the minute before, on time (30 s)
    second += [("BTC-USD", end + 80_000 + i * 70_000, 1.5, 2.0, 0) for i in range(300)]
    kw = dict(intervals="1m", ooo=30_000, lateness=0, gap_fill=gap_fill)
    want = _run(first + second, [len(first)], columnar=False, **kw)
    got = _run(first + second, [len(first)], columnar=True, **kw)
    _same(got, want)
    assert seen[True] >= 2


def test_a_region_whose_closes_cannot_keep_their_order_is_folded_statefully(monkeypatch):
    """When sealed and held windows closing at one tick would interleave, fold_sealed leaves the
    region to the stateful path (forced here), and the output is still add()'s."""
    from cryptolab.candles import sealed

    seen = _counting_sealed(monkeypatch)
    monkeypatch.setattr(sealed, "_held_closes_first", lambda *args: None)
    rows = [("BTC-USD", i * 40 * 60_000, 1.0 + i % 3, 1.0, 0) for i in range(600)]
    kw = dict(intervals="1m,5m,15m", ooo=1_000, lateness=60_000, gap_fill=True)
    want = _run(rows, [300], columnar=False, **kw)
    got = _run(rows, [300], columnar=True, **kw)
    _same(got, want)
    assert seen[False] >= 2 and not seen[True]


in_order_strategy = st.lists(
    st.tuples(st.sampled_from(SYMS), st.integers(0, 20_000), st.floats(0.5, 2.0).map(lambda x: round(x, 1)),
              sizes, st.integers(0, 1)),
    min_size=1,
    max_size=300,
)


@given(steps=in_order_strategy, cuts=st.lists(st.integers(0, 300), max_size=4),
       ooo=st.sampled_from([0, 1_000, 30_000]), lateness=st.sampled_from([0, 60_000]),
       intervals=st.sampled_from(["1m,5m,15m", "1s,1m", "2m,5m"]), gap_fill=st.booleans(),
       restart=st.one_of(st.none(), st.integers(0, 4)), idle=st.one_of(st.none(), st.integers(0, 4)))
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_in_order_batches_spanning_closes_equal_add_per_tick(vector_min, steps, cuts, ooo, lateness, intervals,
                                                             gap_fill, restart, idle):
    """Dense in-order batches over which windows close several times (one grouping for all of
    a batch's closes), equal ties of time, idle closes and restarts between batches."""
    rows = _sparse_rows(steps)
    kw = dict(intervals=intervals, ooo=ooo, lateness=lateness, gap_fill=gap_fill, restart_at=restart,
              idle_at=idle)
    want = _run(rows, cuts, columnar=False, **kw)
    got = _run(rows, cuts, columnar=True, **kw)
    _same(got, want)


def test_a_dense_in_order_batch_is_grouped_once_for_all_its_closes(monkeypatch):
    """The consumer's shape: thousands of in-order ticks per batch, several minutes each. Each
    batch is grouped once (not once per close) and the outcome equals add() tick by tick."""
    calls: list[int] = []
    real = stream.fold_span

    def counted(*args, **kwargs):
        calls.append(len(args[9]))  # the chunks it folds
        return real(*args, **kwargs)

    monkeypatch.setattr(stream, "fold_span", counted)
    rng = np.random.default_rng(11)
    n = 12_000
    ts = np.sort(rng.integers(0, 20 * 60_000, n))
    codes = rng.integers(0, len(SYMS), n)
    price = np.round(rng.uniform(1.0, 2.0, n), 2)
    size = np.where(rng.random(n) < 0.1, np.nan, rng.uniform(0.0, 3.0, n))
    rows = [(SYMS[c], int(t), float(p), None if math.isnan(z) else float(z), int(c) % 2)
            for c, t, p, z in zip(codes, ts, price, size, strict=True)]
    kw = dict(intervals="1m,5m,15m", ooo=1_000, lateness=60_000, gap_fill=True, restart_at=0)
    cuts = [4_000, 9_000]
    want = _run(rows, cuts, columnar=False, **kw)
    got = _run(rows, cuts, columnar=True, **kw)
    _same(got, want)
    assert len(calls) == 6 and all(c > 1 for c in calls)  # 3 batches x 2 partitions, several closes each
