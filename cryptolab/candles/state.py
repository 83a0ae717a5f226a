"""The streaming aggregator's state per partition, and its snapshot and restore (pure).

A partition snapshot is a JSON-able dict, stored with the partition's offset in one
transaction: what lets a consumer resume after a crash or rebalance as if nothing
happened. Its format (``"v": 1``) is stable: states written by earlier versions load.

Examples
--------
>>> p = Partition(1)
>>> p.windows[0][0] = {"X": Accumulator(1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1, 5, 5, 5, 5, 0, False, False, False, None)}
>>> p.max_ts = p.wm = 5
>>> state = snapshot_partition(p, ("1m",))
>>> state["windows"]
[[0, 0, 'X', 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1, 5, 5, 5, 5, 0, False, False, False, None]]
>>> state_has_open_windows(state_from_bytes(state_to_bytes(state)))
True
>>> restore_partition(state, (60_000,), ("1m",), 0).windows[0][0]["X"].trades
1
"""

from __future__ import annotations

from heapq import heapify, heappop, heappush
from typing import Any, Final

import orjson

from cryptolab.candles.accumulator import STATE_FIELDS, Accumulator

__all__ = [
    "NEG_INF",
    "STATE_VERSION",
    "Partition",
    "restore_partition",
    "snapshot_partition",
    "state_from_bytes",
    "state_has_open_windows",
    "state_to_bytes",
]

#: "Never": the watermark and largest event time of a partition before its first tick.
NEG_INF: Final = -(2**62)
STATE_VERSION: Final = 1
_N_FIELDS: Final = len(STATE_FIELDS)
_CLOSED_AT: Final = 3 + STATE_FIELDS.index("closed")  # in a snapshot's window row


class Partition:
    """What the aggregator holds for one partition: watermark and windows per interval.

    Beside the windows themselves, each interval keeps two min-heaps of window starts, so
    that closing and evicting touch only the windows that close or go, however many are
    held: ``open`` (windows that may hold an accumulator not closed yet, pushed when
    created open) and ``held`` (every window held, for eviction); and ``top``, the
    largest window start created (what an idle close raises the floor to). ``hot`` caches the
    accumulators of the windows the last tick went to, for the next tick of the same symbol in
    the same windows (see :meth:`CandleAggregator.add <cryptolab.candles.stream.CandleAggregator.add>`).

    Examples
    --------
    >>> p = Partition(1)
    >>> p.next_close = 2**62                      # as after a close with nothing open
    >>> _ = p.new_window(0, 120_000, 180_000, False)
    >>> _ = p.new_window(0, 60_000, 120_000, False)
    >>> p.open[0][0], p.top[0], p.next_close
    (60000, 120000, 120000)
    """

    __slots__ = ("floor", "held", "hot", "last_close", "max_ts", "next_close", "open", "top", "windows", "wm")

    def __init__(self, n_intervals: int) -> None:
        self.max_ts = NEG_INF
        self.wm = NEG_INF
        # per interval: windows ending at or before this are closed although the watermark
        # has not reached them (an idle close); the interval's watermark is max(wm, floor)
        self.floor = [NEG_INF] * n_intervals
        # per interval: {window_start: {symbol: acc}}
        self.windows: list[dict[int, dict[str, Accumulator]]] = [{} for _ in range(n_intervals)]
        self.next_close = NEG_INF  # smallest open window end (any interval), or +inf
        # per interval: {symbol: (window_start, close)} of the last closed traded window (gap fill)
        self.last_close: list[dict[str, tuple[int, float]]] = [{} for _ in range(n_intervals)]
        # per interval: min-heaps of the starts of the windows created open, and of all held
        self.open: list[list[int]] = [[] for _ in range(n_intervals)]
        self.held: list[list[int]] = [[] for _ in range(n_intervals)]
        self.top = [NEG_INF] * n_intervals  # per interval: the largest window start created
        # the windows the last tick went to, while none of them is closed: (symbol, start and
        # end of its shortest interval's window, its accumulator per interval); None: unknown
        self.hot: tuple[str, int, int, list[Accumulator]] | None = None

    def new_window(self, k: int, ws: int, we: int, closed: bool) -> dict[str, Accumulator]:
        """Create (and return) interval ``k``'s empty window ``[ws, we)``; ``closed`` when the
        interval's watermark has already passed its end (a late tick's window)."""
        bucket: dict[str, Accumulator] = {}
        self.windows[k][ws] = bucket
        heappush(self.held[k], ws)
        if ws > self.top[k]:
            self.top[k] = ws
        if not closed:
            heappush(self.open[k], ws)
            if we < self.next_close:
                self.next_close = we
        return bucket

    def evict(self, interval_ms: tuple[int, ...], allowed_lateness_ms: int) -> None:
        """Drop the windows past allowed lateness: each interval's held windows are a min-heap
        of their starts, so only the windows that go are touched."""
        for k, iv in enumerate(interval_ms):
            last = max(self.wm, self.floor[k]) - iv - allowed_lateness_ms  # windows starting by this go
            held = self.held[k]
            if held and held[0] <= last:
                wins = self.windows[k]
                while held and held[0] <= last:
                    wins.pop(heappop(held), None)


