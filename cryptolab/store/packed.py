"""The packed history record: PostgreSQL packs a series' rows into ONE ``bytea``, read at once.

The server concatenates fixed-size big-endian records (``int8send``/``float8send``/
``boolsend``), decoded with one :func:`numpy.frombuffer` instead of building 16 Python
objects per candle on the client. It is still one prepared, parameterised SELECT.
Records are self-contained, so the aggregate needs no ORDER BY (no sort on the
server): the client orders them by ``window_start``. :data:`PACKED_SQL` and
:data:`_PACKED_DTYPE` describe the same record and change together.

Examples
--------
>>> _PACKED_DTYPE.itemsize  # 14 eight-byte numbers and 2 booleans
114
>>> _frame_from_packed("BTC-USD", "1m", 1, b"short") is None
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np

from cryptolab.store.schema import _FLOAT_COLS, _INT_COLS, _NUMERIC

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PACKED_SQL"]

#: The packed history SELECT (PostgreSQL), with the bind parameters of the plain one.
PACKED_SQL: Final = """\
SELECT count(*), string_agg(
    int8send(window_start) || int8send(window_end)
    || float8send(open) || float8send(high) || float8send(low) || float8send(close)
    || float8send(volume) || float8send(COALESCE(vwap, 'NaN'::float8))
    || int8send(trades) || int8send(first_ts) || int8send(last_ts) || int8send(high_ts)
    || int8send(low_ts) || int8send(CAST(revision AS BIGINT)) || boolsend(final) || boolsend(gap),
    ''::bytea)
FROM (
    SELECT * FROM candles
    WHERE symbol = :symbol AND "interval" = :interval
      AND window_start >= :start AND window_start < :end AND (final OR NOT :final_only)
    ORDER BY window_start DESC LIMIT :limit
) AS c"""

_PACKED_TYPES: Final = {**dict.fromkeys(_FLOAT_COLS, ">f8"), **dict.fromkeys(_INT_COLS, ">i8"),
                        "window_start": ">i8", "window_end": ">i8", "final": "?", "gap": "?"}
_PACKED_DTYPE: Final = np.dtype([(name, _PACKED_TYPES[name]) for name in _NUMERIC])


def _frame_from_packed(symbol: str, interval: str, n: int, data: bytes | None) -> pd.DataFrame | None:
    """Decode the packed history rows; ``None`` when the layout is not the expected one."""
    from cryptolab.store.frames import history_frame

    data = data or b""
    if len(data) != n * _PACKED_DTYPE.itemsize:
        return None
    rec = np.frombuffer(data, dtype=_PACKED_DTYPE)
    starts = rec["window_start"]
    if n > 1 and not (starts[1:] > starts[:-1]).all():
        rec = rec[np.argsort(starts, kind="stable")]
    return history_frame(symbol, interval, {k: rec[k] for k in _NUMERIC}, n)
