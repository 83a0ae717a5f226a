"""The live view: latest candles, recent finals and pub/sub, in Redis or in-process.

The SQL store is the record; this cache is a fast view that can always be
rebuilt from it. :class:`RedisCache` serves several processes (a pipeline and
any number of notebooks); :class:`MemoryCache` is its in-process twin with the
same API, the embedded default, so that a chart in a notebook sees what a
pipeline running in the same kernel publishes.

Keys and channels (``{symbol}`` and ``{interval}`` as stored, e.g. ``BTC-USD`` and ``1m``)
--------------------------------------------------------------------------------------------
``cryptolab:latest:{symbol}:{interval}``
    The newest candle of the series as JSON (:func:`~cryptolab.models.encode_candle`),
    with a TTL of 1.5 x the interval. Monotonic: it is only replaced by a
    candle with a greater ``window_start``, or the same ``window_start`` and a
    ``(revision, final)`` that is not smaller.
``cryptolab:recent:{symbol}:{interval}``
    The most recent final candles: a sorted set scored by ``window_start``
    holding one member (the candle JSON) per window; a later revision of a
    window replaces its member, an identical re-publish changes nothing, and
    the set is trimmed to the newest ``recent_cap`` windows.
``cryptolab:alerts:recent``
    The most recent alerts: a sorted set of alert JSON scored by ``ts_ms``,
    trimmed to ``recent_cap``.
``cryptolab:candles:{symbol}:{interval}`` (channel)
    Every published candle update (open, final and revised), as candle JSON.
``cryptolab:finals:{symbol}:{interval}`` (channel)
    Final candles only (including later revisions of a closed window).
``cryptolab:alerts`` (channel)
    Alerts as JSON (:func:`~cryptolab.models.encode_alert`).

Pub/sub delivery is best effort and at least once (a publish retried after a
lost connection may be delivered twice): subscribers should key updates by
``(symbol, interval, window_start)`` and keep the highest ``revision``.

Examples
--------
>>> from cryptolab.models import Candle
>>> cache = MemoryCache("doctest-module")
>>> sub = cache.subscribe(["cryptolab:finals:*"])
>>> c = Candle(symbol="BTC-USD", interval="1m", window_start=1_700_000_040_000,
...            window_end=1_700_000_100_000, open=1.0, high=2.0, low=0.5, close=1.5,
...            volume=3.0, vwap=1.2, trades=3, first_ts=1_700_000_040_000,
...            last_ts=1_700_000_099_000, high_ts=1_700_000_050_000,
...            low_ts=1_700_000_060_000, final=True)
>>> cache.publish([c])
>>> cache.latest("BTC-USD", "1m") == c
True
>>> channel, payload = sub.get()
>>> channel
'cryptolab:finals:BTC-USD:1m'
>>> [x.window_start for x in cache.recent("BTC-USD", "1m")]
[1700000040000]
>>> sub.close(); cache.clear()
"""

from __future__ import annotations

import collections
import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, cast, runtime_checkable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from cryptolab.config import Settings, redact_url
from cryptolab.errors import CacheError
from cryptolab.models import (
    Alert,
    Candle,
    decode_alert,
    decode_candle,
    encode_alert,
    encode_candle,
    parse_interval,
)

__all__ = [
    "ALERTS_CHANNEL",
    "RECENT_ALERTS_KEY",
    "Cache",
    "MemoryCache",
    "RedisCache",
    "Subscription",
    "finals_channel",
    "glob_to_regex",
    "latest",
    "latest_key",
    "open_cache",
    "recent_key",
    "ttl_ms_for",
    "updates_channel",
]

log = logging.getLogger(__name__)

#: Channel on which alerts are published.
ALERTS_CHANNEL: Final = "cryptolab:alerts"
#: Sorted set of the most recent alerts.
RECENT_ALERTS_KEY: Final = "cryptolab:alerts:recent"
#: Default number of recent final candles (per series) and alerts kept.
DEFAULT_RECENT_CAP: Final = 500
#: Messages a :class:`MemoryCache` subscription buffers before dropping the oldest.
MEMORY_QUEUE_CAP: Final = 100_000


