"""What a consumer hands the store besides candles and alerts: its progress, its late ticks and
the webhook deliveries of its new alerts.

Examples
--------
>>> PartitionProgress(partition=2, offset=5, watermark_ms=None).state
b''
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["LateTick", "PartitionProgress", "WebhookDelivery"]


@dataclass(frozen=True, kw_only=True)
class PartitionProgress:
    """What a consumer has durably done on one partition.

    Parameters
    ----------
    partition
        Kafka partition number.
    offset
        The next offset to consume (Kafka's committed-offset convention).
    watermark_ms
        The partition's event-time watermark, epoch ms, or ``None`` before any tick.
    state
        Opaque windowing state to resume from (``b""`` when there is none).
    updated_ms
        When it was committed (epoch ms), as read back from the store; ``None`` otherwise.
        Neither shown nor compared.

    Examples
    --------
    >>> PartitionProgress(partition=0, offset=10, watermark_ms=None, state=b"")
    PartitionProgress(partition=0, offset=10, watermark_ms=None, state=b'')
    """

    partition: int
    offset: int
    watermark_ms: int | None
    state: bytes = b""
    updated_ms: int | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, kw_only=True)
class LateTick:
    """A tick that arrived after its window's allowed lateness, kept for audit.

    Examples
    --------
    >>> LateTick(topic="ticks", partition=1, offset=7, symbol="BTC-USD", ts_ms=1_700_000_000_000,
    ...          price=37000.0, size=0.1, source="binance", trade_id="9",
    ...          watermark_ms=1_700_000_300_000).offset
    7
    """

    topic: str
    partition: int
    offset: int
    symbol: str
    ts_ms: int
    price: float
    size: float | None
    source: str
    trade_id: str | None
    watermark_ms: int


@dataclass(frozen=True, kw_only=True)
class WebhookDelivery:
    """One POST of one alert to one URL: a row of the webhook outbox.

    A consumer hands the store the deliveries of a batch's alerts with the batch; those of
    the alerts the batch actually inserts are written in its transaction (``status``
    ``pending``). The delivery thread then claims them, POSTs ``body`` and records the
    outcome in the other fields.

    Parameters
    ----------
    alert_id
        The alert's idempotency key (also in ``body``).
    symbol, interval, window_start, detector
        The alert's key.
    url
        Where to POST.
    format
        ``json``, ``slack`` or ``discord``: how ``body`` was rendered.
    body
        The exact bytes POSTed (UTF-8 text), signed when they are sent.
    id
        Row id (``None`` before it is stored).
    status
        ``pending``, ``delivered`` or ``failed`` (attempts exhausted).
    attempts
        POSTs made so far.
    next_attempt_ms, last_status, last_error, created_ms, delivered_ms
        When it is due next (epoch ms), the last HTTP status (``None``: no answer), the
        last error, when it was stored, when it was delivered.

    Examples
    --------
    >>> WebhookDelivery(alert_id="a1", symbol="BTC-USD", interval="1m", window_start=0,
    ...                 detector="rule:x", url="http://127.0.0.1:9/", format="json", body="{}").status
    'pending'
    """

    alert_id: str
    symbol: str
    interval: str
    window_start: int
    detector: str
    url: str
    format: str
    body: str
    id: int | None = None
    status: str = "pending"
    attempts: int = 0
    next_attempt_ms: int = 0
    last_status: int | None = None
    last_error: str | None = None
    created_ms: int = 0
    delivered_ms: int | None = None

    @property
    def alert_key(self) -> tuple[str, str, int, str]:
        """The key of its alert: ``(symbol, interval, window_start, detector)``."""
        return (self.symbol, self.interval, self.window_start, self.detector)
