"""The streaming aggregator's sealed windows: the windows of a columnar batch that open, close
and pass allowed lateness within it, folded with numpy and emitted without being held (pure).

On sparse data (a symbol's ticks minutes or hours apart: an illiquid pair, a backfill of old
trades) nearly every window of a batch is opened by one tick and closed by the next, and no
later tick can change it. Such a window needs no accumulator, heap entry or dirty-list entry
of its own: :func:`fold_sealed` reduces its ticks as
:func:`~cryptolab.candles.batch.candles_from_ticks` does and emits its final candle where
:meth:`~cryptolab.candles.stream.CandleAggregator.add` would have (in the drain's finals and
in ``first_finals``, in the same order, with the same gap candles and the same last close
per symbol for gap fill). The partition's state afterwards is the one tick-by-tick folding
leaves after the next drain, which evicts such windows.

A batch is cut into a head, a region and a tail (:func:`plan_sealed`): the head and the tail
go through the stateful path; every window the region's ticks fold into is sealed, is not
held before the region and gets no tick of the tail. Where the region's closes would fall on
the same tick as a held window's close (their order would interleave), nothing is sealed.

Examples
--------
>>> from cryptolab.candles import CandleAggregator
>>> agg = CandleAggregator(intervals="1m", out_of_orderness_ms=0, allowed_lateness_ms=0)
>>> t0 = 1_700_000_040_000
>>> ts = [t0 + i * 600_000 for i in range(300)]        # a tick every 10 minutes
>>> _ = agg.add_columns([0] * 300, ["BTC-USD"], ts, [1.0] * 300, [2.0] * 300)
>>> agg.open_windows()                                 # only the last tick's window is held
1
>>> out = agg.drain()
>>> len(out.finals), len(out.first_finals), len(out.updates)
(299, 299, 1)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from cryptolab.candles.kernels import group_bounds, group_ohlc, negative_zeros, sums_in_row_order
from cryptolab.candles.state import Partition
from cryptolab.models import Candle
from cryptolab.models.blocks import CandleBlock, CandleList
from cryptolab.models.records import make_candle

__all__ = ["SEALED", "SealPlan", "fill_gaps", "fold_sealed", "plan_sealed"]

#: The interval index of a dirty-list entry that stands for sealed windows: its last value is
#: their final candles, a block and its rows, in the order the drain emits them.
SEALED = -1

#: A window's interval index shifted above its start (epoch ms): one key sorting as a close pops.
_K_SHIFT = 44

_I64 = npt.NDArray[np.int64]
_F64 = npt.NDArray[np.float64]
_Bool = npt.NDArray[np.bool_]


class SealPlan(NamedTuple):
    """Where a batch's sealed windows are, and what :func:`plan_sealed` found per interval.

    Attributes
    ----------
    h, m
        The region: rows ``h:m`` (the head is ``:h``, the tail ``m:``).
    ws
        Per interval, each tick's window start.
    too_late
        Per interval, the ticks too late for it.
    in_order
        Whether the batch's event times never decrease.
    """

    h: int
    m: int
    ws: list[_I64]
    too_late: list[_Bool]
    in_order: bool


def plan_sealed(
    p: Partition, interval_ms: tuple[int, ...], lateness: int, t: _I64, wm_before: _I64, wm_after: _I64,
    min_rows: int,
) -> SealPlan | None:
    """The region of a batch whose windows are all sealed, or ``None`` (fewer than ``min_rows``).

    ``wm_before`` and ``wm_after`` are the partition's watermark before and after each tick
    (:func:`~cryptolab.candles.kernels.watermark_steps`), ``p`` the partition before the batch.
    """
    n = int(t.shape[0])
    # Cheap refusal (dense data): the batch's watermark never gets past a window of its first
    # tick plus allowed lateness, so no window can be sealed.
    if n < max(min_rows, 1) or int(wm_after[-1]) < int(t[0]) + interval_ms[-1] + lateness:
        return None
    in_order = bool((t[1:] >= t[:-1]).all())
    rows = np.arange(n)
    need = np.full(n, -1, dtype=np.int64)  # the tick from which all its windows are sealed
    first = np.full(n, n, dtype=np.int64)  # the earliest first row of its windows (-1: held)
    wss, lates = [], []
    for k, iv in enumerate(interval_ms):
        ws = t - t % iv
        we = ws + iv
        wk = wm_before if p.floor[k] <= int(wm_before[0]) else np.maximum(wm_before, p.floor[k])
        too_late = wk >= we + lateness
        need_k = np.searchsorted(wm_after, we + lateness)  # n: not sealed in the batch
        need_k[wk >= we] = n  # a late tick revises a closed window: never in the region
        need_k[too_late] = -1
        np.maximum(need, need_k, out=need)
        if in_order:  # the row where each window (any symbol) first appears in the batch
            new = np.empty(n, dtype=bool)
            new[0] = True
            np.not_equal(ws[1:], ws[:-1], out=new[1:])
            occ = np.maximum.accumulate(np.where(new, rows, 0))
        else:
            _, at, inverse = np.unique(ws, return_index=True, return_inverse=True)
            occ = at[inverse]
        held = p.windows[k]
        if held:
            occ = np.where(np.isin(ws, np.fromiter(held, np.int64, len(held))), -1, occ)
        occ[too_late] = n
        np.minimum(first, occ, out=first)
        wss.append(ws)
        lates.append(too_late)
    fresh = first >= rows  # every window the tick folds into is new at it
    if not fresh.any():
        return None
    h = int(np.argmax(fresh))
    bad = np.flatnonzero((first[h:] < h) | (need[h:] >= n))
    stop = h + int(bad[0]) if bad.size else n  # the region ends by this row
    # ... and just before a tick whose windows are all new (no window spans the cut)
    cuts = np.flatnonzero(fresh[h + 1 : stop + 1]) + h + 1 if stop < n else np.append(
        np.flatnonzero(fresh[h + 1 :]) + h + 1, n)
    if not cuts.size or int(cuts[-1]) - h < max(min_rows, 1):
        return None
    m = int(cuts[-1])
    for k in range(len(interval_ms)):  # no tail tick may fold into a region window
        if m < n:
            tail = wss[k][m:][~lates[k][m:]]
            mine = wss[k][h:m][~lates[k][h:m]]
            if tail.size and mine.size and int(tail.min()) <= int(mine.max()) and np.isin(tail, mine).any():
                return None
    return SealPlan(h, m, wss, lates, in_order)


class _Windows(NamedTuple):
    """The region's sealed windows, one entry per window in the drain's order."""

    k: _I64
    ws: _I64
    first: _I64  # the row of the window's first tick
    closes: _I64  # the row at which the watermark closes it
    code: _I64  # the symbol's code
    block: CandleBlock  # their final candles


def _windows(
    plan: SealPlan, interval_ms: tuple[int, ...], names: tuple[str, ...], symbols: Sequence[str],
    c: _I64, t: _I64, pr: _F64, sz: _F64, wm_after: _I64,
) -> _Windows:
    """Reduce the region's ticks to its windows' final candles (as add() would fold them).

    The candles are a :class:`~cryptolab.models.blocks.CandleBlock`: columns, no object per
    window. A window of one tick (nearly all of them on sparse data) takes its prices, times,
    volume and VWAP from that tick.
    """
    h, m = plan.h, plan.m
    c, t, pr = c[h:m], t[h:m], pr[h:m]
    sized = ~np.isnan(sz[h:m])
    flows = np.empty((2, m - h))  # per tick: volume and price x volume
    np.copyto(flows[0], np.where(sized, sz[h:m], 0.0))
    np.multiply(pr, flows[0], out=flows[1])
    base: list[list[Any]] = [[] for _ in range(6)]
    groups = []
    for k, iv in enumerate(interval_ms):
        rows = np.flatnonzero(~plan.too_late[k][h:m])  # from h
        if not rows.size:
            continue
        ws_k = plan.ws[k][h:m]
        if plan.in_order:  # a symbol's windows are contiguous once sorted by symbol
            order = rows[np.argsort(c[rows], kind="stable")]
        else:
            slot = (ws_k[rows] - ws_k[rows].min()) // iv
            order = rows[np.argsort(c[rows] * (int(slot.max()) + 1) + slot, kind="stable")]
        c_s, ws_s = c[order], ws_k[order]
        starts, lengths = group_bounds(c_s, ws_s)
        ws_g = ws_s[starts]
        groups.append((order, starts, lengths))
        for col, v in zip(base, (np.full(starts.shape[0], k), ws_g, order[starts] + h, c_s[starts], lengths,
                                 np.searchsorted(wm_after, ws_g + iv)), strict=True):
            col.append(v)
    k_g, ws_g, f_g, code, trades, closes = (
        np.concatenate(col) if col else np.empty(0, dtype=np.int64) for col in base)
    perm = np.argsort(f_g * len(interval_ms) + k_g, kind="stable")  # the order add() meets them in
    k_g, ws_g, f_g, closes, code, trades = (x[perm] for x in (k_g, ws_g, f_g, closes, code, trades))
    tick_of = f_g - h
    ends = ws_g + np.asarray(interval_ms, dtype=np.int64)[k_g]
    with_vwap = sized & (flows[0] > 0)
    tick_vwap = np.divide(flows[1], flows[0], out=np.zeros(m - h), where=with_vwap)
    prices, times = pr[tick_of], t[tick_of]
    volumes, vwaps, has_vwap = flows[0][tick_of], tick_vwap[tick_of], with_vwap[tick_of]
    several = np.flatnonzero(trades > 1)
    if not several.size:  # one trade per window: its price and time are all four of each
        block = CandleBlock(symbols, names, code=code, k=k_g, window_start=ws_g, window_end=ends, open=prices,
                            high=prices, low=prices, close=prices, volume=volumes, vwap=vwaps, has_vwap=has_vwap,
                            trades=trades, first_ts=times, last_ts=times, high_ts=times, low_ts=times)
        return _Windows(k_g, ws_g, f_g, closes, code, block)
    # Windows of several ticks: their values reduced as add() would have folded them.
    cols: list[list[Any]] = [[] for _ in range(11)]
    for order, starts, lengths in groups:
        g = group_ohlc(t[order], pr[order], sized[order], starts, lengths)
        values = np.take(flows, order, axis=1)  # summed in arrival order, as add() adds them
        volume, pv_k = sums_in_row_order(np.repeat(np.arange(starts.shape[0]), lengths), values, lengths,
                                         negative_zeros(values))
        for col, v in zip(cols, (g.open, g.high, g.low, g.close, g.first_ts, g.last_ts, g.high_ts, g.low_ts,
                                 volume, pv_k, g.sized), strict=True):
            col.append(v)
    o, hi, lo, cl, ft, lt, ht, lwt, vol, pv, zs = (np.concatenate(col)[perm][several] for col in cols)

    def column(ticks: npt.NDArray[Any], values: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """A candle field in the drain's order: the tick's value for a window of one tick."""
        out = ticks.copy()
        out[several] = values
        return out

    many_vwap = zs.astype(bool) & (vol > 0)
    block = CandleBlock(
        symbols, names, code=code, k=k_g, window_start=ws_g, window_end=ends, open=column(prices, o),
        high=column(prices, hi), low=column(prices, lo), close=column(prices, cl), volume=column(volumes, vol),
        vwap=column(vwaps, np.divide(pv, vol, out=np.zeros(several.size), where=many_vwap)),
        has_vwap=column(has_vwap, many_vwap), trades=trades, first_ts=column(times, ft),
        last_ts=column(times, lt), high_ts=column(times, ht), low_ts=column(times, lwt),
    )
    return _Windows(k_g, ws_g, f_g, closes, code, block)


def fold_sealed(
    plan: SealPlan, p: Partition, partition: int, interval_ms: tuple[int, ...], names: tuple[str, ...],
    symbols: Sequence[str], c: _I64, t: _I64, pr: _F64, sz: _F64, run_max: _I64, wm_after: _I64,
    dirty: list[Any], first_finals: CandleList, gaps: list[Candle] | None, max_gap_fill: int,
    close: Callable[[], None], fold: Callable[[int, int], None],
) -> int | None:
    """Emit the region's sealed windows (the head is folded already) and fold the tail up to the
    last tick that closes one of them.

    ``close`` closes what the partition's watermark reached (the stateful close), ``fold``
    folds rows ``a:b`` through the stateful path; ``gaps`` collects gap candles (``None``:
    no gap fill). Returns the first row not folded yet; or ``None``, having changed nothing,
    when a held window would close at the same tick as a sealed one (the caller then folds the
    region and the tail itself).
    """
    m = plan.m
    w = _windows(plan, interval_ms, names, symbols, c, t, pr, sz, wm_after)
    before = _held_closes_first(plan, p, interval_ms, w, wm_after)
    if before is None:
        return None
    by_close = np.lexsort((w.first, w.ws, w.k, w.closes))  # as the closes pop them
    closes_sorted = w.closes[by_close]
    done = [0, 0]  # windows put in the dirty list, windows closed

    def to_dirty(upto_row: int) -> None:
        j = int(np.searchsorted(w.first, upto_row, side="right"))
        if j > done[0]:
            dirty.extend((partition, SEALED, None, None, (w.block, slice(done[0], j))))
            done[0] = j

    def close_before(row: int) -> None:
        j = int(np.searchsorted(closes_sorted, row, side="left"))
        if j > done[1]:
            _emit_closes(p, by_close[done[1]:j], w, interval_ms, names, first_finals, gaps, max_gap_fill)
            done[1] = j

    for row in sorted(r for r in before if r < m):
        to_dirty(row)
        close_before(row + 1 if before[row] else row)
        p.max_ts, p.wm = int(run_max[row]), int(wm_after[row])
        close()
    to_dirty(m)
    close_before(m)
    p.max_ts, p.wm = int(run_max[m - 1]), int(wm_after[m - 1])
    p.hot = None
    nxt = 2**62
    for k, iv in enumerate(interval_ms):
        mine = w.ws[w.k == k]
        if mine.size and int(mine.max()) > p.top[k]:
            p.top[k] = int(mine.max())
        if p.open[k] and p.open[k][0] + iv < nxt:
            nxt = p.open[k][0] + iv
    p.next_close = nxt
    a = m
    for row in np.unique(closes_sorted[done[1]:]).tolist():  # sealed windows the tail closes
        if before.get(row):  # before the held windows this tick closes
            fold(a, row)
            close_before(row + 1)
            fold(row, row + 1)
        else:
            fold(a, row + 1)
            close_before(row + 1)
        a = row + 1
    return a


def _held_closes_first(
    plan: SealPlan, p: Partition, interval_ms: tuple[int, ...], w: _Windows, wm_after: _I64,
) -> dict[int, bool] | None:
    """The ticks at which held windows close (those held now, those the tail opens on time),
    each with whether the sealed windows closing at the same tick come first (``None``: some
    come before and some after, the order cannot be kept).

    A close pops windows by interval, then start: sealed and held windows never share both.
    """
    h, m, n = plan.h, plan.m, int(wm_after.shape[0])
    keys, ticks = [], []
    for k, iv in enumerate(interval_ms):
        held = np.asarray(p.open[k], dtype=np.int64)
        at = np.searchsorted(wm_after, held + iv)
        if m < n:  # a tail tick opens its window on time when the watermark reaches it later
            ws = plan.ws[k][m:]
            closes = np.searchsorted(wm_after, ws + iv)
            tail = ~plan.too_late[k][m:] & (closes > np.arange(m, n))
            held, at = np.concatenate((held, ws[tail])), np.concatenate((at, closes[tail]))
        keys.append(held + (k << _K_SHIFT))
        ticks.append(at)
    key, tick = np.concatenate(keys), np.concatenate(ticks)
    inside = (tick >= h) & (tick < n)
    key, tick = key[inside], tick[inside]
    out: dict[int, bool] = dict.fromkeys(np.unique(tick).tolist(), False)
    hit = tick[np.isin(tick, w.closes)]  # row numbers: a lookup table, not a sort of every close
    both = np.unique(hit) if hit.size else hit
    if both.size:
        mine = w.ws + (w.k << _K_SHIFT)
        for row in both.tolist():
            held_k, sealed_k = key[tick == row], mine[w.closes == row]
            if int(sealed_k.max()) < int(held_k.min()):
                out[row] = True
            elif int(sealed_k.min()) < int(held_k.max()):
                return None
    return out


def _emit_closes(
    p: Partition, idx: npt.NDArray[np.intp], w: _Windows, interval_ms: tuple[int, ...],
    names: tuple[str, ...], first_finals: CandleList, gaps: list[Candle] | None, max_gap_fill: int,
) -> None:
    """Close windows ``idx`` of ``w`` in that order: their first finals, gap candles and the last
    close per interval and symbol (what gap fill starts from)."""
    a = int(idx[0])
    rows: slice | npt.NDArray[np.intp]
    if int(idx[-1]) - a == idx.shape[0] - 1 and bool((idx[1:] > idx[:-1]).all()):
        rows = slice(a, a + idx.shape[0])  # in the drain's order (sparse data: always)
    else:
        rows = idx
    first_finals.add_block(w.block, rows)
    symbols = w.block.symbols
    close = w.block.columns[5]
    if gaps is not None:
        for i, k in zip(idx.tolist(), w.k[idx].tolist(), strict=True):
            last = p.last_close[k]
            symbol, ws = symbols[int(w.code[i])], int(w.ws[i])
            fill_gaps(gaps, max_gap_fill, last.get(symbol), symbol, ws, interval_ms[k], names[k])
            last[symbol] = (ws, close[i].item())
        return
    # Without gap fill only the last window closed per interval and symbol counts; a symbol new
    # to an interval is inserted where its first close would have inserted it (snapshots keep
    # that order).
    width = int(w.code.max()) + 1
    key = w.k[idx] * width + w.code[idx]
    n = int(key.shape[0])
    at = np.arange(n)
    last_at = np.full(len(interval_ms) * width, -1)
    np.maximum.at(last_at, key, at)  # per key, its last position (a lookup table: no sort)
    first_at = np.full_like(last_at, n)
    np.minimum.at(first_at, key, at)
    keys = np.flatnonzero(last_at >= 0)
    for j, last_j in sorted(zip(first_at[keys].tolist(), last_at[keys].tolist(), strict=True)):
        i = int(idx[last_j])
        p.last_close[int(w.k[idx[j]])][symbols[int(w.code[i])]] = (int(w.ws[i]), close[i].item())


def fill_gaps(
    out: list[Candle], cap: int, last: tuple[int, float] | None, symbol: str, ws: int, iv: int, name: str
) -> None:
    """Append to ``out`` the flat gap candles (at most ``cap``) of ``symbol``'s windows without
    trades between ``last`` (the start and close of its last closed traded window) and ``ws``."""
    if last is None:
        return
    prev_ws, prev_close = last
    start = prev_ws + iv
    n = 0
    while start < ws and n < cap:
        out.append(make_candle(symbol, name, start, start + iv, prev_close, prev_close, prev_close, prev_close,
                               0.0, None, 0, start, start, start, start, 0, True, True))
        start += iv
        n += 1
