"""Event-time tumbling windows: the streaming candle aggregator (pure, no I/O).

Semantics (identical to :func:`cryptolab.batch.candles_from_ticks` on in-order data):

* Windows are ``[start, start + interval)``, aligned to the Unix epoch in UTC.
* Each *partition* (a Kafka partition) keeps a **watermark**: the largest event
  time it has seen, minus a bounded ``out_of_orderness``. A tick is classified
  against the watermark *before* it, so the outcome never depends on how ticks
  were batched.
* A window **closes** when the watermark reaches its end; it is then emitted
  once as ``final``. Its first final version (the on-time ticks only) is what
  detectors score.
* A tick for a closed window that is late by less than ``allowed_lateness``
  (``watermark < window_end + allowed_lateness``) is folded in and the candle is
  re-emitted with ``revision`` incremented (``revision`` = number of such late
  ticks). A tick later than that is **too late**: ``add`` returns ``False`` and
  the caller records it (late-ticks table/topic); it never changes a candle.
* **Idle close** (:meth:`CandleAggregator.close_partition`) advances a silent
  partition's watermark past all its open windows.
* Candle values: open is the earliest tick by event time and close the latest,
  ties broken by arrival order; high/low keep the earliest time they were
  reached; volume and VWAP sum sizes (and price x size) in arrival order;
  VWAP is ``None`` when no tick had a size.
* Optional flat gap-fill candles (``gap=True``) for windows without trades
  between two traded windows of a symbol.

Examples
--------
>>> agg = CandleAggregator(intervals="1m", out_of_orderness_ms=0, allowed_lateness_ms=60_000)
>>> t0 = 1_700_000_040_000                       # a minute boundary
>>> for ts, price in [(t0, 10.0), (t0 + 20_000, 12.0), (t0 + 30_000, 9.0), (t0 + 61_000, 11.0)]:
...     _ = agg.add("BTC-USD", ts, price, 1.0)
>>> out = agg.drain()
>>> [(c.open, c.high, c.low, c.close, c.trades, c.final) for c in out.finals]
[(10.0, 12.0, 9.0, 9.0, 3, True)]
>>> [(c.close, c.final) for c in out.updates]      # the still-open next minute
[(11.0, False)]
>>> agg.add("BTC-USD", t0 + 50_000, 8.0, 1.0)     # late but within allowed lateness
True
>>> rev = agg.drain().finals[0]
>>> (rev.low, rev.trades, rev.revision)
(8.0, 4, 1)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import reduce
from itertools import repeat
from operator import add as _fadd
from operator import itemgetter
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson

from cryptolab.models import Candle, Tick, interval_name, parse_interval

__all__ = ["CandleAggregator", "Emission", "state_from_bytes", "state_has_open_windows", "state_to_bytes"]

# Accumulator slots (a list per open window, for speed).
_O, _H, _L, _C, _V, _PV, _N, _FT, _LT, _HT, _LWT, _REV, _SIZED, _CLOSED, _DIRTY, _SNAP = range(16)

_NEG_INF: Final = -(2**62)
_POS_INF: Final = np.iinfo(np.int64).max
#: Batches (and chunks between window closes) shorter than this go through add() tick by tick.
_VECTOR_MIN = 256
_first_key = itemgetter(0)
STATE_VERSION: Final = 1


@dataclass(slots=True)
class Emission:
    """What the aggregator produced since the last :meth:`CandleAggregator.drain`.

    Attributes
    ----------
    updates
        Open candles that changed (``final=False``): for live views only.
    finals
        Closed candles to store: first final versions and revisions, the latest
        version per window.
    first_finals
        Each window's first final version (on-time ticks only), in closing order:
        what anomaly detectors score. Gap candles are not included.
    """

    updates: list[Candle] = field(default_factory=list)
    finals: list[Candle] = field(default_factory=list)
    first_finals: list[Candle] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.updates or self.finals or self.first_finals)


class _Partition:
    __slots__ = ("floor", "last_close", "max_ts", "next_close", "windows", "wm")

    def __init__(self, n_intervals: int) -> None:
        self.max_ts = _NEG_INF
        self.wm = _NEG_INF
        # per interval: windows ending at or before this are closed although the watermark
        # has not reached them (an idle close); the interval's watermark is max(wm, floor)
        self.floor = [_NEG_INF] * n_intervals
        # per interval: {window_start: {symbol: acc}}
        self.windows: list[dict[int, dict[str, list[Any]]]] = [{} for _ in range(n_intervals)]
        self.next_close = _NEG_INF  # smallest open window end (any interval), or +inf
        # per interval: {symbol: (window_start, close)} of the last closed traded window (gap fill)
        self.last_close: list[dict[str, tuple[int, float]]] = [{} for _ in range(n_intervals)]



def _sequential_sums(
    values: npt.NDArray[np.float64],
    starts: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    init: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """Per group, ``init`` plus the group's rows added one after the other, in order.

    ``values`` holds the groups' rows back to back (group ``g`` is
    ``values[starts[g]:starts[g] + lengths[g]]``); the result has one row per group,
    rounded exactly as a ``+=`` loop would round it (not pairwise, as ``np.sum`` may).

    Examples
    --------
    >>> v = np.array([[0.1, 1.0], [0.2, 2.0], [0.3, 3.0]])
    >>> _sequential_sums(v, np.array([0, 1]), np.array([1, 2]), np.array([[-0.0, -0.0], [1.0, 0.0]])).tolist()
    [[0.1, 1.0], [1.5, 5.0]]
    """
    n_groups = int(starts.shape[0])
    longest = int(lengths.max()) if n_groups else 0
    if (longest + 1) * n_groups <= 4 * values.shape[0] + 4096:
        # One row per position in the group, groups side by side: reducing over the
        # first (slow) axis adds row after row, never pairwise.
        grid = np.full((longest + 1, n_groups, values.shape[1]), -0.0)
        grid[0] = init
        group = np.repeat(np.arange(n_groups), lengths)
        grid[np.arange(values.shape[0]) - starts[group] + 1, group] = values
        out: npt.NDArray[np.float64] = np.add.reduce(grid, axis=0, initial=-0.0)
        return out
    out = init.copy()  # a few long groups among many short ones: one pass per group
    for g, (s, n) in enumerate(zip(starts.tolist(), lengths.tolist(), strict=True)):
        for col in range(values.shape[1]):
            out[g, col] = reduce(_fadd, values[s : s + n, col].tolist(), out[g, col].item())
    return out


class CandleAggregator:
    """Streaming OHLCV candles over event-time tumbling windows, per partition.

    Parameters
    ----------
    intervals
        Interval names (``"1m,5m,15m"`` or a sequence).
    out_of_orderness_ms
        Subtracted from the maximum event time to form the watermark.
    allowed_lateness_ms
        How long after a window closes a late tick may still revise it.
    gap_fill
        Emit flat ``gap=True`` candles for windows without trades between traded ones.
    max_gap_fill
        Cap on gap candles emitted per symbol and interval at one close.
    """

    def __init__(
        self,
        *,
        intervals: str | Sequence[str] = ("1m", "5m", "15m"),
        out_of_orderness_ms: int = 1_000,
        allowed_lateness_ms: int = 60_000,
        gap_fill: bool = False,
        max_gap_fill: int = 1_000,
    ) -> None:
        names = intervals.split(",") if isinstance(intervals, str) else list(intervals)
        ms = sorted({parse_interval(n.strip()) for n in names if n.strip()})
        self.interval_ms: tuple[int, ...] = tuple(ms)
        self.intervals: tuple[str, ...] = tuple(interval_name(m) for m in ms)
        self.out_of_orderness_ms = int(out_of_orderness_ms)
        self.allowed_lateness_ms = int(allowed_lateness_ms)
        self.gap_fill = gap_fill
        self.max_gap_fill = max_gap_fill
        self._grain = math.gcd(*ms) if ms else 1  # every window end is a multiple of this
        self._parts: dict[int, _Partition] = {}
        self._dirty: list[tuple[int, int, int, str, list[Any]]] = []
        self._first_finals: list[Candle] = []
        self._gaps: list[Candle] = []
        self.too_late = 0

    # ------------------------------------------------------------------ ingest
    def add(self, symbol: str, ts: int, price: float, size: float | None, partition: int = 0) -> bool:
        """Fold one tick into its windows.

        Returns
        -------
        bool
            ``False`` when the tick is too late for at least one interval (the
            caller must record it); ``True`` otherwise.
        """
        p = self._parts.get(partition)
        if p is None:
            p = self._parts[partition] = _Partition(len(self.interval_ms))
        wm = p.wm
        floor = p.floor
        accepted = True
        lateness = self.allowed_lateness_ms
        sized = size is not None
        vol: float = size if size is not None else 0.0
        pv = price * vol
        k = 0
        for iv in self.interval_ms:
            ws = ts - ts % iv
            we = ws + iv
            wk = floor[k]
            if wk < wm:
                wk = wm
            closed = we <= wk
            if closed and wk >= we + lateness:
                accepted = False
                k += 1
                continue
            bucket = p.windows[k].get(ws)
            if bucket is None:
                bucket = p.windows[k][ws] = {}
                if we < p.next_close:
                    p.next_close = we
            acc = bucket.get(symbol)
            if acc is None:
                acc = [price, price, price, price, vol, pv, 1, ts, ts, ts, ts, 0, sized, closed, True, None]
                bucket[symbol] = acc
                self._dirty.append((partition, k, ws, symbol, acc))
            else:
                if ts < acc[_FT]:
                    acc[_O] = price
                    acc[_FT] = ts
                if ts >= acc[_LT]:
                    acc[_C] = price
                    acc[_LT] = ts
                if price > acc[_H] or (price == acc[_H] and ts < acc[_HT]):
                    acc[_H] = price
                    acc[_HT] = ts
                if price < acc[_L] or (price == acc[_L] and ts < acc[_LWT]):
                    acc[_L] = price
                    acc[_LWT] = ts
                acc[_V] += vol
                acc[_PV] += pv
                acc[_N] += 1
                if sized:
                    acc[_SIZED] = True
                if closed:
                    acc[_REV] += 1
                if not acc[_DIRTY]:
                    acc[_DIRTY] = True
                    self._dirty.append((partition, k, ws, symbol, acc))
            k += 1
        if not accepted:
            self.too_late += 1
        if ts > p.max_ts:
            p.max_ts = ts
            nw = ts - self.out_of_orderness_ms
            if nw > p.wm:
                p.wm = nw
                if nw >= p.next_close:
                    self._close(partition, p)
        return accepted

    def add_tick(self, tick: Tick, partition: int = 0) -> bool:
        """:meth:`add` for a :class:`~cryptolab.models.Tick`."""
        return self.add(tick.symbol, tick.ts_ms, tick.price, tick.size, partition)

    def add_many(self, ticks: Iterable[Tick], partition: int = 0) -> list[Tick]:
        """Add ticks in order; return those that were too late."""
        late = []
        add = self.add
        for t in ticks:
            if not add(t.symbol, t.ts_ms, t.price, t.size, partition):
                late.append(t)
        return late

    # ------------------------------------------------------------ columnar ingest
    def add_columns(
        self,
        codes: npt.ArrayLike,
        symbols: Sequence[str],
        ts: npt.ArrayLike,
        price: npt.ArrayLike,
        size: npt.ArrayLike,
        partition: int = 0,
    ) -> npt.NDArray[np.bool_]:
        """Fold a batch of one partition's ticks, given as columns, in arrival order.

        The outcome is exactly that of calling :meth:`add` for each tick in turn:
        the same candles to the last bit (volume and VWAP are still summed
        sequentially in arrival order), the same too-late ticks, the same windows
        closed at the same ticks and the same emission order. Large batches are
        folded with numpy between the ticks at which the watermark crosses a window
        boundary; small ones simply go through :meth:`add`.

        Parameters
        ----------
        codes
            Per tick, the index of its symbol in ``symbols``.
        symbols
            The symbols, indexed by ``codes``.
        ts
            Event times (epoch ms).
        price
            Prices.
        size
            Sizes, NaN (or ``None``) where a tick has none.
        partition
            The partition every tick of the batch comes from.

        Returns
        -------
        numpy.ndarray
            Boolean mask of the ticks that were too late (those for which
            :meth:`add` returns ``False``).

        Examples
        --------
        >>> agg = CandleAggregator(intervals="1m", out_of_orderness_ms=0)
        >>> t0 = 1_700_000_040_000
        >>> late = agg.add_columns([0, 1, 0], ["BTC-USD", "ETH-USD"], [t0, t0 + 1_000, t0 + 61_000],
        ...                        [10.0, 20.0, 11.0], [1.0, None, 2.0])
        >>> late.tolist()
        [False, False, False]
        >>> [(c.symbol, c.open, c.vwap) for c in agg.drain().finals]
        [('BTC-USD', 10.0, 10.0), ('ETH-USD', 20.0, None)]
        """
        c = np.asarray(codes, dtype=np.int64)
        t = np.asarray(ts, dtype=np.int64)
        pr = np.asarray(price, dtype=np.float64)
        sz = np.asarray(size, dtype=np.float64)
        n = int(t.shape[0])
        if not c.shape[0] == pr.shape[0] == sz.shape[0] == n:
            raise ValueError("codes, ts, price and size must have the same length")
        late = np.zeros(n, dtype=bool)
        if n == 0:
            return late
        if n < _VECTOR_MIN:
            self._add_rows(c, symbols, t, pr, sz, 0, n, partition, late)
            return late
        p = self._parts.get(partition)
        if p is None:
            p = self._parts[partition] = _Partition(len(self.interval_ms))
        # The watermark before and after each tick, moved exactly as add() moves it:
        # only a tick beyond the largest event time seen so far can raise it.
        run_max = np.maximum.accumulate(t)
        np.maximum(run_max, p.max_ts, out=run_max)
        prev_max = np.empty_like(run_max)
        prev_max[0] = p.max_ts
        prev_max[1:] = run_max[:-1]
        wm_after = np.where(t > prev_max, t - self.out_of_orderness_ms, _NEG_INF)
        np.maximum.accumulate(wm_after, out=wm_after)
        np.maximum(wm_after, p.wm, out=wm_after)
        wm_before = np.empty_like(wm_after)
        wm_before[0] = p.wm
        wm_before[1:] = wm_after[:-1]
        # Every window end is a multiple of the grain: windows can only close at a tick
        # where the watermark crosses one, so between two such ticks nothing closes.
        grain = self._grain
        crossing = np.flatnonzero(wm_after // grain > wm_before // grain).tolist()
        ends = crossing if crossing and crossing[-1] == n - 1 else [*crossing, n - 1]
        crosses = set(crossing)
        a = 0
        for e in ends:
            b = e + 1
            if b - a < _VECTOR_MIN:
                self._add_rows(c, symbols, t, pr, sz, a, b, partition, late)
            else:
                self._fold(p, partition, c[a:b], symbols, t[a:b], pr[a:b], sz[a:b], wm_before[a:b], late[a:b])
                mx = int(run_max[e])
                if mx > p.max_ts:
                    p.max_ts = mx
                wm = int(wm_after[e])
                if wm > p.wm:
                    p.wm = wm
                if e in crosses:
                    self._close(partition, p)
            a = b
        return late

    def _add_rows(
        self,
        c: npt.NDArray[np.int64],
        symbols: Sequence[str],
        t: npt.NDArray[np.int64],
        pr: npt.NDArray[np.float64],
        sz: npt.NDArray[np.float64],
        a: int,
        b: int,
        partition: int,
        late: npt.NDArray[np.bool_],
    ) -> None:
        """:meth:`add` for rows ``a:b`` of a columnar batch."""
        add = self.add
        for i, code, ts, price, size in zip(
            range(a, b), c[a:b].tolist(), t[a:b].tolist(), pr[a:b].tolist(), sz[a:b].tolist(), strict=True
        ):
            if not add(symbols[code], ts, price, None if size != size else size, partition):
                late[i] = True

    def _fold(
        self,
        p: _Partition,
        partition: int,
        c: npt.NDArray[np.int64],
        symbols: Sequence[str],
        t: npt.NDArray[np.int64],
        pr: npt.NDArray[np.float64],
        sz: npt.NDArray[np.float64],
        wm_before: npt.NDArray[np.int64],
        late: npt.NDArray[np.bool_],
    ) -> None:
        """Fold ticks during which no window closes (a chunk of :meth:`add_columns`).

        ``late`` is the chunk's slice of the result mask (written through).
        """
        n_iv = len(self.interval_ms)
        lateness = self.allowed_lateness_ms
        sized = ~np.isnan(sz)
        flows = np.empty((t.shape[0], 2))  # per tick: volume and price x volume
        np.copyto(flows[:, 0], np.where(sized, sz, 0.0))
        np.multiply(pr, flows[:, 0], out=flows[:, 1])
        wm0 = int(wm_before[0])  # a window is closed for all of the chunk's ticks or for none
        in_order = bool((t[1:] >= t[:-1]).all())
        by_symbol = np.argsort(c, kind="stable") if in_order else None
        groups: list[tuple[Any, ...]] = []
        sums: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]]] = []
        for k, iv in enumerate(self.interval_ms):
            ws = t - t % iv
            we = ws + iv
            fk = p.floor[k]
            closed = we <= max(wm0, fk)
            keep: npt.NDArray[np.bool_] | None = None
            if closed.any():
                wk_before = wm_before if fk <= wm0 else np.maximum(wm_before, fk)
                too_late = closed & (wk_before >= we + lateness)
                if too_late.any():
                    late |= too_late
                    keep = ~too_late
            if by_symbol is not None:
                order = by_symbol if keep is None else by_symbol[keep[by_symbol]]
            else:
                slot = (ws - ws.min()) // iv
                key = c * (int(slot.max()) + 1) + slot
                if keep is None:
                    order = np.argsort(key, kind="stable")
                else:
                    idx = np.flatnonzero(keep)
                    order = idx[np.argsort(key[idx], kind="stable")]
            m = int(order.shape[0])
            if m == 0:
                sums.append((flows[:0], order, order))
                continue
            c_s, ws_s, t_s, p_s = c[order], ws[order], t[order], pr[order]
            change = np.empty(m, dtype=bool)
            change[0] = True
            np.not_equal(c_s[1:], c_s[:-1], out=change[1:])
            change[1:] |= ws_s[1:] != ws_s[:-1]
            starts = np.flatnonzero(change)
            lengths = np.diff(np.append(starts, m))
            rep = np.repeat(np.arange(starts.shape[0]), lengths)
            pos = np.arange(m)
            first_ts = np.minimum.reduceat(t_s, starts)
            last_ts = np.maximum.reduceat(t_s, starts)
            open_i = np.minimum.reduceat(np.where(t_s == first_ts[rep], pos, m), starts)
            close_i = np.maximum.reduceat(np.where(t_s == last_ts[rep], pos, -1), starts)
            high = np.maximum.reduceat(p_s, starts)
            low = np.minimum.reduceat(p_s, starts)
            high_ts = np.minimum.reduceat(np.where(p_s == high[rep], t_s, _POS_INF), starts)
            low_ts = np.minimum.reduceat(np.where(p_s == low[rep], t_s, _POS_INF), starts)
            any_sized = np.logical_or.reduceat(sized[order], starts)
            sums.append((flows[order], starts, lengths))
            groups.extend(
                zip(
                    (order[starts] * n_iv + k).tolist(), repeat(k), range(starts.shape[0]),
                    c_s[starts].tolist(), ws_s[starts].tolist(), lengths.tolist(), p_s[open_i].tolist(),
                    high.tolist(), low.tolist(), p_s[close_i].tolist(), first_ts.tolist(),
                    last_ts.tolist(), high_ts.tolist(), low_ts.tolist(), any_sized.tolist(),
                    strict=False,
                )
            )
        # Apply in the order add() would have met them: by first tick, then interval.
        groups.sort(key=_first_key)
        dirty = self._dirty
        windows = p.windows
        ivs = self.interval_ms
        accs: list[list[list[Any]]] = [[[]] * len(s[1]) for s in sums]
        inits = [np.full((len(s[1]), 2), -0.0) for s in sums]
        for _first, k, g, code, w, cnt, o, h, lo, cl, ft, lt, ht, lwt, zs in groups:
            symbol = symbols[code]
            closed_w = w + ivs[k] <= max(wm0, p.floor[k])
            bucket = windows[k].get(w)
            if bucket is None:
                bucket = windows[k][w] = {}
                if w + ivs[k] < p.next_close:
                    p.next_close = w + ivs[k]
            acc = bucket.get(symbol)
            if acc is None:
                acc = [o, h, lo, cl, 0.0, 0.0, cnt, ft, lt, ht, lwt,
                       cnt - 1 if closed_w else 0, zs, closed_w, True, None]
                bucket[symbol] = acc
                dirty.append((partition, k, w, symbol, acc))
            else:
                inits[k][g] = (acc[_V], acc[_PV])
                if ft < acc[_FT]:
                    acc[_O] = o
                    acc[_FT] = ft
                if lt >= acc[_LT]:
                    acc[_C] = cl
                    acc[_LT] = lt
                if h > acc[_H] or (h == acc[_H] and ht < acc[_HT]):
                    acc[_H] = h
                    acc[_HT] = ht
                if lo < acc[_L] or (lo == acc[_L] and lwt < acc[_LWT]):
                    acc[_L] = lo
                    acc[_LWT] = lwt
                acc[_N] += cnt
                if zs:
                    acc[_SIZED] = True
                if closed_w:
                    acc[_REV] += cnt
                if not acc[_DIRTY]:
                    acc[_DIRTY] = True
                    dirty.append((partition, k, w, symbol, acc))
            accs[k][g] = acc
        # Volume and price x volume: summed one tick after the other, from the window's
        # running totals (-0.0 for a new window: -0.0 + x == x exactly), as add() does.
        for (values, starts, lengths), init, acc_k in zip(sums, inits, accs, strict=True):
            if acc_k:
                for acc, (v, pv) in zip(acc_k, _sequential_sums(values, starts, lengths, init).tolist(), strict=True):
                    acc[_V] = v
                    acc[_PV] = pv
        self.too_late += int(late.sum())

    # ----------------------------------------------------------------- closing
    def _close(self, partition: int, p: _Partition) -> None:
        """Close every window whose end is at or before its interval's watermark."""
        nxt = 2**62
        for k, iv in enumerate(self.interval_ms):
            wm = max(p.wm, p.floor[k])
            wins = p.windows[k]
            name = self.intervals[k]
            closing = sorted(ws for ws in wins if ws + iv <= wm)
            for ws in closing:
                bucket = wins[ws]
                for symbol, acc in bucket.items():
                    if acc[_CLOSED]:
                        continue
                    acc[_CLOSED] = True
                    snap = self._candle(symbol, name, ws, iv, acc, final=True)
                    acc[_SNAP] = snap
                    if self.gap_fill:
                        self._fill_gaps(p, k, symbol, ws, iv, name)
                    p.last_close[k][symbol] = (ws, acc[_C])
                    self._first_finals.append(snap)
                    if not acc[_DIRTY]:
                        acc[_DIRTY] = True
                        self._dirty.append((partition, k, ws, symbol, acc))
            open_ends = [ws + iv for ws in wins if ws + iv > wm]
            if open_ends:
                nxt = min(nxt, min(open_ends))
        p.next_close = nxt

    def _fill_gaps(self, p: _Partition, k: int, symbol: str, ws: int, iv: int, name: str) -> None:
        last = p.last_close[k].get(symbol)
        if last is None:
            return
        prev_ws, prev_close = last
        start = prev_ws + iv
        n = 0
        while start < ws and n < self.max_gap_fill:
            self._gaps.append(
                Candle(
                    symbol=symbol, interval=name, window_start=start, window_end=start + iv,
                    open=prev_close, high=prev_close, low=prev_close, close=prev_close,
                    volume=0.0, vwap=None, trades=0, first_ts=start, last_ts=start,
                    high_ts=start, low_ts=start, revision=0, final=True, gap=True,
                )
            )
            start += iv
            n += 1

    def close_partition(self, partition: int) -> None:
        """Idle close: close all the partition's open windows now.

        Each interval's watermark is raised to the end of its own open windows,
        so the candles are emitted, while the partition's event-time watermark
        stays where the data put it: ticks newer than everything seen remain on
        time (a tick for a window closed this way revises its candle).
        """
        p = self._parts.get(partition)
        if p is None:
            return
        moved = False
        for k, iv in enumerate(self.interval_ms):
            wins = p.windows[k]
            if wins:
                end = max(wins) + iv
                if end > p.floor[k] and end > p.wm:
                    p.floor[k] = end
                    moved = True
        if moved:
            self._close(partition, p)

    def close_all(self) -> None:
        """Close every open window of every partition (end of input)."""
        for partition in list(self._parts):
            self.close_partition(partition)

    # ------------------------------------------------------------------ output
    def _candle(self, symbol: str, name: str, ws: int, iv: int, acc: list[Any], *, final: bool) -> Candle:
        vol = acc[_V]
        return Candle(
            symbol=symbol, interval=name, window_start=ws, window_end=ws + iv,
            open=acc[_O], high=acc[_H], low=acc[_L], close=acc[_C],
            volume=vol, vwap=(acc[_PV] / vol) if (acc[_SIZED] and vol > 0) else None,
            trades=acc[_N], first_ts=acc[_FT], last_ts=acc[_LT], high_ts=acc[_HT], low_ts=acc[_LWT],
            revision=acc[_REV], final=final,
        )

    def drain(self) -> Emission:
        """Return what changed since the last call, and evict windows past lateness."""
        out = Emission(first_finals=self._first_finals)
        self._first_finals = []
        ivs = self.interval_ms
        names = self.intervals
        for _partition, k, ws, symbol, acc in self._dirty:
            acc[_DIRTY] = False
            if acc[_CLOSED]:
                snap = acc[_SNAP]
                if snap is not None and snap.revision == acc[_REV] and snap.trades == acc[_N]:
                    out.finals.append(snap)
                else:
                    out.finals.append(self._candle(symbol, names[k], ws, ivs[k], acc, final=True))
            else:
                out.updates.append(self._candle(symbol, names[k], ws, ivs[k], acc, final=False))
        self._dirty = []
        if self._gaps:
            out.finals.extend(self._gaps)
            self._gaps = []
        self._evict()
        return out

    def _evict(self) -> None:
        lateness = self.allowed_lateness_ms
        for p in self._parts.values():
            for k, iv in enumerate(self.interval_ms):
                wm = max(p.wm, p.floor[k])
                wins = p.windows[k]
                old = [ws for ws in wins if wm >= ws + iv + lateness]
                for ws in old:
                    del wins[ws]

    # ------------------------------------------------------------ inspection
    def has_output(self) -> bool:
        """Whether :meth:`drain` has anything to give: candles changed, closed or gap-filled since
        the last call.

        Examples
        --------
        >>> agg = CandleAggregator(intervals="1m")
        >>> agg.add("BTC-USD", 1_700_000_040_000, 37_000.0, 0.5)
        True
        >>> agg.has_output(), len(agg.drain().updates), agg.has_output()
        (True, 1, False)
        """
        return bool(self._dirty or self._first_finals or self._gaps)

    def watermark(self, partition: int = 0) -> int | None:
        """The partition's watermark (``None`` before its first tick)."""
        p = self._parts.get(partition)
        return None if p is None or p.wm == _NEG_INF else p.wm

    @property
    def partitions(self) -> list[int]:
        """Partitions this aggregator holds state for."""
        return sorted(self._parts)

    def open_windows(self, partition: int | None = None) -> int:
        """Number of (symbol, interval, window) accumulators held."""
        parts = self._parts.values() if partition is None else [self._parts.get(partition)]
        return sum(len(b) for p in parts if p is not None for w in p.windows for b in w.values())

    # ------------------------------------------------------- state snapshots
    def snapshot(self, partition: int) -> dict[str, Any]:
        """Serializable state of one partition (call after :meth:`drain`).

        The snapshot, stored with the partition's offset in one transaction, is
        what lets a consumer resume after a crash or rebalance as if nothing
        happened.
        """
        if self._dirty:
            raise RuntimeError("snapshot() after drain(): undrained output would be lost")
        p = self._parts.get(partition)
        if p is None:
            return {"v": STATE_VERSION, "intervals": list(self.intervals), "max_ts": None, "wm": None, "windows": [], "last": []}
        windows = []
        for k, wins in enumerate(p.windows):
            for ws, bucket in wins.items():
                for symbol, acc in bucket.items():
                    snap = acc[_SNAP]
                    windows.append(
                        [k, ws, symbol, *acc[:_SNAP], None if snap is None else [snap.revision, snap.trades]]
                    )
        last = [[k, s, ws, c] for k, d in enumerate(p.last_close) for s, (ws, c) in d.items()]
        return {
            "v": STATE_VERSION,
            "intervals": list(self.intervals),
            "max_ts": None if p.max_ts == _NEG_INF else p.max_ts,
            "wm": None if p.wm == _NEG_INF else p.wm,
            "floor": [None if f == _NEG_INF else f for f in p.floor],
            "windows": windows,
            "last": last,
        }

    def restore(self, partition: int, state: dict[str, Any]) -> None:
        """Load a partition's state from :meth:`snapshot` (replacing what is held)."""
        if not state or state.get("max_ts") is None and not state.get("windows"):
            self._parts.pop(partition, None)
            return
        if state.get("v") != STATE_VERSION or list(state.get("intervals", [])) != list(self.intervals):
            raise ValueError(
                f"state for partition {partition} was written for intervals "
                f"{state.get('intervals')} (v{state.get('v')}), not {list(self.intervals)}"
            )
        p = _Partition(len(self.interval_ms))
        p.max_ts = _NEG_INF if state["max_ts"] is None else int(state["max_ts"])
        p.wm = _NEG_INF if state["wm"] is None else int(state["wm"])
        p.floor = [_NEG_INF if f is None else int(f) for f in state.get("floor") or p.floor]
        nxt = 2**62
        for row in state["windows"]:
            k, ws, symbol = row[0], row[1], row[2]
            acc = list(row[3 : 3 + _SNAP]) + [None]
            acc[_DIRTY] = False
            iv = self.interval_ms[k]
            if acc[_CLOSED]:
                snap_meta = row[3 + _SNAP]
                if snap_meta is not None and snap_meta == [acc[_REV], acc[_N]]:
                    acc[_SNAP] = self._candle(symbol, self.intervals[k], ws, iv, acc, final=True)
            elif ws + iv < nxt:
                nxt = ws + iv
            p.windows[k].setdefault(ws, {})[symbol] = acc
        for k, s, ws, c in state.get("last", []):
            p.last_close[k][s] = (ws, c)
        p.next_close = nxt
        self._parts[partition] = p

    def forget(self, partition: int) -> None:
        """Drop a partition's state (it was revoked from this consumer)."""
        self._parts.pop(partition, None)
        self._dirty = [d for d in self._dirty if d[0] != partition]

    def discard_pending(self) -> None:
        """Drop the output not drained yet (the input it came from will be folded again).

        Examples
        --------
        >>> agg = CandleAggregator(intervals="1m", out_of_orderness_ms=0)
        >>> agg.add("BTC-USD", 1_700_000_040_000, 1.0, 1.0)
        True
        >>> agg.discard_pending()
        >>> agg.drain().updates
        []
        """
        for d in self._dirty:
            d[4][_DIRTY] = False
        self._dirty = []
        self._first_finals = []
        self._gaps = []


def state_has_open_windows(state: dict[str, Any]) -> bool:
    """Whether a partition state from :meth:`CandleAggregator.snapshot` holds a window that is
    not closed yet (closed windows, kept for late ticks, do not count).

    Examples
    --------
    >>> agg = CandleAggregator(intervals="1m", out_of_orderness_ms=0)
    >>> agg.add("BTC-USD", 1_700_000_040_000, 1.0, 1.0, 0)
    True
    >>> _ = agg.drain()
    >>> state_has_open_windows(agg.snapshot(0))
    True
    >>> agg.close_partition(0)
    >>> _ = agg.drain()
    >>> state_has_open_windows(agg.snapshot(0)), state_has_open_windows({})
    (False, False)
    """
    return any(not row[3 + _CLOSED] for row in state.get("windows") or ())


def state_to_bytes(state: dict[str, Any]) -> bytes:
    """Encode a partition snapshot for the store."""
    return orjson.dumps(state)


def state_from_bytes(data: bytes | None) -> dict[str, Any]:
    """Decode a partition snapshot written by :func:`state_to_bytes`."""
    if not data:
        return {}
    value = orjson.loads(data)
    if not isinstance(value, dict):
        raise ValueError("partition state must be a JSON object")
    return value
