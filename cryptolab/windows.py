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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from cryptolab.models import Candle, Tick, interval_name, parse_interval

__all__ = ["CandleAggregator", "Emission", "state_from_bytes", "state_to_bytes"]

# Accumulator slots (a list per open window, for speed).
_O, _H, _L, _C, _V, _PV, _N, _FT, _LT, _HT, _LWT, _REV, _SIZED, _CLOSED, _DIRTY, _SNAP = range(16)

_NEG_INF: Final = -(2**62)
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
    __slots__ = ("last_close", "max_ts", "next_close", "windows", "wm")

    def __init__(self, n_intervals: int) -> None:
        self.max_ts = _NEG_INF
        self.wm = _NEG_INF
        # per interval: {window_start: {symbol: acc}}
        self.windows: list[dict[int, dict[str, list[Any]]]] = [{} for _ in range(n_intervals)]
        self.next_close = _NEG_INF  # smallest open window end (any interval), or +inf
        # per interval: {symbol: (window_start, close)} of the last closed traded window (gap fill)
        self.last_close: list[dict[str, tuple[int, float]]] = [{} for _ in range(n_intervals)]


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
        accepted = True
        lateness = self.allowed_lateness_ms
        sized = size is not None
        vol: float = size if size is not None else 0.0
        pv = price * vol
        k = 0
        for iv in self.interval_ms:
            ws = ts - ts % iv
            we = ws + iv
            closed = we <= wm
            if closed and wm >= we + lateness:
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

    # ----------------------------------------------------------------- closing
    def _close(self, partition: int, p: _Partition) -> None:
        """Close every window whose end is at or before the watermark."""
        wm = p.wm
        nxt = 2**62
        for k, iv in enumerate(self.interval_ms):
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
        """Idle close: advance the partition's watermark past all its open windows."""
        p = self._parts.get(partition)
        if p is None:
            return
        ends = [ws + iv for k, iv in enumerate(self.interval_ms) for ws in p.windows[k]]
        if not ends:
            return
        target = max(ends)
        if target > p.wm:
            p.wm = target
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
            wm = p.wm
            for k, iv in enumerate(self.interval_ms):
                wins = p.windows[k]
                old = [ws for ws in wins if wm >= ws + iv + lateness]
                for ws in old:
                    del wins[ws]

    # ------------------------------------------------------------ inspection
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