def snapshot_partition(p: Partition | None, intervals: tuple[str, ...]) -> dict[str, Any]:
    """The serializable state of partition ``p`` (``None``: a partition never seen)."""
    if p is None:
        return {"v": STATE_VERSION, "intervals": list(intervals), "max_ts": None, "wm": None, "windows": [], "last": []}
    windows = []
    for k, wins in enumerate(p.windows):
        for ws, bucket in wins.items():
            for symbol, acc in bucket.items():
                snap = acc.snap
                windows.append([k, ws, symbol, *acc.state(), None if snap is None else [snap.revision, snap.trades]])
    last = [[k, s, ws, c] for k, d in enumerate(p.last_close) for s, (ws, c) in d.items()]
    return {
        "v": STATE_VERSION,
        "intervals": list(intervals),
        "max_ts": None if p.max_ts == NEG_INF else p.max_ts,
        "wm": None if p.wm == NEG_INF else p.wm,
        "floor": [None if f == NEG_INF else f for f in p.floor],
        "windows": windows,
        "last": last,
    }


def restore_partition(
    state: dict[str, Any], interval_ms: tuple[int, ...], intervals: tuple[str, ...], partition: int
) -> Partition | None:
    """The partition a snapshot describes (``None`` for an empty one).

    Raises
    ------
    ValueError
        When the state was written for other intervals or another format version.
    """
    if not state or state.get("max_ts") is None and not state.get("windows"):
        return None
    if state.get("v") != STATE_VERSION or list(state.get("intervals", [])) != list(intervals):
        raise ValueError(
            f"state for partition {partition} was written for intervals "
            f"{state.get('intervals')} (v{state.get('v')}), not {list(intervals)}"
        )
    p = Partition(len(interval_ms))
    p.max_ts = NEG_INF if state["max_ts"] is None else int(state["max_ts"])
    p.wm = NEG_INF if state["wm"] is None else int(state["wm"])
    p.floor = [NEG_INF if f is None else int(f) for f in state.get("floor") or p.floor]
    nxt = 2**62
    for row in state["windows"]:
        k, ws, symbol = row[0], row[1], row[2]
        acc = Accumulator.from_state(row[3 : 3 + _N_FIELDS])
        acc.dirty = False
        iv = interval_ms[k]
        if acc.closed:
            snap_meta = row[3 + _N_FIELDS]
            if snap_meta is not None and snap_meta == [acc.revision, acc.trades]:
                acc.snap = acc.candle(symbol, intervals[k], ws, iv, final=True)
        elif ws + iv < nxt:
            nxt = ws + iv
        p.windows[k].setdefault(ws, {})[symbol] = acc
        if not acc.closed:
            p.open[k].append(ws)
    for k, s, ws, c in state.get("last", []):
        p.last_close[k][s] = (ws, c)
    for k, wins in enumerate(p.windows):
        p.open[k] = sorted(set(p.open[k]))  # a sorted list is a heap
        p.held[k] = list(wins)
        heapify(p.held[k])
        p.top[k] = max(wins, default=NEG_INF)
    p.next_close = nxt
    return p


def state_has_open_windows(state: dict[str, Any]) -> bool:
    """Whether a partition state from :meth:`CandleAggregator.snapshot` holds a window that is
    not closed yet (closed windows, kept for late ticks, do not count).

    Examples
    --------
    >>> from cryptolab.candles import CandleAggregator
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
    return any(not row[_CLOSED_AT] for row in state.get("windows") or ())


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
