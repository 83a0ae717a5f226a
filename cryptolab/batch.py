"""Batch candles: the vectorised twin of :mod:`cryptolab.windows` (pure, no I/O).

:func:`candles_from_ticks` turns a table of ticks into final candles with
exactly the values the streaming aggregator produces for the same ticks in the
same (arrival) order: same tie-breaking, and volume/VWAP summed sequentially in
arrival order so that even the last bit of every float matches. It is the
reference the streaming path is tested against, and the engine for backfills.

Examples
--------
>>> import pandas as pd
>>> ticks = pd.DataFrame({"symbol": ["ETH-USD"] * 4,
...                       "ts_ms": [1_700_000_040_000, 1_700_000_050_000,
...                                 1_700_000_050_000, 1_700_000_130_000],
...                       "price": [10.0, 12.0, 11.0, 9.0], "size": [1.0, 1.0, 2.0, 1.0]})
>>> c = candles_from_ticks(ticks, intervals="1m")
>>> c[["window_start", "open", "high", "low", "close", "volume", "vwap", "trades"]].to_dict("records")[0]
{'window_start': 1700000040000, 'open': 10.0, 'high': 12.0, 'low': 10.0, 'close': 11.0, 'volume': 4.0, 'vwap': 11.0, 'trades': 3}
>>> len(c)
2
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from cryptolab.models import Candle, Tick, interval_name, parse_interval, parse_intervals

__all__ = ["candles_from_ticks", "candles_to_frame", "frame_to_candles", "ticks_to_frame"]

CANDLE_COLUMNS = [
    "symbol", "interval", "window_start", "window_end", "open", "high", "low", "close",
    "volume", "vwap", "trades", "first_ts", "last_ts", "high_ts", "low_ts", "revision",
    "final", "gap",
]

_TS_ALIASES = ("ts_ms", "ts", "timestamp", "time")


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


def _seq_segment_sum(
    x: npt.NDArray[np.float64], starts: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Sum each segment left to right, exactly as a sequential ``+=`` loop would.

    (``np.add.reduceat`` uses pairwise summation, whose rounding differs.)
    """
    if len(starts) == 0:
        return np.zeros(0)
    order = np.argsort(-lengths, kind="stable")
    st = starts[order]
    neg_len = -lengths[order]  # ascending
    acc = np.zeros(len(st))
    maxlen = int(-neg_len[0])
    for k in range(maxlen):
        n = int(np.searchsorted(neg_len, -k, side="left"))  # segments longer than k
        acc[:n] += x[st[:n] + k]
    out = np.empty_like(acc)
    out[order] = acc
    return out


def _coerce_ticks(ticks: Any) -> pd.DataFrame:
    if isinstance(ticks, pd.DataFrame):
        df = ticks
    elif hasattr(ticks, "to_pandas"):
        df = ticks.to_pandas()
    else:
        df = ticks_to_frame(ticks)
    ts_col = next((c for c in _TS_ALIASES if c in df.columns), None)
    missing = [c for c, ok in (("symbol", "symbol" in df.columns), ("ts_ms", ts_col), ("price", "price" in df.columns)) if not ok]
    if missing:
        raise ValueError(
            f"ticks need columns symbol, ts_ms and price (size optional); missing {missing}, "
            f"got {list(df.columns)}"
        )
    return df.rename(columns={ts_col: "ts_ms"}) if ts_col != "ts_ms" else df


