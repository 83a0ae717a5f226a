"""Event-time tumbling windows: the streaming candle aggregator (pure, no I/O).

Semantics (identical to :func:`cryptolab.candles.batch.candles_from_ticks` on in-order data):

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

import gc
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from heapq import heappop
from typing import Any

import numpy as np
import numpy.typing as npt

from cryptolab.candles.accumulator import Accumulator
from cryptolab.candles.columns import DirtyList, fold_chunk, fold_span, span_in_order
from cryptolab.candles.kernels import watermark_steps
from cryptolab.candles.sealed import SEALED, fill_gaps, fold_sealed, plan_sealed
from cryptolab.candles.state import NEG_INF, Partition, restore_partition, snapshot_partition
from cryptolab.models import Candle, Tick, interval_name, parse_interval
from cryptolab.models.blocks import CandleList

__all__ = ["CandleAggregator", "Emission"]

#: Batches (and chunks between window closes) shorter than this go through add() tick by tick.
_VECTOR_MIN = 256


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

    ``finals`` and ``first_finals`` are :class:`~cryptolab.models.blocks.CandleList` objects: the
    windows of a batch that opened and closed within it (nearly all of them on sparse data)
    are held as columns, their candle objects built when first read (once for both lists);
    :meth:`~cryptolab.models.blocks.CandleList.columns` reads them without building them.
    """

    updates: list[Candle] = field(default_factory=list)
    finals: CandleList = field(default_factory=CandleList)
    first_finals: CandleList = field(default_factory=CandleList)

    def __bool__(self) -> bool:
        return bool(self.updates or self.finals or self.first_finals)


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
        # each shortest window lies in one window of every interval (the ticks of one share them all)
        self._nested = bool(ms) and all(m % ms[0] == 0 for m in ms)
        self._parts: dict[int, Partition] = {}
        self._dirty: DirtyList = []  # flat: five values per changed window
        self._first_finals = CandleList()
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
            p = self._parts[partition] = Partition(len(self.interval_ms))
        wm = p.wm
        sized = size is not None
        vol: float = size if size is not None else 0.0
        pv = price * vol
        hot = p.hot
        if hot is not None and hot[1] <= ts < hot[2] and wm < hot[2] and hot[0] == symbol:
            # The same windows as the last tick, none closed yet (the shortest ends first): on time.
            _fold_on_time(hot[3], self._dirty, partition, self.interval_ms, symbol, ts, price, vol, pv, sized)
            if ts > p.max_ts:  # _advance, inline
                p.max_ts = ts
                nw = ts - self.out_of_orderness_ms
                if nw > wm:
                    p.wm = nw
                    if nw >= p.next_close:
                        self._close(partition, p)
            return True
        floor = p.floor
        windows = p.windows
        accepted = True
        lateness = self.allowed_lateness_ms
        accs: list[Accumulator] | None = [] if self._nested else None
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
                accs = None
                k += 1
                continue
            bucket = windows[k].get(ws)
            if bucket is None:
                bucket = p.new_window(k, ws, we, closed)
            acc = bucket.get(symbol)
            if acc is None:
                acc = Accumulator(price, price, price, price, vol, pv, 1, ts, ts, ts, ts, 0, sized, closed, True, None)
                bucket[symbol] = acc
                self._dirty += (partition, k, ws, symbol, acc)
            else:
                if ts < acc.first_ts:
                    acc.open = price
                    acc.first_ts = ts
                if ts >= acc.last_ts:
                    acc.close = price
                    acc.last_ts = ts
                if price > acc.high or (price == acc.high and ts < acc.high_ts):
                    acc.high = price
                    acc.high_ts = ts
                if price < acc.low or (price == acc.low and ts < acc.low_ts):
                    acc.low = price
                    acc.low_ts = ts
                acc.volume += vol
                acc.pv += pv
                acc.trades += 1
                if sized:
                    acc.sized = True
                if closed:
                    acc.revision += 1
                if not acc.dirty:
                    acc.dirty = True
                    self._dirty += (partition, k, ws, symbol, acc)
            if accs is not None:
                if closed:
                    accs = None
                else:
                    accs.append(acc)
            k += 1
        if accs is not None:
            ws = ts - ts % self.interval_ms[0]
            p.hot = (symbol, ws, ws + self.interval_ms[0], accs)
        if not accepted:
            self.too_late += 1
        if ts > p.max_ts:
            self._advance(partition, p, ts)
        return accepted

    def _advance(self, partition: int, p: Partition, ts: int) -> None:
        """Raise partition ``p``'s largest event time to ``ts`` (larger than it was) and its
        watermark with it, closing the windows it reaches."""
        p.max_ts = ts
        nw = ts - self.out_of_orderness_ms
        if nw > p.wm:
            p.wm = nw
            if nw >= p.next_close:
                self._close(partition, p)

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
            _add_rows(self.add, c, symbols, t, pr, sz, 0, n, partition, late)
            return late
        p = self._parts.get(partition)
        if p is None:
            p = self._parts[partition] = Partition(len(self.interval_ms))
        # The watermark before and after each tick, moved exactly as add() moves it.
        run_max, wm_before, wm_after = watermark_steps(t, p.max_ts, p.wm, self.out_of_orderness_ms, NEG_INF)
        # Every window end is a multiple of the grain: windows can only close at a tick
        # where the watermark crosses one, so between two such ticks nothing closes.
        crossing = np.flatnonzero(wm_after // self._grain > wm_before // self._grain)
        rows = _Rows(self, p, partition, c, symbols, t, pr, sz, run_max, wm_before, wm_after, crossing, late)
        _fold_batch(self, p, partition, rows, symbols)
        return late

    # ----------------------------------------------------------------- closing
    def _close(self, partition: int, p: Partition) -> None:
        """Close every window whose end is at or before its interval's watermark.

        Each interval's open windows are a min-heap of their starts: a close pops those that
        end by the watermark, in window order, and touches no other window held.
        """
        nxt = 2**62
        gap_fill = self.gap_fill
        first_finals = self._first_finals.append
        dirty = self._dirty
        pwm = p.wm
        for k, iv in enumerate(self.interval_ms):
            wm = p.floor[k]
            if pwm > wm:
                wm = pwm
            heap = p.open[k]
            if heap and heap[0] + iv <= wm:
                wins = p.windows[k]
                last_close = p.last_close[k]
                name = self.intervals[k]
                while heap and heap[0] + iv <= wm:
                    ws = heappop(heap)
                    bucket = wins.get(ws)
                    if bucket is None:  # evicted already
                        continue
                    for symbol, acc in bucket.items():
                        if acc.closed:
                            continue
                        acc.closed = True
                        snap = acc.snap = acc.candle(symbol, name, ws, iv, final=True)
                        if gap_fill:
                            fill_gaps(self._gaps, self.max_gap_fill, p.last_close[k].get(symbol), symbol, ws, iv, name)
                        last_close[symbol] = (ws, acc.close)
                        first_finals(snap)
                        if not acc.dirty:
                            acc.dirty = True
                            dirty += (partition, k, ws, symbol, acc)
            if heap and heap[0] + iv < nxt:
                nxt = heap[0] + iv
        p.next_close = nxt

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
            # The latest window created: if it went, it was closed, and so is every other.
            if p.top[k] != NEG_INF:
                end = p.top[k] + iv
                if end > p.floor[k] and end > p.wm:
                    p.floor[k] = end
                    p.hot = None  # its windows may close now
                    moved = True
        if moved:
            self._close(partition, p)

    def close_all(self) -> None:
        """Close every open window of every partition (end of input)."""
        for partition in list(self._parts):
            self.close_partition(partition)

    def drain(self) -> Emission:
        """Return what changed since the last call, and evict windows past lateness."""
        out = Emission(first_finals=self._first_finals)
        self._first_finals = CandleList()
        append = out.finals.append
        ivs = self.interval_ms
        names = self.intervals
        it = iter(self._dirty)
        for _partition, k, ws, symbol, acc in zip(it, it, it, it, it, strict=True):
            if k == SEALED:  # windows that opened and closed in one batch: their final candles
                out.finals.add_block(*acc)
                append = out.finals.append  # the list after the block
                continue
            acc.dirty = False
            if acc.closed:
                snap = acc.snap
                if snap is not None and snap.revision == acc.revision and snap.trades == acc.trades:
                    append(snap)
                else:
                    append(acc.candle(symbol, names[k], ws, ivs[k], final=True))
            else:
                out.updates.append(acc.candle(symbol, names[k], ws, ivs[k], final=False))
        self._dirty = []
        if self._gaps:
            out.finals.extend(self._gaps)
            self._gaps = []
        for p in self._parts.values():
            p.evict(self.interval_ms, self.allowed_lateness_ms)
        return out

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
        return None if p is None or p.wm == NEG_INF else p.wm

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
        happened (see :mod:`cryptolab.candles.state`).
        """
        if self._dirty:
            raise RuntimeError("snapshot() after drain(): undrained output would be lost")
        return snapshot_partition(self._parts.get(partition), self.intervals)

    def restore(self, partition: int, state: dict[str, Any]) -> None:
        """Load a partition's state from :meth:`snapshot` (replacing what is held)."""
        p = restore_partition(state, self.interval_ms, self.intervals, partition)
        if p is None:
            self._parts.pop(partition, None)
        else:
            self._parts[partition] = p

    def forget(self, partition: int) -> None:
        """Drop a partition's state (it was revoked from this consumer)."""
        self._parts.pop(partition, None)
        d = self._dirty
        self._dirty = [v for i in range(0, len(d), 5) if d[i] != partition for v in d[i:i + 5]]

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
        d = self._dirty
        for k, acc in zip(d[1::5], d[4::5], strict=True):
            if k != SEALED:
                acc.dirty = False
        self._dirty = []
        self._first_finals = CandleList()
        self._gaps = []


def _fold_on_time(
    accs: list[Accumulator], dirty: DirtyList, partition: int, interval_ms: tuple[int, ...], symbol: str,
    ts: int, price: float, vol: float, pv: float, sized: bool,
) -> None:
    """Fold an on-time tick into ``accs``, its window's accumulator of each interval (in order)."""
    k = 0
    for acc in accs:
        if ts < acc.first_ts:
            acc.open = price
            acc.first_ts = ts
        if ts >= acc.last_ts:
            acc.close = price
            acc.last_ts = ts
        if price > acc.high or (price == acc.high and ts < acc.high_ts):
            acc.high = price
            acc.high_ts = ts
        if price < acc.low or (price == acc.low and ts < acc.low_ts):
            acc.low = price
            acc.low_ts = ts
        acc.volume += vol
        acc.pv += pv
        acc.trades += 1
        if sized:
            acc.sized = True
        if not acc.dirty:
            acc.dirty = True
            dirty += (partition, k, ts - ts % interval_ms[k], symbol, acc)
        k += 1


def _add_rows(
    add: Callable[[str, int, float, float | None, int], bool],
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
    """``add`` (:meth:`CandleAggregator.add`) for rows ``a:b`` of a columnar batch."""
    for i, code, ts, price, size in zip(
        range(a, b), c[a:b].tolist(), t[a:b].tolist(), pr[a:b].tolist(), sz[a:b].tolist(), strict=True
    ):
        if not add(symbols[code], ts, price, None if size != size else size, partition):
            late[i] = True


class _Rows:
    """A columnar batch of one partition, folded through the stateful path a range of rows at a
    time (:meth:`fold`), as :meth:`CandleAggregator.add` would fold them one after the other."""

    def __init__(
        self, agg: CandleAggregator, p: Partition, partition: int, c: npt.NDArray[np.int64],
        symbols: Sequence[str], t: npt.NDArray[np.int64], pr: npt.NDArray[np.float64],
        sz: npt.NDArray[np.float64], run_max: npt.NDArray[np.int64], wm_before: npt.NDArray[np.int64],
        wm_after: npt.NDArray[np.int64], crossing: npt.NDArray[np.intp], late: npt.NDArray[np.bool_],
    ) -> None:
        self.agg, self.p, self.partition, self.c, self.symbols = agg, p, partition, c, symbols
        self.t, self.pr, self.sz, self.late = t, pr, sz, late
        self.run_max, self.wm_before, self.wm_after, self.crossing = run_max, wm_before, wm_after, crossing

    def fold(self, lo: int, hi: int) -> None:
        """Fold rows ``lo:hi``: with numpy between the ticks at which the watermark crosses a
        window boundary (after which the windows it reaches close), short stretches tick by tick."""
        if hi <= lo:
            return
        agg, p, partition = self.agg, self.p, self.partition
        c, symbols, t, pr, sz, late = self.c, self.symbols, self.t, self.pr, self.sz, self.late
        cr = self.crossing
        crossing = cr[int(np.searchsorted(cr, lo)):int(np.searchsorted(cr, hi))].tolist()
        ends = crossing if crossing and crossing[-1] == hi - 1 else [*crossing, hi - 1]
        crosses = set(crossing)
        if len(ends) > 1 and hi - lo >= _VECTOR_MIN and span_in_order(p.floor, agg.interval_ms, t[lo:hi],
                                                                     self.wm_before[lo:hi]):
            # Several chunks, none late: grouped once, their windows closed in turn.
            fold_span(p, partition, agg.interval_ms, agg._dirty, c[lo:hi], symbols, t[lo:hi], pr[lo:hi],
                      sz[lo:hi], [e - lo for e in ends], partial(self._chunk_end, lo, crosses))
            return
        a = lo  # the first row not folded yet
        s = lo  # the chunk's first row
        for e in ends:
            b = e + 1
            if b - s < _VECTOR_MIN:  # a short chunk: with the next ones, tick by tick
                s = b
                continue
            if s > a:
                _add_rows(agg.add, c, symbols, t, pr, sz, a, s, partition, late)
            a = s
            fold_chunk(p, partition, agg.interval_ms, agg.allowed_lateness_ms, agg._dirty,
                       c[a:b], symbols, t[a:b], pr[a:b], sz[a:b], self.wm_before[a:b], late[a:b])
            agg.too_late += int(late[a:b].sum())
            self._chunk_end(0, crosses, e)
            s = b
            a = b
        if hi > a:
            _add_rows(agg.add, c, symbols, t, pr, sz, a, hi, partition, late)


    def _chunk_end(self, lo: int, crosses: set[int], e: int) -> None:
        """After row ``lo + e`` (the last of a chunk) is folded: raise the partition's largest
        event time and watermark to theirs, and close the windows it reaches."""
        p, row = self.p, lo + e
        mx = int(self.run_max[row])
        if mx > p.max_ts:
            p.max_ts = mx
        wm = int(self.wm_after[row])
        if wm > p.wm:
            p.wm = wm
        if row in crosses:
            self.agg._close(self.partition, p)


def _fold_from(rows: _Rows, at: int, a: int, b: int) -> None:
    """``rows.fold`` of rows ``a:b`` counted from row ``at``."""
    rows.fold(at + a, at + b)


def _fold_batch(agg: CandleAggregator, p: Partition, partition: int, rows: _Rows, symbols: Sequence[str]) -> None:
    """Fold a columnar batch of partition ``p``: each stretch whose windows all open, close and
    pass allowed lateness within the batch through :func:`~cryptolab.candles.sealed.fold_sealed`
    (never held), the rest through the stateful path.

    A final candle per sealed window (three per tick on sparse data) is built, all alive until
    the drain: the cyclic garbage collector, which they would trigger again and again to find
    nothing (they refer to no container), is paused meanwhile, as the consumer pauses it around
    a batch.
    """
    n = int(rows.t.shape[0])
    gaps = agg._gaps if agg.gap_fill else None
    pos = 0
    paused = False
    try:
        while pos < n:
            plan = plan_sealed(p, agg.interval_ms, agg.allowed_lateness_ms, rows.t[pos:], rows.wm_before[pos:],
                               rows.wm_after[pos:], max(1, _VECTOR_MIN // 8))
            if plan is None:
                break
            rows.fold(pos, pos + plan.h)  # the head: it folds into windows held before
            if not paused and gc.isenabled():
                gc.disable()
                paused = True
            done = fold_sealed(
                plan, p, partition, agg.interval_ms, agg.intervals, symbols, rows.c[pos:], rows.t[pos:],
                rows.pr[pos:], rows.sz[pos:], rows.run_max[pos:], rows.wm_after[pos:], agg._dirty,
                agg._first_finals, gaps, agg.max_gap_fill, lambda: agg._close(partition, p),
                partial(_fold_from, rows, pos),
            )
            if done is None:  # a held window closes with a sealed one: all statefully
                pos += plan.h
                break
            region = np.logical_or.reduce(plan.too_late)[plan.h:plan.m]
            rows.late[pos + plan.h:pos + plan.m] = region
            agg.too_late += int(region.sum())
            pos += done
        rows.fold(pos, n)
    finally:
        if paused:
            gc.enable()
