"""The numpy reductions both candle engines share: the streaming aggregator's columnar fold
and :func:`~cryptolab.candles.batch.candles_from_ticks` (pure).

Both engines sort ticks into groups (one per symbol and window, each group's rows
contiguous and in arrival order) and reduce each group to a candle: :func:`group_bounds`
finds the groups, :func:`group_ohlc` their prices and times with the tie-breaking of
:meth:`~cryptolab.candles.stream.CandleAggregator.add`, and :func:`sequential_sums` their
volume and price x volume, rounded exactly as a ``+=`` loop in arrival order rounds them.

Examples
--------
>>> import numpy as np
>>> codes, ws = np.array([0, 0, 1]), np.array([0, 0, 0])
>>> starts, lengths = group_bounds(codes, ws)
>>> starts.tolist(), lengths.tolist()
([0, 2], [2, 1])
>>> ohlc = group_ohlc(np.array([5, 5, 7]), np.array([2.0, 3.0, 4.0]), np.array([True, False, False]),
...                   starts, lengths)
>>> ohlc.open.tolist(), ohlc.close.tolist(), ohlc.high_ts.tolist(), ohlc.sized.tolist()
([2.0, 4.0], [3.0, 4.0], [5, 7], [True, False])
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = [
    "Ohlc", "group_bounds", "group_ohlc", "negative_zeros", "sequential_sums", "sums_in_row_order", "vwaps",
    "watermark_steps",
]

_POS_INF = np.iinfo(np.int64).max


class Ohlc(NamedTuple):
    """Per group: the candle's prices, their event times, and whether any tick had a size."""

    open: npt.NDArray[np.float64]
    high: npt.NDArray[np.float64]
    low: npt.NDArray[np.float64]
    close: npt.NDArray[np.float64]
    first_ts: npt.NDArray[np.int64]
    last_ts: npt.NDArray[np.int64]
    high_ts: npt.NDArray[np.int64]
    low_ts: npt.NDArray[np.int64]
    sized: npt.NDArray[np.bool_]


