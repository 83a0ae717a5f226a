"""One cache subscription per server process, fanned out to every WebSocket client.

A :class:`Hub` holds the process's only subscription to the cache (Redis ``PSUBSCRIBE``
on two patterns over one connection, or the in-process bus of
:class:`~cryptolab.cache.MemoryCache`): however many clients connect, the cache serves one
subscriber per ``serve`` process. A reader thread takes the messages (the cache's
:class:`~cryptolab.cache.Subscription` blocks) and hands them, in batches, to the event loop,
which puts each payload in the bounded queue of every client following its channel, and
keeps the newest candle of every series in :attr:`Hub.mirror` (:mod:`cryptolab.api.mirror`). A
client whose queue is full is too slow: it is dropped (its socket closed with
:data:`SLOW_CLIENT_CLOSE`) instead of slowing the others or growing memory.

Examples
--------
>>> import asyncio
>>> from cryptolab.cache import MemoryCache, updates_channel
>>> from cryptolab.models import Candle
>>> async def demo():
...     hub = Hub(MemoryCache("doctest-hub"), queue_size=2)
...     hub.start(asyncio.get_running_loop())
...     await hub.ready(5.0)
...     client = hub.add({updates_channel("BTC-USD", "1m")})
...     c = Candle(symbol="BTC-USD", interval="1m", window_start=1_700_000_040_000,
...                window_end=1_700_000_100_000, open=1.0, high=1.0, low=1.0, close=1.0,
...                volume=1.0, vwap=None, trades=1, first_ts=1_700_000_040_000,
...                last_ts=1_700_000_040_000, high_ts=1_700_000_040_000,
...                low_ts=1_700_000_040_000)
...     MemoryCache("doctest-hub").publish([c] * 3)
...     await asyncio.wait_for(client.kicked.wait(), 5.0)
...     stats = (hub.subscribed, hub.clients, hub.dropped_slow, client.queue.qsize())
...     hub.stop()
...     return stats
>>> asyncio.run(demo())
(True, 0, 1, 2)
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable
from typing import Final

from cryptolab.api.mirror import LatestMirror
from cryptolab.cache import ALERTS_CHANNEL, Cache, Subscription
from cryptolab.errors import CacheError

__all__ = ["DEFAULT_QUEUE", "PATTERNS", "SLOW_CLIENT_CLOSE", "Client", "Hub"]

log = logging.getLogger(__name__)

#: What the process subscribes to: every candle update, and the alerts.
PATTERNS: Final = ("cryptolab:candles:*", ALERTS_CHANNEL)
#: WebSocket close code of a client dropped for being too slow (1008: policy violation).
SLOW_CLIENT_CLOSE: Final = 1008
#: Messages queued per client before it counts as too slow.
DEFAULT_QUEUE: Final = 1024
#: Messages handed to the event loop at once.
_BATCH: Final = 512


class Client:
    """One WebSocket client: the channels it follows and its bounded queue of payloads."""

    def __init__(self, channels: Iterable[str], queue_size: int) -> None:
        self.channels = frozenset(channels)
        self.queue: asyncio.Queue[str] = asyncio.Queue(queue_size)
        #: Set when the hub dropped this client for being too slow.
        self.kicked = asyncio.Event()


class Hub:
    """The process's one cache subscription and its clients.

    Parameters
    ----------
    cache
        The cache to subscribe to.
    queue_size
        Messages queued per client; a client with a full queue is dropped.
    retry_s
        Seconds between attempts to (re)subscribe while the cache does not answer.
    """

    def __init__(self, cache: Cache, *, queue_size: int = DEFAULT_QUEUE, retry_s: float = 1.0) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.cache = cache
        self.queue_size = queue_size
        self.retry_s = retry_s
        self.dropped_slow = 0
        self._by_channel: dict[str, set[Client]] = {}
        self._clients: set[Client] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._live = threading.Event()
        self._thread: threading.Thread | None = None
        #: The newest candle of every series, from this subscription (``/latest`` answers from it).
        self.mirror = LatestMirror()

    @property
    def subscribed(self) -> bool:
        """Whether the subscription is live."""
        return self._live.is_set()

    @property
    def clients(self) -> int:
        """Clients connected."""
        return len(self._clients)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Subscribe (in a reader thread, retrying while the cache does not answer)."""
        if self._thread is not None:
            return
        self._loop = loop
        self._stop.clear()
        self._thread = threading.Thread(target=self._read, name="cryptolab-api-hub", daemon=True)
        self._thread.start()

    async def ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the subscription to be live."""
        return await asyncio.get_running_loop().run_in_executor(None, self._live.wait, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Unsubscribe and stop the reader thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def add(self, channels: Iterable[str]) -> Client:
        """A new client following ``channels`` (call on the event loop)."""
        client = Client(channels, self.queue_size)
        self._clients.add(client)
        for ch in client.channels:
            self._by_channel.setdefault(ch, set()).add(client)
        return client

    def remove(self, client: Client) -> None:
        """Forget ``client`` (call on the event loop; idempotent)."""
        self._clients.discard(client)
        for ch in client.channels:
            followers = self._by_channel.get(ch)
            if followers is not None:
                followers.discard(client)
                if not followers:
                    del self._by_channel[ch]

    def _dispatch(self, batch: list[tuple[str, bytes]]) -> None:
        """Put each payload in the queue of every client of its channel (on the event loop)."""
        by_channel, offer = self._by_channel, self.mirror.offer
        for channel, payload in batch:
            if channel != ALERTS_CHANNEL:
                offer(channel, payload)
            followers = by_channel.get(channel)
            if not followers:
                continue
            text = payload.decode("utf-8", "replace")
            for client in list(followers):
                try:
                    client.queue.put_nowait(text)
                except asyncio.QueueFull:
                    self.remove(client)
                    self.dropped_slow += 1
                    client.kicked.set()

    def _subscribe(self) -> Subscription | None:
        try:
            sub = self.cache.subscribe(list(PATTERNS))
        except CacheError as exc:
            log.warning("cannot subscribe to %r (retrying): %s", self.cache, exc)
            return None
        if self._loop is not None:  # what was missed while unsubscribed is never served
            self._loop.call_soon_threadsafe(self.mirror.clear)
        self._live.set()
        return sub

    def _read(self) -> None:
        assert self._loop is not None
        loop = self._loop
        sub: Subscription | None = None
        try:
            while not self._stop.is_set():
                if sub is None:
                    sub = self._subscribe()
                    if sub is None:
                        self._stop.wait(self.retry_s)
                        continue
                try:
                    msg = sub.get(timeout=0.2)
                    if msg is None:
                        continue
                    batch = [msg]
                    while len(batch) < _BATCH:
                        more = sub.get(0.0)
                        if more is None:
                            break
                        batch.append(more)
                except CacheError as exc:
                    log.warning("subscription lost (resubscribing): %s", exc)
                    self._live.clear()
                    sub.close()
                    sub = None
                    continue
                try:
                    loop.call_soon_threadsafe(self._dispatch, batch)
                except RuntimeError:  # the loop is closed: the server is going away
                    return
        finally:
            self._live.clear()
            if sub is not None:
                sub.close()
