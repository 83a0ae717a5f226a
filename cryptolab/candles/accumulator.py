"""The running OHLCV totals of one open window of one symbol and interval (pure).

An :class:`Accumulator` is what the streaming aggregator folds each tick into. Its
fields are named, slotted attributes: reading ``acc.first_ts`` costs no more than
indexing a list with a constant did, and the folding code says what it reads.

Examples
--------
>>> acc = Accumulator(10.0, 10.0, 10.0, 10.0, 2.0, 20.0, 1, 5, 5, 5, 5, 0, True, False, True, None)
>>> acc.close, acc.trades
(10.0, 1)
>>> acc.candle("BTC-USD", "1m", 0, 60_000, final=False).vwap
10.0
>>> Accumulator.from_state(acc.state()).state() == acc.state()
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptolab.models import Candle
from cryptolab.models.records import make_candle

__all__ = ["STATE_FIELDS", "Accumulator"]

#: The fields a partition snapshot stores per window, in this order (the snapshot's format:
#: a row is ``[interval index, window start, symbol, *these, [revision, trades] of the
#: final candle or None]``).
STATE_FIELDS: tuple[str, ...] = (
    "open", "high", "low", "close", "volume", "pv", "trades", "first_ts", "last_ts",
    "high_ts", "low_ts", "revision", "sized", "closed", "dirty",
)


@dataclass(slots=True, eq=False)
class Accumulator:
    """One window's candle so far, for one symbol and interval.

    Attributes
    ----------
    open, high, low, close
        Prices: of the earliest tick by event time (ties: the first to arrive), the
        highest and lowest (the earliest time they were reached), and the latest tick.
    volume, pv
        Sums of the sizes and of price x size, added in arrival order.
    trades
        Ticks folded in.
    first_ts, last_ts, high_ts, low_ts
        Event times (epoch ms) of the open, the close, the high and the low.
    revision
        Ticks folded in after the window closed (late but within allowed lateness).
    sized
        Whether any tick had a size (otherwise VWAP is ``None``).
    closed
        Whether the window has closed (its first final version was emitted).
    dirty
        Whether it changed since the last drain (it is then in the aggregator's dirty list).
    snap
        The final candle emitted when the window closed, reused while nothing changes.
    """

    open: float
    high: float
    low: float
    close: float
    volume: float
    pv: float
    trades: int
    first_ts: int
    last_ts: int
    high_ts: int
    low_ts: int
    revision: int
    sized: bool
    closed: bool
    dirty: bool
    snap: Candle | None

    def merge_group(self, o: float, h: float, lo: float, cl: float, ft: int, lt: int, ht: int, lwt: int,
                    cnt: int, sized: bool) -> None:
        """Fold a group's open/high/low/close, their times and its trade count in (ties: the
        earliest open, high and low, the latest close, as the per-tick fold decides them).

        The columnar folds call it once per group of a batch; volumes are theirs to set."""
        if ft < self.first_ts:
            self.open = o
            self.first_ts = ft
        if lt >= self.last_ts:
            self.close = cl
            self.last_ts = lt
        if h > self.high or (h == self.high and ht < self.high_ts):
            self.high = h
            self.high_ts = ht
        if lo < self.low or (lo == self.low and lwt < self.low_ts):
            self.low = lo
            self.low_ts = lwt
        self.trades += cnt
        if sized:
            self.sized = True

    def candle(self, symbol: str, name: str, ws: int, iv: int, *, final: bool) -> Candle:
        """The candle of window ``[ws, ws + iv)`` of interval ``name`` as it stands."""
        vol = self.volume
        return make_candle(
            symbol, name, ws, ws + iv, self.open, self.high, self.low, self.close, vol,
            (self.pv / vol) if (self.sized and vol > 0) else None, self.trades, self.first_ts,
            self.last_ts, self.high_ts, self.low_ts, self.revision, final, False,
        )

    def state(self) -> list[Any]:
        """The values of :data:`STATE_FIELDS`, in that order (a snapshot row's middle)."""
        return [
            self.open, self.high, self.low, self.close, self.volume, self.pv, self.trades,
            self.first_ts, self.last_ts, self.high_ts, self.low_ts, self.revision, self.sized,
            self.closed, self.dirty,
        ]

    @classmethod
    def from_state(cls, values: Sequence[Any]) -> Accumulator:
        """The accumulator whose :meth:`state` is ``values`` (its ``snap`` unset)."""
        o, h, lo, c, v, pv, n, ft, lt, ht, lwt, rev, sized, closed, dirty = values[: len(STATE_FIELDS)]
        return cls(o, h, lo, c, v, pv, n, ft, lt, ht, lwt, rev, sized, closed, dirty, None)