def group_bounds(
    codes: npt.NDArray[np.int64], ws: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Start and length of each run of equal (symbol code, window start) rows (at least one row)."""
    m = int(codes.shape[0])
    change = np.empty(m, dtype=bool)
    change[0] = True
    np.not_equal(codes[1:], codes[:-1], out=change[1:])
    change[1:] |= ws[1:] != ws[:-1]
    starts = np.flatnonzero(change)
    return starts, np.diff(np.append(starts, m))


def group_ohlc(
    ts: npt.NDArray[np.int64],
    price: npt.NDArray[np.float64],
    sized: npt.NDArray[np.bool_],
    starts: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
) -> Ohlc:
    """Open/high/low/close and their times per group of rows in arrival order.

    The open is the earliest tick by event time and the close the latest, ties broken
    by arrival order (the first earliest, the last latest); the high and low keep the
    earliest time they were reached.
    """
    m = int(ts.shape[0])
    rep = np.repeat(np.arange(starts.shape[0]), lengths)
    pos = np.arange(m)
    first_ts = np.minimum.reduceat(ts, starts)
    last_ts = np.maximum.reduceat(ts, starts)
    open_i = np.minimum.reduceat(np.where(ts == first_ts[rep], pos, m), starts)
    close_i = np.maximum.reduceat(np.where(ts == last_ts[rep], pos, -1), starts)
    high = np.maximum.reduceat(price, starts)
    low = np.minimum.reduceat(price, starts)
    high_ts = np.minimum.reduceat(np.where(price == high[rep], ts, _POS_INF), starts)
    low_ts = np.minimum.reduceat(np.where(price == low[rep], ts, _POS_INF), starts)
    any_sized = np.logical_or.reduceat(sized, starts)
    return Ohlc(price[open_i], high, low, price[close_i], first_ts, last_ts, high_ts, low_ts, any_sized)


def sequential_sums(
    values: npt.NDArray[np.float64],
    starts: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    init: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float64]:
    """Per group, ``init`` plus the group's values added one after the other, in order.

    ``values`` has one row per column summed (shape ``(columns, n)``, each row
    contiguous), the groups side by side along it: group ``g`` is
    ``values[:, starts[g]:starts[g] + lengths[g]]``. The result, like ``init``, has
    shape ``(columns, groups)``, rounded exactly as a ``+=`` loop would round it (not
    pairwise, as ``np.sum`` and ``np.add.reduceat`` do). ``init`` defaults to ``-0.0``
    (``-0.0 + x == x`` exactly, even for ``x = -0.0``, as a window's first tick).

    Examples
    --------
    >>> v = np.array([[0.1, 0.2, 0.3], [1.0, 2.0, 3.0]])
    >>> sequential_sums(v, np.array([0, 1]), np.array([1, 2]), np.array([[-0.0, 1.0], [-0.0, 0.0]])).tolist()
    [[0.1, 1.5], [1.0, 5.0]]
    >>> sequential_sums(v, np.array([0, 1]), np.array([1, 2])).tolist()
    [[0.1, 0.5], [1.0, 5.0]]
    """
    n_groups = int(starts.shape[0])
    if init is None:
        init = np.full((values.shape[0], n_groups), -0.0)
    if n_groups == 0:
        return init.copy()
    longest = int(lengths.max())
    n = int(values.shape[1])
    width = int(values.shape[0])
    # Rough costs (microseconds) of the three ways: pick the cheapest.
    fits = (longest + 1) * n_groups <= 4 * n + 4096
    grid_cost = 0.012 * n + 0.002 * (longest + 1) * n_groups * width if fits else math.inf
    runs_cost = 9.0 * n_groups
    positions_cost = 2.4 * width * longest + 0.003 * width * n
    if grid_cost <= min(runs_cost, positions_cost):
        # One slab per position in the group, groups side by side: reducing over the
        # first (slow) axis adds slab after slab, never pairwise.
        grid = np.full((longest + 1, n_groups, width), -0.0)
        grid[0] = init.T
        # Row i of group g goes to slab i - starts[g] + 1: flat, (i - starts[g] + 1) * groups + g.
        slot = np.arange(0, n * n_groups, n_groups)
        slot += np.repeat(np.arange(n_groups) - (starts - 1) * n_groups, lengths)
        cells = grid.reshape(-1, width)
        for col in range(width):
            cells[slot, col] = values[col]
        out: npt.NDArray[np.float64] = np.add.reduce(grid, axis=0, initial=-0.0).T
        return out
    out = init.copy()
    if runs_cost <= positions_cost:
        # A few long groups: one running sum (sequential by nature) per group.
        accumulate = np.add.accumulate
        for g, (s, m) in enumerate(zip(starts.tolist(), lengths.tolist(), strict=True)):
            if m:
                run = np.concatenate((init[:, g : g + 1], values[:, s : s + m]), axis=1)
                out[:, g] = accumulate(run, axis=1)[:, -1]
        return out
    # Many groups, short next to the data: position by position across the groups, longest
    # first (one vectorised add per position and column).
    order = np.argsort(-lengths, kind="stable")
    idx = starts[order]
    neg_len = -lengths[order]  # ascending
    acc = init[:, order]
    for k in range(longest):
        m = int(np.searchsorted(neg_len, -k, side="left"))  # groups longer than k
        rows = idx[:m] + k
        for col, col_acc in zip(values, acc, strict=True):
            col_acc[:m] += col[rows]
    out[:, order] = acc
    return out


def negative_zeros(values: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_] | None:
    """Where ``values`` are ``-0.0``, or ``None`` when none is (the common case).

    Examples
    --------
    >>> negative_zeros(np.array([[0.0, -0.0], [1.0, 2.0]])).tolist(), negative_zeros(np.zeros(2))
    ([[False, True], [False, False]], None)
    """
    mask = np.signbit(values) & (values == 0)
    return mask if mask.any() else None


def sums_in_row_order(
    group: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    counts: npt.NDArray[np.int64],
    neg_zeros: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[np.float64]:
    """Per group, its values added one after the other in array order: groups need not be
    contiguous.

    ``values`` has shape ``(columns, n)``; ``group`` gives each of the ``n`` rows' group and
    ``counts`` each group's number of rows (every group has one at least). ``np.bincount``
    adds the weights in array order, as a ``+=`` loop, but from ``+0.0``: a group whose values
    are all ``-0.0`` (given by ``neg_zeros``, from :func:`negative_zeros`) sums to ``-0.0``.
    The result has shape ``(columns, len(counts))``.

    Examples
    --------
    >>> v = np.array([[0.1, 5.0, 0.2, -0.0], [1.0, 1.0, 1.0, 1.0]])
    >>> sums_in_row_order(np.array([0, 1, 0, 2]), v, np.array([2, 1, 1]), negative_zeros(v)).tolist()
    [[0.30000000000000004, 5.0, -0.0], [2.0, 1.0, 1.0]]
    """
    m = int(counts.shape[0])
    out = np.empty((values.shape[0], m))
    for row in range(values.shape[0]):
        out[row] = np.bincount(group, weights=values[row], minlength=m)
        if neg_zeros is not None and neg_zeros[row].any():
            out[row][np.bincount(group, weights=neg_zeros[row], minlength=m) == counts] = -0.0
    return out


def vwaps(
    volume: npt.NDArray[np.float64], pv: npt.NDArray[np.float64], sized: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float64]:
    """``pv / volume`` where a tick had a size and the volume is positive, NaN elsewhere.

    Examples
    --------
    >>> vwaps(np.array([2.0, 0.0, 1.0]), np.array([3.0, 0.0, 1.0]), np.array([True, True, False])).tolist()
    [1.5, nan, nan]
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        out: npt.NDArray[np.float64] = np.where(
            sized & (volume > 0), pv / np.where(volume > 0, volume, 1.0), np.nan
        )
    return out


def watermark_steps(
    ts: npt.NDArray[np.int64], max_ts: int, wm: int, out_of_orderness: int, floor: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """A partition's largest event time after each tick, and its watermark before and after it.

    Moved exactly as tick-by-tick folding moves them: only a tick beyond the largest
    event time seen so far (``max_ts`` before the first) raises the watermark (``wm``
    before the first), to its time minus ``out_of_orderness``; ``floor`` stands for
    "never raised".

    Examples
    --------
    >>> run_max, before, after = watermark_steps(np.array([10, 5, 20]), 0, -1, 2, -(2**62))
    >>> run_max.tolist(), before.tolist(), after.tolist()
    ([10, 10, 20], [-1, 8, 8], [8, 8, 18])
    """
    run_max = np.maximum.accumulate(ts)
    np.maximum(run_max, max_ts, out=run_max)
    prev_max = np.empty_like(run_max)
    prev_max[0] = max_ts
    prev_max[1:] = run_max[:-1]
    wm_after = np.where(ts > prev_max, ts - out_of_orderness, floor)
    np.maximum.accumulate(wm_after, out=wm_after)
    np.maximum(wm_after, wm, out=wm_after)
    wm_before = np.empty_like(wm_after)
    wm_before[0] = wm
    wm_before[1:] = wm_after[:-1]
    return run_max, wm_before, wm_after
