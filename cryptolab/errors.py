"""The cryptolab exception tree.

Every error cryptolab raises on purpose derives from :class:`CryptolabError`,
so ``except cryptolab.CryptolabError`` catches them all::

    CryptolabError
    ├── ConfigError            bad or unknown setting (names the variable)
    ├── ValidationError        a record failed validation (names field and reason)
    │   └── WireError          bytes on the wire could not be decoded
    ├── SourceError            a market-data source failed for good
    ├── EndNotReachedError     ``stop_at_end``: the topic was not drained and closed (names partitions)
    ├── ServiceError           a backing service (Kafka, SQL, Redis) failed
    │   ├── KafkaServiceError
    │   ├── StoreError
    │   │   └── FencedError    another consumer owns the partition now
    │   └── CacheError
    └── NotebookError          a notebook run failed (names the failing cell)

Examples
--------
>>> from cryptolab.errors import ValidationError
>>> err = ValidationError("price", "must be > 0, got -1.0")
>>> str(err)
"invalid 'price': must be > 0, got -1.0"
>>> (err.field, err.reason)
('price', 'must be > 0, got -1.0')
"""

from __future__ import annotations

__all__ = [
    "CacheError",
    "ConfigError",
    "CryptolabError",
    "EndNotReachedError",
    "FencedError",
    "KafkaServiceError",
    "NotebookError",
    "ServiceError",
    "SourceError",
    "StoreError",
    "ValidationError",
    "WireError",
]


class CryptolabError(Exception):
    """Base class of every error raised by cryptolab."""


class ConfigError(CryptolabError):
    """A setting is unknown, missing or malformed."""


class ValidationError(CryptolabError, ValueError):
    """A record failed validation.

    Parameters
    ----------
    field
        The offending field (``"record"`` when the record as a whole is bad).
    reason
        Human-readable reason, suitable for a dead-letter header.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"invalid {field!r}: {reason}")
        self.field = field
        self.reason = reason


class WireError(ValidationError):
    """Bytes read from Kafka (or another wire) could not be decoded."""


class SourceError(CryptolabError):
    """A market-data source failed and cannot go on."""


class EndNotReachedError(CryptolabError):
    """A run asked to stop at the end of the topic ended before the whole topic was done.

    Done means: the group's stored progress covers every partition up to the end offsets
    read when the run started, with no window left open, whichever member did it.

    Parameters
    ----------
    message
        What happened.
    partitions
        The partitions that were not done.
    """

    def __init__(self, message: str, *, partitions: list[int]) -> None:
        super().__init__(message)
        self.partitions = partitions


class ServiceError(CryptolabError):
    """A backing service failed."""


class KafkaServiceError(ServiceError):
    """Kafka (broker or client) failed."""


class StoreError(ServiceError):
    """The SQL store failed."""


class FencedError(StoreError):
    """The consumer's view of a partition is stale: another member committed past it."""


class CacheError(ServiceError):
    """Redis (or the in-process cache) failed."""


class NotebookError(CryptolabError):
    """A notebook run failed.

    Parameters
    ----------
    message
        What went wrong.
    cell
        Index of the failing cell, when known.
    source
        Source of the failing cell, when known.
    """

    def __init__(self, message: str, *, cell: int | None = None, source: str | None = None) -> None:
        where = f" (cell {cell})" if cell is not None else ""
        super().__init__(f"{message}{where}")
        self.cell = cell
        self.source = source
