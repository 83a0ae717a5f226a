"""Candles and alerts as the API's JSON: the wire encoders' bytes (the cache's payloads).

REST answers, WebSocket frames and the cache's pub/sub all carry the same candle and alert
JSON (README: times in epoch ms, ``"v": 1``); answers are assembled from the encoded bytes
without a second serialisation.

Examples
--------
>>> import pandas as pd
>>> from cryptolab.store import Store
>>> from cryptolab.models import Candle
>>> with Store("sqlite://") as s:
...     s.init()
...     _ = s.commit_batch(group="g", topic="t", candles=[Candle(symbol="X", interval="1m",
...         window_start=60_000, window_end=120_000, open=1.5, high=2.0, low=1.0, close=1.0,
...         volume=0.5, vwap=None, trades=2, first_ts=60_001, last_ts=60_002, high_ts=60_001,
...         low_ts=60_002, final=True)])
...     frame = s.history("X", "1m")
>>> candles = candles_from_frame(frame)
>>> candles[0].window_start, candles[0].vwap, candles[0].final
(60000, None, True)
>>> json_array([b'{"a":1}', b'{"b":2}'])
b'[{"a":1},{"b":2}]'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cryptolab.candles.frames import epoch_ms
from cryptolab.models import Candle
from cryptolab.models.records import make_candle

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["candles_from_frame", "json_array"]


def candles_from_frame(frame: pd.DataFrame) -> list[Candle]:
    """The candles of a history frame (:meth:`cryptolab.store.Store.history`)."""
    if frame.empty:
        return []
    cols: dict[str, list[Any]] = {
        name: frame[name].tolist()
        for name in ("symbol", "interval", "open", "high", "low", "close", "volume", "vwap",
                     "trades", "first_ts", "last_ts", "high_ts", "low_ts", "revision", "final",
                     "gap")
    }
    starts = epoch_ms(frame["window_start"]).tolist()
    ends = epoch_ms(frame["window_end"]).tolist()
    out = []
    for i in range(len(starts)):
        vwap = cols["vwap"][i]
        out.append(make_candle(
            cols["symbol"][i], cols["interval"][i], starts[i], ends[i], cols["open"][i],
            cols["high"][i], cols["low"][i], cols["close"][i], cols["volume"][i],
            None if vwap is None or math.isnan(vwap) else vwap, int(cols["trades"][i]),
            int(cols["first_ts"][i]), int(cols["last_ts"][i]), int(cols["high_ts"][i]),
            int(cols["low_ts"][i]), int(cols["revision"][i]), bool(cols["final"][i]),
            bool(cols["gap"][i]),
        ))
    return out


def json_array(items: Sequence[bytes]) -> bytes:
    """A JSON array of already-encoded JSON values."""
    return b"[" + b",".join(items) + b"]"