def latest_key(symbol: str, interval: str) -> str:
    """Key of the latest candle of a series.

    Examples
    --------
    >>> latest_key("BTC-USD", "1m")
    'cryptolab:latest:BTC-USD:1m'
    """
    return f"cryptolab:latest:{symbol}:{interval}"


def recent_key(symbol: str, interval: str) -> str:
    """Key of the sorted set of recent final candles of a series.

    Examples
    --------
    >>> recent_key("BTC-USD", "5m")
    'cryptolab:recent:BTC-USD:5m'
    """
    return f"cryptolab:recent:{symbol}:{interval}"


def updates_channel(symbol: str, interval: str) -> str:
    """Channel carrying every update of a series (open, final and revised candles).

    Examples
    --------
    >>> updates_channel("ETH-USD", "1m")
    'cryptolab:candles:ETH-USD:1m'
    """
    return f"cryptolab:candles:{symbol}:{interval}"


def finals_channel(symbol: str, interval: str) -> str:
    """Channel carrying the final (closed) candles of a series.

    Examples
    --------
    >>> finals_channel("ETH-USD", "1m")
    'cryptolab:finals:ETH-USD:1m'
    """
    return f"cryptolab:finals:{symbol}:{interval}"


@functools.lru_cache(maxsize=64)
def ttl_ms_for(interval: str) -> int:
    """TTL of a latest-candle key: 1.5 x the interval, in ms.

    Examples
    --------
    >>> ttl_ms_for("1m")
    90000
    """
    return parse_interval(interval) * 3 // 2


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


@runtime_checkable
class Subscription(Protocol):
    """Messages from channels matching a subscription's glob patterns."""

    def get(self, timeout: float = 0.0) -> tuple[str, bytes] | None:
        """Next ``(channel, payload)``, waiting up to ``timeout`` seconds; ``None`` if none came."""
        ...

    def close(self) -> None:
        """Stop receiving; further :meth:`get` calls return ``None``."""
        ...


@runtime_checkable
class Cache(Protocol):
    """What the pipeline publishes to and charts read from (Redis or in-process)."""

    def publish(self, candles: Sequence[Candle]) -> None:
        """Set latest (monotonic, TTL 1.5 x interval), publish updates and finals, keep recent finals."""
        ...

    def publish_alerts(self, alerts: Sequence[Alert]) -> None:
        """Publish alerts on :data:`ALERTS_CHANNEL` and keep the most recent."""
        ...

    def latest(self, symbol: str, interval: str) -> Candle | None:
        """The newest candle of a series, or ``None`` (never published, or expired)."""
        ...

    def recent(self, symbol: str, interval: str, n: int = 100) -> list[Candle]:
        """Up to ``n`` most recent final candles, ascending by ``window_start``."""
        ...

    def recent_alerts(self, n: int = 100) -> list[Alert]:
        """Up to ``n`` most recent alerts, ascending by ``ts_ms``."""
        ...

    def ttl_ms(self, symbol: str, interval: str) -> int | None:
        """Milliseconds before the latest candle of a series expires (``None`` if absent)."""
        ...

    def subscribe(self, patterns: Sequence[str]) -> Subscription:
        """Subscribe to channels matching the glob ``patterns``; live once this returns."""
        ...

    def ping(self) -> bool:
        """True when the cache answers."""
        ...

    def close(self) -> None:
        """Release connections and subscriptions opened through this object."""
        ...


def _newer_or_same(new: tuple[int, int, int], cur: tuple[int, int, int]) -> bool:
    """``(window_start, revision, final)``: does ``new`` replace ``cur``?"""
    return new >= cur


# --------------------------------------------------------------------------- memory


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


# --------------------------------------------------------------------------- redis

