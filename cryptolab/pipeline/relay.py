"""Publishing what a commit stored: alerts to Kafka, candles and alerts to the cache.

The cache is updated after the commit: at least once, with idempotent payloads
(monotonic "latest" keys). When it is down, updates are kept (the latest per key) and
replayed when it returns; the store, which has every final candle and alert, goes on.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from confluent_kafka import Producer

from cryptolab.errors import CacheError
from cryptolab.models import Alert, Candle, encode_alert
from cryptolab.pipeline.stats import PipelineStats

if TYPE_CHECKING:  # pragma: no cover
    from cryptolab.cache import Cache

__all__ = ["Relay"]

#: The package's one logger: its lines keep the name they always had.
log = logging.getLogger("cryptolab.pipeline")

_MAX_CACHE_BACKLOG = 100_000


class Relay:
    """Publish committed candles and alerts; keep them while the cache is away.

    Parameters
    ----------
    cache
        Where candles and alerts are published.
    stats
        The pipeline's counters (``cache_failures``).

    Examples
    --------
    A cache that is down: the update waits, and goes out once the cache is back.

    >>> class Cache:
    ...     up, published = False, []
    ...     def publish(self, candles):
    ...         if not self.up:
    ...             raise CacheError("down")
    ...         self.published += candles
    >>> cache = Cache()
    >>> relay = Relay(cache, PipelineStats())
    >>> c = Candle(symbol="BTC-USD", interval="1m", window_start=1_700_000_040_000,
    ...            window_end=1_700_000_100_000, open=1.0, high=2.0, low=0.5, close=1.5,
    ...            volume=3.0, vwap=1.2, trades=3, first_ts=1_700_000_040_000,
    ...            last_ts=1_700_000_099_000, high_ts=1_700_000_050_000,
    ...            low_ts=1_700_000_060_000)
    >>> relay.publish([c], [])
    >>> relay.backlog, relay.stats.cache_failures
    ((1, 0), 1)
    >>> cache.up = True
    >>> relay.flush(force=True)
    >>> relay.backlog, cache.published == [c]
    ((0, 0), True)
    """

    def __init__(self, cache: Cache, stats: PipelineStats) -> None:
        self.cache = cache
        self.stats = stats
        #: The run's producer, for the ``alerts`` topic (``None`` between runs).
        self.producer: Producer | None = None
        self._cache_backlog: dict[tuple[str, str, int], Candle] = {}
        self._alert_backlog: list[Alert] = []
        self._cache_retry_at = 0.0

    @property
    def backlog(self) -> tuple[int, int]:
        """How many candle and alert updates wait for the cache."""
        return len(self._cache_backlog), len(self._alert_backlog)

    def say_undelivered(self) -> None:
        """Warn about the updates still waiting for the cache, if any (when the pipeline stops)."""
        if self._cache_backlog or self._alert_backlog:
            log.warning(
                "stopping with %d candle and %d alert updates not delivered to the cache %r "
                "(unreachable); the store has every final candle and alert",
                len(self._cache_backlog), len(self._alert_backlog), self.cache,
            )

    def deliver(self, candles: list[Candle], alerts: list[Alert]) -> None:
        """Send the new ``alerts`` of a commit to Kafka, then publish it to the cache
        (replaying what waits first, when the cache is back): closed candles first, they are
        awaited (on the commit thread)."""
        if alerts and self.producer is not None:
            for a in alerts:
                self.producer.produce("alerts", key=a.symbol.encode(), value=encode_alert(a))
            self.producer.poll(0)
        self.flush()  # when the cache was down: is it back?
        self.publish(candles, alerts)

    def publish(self, candles: list[Candle], alerts: list[Alert]) -> None:
        """Publish to the cache, or keep for later when it is down (or others wait already)."""
        if not candles and not alerts:
            return
        if self._cache_backlog or self._alert_backlog:
            self._keep(candles, alerts)
            return
        try:
            if candles:
                self.cache.publish(candles)
            if alerts:
                self.cache.publish_alerts(alerts)
        except CacheError as exc:
            self.stats.cache_failures += 1
            log.warning("cache unavailable (%s); keeping updates until it returns", exc)
            self._keep(candles, alerts)
            self._cache_retry_at = time.monotonic() + 1.0

    def _keep(self, candles: list[Candle], alerts: list[Alert]) -> None:
        for c in candles:
            self._cache_backlog[c.key] = c
        self._alert_backlog.extend(alerts)
        if len(self._cache_backlog) > _MAX_CACHE_BACKLOG:
            # keep the newest windows; older ones are in the store anyway
            keep = sorted(self._cache_backlog.values(), key=lambda c: c.window_start)[-_MAX_CACHE_BACKLOG:]
            self._cache_backlog = {c.key: c for c in keep}
        del self._alert_backlog[:-_MAX_CACHE_BACKLOG]

    def flush(self, *, force: bool = False) -> None:
        """Replay what waits for the cache, when its retry is due (or ``force``)."""
        if not (self._cache_backlog or self._alert_backlog):
            return
        if not force and time.monotonic() < self._cache_retry_at:
            return
        candles = sorted(self._cache_backlog.values(), key=lambda c: (c.window_start, c.revision))
        try:
            if candles:
                self.cache.publish(candles)
            if self._alert_backlog:
                self.cache.publish_alerts(self._alert_backlog)
        except CacheError:
            self.stats.cache_failures += 1
            self._cache_retry_at = time.monotonic() + 2.0
            return
        log.info("cache is back: replayed %d candles and %d alerts", len(candles), len(self._alert_backlog))
        self._cache_backlog = {}
        self._alert_backlog = []
