"""Candle frames: the DataFrame form of candles and ticks, and its time columns (pure).

Candle frames have the columns and dtypes of :func:`cryptolab.history`: ``window_start``
and ``window_end`` are tz-aware UTC datetimes, the tick times (``first_ts``...) epoch-ms
integers. :func:`epoch_ms` and :func:`with_ms_windows` give the integers back:

>>> import pandas as pd
>>> c = with_utc_windows(pd.DataFrame({"window_start": [1_700_000_040_000, 1_700_000_100_000]}))
>>> c.window_start.dtype
datetime64[ms, UTC]
>>> epoch_ms(c["window_start"]).tolist()
[1700000040000, 1700000100000]
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from cryptolab.models import Candle, Tick

__all__ = [
    "CANDLE_COLUMNS",
    "WINDOW_COLUMNS",
    "candles_to_frame",
    "empty_frame",
    "epoch_ms",
    "frame_to_candles",
    "history_dtypes",
    "ticks_to_frame",
    "utc_times",
    "with_ms_windows",
    "with_utc_windows",
]

CANDLE_COLUMNS = [
    "symbol", "interval", "window_start", "window_end", "open", "high", "low", "close",
    "volume", "vwap", "trades", "first_ts", "last_ts", "high_ts", "low_ts", "revision",
    "final", "gap",
]

#: Candle columns that frames show as tz-aware UTC datetimes (as :func:`cryptolab.history`);
#: the tick times (``first_ts``, ``last_ts``, ``high_ts``, ``low_ts``) stay epoch-ms integers.
WINDOW_COLUMNS: Final = ("window_start", "window_end")
_TIME_COLUMNS: Final = (*WINDOW_COLUMNS, "first_ts", "last_ts", "high_ts", "low_ts")
_FLOAT_COLUMNS: Final = ("open", "high", "low", "close", "volume", "vwap")
_UTC_MS: Final = pd.DatetimeTZDtype("ms", "UTC")
#: The string dtype pandas infers by default (``str`` on pandas 3, ``object`` before), as in history().
_STR_DTYPE: Final = pd.Series(["x"]).dtype


def ticks_to_frame(ticks: Iterable[Tick]) -> pd.DataFrame:
    """Ticks as a DataFrame with columns symbol, ts_ms, price, size (NaN when unknown).

    Examples
    --------
    >>> ticks_to_frame([Tick(symbol="X", ts_ms=1_700_000_000_000, price=1.0)]).dtypes.astype(str).tolist()
    ['object', 'int64', 'float64', 'float64']
    """
    rows = [(t.symbol, t.ts_ms, t.price, math.nan if t.size is None else t.size) for t in ticks]
    df = pd.DataFrame(rows, columns=["symbol", "ts_ms", "price", "size"])
    return df.astype({"symbol": object, "ts_ms": "int64", "price": "float64", "size": "float64"})


def epoch_ms(values: Any) -> npt.NDArray[np.int64]:
    """Points in time as int64 epoch milliseconds UTC.

    Parameters
    ----------
    values
        A Series, Index, array or list of epoch-ms integers or of datetimes
        (tz-aware, or naive meaning UTC), e.g. a ``window_start`` column.

    Returns
    -------
    numpy.ndarray
        int64 epoch milliseconds (exact for millisecond times).

    Examples
    --------
    >>> import pandas as pd
    >>> epoch_ms(pd.Series([pd.Timestamp("2023-11-14 22:14", tz="UTC")])).tolist()
    [1700000040000]
    >>> epoch_ms([1_700_000_040_000]).tolist()
    [1700000040000]
    """
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    if s.dtype == object and len(s) and not isinstance(s.iloc[0], (int, np.integer)):
        s = pd.to_datetime(s, utc=True)
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_datetime64_dtype(s.dtype):
        return np.asarray(s.to_numpy(dtype="datetime64[ms]").view(np.int64))
    return np.asarray(s.to_numpy(dtype=np.int64))


def utc_times(values: Any) -> pd.api.extensions.ExtensionArray:
    """Epoch-ms integers (or datetimes) as a ``datetime64[ms, UTC]`` array.

    Examples
    --------
    >>> list(utc_times([1_700_000_040_000]))
    [Timestamp('2023-11-14 22:14:00+0000', tz='UTC')]
    """
    return pd.array(epoch_ms(values).view("datetime64[ms]"), dtype=_UTC_MS)


def with_utc_windows(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``window_start``/``window_end`` as tz-aware UTC datetimes.

    The form every candle frame of the public API has (:func:`cryptolab.history`,
    :func:`~cryptolab.candles.batch.candles_from_ticks`, :func:`cryptolab.score_history`). Columns already in
    that form, and frames without them, come back as they are (the same object
    when nothing changes).

    Examples
    --------
    >>> import pandas as pd
    >>> with_utc_windows(pd.DataFrame({"window_start": [0]})).window_start.dtype
    datetime64[ms, UTC]
    """
    cols = [c for c in WINDOW_COLUMNS if c in frame.columns and frame[c].dtype != _UTC_MS]
    if not cols:
        return frame
    return frame.assign(**{c: utc_times(frame[c]) for c in cols})


