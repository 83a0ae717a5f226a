"""The in-process cache: :class:`MemoryCache`, the same API and semantics as the Redis one.

Every ``MemoryCache`` of one name in a process shares one set of data and one
pub/sub bus, so a chart in a notebook sees what a pipeline running in the same
kernel publishes. Channel patterns are Redis globs (:func:`glob_to_regex`).
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from cryptolab.cache.base import DEFAULT_RECENT_CAP
from cryptolab.cache.channels import (
    ALERTS_CHANNEL,
    Subscription,
    finals_channel,
    latest_key,
    recent_key,
    ttl_ms_for,
    updates_channel,
)
from cryptolab.models import Alert, Candle, decode_alert, decode_candle, encode_alert, encode_candle

__all__ = ["MEMORY_QUEUE_CAP", "MemoryCache", "glob_to_regex"]

log = logging.getLogger(__name__)

#: Messages a :class:`MemoryCache` subscription buffers before dropping the oldest.
MEMORY_QUEUE_CAP: Final = 100_000


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    r"""Compile a Redis ``PSUBSCRIBE`` glob (``*``, ``?``, ``[abc]``, ``[^a]``, ``[a-z]``, ``\x``).

    :class:`MemoryCache` matches channels with it, so patterns behave the same
    on both backends.

    Examples
    --------
    >>> bool(glob_to_regex("cryptolab:candles:*:1m").fullmatch("cryptolab:candles:BTC-USD:1m"))
    True
    >>> bool(glob_to_regex("cryptolab:candles:BTC-US[^D]:1m").fullmatch("cryptolab:candles:BTC-USD:1m"))
    False
    >>> bool(glob_to_regex(r"a\*").fullmatch("a*")), bool(glob_to_regex(r"a\*").fullmatch("ab"))
    (True, False)
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            j = i + 1
            negate = j < n and pattern[j] == "^"
            if negate:
                j += 1
            items: list[str] = []
            while j < n and pattern[j] != "]":
                if pattern[j] == "\\" and j + 1 < n:
                    items.append(re.escape(pattern[j + 1]))
                    j += 2
                elif j + 2 < n and pattern[j + 1] == "-" and pattern[j + 2] != "]":
                    lo, hi = sorted((pattern[j], pattern[j + 2]))
                    items.append(f"{re.escape(lo)}-{re.escape(hi)}")
                    j += 3
                else:
                    items.append(re.escape(pattern[j]))
                    j += 1
            if j >= n:  # no closing bracket: Redis matches up to the end; treat '[' literally
                out.append(re.escape(ch))
                i += 1
                continue
            body = "".join(items)
            out.append(f"[{'^' if negate else ''}{body}]" if body else ("(?!)" if not negate else "."))
            i = j
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _newer_or_same(new: tuple[int, int, int], cur: tuple[int, int, int]) -> bool:
    """``(window_start, revision, final)``: does ``new`` replace ``cur``?"""
    return new >= cur


@dataclass
class _MemorySub:
    patterns: list[re.Pattern[str]]
    bus: _Bus
    queue: collections.deque[tuple[str, bytes]] = field(default_factory=collections.deque)
    cond: threading.Condition = field(default_factory=threading.Condition)
    closed: bool = False
    dropped: int = 0

    def deliver(self, channel: str, payload: bytes) -> None:
        with self.cond:
            if self.closed:
                return
            if len(self.queue) >= MEMORY_QUEUE_CAP:
                self.queue.popleft()
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 10_000 == 0:
                    log.warning("slow subscriber: dropped %d messages so far", self.dropped)
            self.queue.append((channel, payload))
            self.cond.notify()

    def get(self, timeout: float = 0.0) -> tuple[str, bytes] | None:
        with self.cond:
            if not self.queue and timeout > 0 and not self.closed:
                self.cond.wait_for(lambda: bool(self.queue) or self.closed, timeout)
            if self.queue and not self.closed:
                return self.queue.popleft()
            return None

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.queue.clear()
            self.cond.notify_all()
        self.bus.unsubscribe(self)