# One call publishes a whole batch of candle updates (one script run instead of one per
# candle: the per-command cost of the client dominated a batch's publish). Per candle i
# (0-based): KEYS[2i+1] latest key, KEYS[2i+2] recent key; ARGV[3 + 7i ..]: payload,
# window_start, revision, final, ttl_ms, updates channel, finals channel. ARGV[1] = the
# number of candles, ARGV[2] = the recent-list cap. Returns how many latest keys were set.
_PUBLISH_LUA: Final = """
local n = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local set = 0
for i = 0, n - 1 do
  local a = 2 + 7 * i
  local payload, sws = ARGV[a + 1], ARGV[a + 2]
  local ws, rev, fin = tonumber(sws), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local latest, recent = KEYS[2 * i + 1], KEYS[2 * i + 2]
  local replaced = 1
  local cur = redis.call('GET', latest)
  if cur then
    local ok, c = pcall(cjson.decode, cur)
    if ok and type(c) == 'table' and type(c.window_start) == 'number' then
      local cws = c.window_start
      local crev = tonumber(c.revision) or 0
      local cfin = 0
      if c.final == true then cfin = 1 end
      if ws < cws or (ws == cws and (rev < crev or (rev == crev and fin < cfin))) then
        replaced = 0
      end
    end
  end
  if replaced == 1 then
    redis.call('SET', latest, payload, 'PX', ARGV[a + 5])
    set = set + 1
  end
  redis.call('PUBLISH', ARGV[a + 6], payload)
  if fin == 1 then
    redis.call('PUBLISH', ARGV[a + 7], payload)
    local keep = true
    local same = redis.call('ZRANGEBYSCORE', recent, sws, sws)
    for _, m in ipairs(same) do
      local ok, e = pcall(cjson.decode, m)
      if ok and type(e) == 'table' and (tonumber(e.revision) or 0) > rev then keep = false end
    end
    if keep then
      redis.call('ZREMRANGEBYSCORE', recent, sws, sws)
      redis.call('ZADD', recent, sws, payload)
      redis.call('ZREMRANGEBYRANK', recent, 0, -(cap + 1))
    end
  end
end
return set
"""
#: Candles per script run: bounds how long one run holds the (single-threaded) server.
_PUBLISH_CHUNK: Final = 500

_REDIS_ERRORS: Final = (redis.RedisError, OSError)


class _RedisSubscription:
    """A :class:`Subscription` on a :class:`RedisCache` (one dedicated connection)."""

    def __init__(self, pubsub: Any, owner: RedisCache) -> None:
        self._pubsub = pubsub
        self._owner = owner
        self._closed = False

    def get(self, timeout: float = 0.0) -> tuple[str, bytes] | None:
        if self._closed:
            return None
        deadline = time.monotonic() + timeout
        while True:
            left = max(0.0, deadline - time.monotonic())
            try:
                msg = self._pubsub.get_message(timeout=left)
            except _REDIS_ERRORS as exc:
                raise CacheError(f"subscription on {self._owner!r} failed: {exc}") from exc
            if msg is not None and msg.get("type") in ("pmessage", "message"):
                channel = msg["channel"]
                if isinstance(channel, bytes):
                    channel = channel.decode("utf-8", "replace")
                data = msg["data"]
                return channel, data if isinstance(data, bytes) else str(data).encode()
            if msg is None and left <= 0:
                return None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._pubsub.close()
            except _REDIS_ERRORS:  # pragma: no cover - closing a dead connection
                pass
            self._owner._forget(self)

    def __repr__(self) -> str:
        return f"<RedisSubscription on {self._owner!r}>"


