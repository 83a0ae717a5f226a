"""An exchange's candles (ccxt's OHLCV rows) as cryptolab's final candles.

An exchange candle carries open, high, low, close and volume only: its VWAP is unknown
(``None``), its trade count 0, ``first_ts``, ``high_ts`` and ``low_ts`` are the window's
start and ``last_ts`` its last millisecond. A window without volume (Binance serves those
as flat candles at the previous close) is stored exactly as the aggregator's gap fill
stores a window without trades: flat at its close, volume 0, VWAP ``None``, 0 trades, every
time the window's start, ``gap=True``. Every candle is ``final`` with revision 0, so
storing the same rows again changes nothing.

Examples
--------
>>> c = candle_from_ohlcv("BINANCE:BTC-USDT", "1m", 60_000, [1_700_000_040_000, 10.0, 12.0, 9.0, 11.0, 3.5])
>>> (c.open, c.high, c.low, c.close, c.volume, c.vwap, c.final, c.gap, c.last_ts - c.window_start)
(10.0, 12.0, 9.0, 11.0, 3.5, None, True, False, 59999)
>>> g = candle_from_ohlcv("BINANCE:BTC-USDT", "1m", 60_000, [1_700_000_100_000, 11.0, 11.0, 11.0, 11.0, 0.0])
>>> (g.open, g.close, g.volume, g.trades, g.gap, g.first_ts == g.last_ts == g.window_start)
(11.0, 11.0, 0.0, 0, True, True)
>>> candle_from_ohlcv("X", "1m", 60_000, [0, None, 1.0, 1.0, 1.0, 1.0]) is None
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from cryptolab.models.records import Candle, make_candle

__all__ = ["candle_from_ohlcv"]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    x = float(value)
    return x if math.isfinite(x) else None


def candle_from_ohlcv(symbol: str, interval: str, interval_ms: int, row: Sequence[Any]) -> Candle | None:
    """The final candle of one ccxt OHLCV row ``[t, o, h, l, c, v]``; None when it is not valid.

    A row is not valid when a price is missing, not finite or not positive, the volume is
    missing or negative, or high and low do not bound open and close.
    """
    if len(row) < 6 or not isinstance(row[0], int):
        return None
    ws = row[0]
    o, h, lo, c, v = (_number(x) for x in row[1:6])
    if o is None or h is None or lo is None or c is None or min(o, h, lo, c) <= 0:
        return None
    if v is None or v < 0 or lo > min(o, c) or h < max(o, c):
        return None
    end = ws + interval_ms
    if v == 0:
        return make_candle(symbol, interval, ws, end, c, c, c, c, 0.0, None, 0, ws, ws, ws, ws, 0, True, True)
    return make_candle(symbol, interval, ws, end, o, h, lo, c, v, None, 0, ws, end - 1, ws, ws, 0, True, False)
