"""What every cache offers: the :class:`Cache` protocol (Redis or in-process)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Protocol, runtime_checkable

from cryptolab.cache.channels import Subscription
from cryptolab.models import Alert, Candle

__all__ = ["DEFAULT_RECENT_CAP", "Cache"]

#: Default number of recent final candles (per series) and alerts kept.
DEFAULT_RECENT_CAP: Final = 500


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
