'''Time in cryptolab: durations and candle intervals, and timestamps parsed into epoch ms.

Every timestamp cryptolab reads from text or numbers of an unknown unit goes through
:func:`parse_ts`; every duration or interval through :func:`parse_duration` and
:func:`parse_interval`. Times are integers in epoch milliseconds, UTC.

**Timestamps** are epoch seconds, milliseconds, microseconds or nanoseconds (the unit
given, or detected from the magnitude by :func:`detect_ts_unit`: below 1e11 s, 1e14 ms,
1e17 us, else ns) or ISO-8601 text (text without an offset is UTC), and must lie in the
wire's range (:data:`~cryptolab.models.wire.MIN_TS_MS` ..
:data:`~cryptolab.models.wire.MAX_TS_MS`).

Examples
--------
>>> parse_interval("15m"), interval_name(900_000)
(900000, '15m')
>>> parse_ts("2024-01-01T00:00:00Z"), iso_utc(1_704_067_200_000)
(1704067200000, '2024-01-01T00:00:00Z')
'''

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Final, Literal

from cryptolab.errors import ValidationError
from cryptolab.models.wire import MAX_TS_MS, MIN_TS_MS

__all__ = [
    "NUMBER_RE",
    "TsUnit",
    "detect_ts_unit",
    "interval_name",
    "iso_utc",
    "parse_duration",
    "parse_interval",
    "parse_intervals",
    "parse_ts",
]

#: The unit of numeric timestamps (``"iso"``: ISO-8601 text).
TsUnit = Literal["s", "ms", "us", "ns", "iso"]
#: A plain decimal number written as text (``"12"``, ``"-0.5"``, ``"1e3"``, spaces around).
NUMBER_RE: Final = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")

_UNITS: Final = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION_RE: Final = re.compile(r"\s*(\d+)\s*(ms|s|m|h|d|w)\s*")
_UNIT_MS: Final[dict[str, float]] = {"s": 1000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6}


def parse_duration(text: str | int) -> int:
    """Parse a duration such as ``"500ms"``, ``"30s"``, ``"1m"``, ``"4h"`` into milliseconds.

    An int is taken as milliseconds already.

    Examples
    --------
    >>> parse_duration("30s"), parse_duration("1h"), parse_duration(250)
    (30000, 3600000, 250)
    >>> parse_duration("0s")
    0
    >>> parse_duration("5 parsecs")
    Traceback (most recent call last):
    ...
    cryptolab.errors.ValidationError: invalid 'duration': '5 parsecs' is not like 500ms, 30s, 1m, 4h, 1d
    """
    if isinstance(text, bool):
        raise ValidationError("duration", f"{text!r} is not a duration")
    if isinstance(text, int):
        if text < 0:
            raise ValidationError("duration", f"must be >= 0, got {text}")
        return text
    m = _DURATION_RE.fullmatch(text)
    if m is None:
        raise ValidationError("duration", f"{text!r} is not like 500ms, 30s, 1m, 4h, 1d")
    return int(m.group(1)) * _UNITS[m.group(2)]


def parse_interval(text: str | int) -> int:
    """Parse a candle interval (``"1s"``, ``"1m"``, ``"5m"``, ``"1h"``...) into milliseconds.

    Intervals must be positive and divide a day evenly or be whole days, so that
    windows align to the epoch in UTC.

    Examples
    --------
    >>> parse_interval("1m")
    60000
    >>> parse_interval("7m")
    Traceback (most recent call last):
    ...
    cryptolab.errors.ValidationError: invalid 'interval': 7m does not divide a day evenly
    """
    ms = parse_duration(text)
    if ms <= 0:
        raise ValidationError("interval", f"must be > 0, got {text!r}")
    day = _UNITS["d"]
    if ms < day and day % ms != 0:
        raise ValidationError("interval", f"{text} does not divide a day evenly")
    if ms >= day and ms % day != 0:
        raise ValidationError("interval", f"{text} is not a whole number of days")
    return ms


