"""Points in time and intervals as the store's queries take them.

Examples
--------
>>> to_ms(None), normalise_interval("60s")
(None, '1m')
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, TypeAlias

import numpy as np

from cryptolab.errors import ValidationError
from cryptolab.models import interval_name, parse_interval

if TYPE_CHECKING:  # pandas is imported when a string or datetime is parsed
    import pandas as pd

__all__ = ["TimeLike", "normalise_interval", "to_ms"]

#: Anything :func:`to_ms` understands as a point in time.
TimeLike: TypeAlias = "int | str | datetime | pd.Timestamp | np.datetime64"


def to_ms(value: TimeLike | None, name: str = "time") -> int | None:
    """Convert a point in time to epoch milliseconds UTC (``None`` stays ``None``).

    Accepts epoch-ms integers, ISO-8601 strings, ``datetime`` (naive means
    UTC), pandas Timestamps and numpy datetime64.

    Examples
    --------
    >>> to_ms(1_700_000_000_000)
    1700000000000
    >>> to_ms("2023-11-14T22:13:20Z"), to_ms("2023-11-14 22:13:20")
    (1700000000000, 1700000000000)
    >>> from datetime import timedelta, timezone
    >>> to_ms(datetime(2023, 11, 14, 23, 13, 20, tzinfo=timezone(timedelta(hours=1))))
    1700000000000
    >>> to_ms("yesterday-ish")
    Traceback (most recent call last):
    ...
    cryptolab.errors.ValidationError: invalid 'time': 'yesterday-ish' is not an ISO-8601 time or epoch ms
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValidationError(name, f"{value!r} is not a time")
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        import pandas as pd

        try:
            ts = pd.Timestamp(text)
        except (ValueError, TypeError):
            raise ValidationError(name, f"{value!r} is not an ISO-8601 time or epoch ms") from None
    elif isinstance(value, datetime | np.datetime64):
        import pandas as pd

        ts = pd.Timestamp(value)
    else:
        raise ValidationError(name, f"{value!r} ({type(value).__name__}) is not a time")
    if ts is pd.NaT:
        raise ValidationError(name, f"{value!r} is not a time")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int((ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(1, "ms"))


def normalise_interval(interval: str) -> str:
    """The canonical name of an interval (``"60s"`` and ``"1m"`` are one series)."""
    return interval_name(parse_interval(interval))
