"""Records to table rows and back: :class:`~cryptolab.models.Candle`, :class:`~cryptolab.models.Alert`
and :class:`~cryptolab.store.records.LateTick`.

Examples
--------
>>> from cryptolab.models import Candle
>>> c = Candle(symbol="X", interval="1m", window_start=0, window_end=60_000, open=1.0, high=2.0,
...            low=0.5, close=1.5, volume=3.0, vwap=None, trades=3, first_ts=0, last_ts=0,
...            high_ts=0, low_ts=0, final=True)
>>> candle_from_row(list(candle_rows(candle_columns_by_key([c]))[0].values())) == c
True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from cryptolab.models import Alert, Candle
from cryptolab.models.blocks import candle_columns
from cryptolab.models.records import CANDLE_FIELDS
from cryptolab.store.records import LateTick

__all__ = ["alert_row", "candle_columns_by_key", "candle_from_row", "candle_rows", "late_row"]


def candle_columns_by_key(candles: Iterable[Candle]) -> list[list[Any]]:
    """``candles`` one per key (the last of a key, where its first was), as one Python list per
    field in :data:`~cryptolab.models.CANDLE_FIELDS` order: what one upsert statement writes. A
    :class:`~cryptolab.models.blocks.CandleList`'s blocks are read from their columns, their
    candles not built.

    Examples
    --------
    >>> a = candle_from_row(["BTC-USD", "1m", 0, 60_000, 1, 2, 0.5, 1.5, 3, None, 3, 1, 2, 3, 4, 0, 0, 0])
    >>> b = candle_from_row(["BTC-USD", "1m", 60_000, 120_000, 1, 2, 0.5, 1.5, 3, None, 3, 1, 2, 3, 4, 0, 1, 0])
    >>> final_a = candle_from_row(["BTC-USD", "1m", 0, 60_000, 1, 2, 0.5, 1.7, 3, None, 3, 1, 2, 3, 4, 0, 1, 0])
    >>> cols = candle_columns_by_key([a, b, final_a])
    >>> cols[2], cols[7]
    ([0, 60000], [1.7, 1.5])
    """
    cols = candle_columns(candles)
    last = {key: i for i, key in enumerate(zip(cols[0], cols[1], cols[2], strict=True))}
    if len(last) == len(cols[0]):
        return cols
    keep = list(last.values())
    return [[col[i] for i in keep] for col in cols]


def candle_rows(columns: list[list[Any]]) -> list[dict[str, Any]]:
    """The ``candles`` rows, keyed by column name, of candles given as :func:`candle_columns_by_key`
    gives them (numpy scalars as Python numbers: sqlite3 would store them as BLOBs).

    Examples
    --------
    >>> import numpy as np
    >>> c = candle_from_row(["BTC-USD", "1m", 0, 60_000, 1, 2, 0.5, 1.5, 3, None, 3, 1, 2, 3, 4, 0, 1, 0])
    >>> cols = candle_columns_by_key([c])
    >>> cols[4] = [np.float64(1.0)]
    >>> row, = candle_rows(cols)
    >>> row["symbol"], row["open"], type(row["open"]), row["vwap"]
    ('BTC-USD', 1.0, <class 'float'>, None)
    """
    return [{k: v.item() if isinstance(v, np.generic) else v for k, v in zip(CANDLE_FIELDS, row, strict=True)}
            for row in zip(*columns, strict=True)]


def candle_from_row(r: Sequence[Any]) -> Candle:
    """The candle of a row of :data:`~cryptolab.store.schema.HISTORY_COLUMNS`."""
    return Candle(
        symbol=r[0], interval=r[1], window_start=int(r[2]), window_end=int(r[3]),
        open=float(r[4]), high=float(r[5]), low=float(r[6]), close=float(r[7]),
        volume=float(r[8]), vwap=None if r[9] is None else float(r[9]), trades=int(r[10]),
        first_ts=int(r[11]), last_ts=int(r[12]), high_ts=int(r[13]), low_ts=int(r[14]),
        revision=int(r[15]), final=bool(r[16]), gap=bool(r[17]),
    )


def alert_row(a: Alert) -> dict[str, Any]:
    """The ``alerts`` row of ``a``, keyed by column name."""
    return {
        "symbol": a.symbol,
        "interval": a.interval,
        "window_start": a.window_start,
        "detector": a.detector,
        "severity": a.severity,
        "score": float(a.score),
        "ts_ms": a.ts_ms,
        "features": dict(a.features),
    }


def late_row(t: LateTick, now_ms: int) -> dict[str, Any]:
    """The ``late_ticks`` row of ``t``, recorded at ``now_ms``."""
    return {
        "topic": t.topic,
        "partition": t.partition,
        "offset": t.offset,
        "symbol": t.symbol,
        "ts_ms": t.ts_ms,
        "price": t.price,
        "size": t.size,
        "source": t.source,
        "trade_id": t.trade_id,
        "watermark_ms": t.watermark_ms,
        "recorded_at": now_ms,
    }