class _Bus:
    """Data and subscribers shared by every :class:`MemoryCache` of one name."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latest: dict[str, tuple[bytes, tuple[int, int, int], float]] = {}
        self.recent: dict[str, dict[int, tuple[int, bytes]]] = {}
        self.alerts: dict[bytes, int] = {}
        self.subs: list[_MemorySub] = []

    def unsubscribe(self, sub: _MemorySub) -> None:
        with self.lock:
            if sub in self.subs:
                self.subs.remove(sub)

    def fan_out(self, messages: list[tuple[str, bytes]]) -> None:
        with self.lock:
            subs = list(self.subs)
        for channel, payload in messages:
            for sub in subs:
                if any(p.fullmatch(channel) for p in sub.patterns):
                    sub.deliver(channel, payload)


_BUSES: dict[str, _Bus] = {}
_BUSES_LOCK = threading.Lock()


class _MemorySubscription:
    """A :class:`Subscription` on a :class:`MemoryCache`."""

    def __init__(self, sub: _MemorySub) -> None:
        self._sub = sub

    def get(self, timeout: float = 0.0) -> tuple[str, bytes] | None:
        return self._sub.get(timeout)

    def close(self) -> None:
        self._sub.close()

    @property
    def dropped(self) -> int:
        """Messages dropped because this subscriber fell more than MEMORY_QUEUE_CAP behind."""
        return self._sub.dropped

    def __repr__(self) -> str:
        return f"<MemorySubscription {[p.pattern for p in self._sub.patterns]}>"


class MemoryCache:
    """In-process cache with the same API and semantics as :class:`RedisCache`.

    Thread-safe. Every ``MemoryCache`` created with the same ``name`` in this
    process shares one set of data and one pub/sub bus. Payloads are the same
    JSON bytes Redis would hold.

    Parameters
    ----------
    name
        Name of the shared bus (``"default"`` is what :func:`open_cache` uses).
    recent_cap
        Final candles kept per series, and alerts kept, by the recent lists.
    clock
        Monotonic clock in seconds used for TTLs (inject a fake one in tests);
        instances sharing a name should share a clock.

    Examples
    --------
    >>> from cryptolab.models import Candle
    >>> now = [0.0]
    >>> cache = MemoryCache("doctest-ttl", clock=lambda: now[0])
    >>> c = Candle(symbol="X", interval="1m", window_start=1_700_000_040_000,
    ...            window_end=1_700_000_100_000, open=1.0, high=1.0, low=1.0, close=1.0,
    ...            volume=1.0, vwap=1.0, trades=1, first_ts=1_700_000_040_000,
    ...            last_ts=1_700_000_040_000, high_ts=1_700_000_040_000,
    ...            low_ts=1_700_000_040_000)
    >>> cache.publish([c])
    >>> cache.ttl_ms("X", "1m")
    90000
    >>> now[0] = 90.0
    >>> cache.latest("X", "1m") is None
    True
    >>> MemoryCache("doctest-ttl", clock=lambda: now[0]).ttl_ms("X", "1m") is None
    True
    >>> cache.clear()
    """

    def __init__(
        self,
        name: str = "default",
        *,
        recent_cap: int = DEFAULT_RECENT_CAP,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if recent_cap < 1:
            raise ValueError(f"recent_cap must be >= 1, got {recent_cap}")
        self.name = name
        self.recent_cap = recent_cap
        self._clock = clock
        with _BUSES_LOCK:
            bus = _BUSES.get(name)
            if bus is None:
                bus = _BUSES[name] = _Bus()
        self._bus = bus
        self._subs: list[_MemorySub] = []

    def __repr__(self) -> str:
        return f"MemoryCache({self.name!r})"

    def publish(self, candles: Sequence[Candle]) -> None:
        """See :meth:`Cache.publish`."""
        bus = self._bus
        messages: list[tuple[str, bytes]] = []
        now = self._clock()
        with bus.lock:
            for c in candles:
                payload = encode_candle(c)
                order = (c.window_start, c.revision, int(c.final))
                key = latest_key(c.symbol, c.interval)
                cur = bus.latest.get(key)
                if cur is None or cur[2] <= now or _newer_or_same(order, cur[1]):
                    expires = now + ttl_ms_for(c.interval) / 1000.0
                    bus.latest[key] = (payload, order, expires)
                messages.append((updates_channel(c.symbol, c.interval), payload))
                if c.final:
                    messages.append((finals_channel(c.symbol, c.interval), payload))
                    windows = bus.recent.setdefault(recent_key(c.symbol, c.interval), {})
                    have = windows.get(c.window_start)
                    if have is None or c.revision >= have[0]:
                        windows[c.window_start] = (c.revision, payload)
                        if len(windows) > self.recent_cap:
                            for ws in sorted(windows)[: len(windows) - self.recent_cap]:
                                del windows[ws]
        bus.fan_out(messages)

    def publish_alerts(self, alerts: Sequence[Alert]) -> None:
        """See :meth:`Cache.publish_alerts`."""
        bus = self._bus
        messages = []
        with bus.lock:
            for a in alerts:
                payload = encode_alert(a)
                bus.alerts[payload] = a.ts_ms
                messages.append((ALERTS_CHANNEL, payload))
            if len(bus.alerts) > self.recent_cap:
                ranked = sorted(bus.alerts.items(), key=lambda kv: (kv[1], kv[0]))
                for payload, _ in ranked[: len(ranked) - self.recent_cap]:
                    del bus.alerts[payload]
        bus.fan_out(messages)

    def latest(self, symbol: str, interval: str) -> Candle | None:
        """See :meth:`Cache.latest`."""
        item = self._bus.latest.get(latest_key(symbol, interval))
        if item is None or item[2] <= self._clock():
            return None
        return decode_candle(item[0])

    def ttl_ms(self, symbol: str, interval: str) -> int | None:
        """See :meth:`Cache.ttl_ms`."""
        item = self._bus.latest.get(latest_key(symbol, interval))
        if item is None:
            return None
        left = item[2] - self._clock()
        return round(left * 1000) if left > 0 else None

    def recent(self, symbol: str, interval: str, n: int = 100) -> list[Candle]:
        """See :meth:`Cache.recent`."""
        if n <= 0:
            return []
        with self._bus.lock:
            windows = dict(self._bus.recent.get(recent_key(symbol, interval), {}))
        return [decode_candle(windows[ws][1]) for ws in sorted(windows)[-n:]]

    def recent_alerts(self, n: int = 100) -> list[Alert]:
        """See :meth:`Cache.recent_alerts`."""
        if n <= 0:
            return []
        with self._bus.lock:
            ranked = sorted(self._bus.alerts.items(), key=lambda kv: (kv[1], kv[0]))
        return [decode_alert(p) for p, _ in ranked[-n:]]

    def subscribe(self, patterns: Sequence[str]) -> Subscription:
        """See :meth:`Cache.subscribe`."""
        if isinstance(patterns, str):
            patterns = [patterns]
        if not patterns:
            raise ValueError("subscribe needs at least one pattern")
        sub = _MemorySub([glob_to_regex(p) for p in patterns], self._bus)
        with self._bus.lock:
            self._bus.subs.append(sub)
        self._subs.append(sub)
        return _MemorySubscription(sub)

    def ping(self) -> bool:
        """Always true: the in-process cache is always there."""
        return True

    def clear(self) -> None:
        """Forget every key and alert of this cache's name (subscriptions stay)."""
        with self._bus.lock:
            self._bus.latest.clear()
            self._bus.recent.clear()
            self._bus.alerts.clear()

    def close(self) -> None:
        """Close the subscriptions opened through this object (shared data stays)."""
        for sub in self._subs:
            sub.close()
        self._subs.clear()
