"""What a consumer hands the store besides candles and alerts: its progress and its late ticks.

Examples
--------
>>> PartitionProgress(partition=2, offset=5, watermark_ms=None).state
b''
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["LateTick", "PartitionProgress"]


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