def parse_intervals(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Parse ``"1m,5m,15m"`` (or a list) into canonical interval names, sorted by length.

    Examples
    --------
    >>> parse_intervals("15m, 1m,5m,60s")
    ('1m', '5m', '15m')
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    ms = sorted({parse_interval(i.strip()) for i in items if i.strip()})
    if not ms:
        raise ValidationError("intervals", "at least one interval is required")
    return tuple(interval_name(m) for m in ms)


def interval_name(ms: int) -> str:
    """Canonical name of an interval in milliseconds: the largest exact unit.

    Examples
    --------
    >>> interval_name(60_000), interval_name(90_000), interval_name(86_400_000), interval_name(1500)
    ('1m', '90s', '1d', '1500ms')
    """
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def iso_utc(ts_ms: int) -> str:
    """Format epoch milliseconds as ISO-8601 UTC.

    Examples
    --------
    >>> iso_utc(1_700_000_000_000)
    '2023-11-14T22:13:20Z'
    >>> iso_utc(1_700_000_000_123)
    '2023-11-14T22:13:20.123Z'
    """
    dt = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    if ts_ms % 1000:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def detect_ts_unit(value: float) -> Literal["s", "ms", "us", "ns"]:
    """Guess the unit of a numeric epoch timestamp from its magnitude.

    Examples
    --------
    >>> [detect_ts_unit(v) for v in (1315922016, 1700000000000, 1356998659486096, 1.7e18)]
    ['s', 'ms', 'us', 'ns']
    """
    v = abs(value)
    if v < 1e11:
        return "s"
    if v < 1e14:
        return "ms"
    if v < 1e17:
        return "us"
    return "ns"


def parse_ts(value: object, unit: TsUnit | None = None, field: str = "ts") -> int:
    """Parse a timestamp into epoch milliseconds (UTC), in cryptolab's valid range.

    Parameters
    ----------
    value
        A number, a numeric string, ISO-8601 text or a ``datetime`` (naive means UTC).
    unit
        ``"s"``, ``"ms"``, ``"us"``, ``"ns"`` or ``"iso"``; ``None`` detects it.
    field
        The field named in errors.

    Raises
    ------
    ValidationError
        When ``value`` is not a timestamp, or is outside the valid range.

    Examples
    --------
    >>> parse_ts("1315922016"), parse_ts(1356998659486096), parse_ts("2024-01-01T00:00:00Z")
    (1315922016000, 1356998659486, 1704067200000)
    >>> parse_ts("1315922016.25", "s")
    1315922016250
    >>> parse_ts(99, "s")
    Traceback (most recent call last):
    ...
    cryptolab.errors.ValidationError: invalid 'ts': 99 (s) is outside 2009-01-03..2100-01-01
    """
    if isinstance(value, bool) or value is None:
        raise ValidationError(field, f"not a timestamp: {value!r}")
    if isinstance(value, datetime):
        return _check_ms(field, int(as_utc(value).timestamp() * 1000), value, "datetime")
    if isinstance(value, str):
        text = value.strip()
        if unit == "iso" or not NUMBER_RE.fullmatch(text):
            return _parse_iso(text, field)
        if len(text) > 32:
            raise ValidationError(field, f"not a timestamp: {text[:40]!r}")
        num: int | float = int(text) if text.lstrip("+-").isdigit() else float(text)
    elif isinstance(value, int | float):
        num = value
    else:
        raise ValidationError(field, f"not a timestamp: {type(value).__name__}")
    if unit == "iso":
        raise ValidationError(field, f"expected ISO-8601 text, got {value!r}")
    if isinstance(num, float) and not math.isfinite(num):
        raise ValidationError(field, f"not a finite timestamp: {value!r}")
    u = unit or detect_ts_unit(num)
    if isinstance(num, int):
        ms = num * 1000 if u == "s" else num if u == "ms" else num // 1000 if u == "us" else num // 1_000_000
    else:
        ms = math.floor(num * _UNIT_MS[u] + 1e-6) if abs(num) < 1e20 else MAX_TS_MS
    return _check_ms(field, int(ms), value, u)


def as_utc(dt: datetime) -> datetime:
    """``dt`` with UTC as its zone when it has none (naive times are UTC in cryptolab).

    Examples
    --------
    >>> as_utc(datetime(2024, 1, 1)).isoformat()
    '2024-01-01T00:00:00+00:00'
    """
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def _check_ms(field: str, ms: int, original: object, unit: str) -> int:
    if not MIN_TS_MS <= ms < MAX_TS_MS:
        shown = original if not isinstance(original, str) else original[:40]
        raise ValidationError(field, f"{shown} ({unit}) is outside 2009-01-03..2100-01-01")
    return ms


def _parse_iso(text: str, field: str) -> int:
    if len(text) > 40:
        raise ValidationError(field, f"not a timestamp: {text[:40]!r}")
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(field, f"not a timestamp: {text!r}") from None
    return _check_ms(field, int(as_utc(dt).timestamp() * 1000), text, "iso")
