"""The live view: latest candles, recent finals and pub/sub, in Redis or in-process.

The SQL store is the record; this cache is a fast view that can always be
rebuilt from it. :class:`RedisCache` serves several processes (a pipeline and
any number of notebooks); :class:`MemoryCache` is its in-process twin with the
same API, the embedded default, so that a chart in a notebook sees what a
pipeline running in the same kernel publishes.

* :mod:`cryptolab.cache.channels` - key and channel names (defined once) and :class:`Subscription`.
* :mod:`cryptolab.cache.base` - the :class:`Cache` protocol.
* :mod:`cryptolab.cache.memory` - :class:`MemoryCache`, the in-process cache.
* :mod:`cryptolab.cache.redis` - :class:`RedisCache`.
* :mod:`cryptolab.cache.factory` - :func:`open_cache` and :func:`latest`.

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

from cryptolab.cache.base import DEFAULT_RECENT_CAP as DEFAULT_RECENT_CAP
from cryptolab.cache.base import Cache
from cryptolab.cache.channels import (
    ALERTS_CHANNEL,
    RECENT_ALERTS_KEY,
    Subscription,
    finals_channel,
    latest_key,
    recent_key,
    series_of,
    series_pattern,
    ttl_ms_for,
    updates_channel,
)
from cryptolab.cache.factory import latest, open_cache
from cryptolab.cache.memory import MEMORY_QUEUE_CAP as MEMORY_QUEUE_CAP
from cryptolab.cache.memory import MemoryCache, glob_to_regex
from cryptolab.cache.redis import RedisCache

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
    "series_of",
    "series_pattern",
    "ttl_ms_for",
    "updates_channel",
]