def candles_from_ticks(
    ticks: pd.DataFrame | Iterable[Tick] | Any,
    intervals: str | Sequence[str] = "1m,5m,15m",
    *,
    gap_fill: bool = False,
) -> pd.DataFrame:
    """Build final OHLCV candles from ticks, vectorised.

    Parameters
    ----------
    ticks
        A DataFrame (or pyarrow Table, or iterable of :class:`Tick`) with columns
        ``symbol``, ``ts_ms`` (epoch ms; ``ts``/``timestamp`` also accepted),
        ``price`` and optionally ``size``. Row order is arrival order.
    intervals
        ``"1m,5m,15m"`` or a sequence of interval names.
    gap_fill
        Add flat ``gap=True`` candles for windows without trades between traded ones.

    Returns
    -------
    pandas.DataFrame
        One row per (symbol, interval, window) with the :class:`~cryptolab.models.Candle`
        columns, sorted by symbol, interval length and window start; all ``final``,
        revision 0.
    """
    df = _coerce_ticks(ticks)
    names = parse_intervals(intervals if isinstance(intervals, str) else list(intervals))
    n = len(df)
    if n == 0:
        return _empty_frame()
    codes, uniques = pd.factorize(df["symbol"], sort=True)
    codes = codes.astype(np.int64)
    ts = df["ts_ms"].to_numpy(dtype=np.int64)
    price = df["price"].to_numpy(dtype=np.float64)
    if "size" in df.columns:
        size_raw = pd.to_numeric(df["size"], errors="coerce").to_numpy(dtype=np.float64)
    else:
        size_raw = np.full(n, np.nan)
    sized = ~np.isnan(size_raw)
    size = np.where(sized, size_raw, 0.0)
    pv = price * size
    in_order = bool(np.all(ts[1:] >= ts[:-1])) if n > 1 else True
    base_order = np.argsort(codes, kind="stable") if in_order else None

    frames = []
    for name in names:
        iv = parse_interval(name)
        ws = ts - ts % iv
        if base_order is not None:
            order = base_order  # per symbol, arrival order == time order: windows contiguous
        else:
            wi = (ws - ws.min()) // iv
            key = codes * (int(wi.max()) + 1) + wi
            order = np.argsort(key, kind="stable")
        c_s, ws_s, ts_s, p_s = codes[order], ws[order], ts[order], price[order]
        change = np.empty(n, dtype=bool)
        change[0] = True
        change[1:] = (c_s[1:] != c_s[:-1]) | (ws_s[1:] != ws_s[:-1])
        starts = np.flatnonzero(change).astype(np.int64)
        lengths = np.diff(np.append(starts, n)).astype(np.int64)
        rep = np.repeat(np.arange(len(starts)), lengths)
        pos = np.arange(n)

        first_ts = np.minimum.reduceat(ts_s, starts)
        last_ts = np.maximum.reduceat(ts_s, starts)
        open_idx = np.minimum.reduceat(np.where(ts_s == first_ts[rep], pos, n), starts)
        close_idx = np.maximum.reduceat(np.where(ts_s == last_ts[rep], pos, -1), starts)
        high = np.maximum.reduceat(p_s, starts)
        low = np.minimum.reduceat(p_s, starts)
        big = np.iinfo(np.int64).max
        high_ts = np.minimum.reduceat(np.where(p_s == high[rep], ts_s, big), starts)
        low_ts = np.minimum.reduceat(np.where(p_s == low[rep], ts_s, big), starts)
        volume = _seq_segment_sum(size[order], starts, lengths)
        pvsum = _seq_segment_sum(pv[order], starts, lengths)
        any_sized = np.logical_or.reduceat(sized[order], starts)
        with np.errstate(divide="ignore", invalid="ignore"):
            vwap = np.where(any_sized & (volume > 0), pvsum / np.where(volume > 0, volume, 1.0), np.nan)
        w0 = ws_s[starts]
        frames.append(
            pd.DataFrame(
                {
                    "symbol": np.asarray(uniques, dtype=object)[c_s[starts]],
                    "interval": name,
                    "window_start": w0,
                    "window_end": w0 + iv,
                    "open": p_s[open_idx],
                    "high": high,
                    "low": low,
                    "close": p_s[close_idx],
                    "volume": volume,
                    "vwap": vwap,
                    "trades": lengths,
                    "first_ts": first_ts,
                    "last_ts": last_ts,
                    "high_ts": high_ts,
                    "low_ts": low_ts,
                    "revision": np.zeros(len(starts), dtype=np.int64),
                    "final": True,
                    "gap": False,
                    "_iv": iv,
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    if gap_fill:
        out = _add_gaps(out)
    out = out.sort_values(["symbol", "_iv", "window_start"], kind="stable").drop(columns="_iv")
    return out.reset_index(drop=True)


def _add_gaps(frame: pd.DataFrame) -> pd.DataFrame:
    extra: list[dict[str, Any]] = []
    for (symbol, iv), g in frame.groupby(["symbol", "_iv"], sort=False):
        starts = g["window_start"].to_numpy()
        closes = g["close"].to_numpy()
        for i in range(1, len(starts)):
            w = starts[i - 1] + iv
            while w < starts[i]:
                c = float(closes[i - 1])
                extra.append(
                    {"symbol": symbol, "interval": interval_name(int(iv)), "window_start": w,
                     "window_end": w + iv, "open": c, "high": c, "low": c, "close": c,
                     "volume": 0.0, "vwap": np.nan, "trades": 0, "first_ts": w, "last_ts": w,
                     "high_ts": w, "low_ts": w, "revision": 0, "final": True, "gap": True, "_iv": iv}
                )
                w += iv
    if not extra:
        return frame
    return pd.concat([frame, pd.DataFrame(extra)], ignore_index=True)


def _empty_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object if c in ("symbol", "interval") else "float64") for c in CANDLE_COLUMNS})


def frame_to_candles(frame: pd.DataFrame) -> list[Candle]:
    """Convert a candle DataFrame (from :func:`candles_from_ticks` or a store) to Candle objects.

    Timestamp columns may be epoch-ms ints or tz-aware pandas Timestamps.

    Examples
    --------
    >>> import pandas as pd
    >>> df = candles_from_ticks(pd.DataFrame({"symbol": ["X"], "ts_ms": [1_700_000_000_000],
    ...                                       "price": [5.0]}), intervals="1m")
    >>> frame_to_candles(df)[0].vwap is None
    True
    """
    out = []
    cols = {c: frame[c].tolist() for c in CANDLE_COLUMNS if c in frame.columns}
    for i in range(len(frame)):
        d = {c: v[i] for c, v in cols.items()}
        for c in ("window_start", "window_end", "first_ts", "last_ts", "high_ts", "low_ts"):
            v = d[c]
            d[c] = int(v.value // 1_000_000) if isinstance(v, pd.Timestamp) else int(v)
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
    """Candle objects as a DataFrame (times as epoch-ms ints, vwap NaN when unknown).

    Examples
    --------
    >>> import pandas as pd
    >>> df = candles_from_ticks(pd.DataFrame({"symbol": ["X"], "ts_ms": [1_700_000_000_000],
    ...                                       "price": [5.0], "size": [2.0]}), intervals="1m")
    >>> candles_to_frame(frame_to_candles(df)).equals(df)
    True
    """
    rows = [c.to_dict() for c in candles]
    if not rows:
        return _empty_frame()
    df = pd.DataFrame(rows, columns=CANDLE_COLUMNS)
    df["vwap"] = df["vwap"].astype("float64")
    return df
