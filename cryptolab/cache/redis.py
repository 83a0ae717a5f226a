"""The Redis cache: :class:`RedisCache`, shared by a pipeline and any number of notebooks."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Sequence
from typing import Any, Final, cast

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from cryptolab.cache.base import DEFAULT_RECENT_CAP
from cryptolab.cache.channels import (
    ALERTS_CHANNEL,
    RECENT_ALERTS_KEY,
    Subscription,
    finals_channel,
    latest_key,
    recent_key,
    ttl_ms_for,
    updates_channel,
)
from cryptolab.config import redact_url
from cryptolab.errors import CacheError
from cryptolab.models import Alert, Candle, decode_alert, decode_candle, encode_alert, encode_candle

__all__ = ["RedisCache"]

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


@functools.lru_cache(maxsize=65_536)
def _series_args(symbol: str, interval: str) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    """A series' arguments of the publish script, as bytes: its latest and recent keys, the
    latest key's TTL, its updates and finals channels. Bytes pass the client's encoder as they
    are, where a string or an int is converted argument by argument (most of a publish's CPU).

    Examples
    --------
    >>> _series_args("BTC-USD", "1m")[:3]
    (b'cryptolab:latest:BTC-USD:1m', b'cryptolab:recent:BTC-USD:1m', b'90000')
    """
    return (latest_key(symbol, interval).encode(), recent_key(symbol, interval).encode(),
            b"%d" % ttl_ms_for(interval), updates_channel(symbol, interval).encode(),
            finals_channel(symbol, interval).encode())


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
    atomically. :meth:`latest` is one ``GET``; :meth:`latest_async` is the same ``GET`` on
    an event loop (``redis.asyncio``, a connection pool of its own per loop: no thread, and a
    slow Redis never blocks the loop).
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
        self._url = url  # for the event loop's client (self.url is the redacted one)
        self._aio: tuple[asyncio.AbstractEventLoop, redis.asyncio.Redis] | None = None
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
                keys: list[bytes] = []
                args: list[Any] = [len(chunk), cap]
                for c in chunk:
                    latest, recent, ttl, updates, finals = _series_args(c.symbol, c.interval)
                    keys += (latest, recent)
                    args += (encode_candle(c), b"%d" % c.window_start, b"%d" % c.revision,
                             b"1" if c.final else b"0", ttl, updates, finals)
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

    async def latest_async(self, symbol: str, interval: str) -> Candle | None:
        """:meth:`latest` awaited on the running event loop (one ``GET`` through ``redis.asyncio``).

        The first call on a loop opens that loop's client; :meth:`aclose` closes it. An
        unreachable Redis raises :class:`~cryptolab.errors.CacheError`, as
        :meth:`latest_json_async`'s example shows.
        """
        data = await self.latest_json_async(symbol, interval)
        return None if data is None else decode_candle(data)

    async def latest_json_async(self, symbol: str, interval: str) -> bytes | None:
        """The newest candle's JSON as stored (:func:`~cryptolab.models.encode_candle`'s bytes),
        awaited on the running event loop: what an HTTP answer sends without decoding it.

        Examples
        --------
        >>> import asyncio
        >>> asyncio.run(RedisCache("redis://127.0.0.1:9/0", socket_timeout=0.5)
        ...             .latest_json_async("BTC-USD", "1m"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        cryptolab.errors.CacheError: latest on RedisCache('redis://127.0.0.1:9/0') failed: ...
        """
        try:
            data = await self._loop_client().get(latest_key(symbol, interval))
        except _REDIS_ERRORS as exc:
            raise self._fail("latest", exc) from exc
        return cast("bytes | None", data)

    def _loop_client(self) -> redis.asyncio.Redis:
        loop = asyncio.get_running_loop()
        if self._aio is None or self._aio[0] is not loop:
            client = redis.asyncio.Redis.from_url(
                self._url,
                socket_timeout=self.socket_timeout,
                socket_connect_timeout=self.socket_timeout,
                retry=AsyncRetry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
                health_check_interval=30,
                decode_responses=False,
            )
            self._aio = (loop, client)
        return self._aio[1]

    async def aclose(self) -> None:
        """Close the running loop's client of :meth:`latest_async` (if it has one)."""
        aio, self._aio = self._aio, None
        if aio is not None and aio[0] is asyncio.get_running_loop():
            await aio[1].aclose()

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
