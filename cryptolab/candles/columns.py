"""The streaming aggregator's columnar fold: a chunk of one partition's ticks, given as
columns, during which no window closes, folded with numpy (pure).

:meth:`~cryptolab.candles.stream.CandleAggregator.add_columns` cuts a batch into such
chunks (at the ticks where the watermark crosses a window boundary) and hands each
long one to :func:`fold_chunk`: the candles, the too-late ticks and the emission order
are exactly those of folding the ticks one by one with
:meth:`~cryptolab.candles.stream.CandleAggregator.add`, to the last bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from cryptolab.candles.accumulator import Accumulator
from cryptolab.candles.kernels import group_bounds, group_ohlc, sequential_sums
from cryptolab.candles.state import Partition

__all__ = ["Dirty", "DirtyList", "fold_chunk", "fold_span", "span_in_order", "symbol_order"]

_first_key = itemgetter(0)
#: One interval's groups of a chunk: the flows (rows: volume, price x volume) in group
#: order, the groups' starts and lengths.
_Sums = tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]]
#: A dirty-list entry: partition, interval index, window start, symbol, accumulator. The
#: aggregator's dirty list is flat (:data:`DirtyList`): each entry's five values in turn, so
#: that a changed window costs no tuple the garbage collector must track until the drain.
Dirty = tuple[int, int, int, str, Accumulator]
#: The flat dirty list: ``[partition, k, ws, symbol, acc, partition, k, ...]``.
DirtyList = list[Any]


def fold_chunk(
    p: Partition,
    partition: int,
    interval_ms: tuple[int, ...],
    allowed_lateness_ms: int,
    dirty: DirtyList,
    c: npt.NDArray[np.int64],
    symbols: Sequence[str],
    t: npt.NDArray[np.int64],
    pr: npt.NDArray[np.float64],
    sz: npt.NDArray[np.float64],
    wm_before: npt.NDArray[np.int64],
    late: npt.NDArray[np.bool_],
) -> None:
    """Fold ticks during which no window closes into partition ``p``'s accumulators.

    Windows that change are appended to ``dirty`` in the order tick-by-tick folding
    would have met them. ``late`` is the chunk's slice of the result mask (written
    through: too-late ticks are set).
    """
    sized = ~np.isnan(sz)
    flows = np.empty((2, t.shape[0]))  # per tick: volume and price x volume
    np.copyto(flows[0], np.where(sized, sz, 0.0))
    np.multiply(pr, flows[0], out=flows[1])
    wm0 = int(wm_before[0])  # a window is closed for all of the chunk's ticks or for none
    in_order = bool((t[1:] >= t[:-1]).all())
    by_symbol = symbol_order(c, len(symbols)) if in_order else None
    n_iv = len(interval_ms)
    groups: list[tuple[Any, ...]] = []
    sums: list[_Sums] = []
    for k, iv in enumerate(interval_ms):
        ws = t - t % iv
        order = _kept_order(p.floor[k], allowed_lateness_ms, wm0, wm_before, c, ws, iv, by_symbol, late)
        m = int(order.shape[0])
        if m == 0:
            sums.append((flows[:, :0], order, order))
            continue
        c_s, ws_s, t_s, p_s = c[order], ws[order], t[order], pr[order]
        starts, lengths = group_bounds(c_s, ws_s)
        g = group_ohlc(t_s, p_s, sized[order], starts, lengths)
        sums.append((np.take(flows, order, axis=1), starts, lengths))
        groups.extend(
            zip(
                (order[starts] * n_iv + k).tolist(), repeat(k), range(starts.shape[0]),
                c_s[starts].tolist(), ws_s[starts].tolist(), lengths.tolist(), g.open.tolist(),
                g.high.tolist(), g.low.tolist(), g.close.tolist(), g.first_ts.tolist(),
                g.last_ts.tolist(), g.high_ts.tolist(), g.low_ts.tolist(), g.sized.tolist(),
                strict=False,
            )
        )
    # Apply in the order add() would have met them: by first tick, then interval.
    groups.sort(key=_first_key)
    accs, inits = _merge_groups(p, partition, interval_ms, dirty, symbols, wm0, groups, sums)
    # Volume and price x volume: summed one tick after the other, from the window's
    # running totals (-0.0 for a new window: -0.0 + x == x exactly), as add() does.
    for (values, starts, lengths), init, acc_k in zip(sums, inits, accs, strict=True):
        if acc_k:
            volume, pv = sequential_sums(values, starts, lengths, init).tolist()
            for acc, v, x in zip(acc_k, volume, pv, strict=True):
                acc.volume = v
                acc.pv = x


def symbol_order(c: npt.NDArray[np.int64], n_symbols: int) -> npt.NDArray[np.intp]:
    """The rows sorted (stably) by symbol code: codes index ``n_symbols`` symbols, and a radix
    sort of narrow integers is several times faster than a merge sort of 64-bit ones.

    Examples
    --------
    >>> symbol_order(np.array([2, 0, 2, 1, 0]), 3).tolist()
    [1, 4, 3, 0, 2]
    """
    if n_symbols <= 1 << 7:
        return np.argsort(c.astype(np.int8), kind="stable")
    if n_symbols <= 1 << 15:
        return np.argsort(c.astype(np.int16), kind="stable")
    return np.argsort(c, kind="stable")


def _kept_order(
    floor: int,
    lateness: int,
    wm0: int,
    wm_before: npt.NDArray[np.int64],
    c: npt.NDArray[np.int64],
    ws: npt.NDArray[np.int64],
    iv: int,
    by_symbol: npt.NDArray[np.intp] | None,
    late: npt.NDArray[np.bool_],
) -> npt.NDArray[np.intp]:
    """The chunk's ticks that are not too late for this interval, sorted (stably) by symbol
    and window; too-late ticks are marked in ``late``."""
    we = ws + iv
    closed = we <= max(wm0, floor)
    keep: npt.NDArray[np.bool_] | None = None
    if closed.any():
        wk_before = wm_before if floor <= wm0 else np.maximum(wm_before, floor)
        too_late = closed & (wk_before >= we + lateness)
        if too_late.any():
            late |= too_late
            keep = ~too_late
    if by_symbol is not None:  # in time order: a symbol's windows are already contiguous
        return by_symbol if keep is None else by_symbol[keep[by_symbol]]
    slot = (ws - ws.min()) // iv
    key = c * (int(slot.max()) + 1) + slot
    if keep is None:
        return np.argsort(key, kind="stable")
    idx = np.flatnonzero(keep)
    return idx[np.argsort(key[idx], kind="stable")]


def _merge_groups(
    p: Partition,
    partition: int,
    interval_ms: tuple[int, ...],
    dirty: DirtyList,
    symbols: Sequence[str],
    wm0: int,
    groups: list[tuple[Any, ...]],
    sums: list[_Sums],
) -> tuple[list[list[Any]], list[npt.NDArray[np.float64]]]:
    """Merge each group's prices, times and counts into its window's accumulator (a new one
    for a window not seen yet).

    Returns, per interval, the accumulator of each group and the running volume and
    price x volume its sums start from.
    """
    windows = p.windows
    accs: list[list[Any]] = [[None] * len(s[1]) for s in sums]  # each group's set below
    inits = [np.full((2, len(s[1])), -0.0) for s in sums]
    for _first, k, g, code, w, cnt, o, h, lo, cl, ft, lt, ht, lwt, zs in groups:
        symbol = symbols[code]
        we = w + interval_ms[k]
        closed_w = we <= max(wm0, p.floor[k])
        bucket = windows[k].get(w)
        if bucket is None:
            bucket = p.new_window(k, w, we, closed_w)
        acc = bucket.get(symbol)
        if acc is None:
            acc = Accumulator(o, h, lo, cl, 0.0, 0.0, cnt, ft, lt, ht, lwt,
                              cnt - 1 if closed_w else 0, zs, closed_w, True, None)
            bucket[symbol] = acc
            dirty += (partition, k, w, symbol, acc)
        else:
            inits[k][:, g] = (acc.volume, acc.pv)
            acc.merge_group(o, h, lo, cl, ft, lt, ht, lwt, cnt, zs)
            if closed_w:
                acc.revision += cnt
            if not acc.dirty:
                acc.dirty = True
                dirty += (partition, k, w, symbol, acc)
        accs[k][g] = acc
    return accs, inits


def span_in_order(
    floor: Sequence[int],
    interval_ms: tuple[int, ...],
    t: npt.NDArray[np.int64],
    wm_before: npt.NDArray[np.int64],
) -> bool:
    """Whether ticks ``t`` (one partition's, in arrival order) are in event-time order and each
    meets its window of every interval still open: no tick then is late or revises a candle,
    which lets :func:`fold_span` fold them."""
    if not bool((t[1:] >= t[:-1]).all()):
        return False
    for k, iv in enumerate(interval_ms):
        # In time order, the earliest window end and the latest watermark bound every tick's.
        if int(t[0] - t[0] % iv) + iv <= max(int(wm_before[-1]), floor[k]) and not bool(
            ((t - t % iv + iv) > np.maximum(wm_before, floor[k])).all()
        ):
            return False
    return True


def fold_span(
    p: Partition,
    partition: int,
    interval_ms: tuple[int, ...],
    dirty: DirtyList,
    c: npt.NDArray[np.int64],
    symbols: Sequence[str],
    t: npt.NDArray[np.int64],
    pr: npt.NDArray[np.float64],
    sz: npt.NDArray[np.float64],
    ends: Sequence[int],
    chunk_end: Callable[[int], None],
) -> None:
    """Fold ticks accepted by :func:`span_in_order` that span several chunks (``ends``: each
    chunk's last row, ascending, the last one the span's), calling ``chunk_end(e)`` after
    chunk ``e``'s ticks are folded (where its windows close), in the numpy passes of one
    :func:`fold_chunk` rather than one per chunk.

    No tick of such a span meets a closed window: a window that closes at the end of a chunk
    has all its ticks of the span in that chunk or before. So each window's ticks of the
    whole span are reduced as one group and merged where its first tick is met (creating
    the window, marking it changed); by the end of each chunk, the windows it closes hold
    all their ticks, and the others are only looked at after the span. The candles, the
    windows closed and the emission order are those of :func:`fold_chunk` applied chunk
    after chunk (and so of :meth:`add` tick by tick).
    """
    sized = ~np.isnan(sz)
    flows = np.empty((2, t.shape[0]))  # per tick: volume and price x volume
    np.copyto(flows[0], np.where(sized, sz, 0.0))
    np.multiply(pr, flows[0], out=flows[1])
    order = symbol_order(c, len(symbols))  # in time order: a symbol's windows are contiguous
    c_s, t_s, p_s, z_s = c[order], t[order], pr[order], sized[order]
    f_s = np.take(flows, order, axis=1)
    n_iv = len(interval_ms)
    groups: list[tuple[Any, ...]] = []
    totals: list[tuple[list[float], list[float]]] = []
    for k, iv in enumerate(interval_ms):
        ws_s = t_s - t_s % iv
        starts, lengths = group_bounds(c_s, ws_s)
        g = group_ohlc(t_s, p_s, z_s, starts, lengths)
        codes, wss = c_s[starts].tolist(), ws_s[starts].tolist()
        init = _window_totals(p.windows[k], symbols, codes, wss)
        totals.append(sequential_sums(f_s, starts, lengths, init).tolist())
        groups.extend(
            zip(
                (order[starts] * n_iv + k).tolist(), repeat(k), range(starts.shape[0]), codes, wss,
                lengths.tolist(), g.open.tolist(), g.high.tolist(), g.low.tolist(), g.close.tolist(),
                g.first_ts.tolist(), g.last_ts.tolist(), g.high_ts.tolist(), g.low_ts.tolist(), g.sized.tolist(),
                strict=False,
            )
        )
    groups.sort(key=_first_key)  # in the order add() would have met them: by first tick, then interval
    keys = [e * n_iv + n_iv - 1 for e in ends]  # a group after chunk end e starts after row e
    _merge_span(p, partition, interval_ms, dirty, symbols, groups, totals, keys, ends, chunk_end)


def _window_totals(
    windows: dict[int, dict[str, Accumulator]], symbols: Sequence[str], codes: list[int], starts: list[int]
) -> npt.NDArray[np.float64]:
    """The running volume and price x volume (shape ``(2, windows)``) of each (symbol, window)
    given, ``-0.0`` where none is held yet."""
    init = np.full((2, len(codes)), -0.0)
    for i, (code, ws) in enumerate(zip(codes, starts, strict=True)):
        bucket = windows.get(ws)
        if bucket is not None:
            acc = bucket.get(symbols[code])
            if acc is not None:
                init[:, i] = (acc.volume, acc.pv)
    return init


def _merge_span(
    p: Partition,
    partition: int,
    interval_ms: tuple[int, ...],
    dirty: DirtyList,
    symbols: Sequence[str],
    groups: list[tuple[Any, ...]],
    totals: list[tuple[list[float], list[float]]],
    keys: list[int],
    ends: Sequence[int],
    chunk_end: Callable[[int], None],
) -> None:
    """Merge each group of :func:`fold_span` into its window's accumulator (a new one for a
    window not seen yet) where its first tick is met (``keys``: the sort key of the last
    group a chunk's rows can start), ``chunk_end`` called at the end of each chunk."""
    windows = p.windows
    cur = 0
    for first, k, g, code, w, cnt, o, h, lo, cl, ft, lt, ht, lwt, zs in groups:
        while keys[cur] < first:
            chunk_end(ends[cur])
            cur += 1
        symbol = symbols[code]
        bucket = windows[k].get(w)
        if bucket is None:
            bucket = p.new_window(k, w, w + interval_ms[k], False)
        acc = bucket.get(symbol)
        volume, pv = totals[k]
        if acc is None:
            acc = Accumulator(o, h, lo, cl, volume[g], pv[g], cnt, ft, lt, ht, lwt, 0, zs, False, True, None)
            bucket[symbol] = acc
            dirty += (partition, k, w, symbol, acc)
            continue
        acc.merge_group(o, h, lo, cl, ft, lt, ht, lwt, cnt, zs)
        acc.volume = volume[g]
        acc.pv = pv[g]
        if not acc.dirty:
            acc.dirty = True
            dirty += (partition, k, w, symbol, acc)
    while cur < len(ends):
        chunk_end(ends[cur])
        cur += 1
