"""Trades missed while a websocket was down: duplicate dropping, REST repair, gap records.

After a reconnection a live trade source asks the exchange's trade history
(ccxt ``fetch_trades``) for everything since the last trade it delivered, pages
forward, and delivers what it had not seen before resuming the live stream.
:class:`SeenTrades` drops what was already delivered -- the trades the stream or
the history repeats -- by trade id (by time, price and size for trades without
one), per symbol.

When the history cannot give the missed trades back -- the exchange has no
``fetchTrades``, the request fails, or its history does not reach back to the last
delivered trade -- the span is recorded as a :class:`TradeGap`: the candles of the
windows it overlaps may lack trades. A gap record rather than a candle field: the
candle model, its wire format and the store keep their shape (candles stay
bit-identical), and a gap is known when it happens, before the windows it spoils
close.

Examples
--------
>>> seen = SeenTrades(capacity=3)
>>> [seen.fresh(ts, tid) for ts, tid in [(1, "a"), (2, "b"), (2, "b"), (3, "c"), (1, "a")]]
[True, True, False, True, False]
>>> seen.last_ts, seen.last_id
(3, 'c')
>>> gap = TradeGap("BINANCE:BTC-USDT", 60_000, 150_000, "history does not reach back", "binance")
>>> gap.windows(60_000)
[60000, 120000]
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

__all__ = ["SeenTrades", "TradeGap"]


@dataclass(frozen=True, slots=True)
class TradeGap:
    """A span of a symbol's trades that may be incomplete: trades between ``start_ms``
    and ``end_ms`` (both inclusive, exchange time) could not be recovered.

    Parameters
    ----------
    symbol
        The cryptolab symbol (``VENUE:BASE-QUOTE``).
    start_ms
        Time of the last trade delivered before the disconnection.
    end_ms
        Time of the first trade delivered after it.
    reason
        Why the trades could not be fetched.
    source
        The exchange id.
    """

    symbol: str
    start_ms: int
    end_ms: int
    reason: str
    source: str = ""

    def windows(self, interval_ms: int) -> list[int]:
        """Start times of the ``interval_ms`` windows the gap overlaps (their candles may
        lack trades).

        Examples
        --------
        >>> TradeGap("X-Y", 59_999, 60_000, "r").windows(60_000)
        [0, 60000]
        """
        first = self.start_ms - self.start_ms % interval_ms
        return list(range(first, self.end_ms + 1, interval_ms))

    def as_dict(self) -> dict[str, Any]:
        """The record as a plain dict."""
        return {"symbol": self.symbol, "start_ms": self.start_ms, "end_ms": self.end_ms,
                "reason": self.reason, "source": self.source}


class SeenTrades:
    """The most recent trades of one symbol delivered so far, to drop repeats.

    A trade is *fresh* unless its key (its id, or ``(ts, price, size)`` without one)
    is among the last ``capacity`` delivered, or it is older than every trade still
    remembered (such a trade was delivered long ago, or is too late to matter).

    Parameters
    ----------
    capacity
        How many trade keys to remember.
    floor_ms
        Trades before this time are not fresh (a live stream that starts where a backfill
        ended delivers nothing the backfill stored).

    Examples
    --------
    >>> seen = SeenTrades(floor_ms=100)
    >>> seen.fresh(99, "a"), seen.fresh(100, "b")
    (False, True)
    """

    __slots__ = ("_floor", "_keys", "capacity", "last_id", "last_ts")

    def __init__(self, capacity: int = 10_000, *, floor_ms: int | None = None) -> None:
        self.capacity = capacity
        self._keys: OrderedDict[Hashable, int] = OrderedDict()
        self._floor: int | None = floor_ms
        self.last_ts: int | None = None
        self.last_id: str | None = None

    def fresh(self, ts_ms: int, key: Hashable) -> bool:
        """Whether a trade is new; if so it is remembered as delivered."""
        if key in self._keys or (self._floor is not None and ts_ms < self._floor):
            return False
        self._keys[key] = ts_ms
        if len(self._keys) > self.capacity:
            _, oldest = self._keys.popitem(last=False)
            self._floor = oldest if self._floor is None else max(self._floor, oldest)
        if self.last_ts is None or ts_ms >= self.last_ts:
            self.last_ts = ts_ms
            self.last_id = key if isinstance(key, str) else None
        return True

    def __contains__(self, key: Hashable) -> bool:
        return key in self._keys
