"""Names of the cache's keys and pub/sub channels, defined once, and the subscription type.

Every reader and writer of the cache (the two backends, the pipeline's relay,
the live charts) takes its names from here.

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

A symbol may hold colons (``BINANCE:BTC-USDT``, see :mod:`cryptolab.models.venues`) and an
interval never does, so a series' name splits into its parts at its fixed prefix and its
*last* colon (:func:`series_of`); never split one on every ``:``.

Pub/sub delivery is best effort and at least once (a publish retried after a
lost connection may be delivered twice): subscribers should key updates by
``(symbol, interval, window_start)`` and keep the highest ``revision``.
"""

from __future__ import annotations

import functools
from typing import Final, Protocol, runtime_checkable

from cryptolab.errors import ValidationError
from cryptolab.models import parse_interval

__all__ = [
    "ALERTS_CHANNEL",
    "RECENT_ALERTS_KEY",
    "Subscription",
    "finals_channel",
    "latest_key",
    "recent_key",
    "series_of",
    "series_pattern",
    "ttl_ms_for",
    "updates_channel",
]

#: Channel on which alerts are published.
ALERTS_CHANNEL: Final = "cryptolab:alerts"
#: Sorted set of the most recent alerts.
RECENT_ALERTS_KEY: Final = "cryptolab:alerts:recent"


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


#: The prefixes of the per-series keys and channels, by kind.
_SERIES_PREFIXES: Final = {
    "latest": "cryptolab:latest:",
    "recent": "cryptolab:recent:",
    "candles": "cryptolab:candles:",
    "finals": "cryptolab:finals:",
}


def series_of(name: str | bytes) -> tuple[str, str, str]:
    """``(kind, symbol, interval)`` of a per-series key or channel name.

    ``kind`` is ``"latest"``, ``"recent"`` (keys), ``"candles"`` or ``"finals"``
    (channels). The symbol is everything between the kind's prefix and the last colon,
    so venue symbols (``BINANCE:BTC-USDT``) come back whole.

    Raises
    ------
    ValidationError
        For a name that is not a per-series key or channel (``cryptolab:alerts``...).

    Examples
    --------
    >>> series_of(updates_channel("BINANCE:BTC-USDT", "1m"))
    ('candles', 'BINANCE:BTC-USDT', '1m')
    >>> series_of(b"cryptolab:latest:BTC-USD:5m")
    ('latest', 'BTC-USD', '5m')
    >>> series_of("cryptolab:alerts")
    Traceback (most recent call last):
    ...
    cryptolab.errors.ValidationError: invalid 'channel': 'cryptolab:alerts' is not a per-series key or channel
    """
    text = name.decode("utf-8", "replace") if isinstance(name, bytes | bytearray) else name
    for kind, prefix in _SERIES_PREFIXES.items():
        if text.startswith(prefix):
            symbol, sep, interval = text[len(prefix):].rpartition(":")
            if sep and symbol and interval:
                return kind, symbol, interval
    raise ValidationError("channel", f"{text!r} is not a per-series key or channel")


def series_pattern(kind: str = "candles", *, venue: str | None = None, interval: str = "*") -> str:
    """A glob (``PSUBSCRIBE``, ``SCAN MATCH``) for the series of one kind, venue and interval.

    With ``venue`` only that venue's series match; without, every series matches,
    venue-less or not.

    Examples
    --------
    >>> series_pattern(venue="BINANCE", interval="1m")
    'cryptolab:candles:BINANCE:*:1m'
    >>> series_pattern("finals")
    'cryptolab:finals:*:*'
    """
    prefix = _SERIES_PREFIXES.get(kind)
    if prefix is None:
        raise ValidationError("kind", f"{kind!r} is not one of {sorted(_SERIES_PREFIXES)}")
    return f"{prefix}{venue}:*:{interval}" if venue else f"{prefix}*:{interval}"


@functools.lru_cache(maxsize=64)
def ttl_ms_for(interval: str) -> int:
    """TTL of a latest-candle key: 1.5 x the interval, in ms.

    Examples
    --------
    >>> ttl_ms_for("1m")
    90000
    """
    return parse_interval(interval) * 3 // 2


@runtime_checkable
class Subscription(Protocol):
    """Messages from channels matching a subscription's glob patterns."""

    def get(self, timeout: float = 0.0) -> tuple[str, bytes] | None:
        """Next ``(channel, payload)``, waiting up to ``timeout`` seconds; ``None`` if none came."""
        ...

    def close(self) -> None:
        """Stop receiving; further :meth:`get` calls return ``None``."""
        ...
