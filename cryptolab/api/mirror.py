"""The newest candle of each series, kept in the process from its one cache subscription.

``GET /api/v1/latest`` is the API's hottest route. A Redis ``GET`` per request costs the server
more CPU than the rest of the request, while the process already receives every candle update
on its subscription (:class:`~cryptolab.api.fanout.Hub`). :class:`LatestMirror` keeps the
newest JSON of each series from those updates, by the same order as the cache's ``latest`` key
(window start, then revision, then final over open), so the route answers from memory.

How fresh: an update reaches the mirror a pub/sub delivery after it reached Redis (about a
millisecond on loopback). An entry is trusted for at most ``max_age_s`` (1 s) after the update or
read that set it; after that, or on a miss, the route reads Redis and refreshes the entry. The
mirror is used only while the subscription is live, and emptied whenever it is (re)made, so
updates missed while it was down are never served.

Examples
--------
>>> m = LatestMirror(max_age_s=1.0)
>>> ch = "cryptolab:candles:BTC-USD:1m"
>>> m.offer(ch, b'{"window_start":60000,"revision":0,"final":false}', now=10.0)
>>> m.offer(ch, b'{"window_start":0,"revision":3,"final":true}', now=10.1)  # older window: kept out
>>> m.get(ch, now=10.5)
b'{"window_start":60000,"revision":0,"final":false}'
>>> m.get(ch, now=11.2) is None  # older than max_age_s: read the cache again
True
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

import orjson

__all__ = ["DEFAULT_MAX_AGE_S", "LatestMirror"]

#: How long an entry is trusted without an update, in seconds.
DEFAULT_MAX_AGE_S: Final = 1.0
#: Series kept at most; past it the mirror starts again empty (a bound, not a cache policy).
_MAX_SERIES: Final = 100_000

_Order = tuple[int, int, int]


def _order(payload: bytes) -> _Order | None:
    """(window start, revision, final) of a candle's JSON; ``None`` when it is not one."""
    try:
        c = orjson.loads(payload)
        return int(c["window_start"]), int(c.get("revision") or 0), 1 if c.get("final") is True else 0
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None


class LatestMirror:
    """The newest candle JSON per series channel, from the subscription's updates.

    Call it from one thread (the event loop's): it takes no lock.

    Parameters
    ----------
    max_age_s
        How long an entry answers without being set again.
    clock
        Seconds, monotonic (for tests).
    """

    def __init__(self, max_age_s: float = DEFAULT_MAX_AGE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self.clock = clock
        self._entries: dict[str, tuple[bytes, _Order, float]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def offer(self, channel: str, payload: bytes, now: float | None = None) -> None:
        """Keep ``payload`` for ``channel`` unless the entry held is newer (as Redis's ``latest``)."""
        order = _order(payload)
        if order is None:
            return
        held = self._entries.get(channel)
        if held is not None and order < held[1]:
            return
        if held is None and len(self._entries) >= _MAX_SERIES:
            self._entries.clear()
        self._entries[channel] = (payload, order, self.clock() if now is None else now)

    def get(self, channel: str, now: float | None = None) -> bytes | None:
        """The JSON held for ``channel`` if set within ``max_age_s``, else ``None``."""
        held = self._entries.get(channel)
        if held is None:
            return None
        if (self.clock() if now is None else now) - held[2] > self.max_age_s:
            return None
        return held[0]

    def refresh(self, channel: str, payload: bytes | None, now: float | None = None) -> None:
        """Set ``channel``'s entry from a read of the cache (``None``: it has none). A read older
        than the entry held (an update overtook the read, or the cache was emptied) drops the
        entry: the next request reads the cache again.

        Examples
        --------
        >>> m = LatestMirror()
        >>> m.offer("c", b'{"window_start":60000}', now=0.0)
        >>> m.refresh("c", b'{"window_start":0}', now=0.1)
        >>> m.get("c", now=0.2) is None, len(m)
        (True, 0)
        """
        if payload is None:
            self._entries.pop(channel, None)
            return
        held = self._entries.get(channel)
        order = _order(payload)
        if held is not None and (order is None or order < held[1]):
            del self._entries[channel]
            return
        self.offer(channel, payload, now)

    def clear(self) -> None:
        """Forget every entry (the subscription was lost or made again)."""
        self._entries.clear()