def with_ms_windows(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``window_start``/``window_end`` as int64 epoch ms (as :class:`Candle` holds them).

    The inverse of :func:`with_utc_windows`, exact: for arithmetic on window times,
    or to compare a candle frame with epoch-ms data.

    Examples
    --------
    >>> import pandas as pd
    >>> utc = with_utc_windows(pd.DataFrame({"window_start": [1_700_000_040_000]}))
    >>> with_ms_windows(utc).window_start.tolist()
    [1700000040000]
    """
    cols = [c for c in WINDOW_COLUMNS if c in frame.columns and frame[c].dtype != np.int64]
    if not cols:
        return frame
    return frame.assign(**{c: epoch_ms(frame[c]) for c in cols})


def history_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """A candle frame with the dtypes of :func:`cryptolab.history`: UTC windows, default strings."""
    out = with_utc_windows(frame)
    strs = [c for c in ("symbol", "interval") if c in out.columns and out[c].dtype != _STR_DTYPE]
    return out.astype(dict.fromkeys(strs, _STR_DTYPE)) if strs else out


def empty_frame() -> pd.DataFrame:
    """A candle frame without rows, with the columns and dtypes of :func:`cryptolab.history`."""

    def dtype(c: str) -> Any:
        if c in ("symbol", "interval"):
            return _STR_DTYPE
        if c in WINDOW_COLUMNS:
            return _UTC_MS
        return "float64" if c in _FLOAT_COLUMNS else "bool" if c in ("final", "gap") else "int64"

    return pd.DataFrame({c: pd.Series(dtype=dtype(c)) for c in CANDLE_COLUMNS})


def frame_to_candles(frame: pd.DataFrame) -> list[Candle]:
    """Convert a candle DataFrame (from :func:`~cryptolab.candles.batch.candles_from_ticks` or a store) to Candle objects.

    Time columns may be epoch-ms ints or datetimes (as :func:`cryptolab.history` returns them).

    Examples
    --------
    >>> import pandas as pd
    >>> from cryptolab.candles.batch import candles_from_ticks
    >>> df = candles_from_ticks(pd.DataFrame({"symbol": ["X"], "ts_ms": [1_700_000_000_000],
    ...                                       "price": [5.0]}), intervals="1m")
    >>> frame_to_candles(df)[0].vwap is None
    True
    """
    out = []
    cols = {c: (epoch_ms(frame[c]) if c in _TIME_COLUMNS else frame[c]).tolist()
            for c in CANDLE_COLUMNS if c in frame.columns}
    for i in range(len(frame)):
        d = {c: v[i] for c, v in cols.items()}
        vw = d.get("vwap")
        d["vwap"] = None if vw is None or (isinstance(vw, float) and math.isnan(vw)) else float(vw)
        for c in ("open", "high", "low", "close", "volume"):
            d[c] = float(d[c])
        d["trades"] = int(d["trades"])
        d["revision"] = int(d.get("revision", 0))
        d["final"] = bool(d.get("final", True))
        d["gap"] = bool(d.get("gap", False))
        out.append(Candle(**d))
    return out


def candles_to_frame(candles: Iterable[Candle]) -> pd.DataFrame:
    """Candle objects as a DataFrame, in the form of :func:`~cryptolab.candles.batch.candles_from_ticks`.

    ``window_start``/``window_end`` are tz-aware UTC datetimes and the tick times
    epoch-ms ints (as :func:`cryptolab.history` returns them); ``vwap`` is NaN when unknown.

    Examples
    --------
    >>> import pandas as pd
    >>> from cryptolab.candles.batch import candles_from_ticks
    >>> df = candles_from_ticks(pd.DataFrame({"symbol": ["X"], "ts_ms": [1_700_000_000_000],
    ...                                       "price": [5.0], "size": [2.0]}), intervals="1m")
    >>> candles_to_frame(frame_to_candles(df)).equals(df)
    True
    """
    rows = [c.to_dict() for c in candles]
    if not rows:
        return empty_frame()
    df = pd.DataFrame(rows, columns=CANDLE_COLUMNS)
    df["vwap"] = df["vwap"].astype("float64")
    return history_dtypes(df)