class RedisCache:
    """The Redis cache: latest candles, recent finals and alerts, pub/sub.

    Parameters
    ----------
    url
        ``redis://[[user]:password@]host[:port][/db]`` or ``rediss://`` for TLS;
        the password is never shown in reprs or errors.
    recent_cap
        Final candles kept per series, and alerts kept, by the recent sets.
    socket_timeout
        Seconds before a connect, read or write gives up (then :class:`CacheError`).

    Notes
    -----
    :meth:`publish` runs one Lua script (``EVALSHA``) per chunk of up to 500
    candles, all chunks in one pipelined round trip; for each candle the script
    keeps ``latest`` monotonic, publishes, and maintains the recent set
    atomically. :meth:`latest` is one ``GET``.
    A connection refused is retried once immediately; timeouts are not
    retried, so no call blocks much longer than ``socket_timeout``.

    Examples
    --------
    >>> RedisCache("redis://:hunter2@localhost:6379/0")
    RedisCache('redis://:***@localhost:6379/0')
    """

    def __init__(
        self, url: str, *, recent_cap: int = DEFAULT_RECENT_CAP, socket_timeout: float = 2.0
    ) -> None:
        if recent_cap < 1:
            raise ValueError(f"recent_cap must be >= 1, got {recent_cap}")
        self.url = redact_url(url) or ""
        self.recent_cap = recent_cap
        self.socket_timeout = socket_timeout
        try:
            self._client = redis.Redis.from_url(
                url,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
                health_check_interval=30,
                decode_responses=False,
            )
        except ValueError as exc:
            raise CacheError(f"invalid Redis URL {self.url!r}: {exc}") from None
        self._script = self._client.register_script(_PUBLISH_LUA)
        self._subs: list[_RedisSubscription] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RedisCache({self.url!r})"

    def _fail(self, what: str, exc: BaseException) -> CacheError:
        return CacheError(f"{what} on {self!r} failed: {type(exc).__name__}: {exc}")

    def publish(self, candles: Sequence[Candle]) -> None:
        """See :meth:`Cache.publish`."""
        if not candles:
            return
        sha = self._script.sha
        cap = self.recent_cap

        def run() -> None:
            pipe = self._client.pipeline(transaction=False)
            for start in range(0, len(candles), _PUBLISH_CHUNK):
                chunk = candles[start : start + _PUBLISH_CHUNK]
                keys: list[str] = []
                args: list[Any] = [len(chunk), cap]
                for c in chunk:
                    keys += (latest_key(c.symbol, c.interval), recent_key(c.symbol, c.interval))
                    args += (
                        encode_candle(c), c.window_start, c.revision, 1 if c.final else 0,
                        ttl_ms_for(c.interval), updates_channel(c.symbol, c.interval),
                        finals_channel(c.symbol, c.interval),
                    )
                pipe.evalsha(sha, len(keys), *keys, *args)
            pipe.execute()

        try:
            try:
                run()
            except redis.exceptions.NoScriptError:
                # First use on this server (or after SCRIPT FLUSH): every EVALSHA of the
                # batch failed before doing anything, so loading and re-running is safe.
                self._client.script_load(_PUBLISH_LUA)
                run()
        except _REDIS_ERRORS as exc:
            raise self._fail("publish", exc) from exc

    def publish_alerts(self, alerts: Sequence[Alert]) -> None:
        """See :meth:`Cache.publish_alerts`."""
        if not alerts:
            return
        try:
            pipe = self._client.pipeline(transaction=False)
            for a in alerts:
                payload = encode_alert(a)
                pipe.zadd(RECENT_ALERTS_KEY, {payload: a.ts_ms})
                pipe.publish(ALERTS_CHANNEL, payload)
            pipe.zremrangebyrank(RECENT_ALERTS_KEY, 0, -(self.recent_cap + 1))
            pipe.execute()
        except _REDIS_ERRORS as exc:
            raise self._fail("publish_alerts", exc) from exc

    def latest(self, symbol: str, interval: str) -> Candle | None:
        """See :meth:`Cache.latest` (one ``GET``)."""
        try:
            data = self._client.get(latest_key(symbol, interval))
        except _REDIS_ERRORS as exc:
            raise self._fail("latest", exc) from exc
        return None if data is None else decode_candle(data)

    def ttl_ms(self, symbol: str, interval: str) -> int | None:
        """See :meth:`Cache.ttl_ms` (``PTTL``)."""
        try:
            left = int(self._client.pttl(latest_key(symbol, interval)))
        except _REDIS_ERRORS as exc:
            raise self._fail("ttl_ms", exc) from exc
        return left if left >= 0 else None

    def recent(self, symbol: str, interval: str, n: int = 100) -> list[Candle]:
        """See :meth:`Cache.recent`."""
        if n <= 0:
            return []
        try:
            members: list[bytes] = self._client.zrange(recent_key(symbol, interval), -n, -1)  # type: ignore[assignment]
        except _REDIS_ERRORS as exc:
            raise self._fail("recent", exc) from exc
        return [decode_candle(m) for m in members]

    def recent_alerts(self, n: int = 100) -> list[Alert]:
        """See :meth:`Cache.recent_alerts`."""
        if n <= 0:
            return []
        try:
            members: list[bytes] = self._client.zrange(RECENT_ALERTS_KEY, -n, -1)  # type: ignore[assignment]
        except _REDIS_ERRORS as exc:
            raise self._fail("recent_alerts", exc) from exc
        return [decode_alert(m) for m in members]

    def subscribe(self, patterns: Sequence[str]) -> Subscription:
        """See :meth:`Cache.subscribe`.

        Returns once Redis has confirmed every pattern, so nothing published
        afterwards is missed.
        """
        if isinstance(patterns, str):
            patterns = [patterns]
        if not patterns:
            raise ValueError("subscribe needs at least one pattern")
        pubsub = cast(Any, self._client).pubsub(ignore_subscribe_messages=False)
        try:
            pubsub.psubscribe(*patterns)
            pending = len(set(patterns))
            deadline = time.monotonic() + self.socket_timeout
            while pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise redis.TimeoutError("no PSUBSCRIBE confirmation")
                msg = pubsub.get_message(timeout=left)
                if msg is not None and msg.get("type") == "psubscribe":
                    pending -= 1
        except _REDIS_ERRORS as exc:
            pubsub.close()
            raise self._fail("subscribe", exc) from exc
        sub = _RedisSubscription(pubsub, self)
        with self._lock:
            self._subs.append(sub)
        return sub

    def _forget(self, sub: _RedisSubscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def ping(self) -> bool:
        """True when Redis answers ``PING`` (never raises)."""
        try:
            return bool(self._client.ping())
        except _REDIS_ERRORS:
            return False

    def close(self) -> None:
        """Close subscriptions and pooled connections."""
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.close()
        self._client.close()
        self._client.connection_pool.disconnect()


# --------------------------------------------------------------------------- factories


def open_cache(settings: Settings, *, recent_cap: int = DEFAULT_RECENT_CAP) -> Cache:
    """The cache named by ``settings``: Redis when ``redis_url`` is set, else ``MemoryCache()``.

    Examples
    --------
    >>> open_cache(Settings.from_env({}))
    MemoryCache('default')
    >>> open_cache(Settings.from_env({"CRYPTOLAB_REDIS_URL": "redis://localhost:6379/2"}))
    RedisCache('redis://localhost:6379/2')
    """
    if settings.redis_url:
        return RedisCache(settings.redis_url, recent_cap=recent_cap)
    return MemoryCache(recent_cap=recent_cap)


_CACHES: dict[str, Cache] = {}
_CACHES_LOCK = threading.Lock()


def latest(
    symbol: str,
    interval: str,
    *,
    settings: Settings | None = None,
    redis_url: str | None = None,
) -> Candle | None:
    """The latest candle of a series (``cryptolab.latest``), or ``None``.

    Reads Redis at ``redis_url``, else ``settings.redis_url``, else
    ``CRYPTOLAB_REDIS_URL``; without any, the in-process cache (what a pipeline
    running in this kernel publishes). One client per URL is kept open.

    Examples
    --------
    >>> latest("NOPE-USD", "1m", settings=Settings.from_env({})) is None
    True
    """
    if redis_url is None:
        redis_url = (settings or Settings.from_env()).redis_url
    key = redis_url or ""
    cache = _CACHES.get(key)
    if cache is None:
        with _CACHES_LOCK:
            cache = _CACHES.get(key)
            if cache is None:
                cache = RedisCache(redis_url) if redis_url else MemoryCache()
                _CACHES[key] = cache
    return cache.latest(symbol, interval)
