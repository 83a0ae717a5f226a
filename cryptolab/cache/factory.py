"""Opening a cache from the settings, and ``cryptolab.latest``."""

from __future__ import annotations

import threading

from cryptolab.cache.base import DEFAULT_RECENT_CAP, Cache
from cryptolab.cache.memory import MemoryCache
from cryptolab.cache.redis import RedisCache
from cryptolab.config import Settings
from cryptolab.models import Candle

__all__ = ["latest", "open_cache"]


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
