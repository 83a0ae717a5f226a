"""Wiring a chart to the live market: a cache subscription for updates, the store for history.

A :class:`~cryptolab.viz.chart.CandleChart` draws what it is given; when it is
attached, a :class:`LiveLink` is what it is given from: the link subscribes to
the series' channels on the cache (``MemoryCache`` or ``RedisCache``), reads
the newest bars from the store and the cache for backfill, and drains the
subscription without blocking. :func:`connect` opens the cache and the store
the settings name when they are not given, and the link closes what it opened.

Updates are pulled, never pushed from another thread: :func:`schedule_polling`
runs the chart's ``poll`` as an asyncio task on the running event loop (the
Jupyter kernel's); the dashboard calls ``poll`` from a Bokeh periodic callback.

Examples
--------
>>> from cryptolab.cache import MemoryCache
>>> cache = MemoryCache("doctest-live")
>>> link = connect(cache, backfill=False)
>>> link.subscribe("BTC-USD", "1m")
>>> link.subscribed, link.drain().messages
(True, 0)
>>> link.close(); link.subscribed
False
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from cryptolab.cache.channels import ALERTS_CHANNEL, Subscription, updates_channel
from cryptolab.errors import CryptolabError, WireError
from cryptolab.models import Alert, Candle, decode_alert, decode_candle
from cryptolab.viz.frames import as_alerts, as_candles

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from cryptolab.config import Settings

__all__ = [
    "ALERTS_CHANNEL",
    "Drained",
    "HistorySource",
    "LiveFeed",
    "LiveLink",
    "Pollable",
    "Subscription",
    "candle_channels",
    "connect",
    "schedule_polling",
]

log = logging.getLogger(__name__)


def candle_channels(symbol: str, interval: str) -> list[str]:
    """The pub/sub channels the chart follows for one series.

    ``cryptolab:candles:<symbol>:<interval>`` carries every update of the
    series: open candles as they change, finals and later revisions (see
    :mod:`cryptolab.cache.channels`).

    Examples
    --------
    >>> candle_channels("BTC-USD", "1m")
    ['cryptolab:candles:BTC-USD:1m']
    """
    return [updates_channel(symbol, interval)]


class LiveFeed(Protocol):
    """What the chart needs from a cache (``MemoryCache`` or ``RedisCache``)."""

    def subscribe(self, patterns: Sequence[str]) -> Subscription: ...  # pragma: no cover

    def recent(self, symbol: str, interval: str, n: int) -> list[Candle]: ...  # pragma: no cover

    def latest(self, symbol: str, interval: str) -> Candle | None: ...  # pragma: no cover

    def recent_alerts(self, n: int) -> list[Alert]: ...  # pragma: no cover


class HistorySource(Protocol):
    """What the chart needs from a store for backfill."""

    def history(self, symbol: str, interval: str, start: Any = None, end: Any = None, *,
                final_only: bool = False, limit: int | None = None
                ) -> pd.DataFrame: ...  # pragma: no cover

    def alerts(self, symbol: str | None = None, interval: str | None = None,
               start: Any = None, end: Any = None, *, detector: str | None = None,
               limit: int | None = None) -> pd.DataFrame: ...  # pragma: no cover


@dataclass
class Drained:
    """What one drain of the subscription brought: decoded updates and message counts."""

    candles: list[Candle] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    messages: int = 0
    bad: int = 0


class LiveLink:
    """A chart's connection to a cache (updates and recent bars) and optionally a store (history).

    Parameters
    ----------
    feed
        The cache to subscribe to and read recent bars from.
    store
        The store to backfill from, or ``None``.
    owned_store
        A store this link opened itself: closed by :meth:`close`.
    """

    def __init__(self, feed: LiveFeed, store: HistorySource | None = None, *,
                 owned_store: Any = None) -> None:
        self.feed = feed
        self.store = store
        self._owned_store = owned_store
        self._sub: Subscription | None = None

    @property
    def subscribed(self) -> bool:
        """True while a series is subscribed to."""
        return self._sub is not None

    def subscribe(self, symbol: str, interval: str) -> None:
        """Follow one series (and every alert), dropping the previous subscription.

        Without a ``symbol`` nothing is subscribed to.
        """
        self._unsubscribe()
        if not symbol:
            return
        self._sub = self.feed.subscribe([*candle_channels(symbol, interval), ALERTS_CHANNEL])

    def _unsubscribe(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                self._sub.close()
            self._sub = None

    def history(self, symbol: str, interval: str, *, need: int, maxlen: int
                ) -> tuple[list[Candle], list[Alert], list[str]]:
        """The newest bars and alerts of a series: the store's, then the cache's recent list.

        Returns ``(candles, alerts, errors)``: the candles in the order read
        (store first, then the cache's recent finals and its open candle), and
        what failed (each source that failed is skipped).
        """
        candles: list[Candle] = []
        alerts: list[Alert] = []
        errors: list[str] = []
        if self.store is not None and self._store_ready(errors):
            try:
                frame = self.store.history(symbol, interval, limit=need)
                candles.extend(as_candles(frame))
                afr = self.store.alerts(symbol, interval, limit=maxlen)
                alerts.extend(as_alerts(afr, interval=interval))
            except CryptolabError as exc:
                log.warning("backfill from the store failed: %s", exc)
                errors.append(str(exc))
        try:
            candles.extend(self.feed.recent(symbol, interval, maxlen))
            newest = self.feed.latest(symbol, interval)  # the open candle
            if newest is not None:
                candles.append(newest)
            alerts.extend(self.feed.recent_alerts(maxlen))
        except CryptolabError as exc:
            log.warning("backfill from the cache failed: %s", exc)
            errors.append(str(exc))
        return candles, alerts, errors

    def _store_ready(self, errors: list[str]) -> bool:
        """False while the store has no schema yet (a pipeline that is still starting)."""
        version = getattr(self.store, "schema_version", None)
        if not callable(version):
            return True
        try:
            return version() is not None
        except CryptolabError as exc:
            log.warning("store unavailable for backfill: %s", exc)
            errors.append(str(exc))
            return False

    def drain(self, max_messages: int = 20_000) -> Drained:
        """Read what is waiting on the subscription without blocking (bad messages are counted)."""
        out = Drained()
        sub = self._sub
        if sub is None:
            return out
        candles, alerts = out.candles, out.alerts
        n = 0
        while n < max_messages:
            msg = sub.get(0.0)
            if msg is None:
                break
            n += 1
            channel, payload = msg
            name = channel.decode() if isinstance(channel, bytes | bytearray) else str(channel)
            try:
                if name == ALERTS_CHANNEL:
                    alerts.append(decode_alert(payload))
                else:
                    candles.append(decode_candle(payload))
            except WireError as exc:
                out.bad += 1
                log.warning("skipping a bad message on %s: %s", name, exc)
        out.messages = n
        return out

    def close(self) -> None:
        """Drop the subscription and close the store this link opened."""
        self._unsubscribe()
        if self._owned_store is not None:
            with contextlib.suppress(Exception):
                self._owned_store.close()
            self._owned_store = None
        self.store = None


def connect(
    feed: LiveFeed | None = None,
    *,
    settings: Settings | None = None,
    store: HistorySource | None = None,
    backfill: bool = True,
) -> LiveLink:
    """A link to ``feed`` and ``store``, opening those the settings name when not given.

    Parameters
    ----------
    feed
        A cache; default: the one the settings name (``open_cache(settings)``).
    settings
        Where the feed and the store are (default: ``Settings.from_env()``).
    store
        Store to backfill from; default: the settings' store when ``feed``
        was not given explicitly (or ``settings`` was), and ``backfill`` is on.
    backfill
        Whether history will be read (a store is only opened for it).
    """
    owned = None
    if feed is None or (store is None and backfill and settings is not None):
        from cryptolab.config import Settings as _Settings

        settings = settings or _Settings.from_env()
        if feed is None:
            from cryptolab.cache import open_cache

            feed = open_cache(settings)
        if store is None and backfill:
            store = owned = _open_store(settings)
    return LiveLink(feed, store, owned_store=owned)


def _open_store(settings: Settings) -> HistorySource | None:
    from cryptolab.store import Store

    try:
        return Store.from_settings(settings)
    except CryptolabError as exc:
        log.warning("no store for backfill: %s", exc)
        return None


class Pollable(Protocol):
    """What :func:`schedule_polling` drives: a chart that drains its link on ``poll``."""

    symbol: str
    poll_interval: float
    last_error: str | None

    @property
    def attached(self) -> bool: ...  # pragma: no cover

    @property
    def paused(self) -> bool: ...  # pragma: no cover

    def poll(self, max_messages: int = 20_000) -> int: ...  # pragma: no cover


def schedule_polling(chart: Pollable, run: bool | None) -> asyncio.Task[None] | None:
    """Run ``chart.poll`` every ``chart.poll_interval`` seconds on the running event loop.

    ``run=None`` schedules it when a loop is running and otherwise leaves the
    polling to the caller; ``run=True`` requires a running loop; ``run=False``
    schedules nothing.
    """
    if run is not None and not run:
        return None
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        if run:
            raise CryptolabError(
                "no running asyncio event loop: call chart.poll() yourself, "
                "or attach(..., run=False)"
            ) from None
        log.info("no running event loop; call chart.poll() to apply updates")
        return None
    return loop.create_task(_pump(chart), name=f"CandleChart {chart.symbol}")


async def _pump(chart: Pollable) -> None:
    failures = 0
    while chart.attached:
        try:
            chart.poll()
            failures = 0
            if chart.last_error and not chart.paused:
                chart.last_error = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # keep the notebook's chart alive across feed hiccups
            failures += 1
            chart.last_error = str(exc)
            log.warning("chart update failed (%d in a row): %s", failures, exc)
        delay = chart.poll_interval * min(2 ** failures, 40)
        await asyncio.sleep(delay)
