"""Batch candles: the vectorised twin of :mod:`cryptolab.candles.stream` (pure, no I/O).

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
>>> c[["window_start", "open", "high", "low", "close", "volume", "vwap", "trades"]]
               window_start  open  high   low  close  volume  vwap  trades
0 2023-11-14 22:14:00+00:00  10.0  12.0  10.0   11.0     4.0  11.0       3
1 2023-11-14 22:15:00+00:00   9.0   9.0   9.0    9.0     1.0   9.0       1
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from cryptolab.candles.frames import empty_frame, history_dtypes, ticks_to_frame
from cryptolab.candles.kernels import (
    Ohlc,
    group_bounds,
    group_ohlc,
    negative_zeros,
    sequential_sums,
    sums_in_row_order,
    vwaps,
)
from cryptolab.models import Tick, interval_name, parse_interval, parse_intervals

__all__ = ["candles_from_ticks"]

_TS_ALIASES = ("ts_ms", "ts", "timestamp", "time")
#: Ticks per chunk of in-order input (whole windows of the largest interval per chunk).
_CHUNK_TICKS = 1 << 20
#: Threads folding chunks of a large input (numpy releases the GIL in its loops).
_THREADS = min(4, os.cpu_count() or 1)
_POS_INF = np.iinfo(np.int64).max


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
        revision 0. Columns and dtypes are those of :func:`cryptolab.history`:
        ``window_start``/``window_end`` tz-aware UTC datetimes, ``first_ts``,
        ``last_ts``, ``high_ts``, ``low_ts`` epoch-ms integers.
    """
    df = _coerce_ticks(ticks)
    names = parse_intervals(intervals if isinstance(intervals, str) else list(intervals))
    n = len(df)
    if n == 0:
        return empty_frame()
    ts = df["ts_ms"].to_numpy(dtype=np.int64)
    price = df["price"].to_numpy(dtype=np.float64)
    if "size" in df.columns:
        size_raw = pd.to_numeric(df["size"], errors="coerce").to_numpy(dtype=np.float64)
    else:
        size_raw = np.full(n, np.nan)
    in_order = bool(np.all(ts[1:] >= ts[:-1])) if n > 1 else True
    ivs = [parse_interval(name) for name in names]
    if in_order and all(iv % min(ivs) == 0 for iv in ivs):
        # the common case (a recording, a replay): fold the smallest interval tick by tick
        # and build the larger ones, which are unions of its windows, from its candles;
        # in chunks of whole windows of the largest interval (cache-sized, no window split)
        chunks = _time_chunks(ts, max(ivs))
        symbol = df["symbol"]

        def fold(chunk: tuple[int, int]) -> list[pd.DataFrame]:
            a, b = chunk
            codes, uniques = pd.factorize(symbol.iloc[a:b])  # symbols by name in the output
            return _in_order_frames(codes.astype(np.int64), uniques, ts[a:b], price[a:b], size_raw[a:b],
                                    names, ivs)

        workers = min(len(chunks), _THREADS)
        if workers > 1:  # numpy and arrow release the GIL in their loops: chunks fold in parallel
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cryptolab-candles") as pool:
                frames = [f for part in pool.map(fold, chunks) for f in part]
        else:
            frames = [f for chunk in chunks for f in fold(chunk)]
    else:
        codes, uniques = pd.factorize(df["symbol"], sort=True)
        sized = ~np.isnan(size_raw)
        size = np.where(sized, size_raw, 0.0)
        frames = _general_frames(codes.astype(np.int64), uniques, ts, price, size, sized, price * size,
                                 names, in_order)
    out = pd.concat(frames, ignore_index=True)
    if gap_fill:
        out = _add_gaps(out)
    out = out.sort_values(["symbol", "_iv", "window_start"], kind="stable").drop(columns="_iv")
    return history_dtypes(out.reset_index(drop=True))



def _frame(
    symbols: npt.NDArray[np.object_],
    name: str,
    w0: npt.NDArray[np.int64],
    iv: int,
    ohlc: Ohlc,
    volume: npt.NDArray[np.float64],
    pv: npt.NDArray[np.float64],
    trades: npt.NDArray[np.int64],
) -> pd.DataFrame:
    """One interval's final candles as a frame (epoch-ms windows, ``_iv`` for sorting)."""
    return pd.DataFrame(
        {
            "symbol": symbols,
            "interval": name,
            "window_start": w0,
            "window_end": w0 + iv,
            "open": ohlc.open,
            "high": ohlc.high,
            "low": ohlc.low,
            "close": ohlc.close,
            "volume": volume,
            "vwap": vwaps(volume, pv, ohlc.sized),
            "trades": trades,
            "first_ts": ohlc.first_ts,
            "last_ts": ohlc.last_ts,
            "high_ts": ohlc.high_ts,
            "low_ts": ohlc.low_ts,
            "revision": np.zeros(len(w0), dtype=np.int64),
            "final": True,
            "gap": False,
            "_iv": iv,
        }
    )


def _general_frames(
    codes: npt.NDArray[np.int64],
    uniques: Any,
    ts: npt.NDArray[np.int64],
    price: npt.NDArray[np.float64],
    size: npt.NDArray[np.float64],
    sized: npt.NDArray[np.bool_],
    pv: npt.NDArray[np.float64],
    names: Sequence[str],
    in_order: bool,
) -> list[pd.DataFrame]:
    """Candles of each interval on its own (any tick order)."""
    base_order = np.argsort(codes, kind="stable") if in_order else None
    symbols = np.asarray(uniques, dtype=object)
    flows = np.stack((size, pv))  # rows: per tick volume, price x volume
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
        c_s, ws_s = codes[order], ws[order]
        starts, lengths = group_bounds(c_s, ws_s)
        ohlc = group_ohlc(ts[order], price[order], sized[order], starts, lengths)
        volume, pvsum = sequential_sums(np.take(flows, order, axis=1), starts, lengths)
        frames.append(_frame(symbols[c_s[starts]], name, ws_s[starts], iv, ohlc, volume, pvsum, lengths))
    return frames


def _time_chunks(ts: npt.NDArray[np.int64], window: int, target: int = 0) -> list[tuple[int, int]]:
    """Cut time-ordered ticks into ``[a, b)`` ranges of about ``target`` rows, only at
    boundaries of ``window``-long epoch-aligned windows (so no window is split).

    Examples
    --------
    >>> _time_chunks(np.array([0, 5, 10, 12, 25]), 10, target=2)
    [(0, 2), (2, 4), (4, 5)]
    """
    n = len(ts)
    target = target or _CHUNK_TICKS
    first = int(ts[0]) - int(ts[0]) % window
    cuts = np.searchsorted(ts, np.arange(first + window, int(ts[-1]) + 1, window), side="left")
    out = []
    a = 0
    while a < n:
        i = int(np.searchsorted(cuts, a + target, side="left"))
        b = int(cuts[i]) if i < len(cuts) else n
        if b <= a:  # defensive: never loop without progress
            b = n
        out.append((a, b))
        a = b
    return out


def _first_where(mask: npt.NDArray[np.bool_], group: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Per group (rows sorted by group), the position of its first row where ``mask`` holds.

    Every group must have one.
    """
    idx = np.flatnonzero(mask)
    g = group[idx]
    first = np.empty(len(idx), dtype=bool)
    first[:1] = True
    np.not_equal(g[1:], g[:-1], out=first[1:])
    return idx[first]



class _Windows(NamedTuple):
    """One interval's windows, in (symbol, window start) order."""

    code: npt.NDArray[np.int64]
    start: npt.NDArray[np.int64]
    trades: npt.NDArray[np.int64]
    ohlc: Ohlc


class _Sorted(NamedTuple):
    """Ticks sorted by (window of the smallest interval, symbol), and those windows."""

    group: npt.NDArray[np.int64]  # per sorted tick: its window, in sorted order
    order_g: npt.NDArray[np.intp]  # the windows' sorted order -> (symbol, window) order
    flows: npt.NDArray[np.float64]  # per sorted tick: size (0.0 when none), price x size
    neg_zeros: npt.NDArray[np.bool_] | None  # where flows are -0.0 (None: nowhere)
    windows: _Windows


def _in_order_frames(
    codes: npt.NDArray[np.int64],
    uniques: Any,
    ts: npt.NDArray[np.int64],
    price: npt.NDArray[np.float64],
    size_raw: npt.NDArray[np.float64],
    names: Sequence[str],
    ivs: Sequence[int],
) -> list[pd.DataFrame]:
    """Candles of ticks in time order, every interval a multiple of the smallest.

    Same values as :func:`_general_frames`. The ticks are sorted (stably) by window of
    the smallest interval, then symbol: a window's ticks stay in time order, so its
    open/close are its first/last tick and the earliest extreme is the first one. A
    larger window is a run of smallest windows of its symbol, so its open/high/low/close
    (and their times) follow from theirs. Volume and price x volume are summed per
    window in array (here: arrival) order, as the streaming aggregator does
    (:func:`~cryptolab.candles.kernels.sums_in_row_order`).
    """
    base = min(ivs)
    s = _smallest_windows(codes, len(uniques), ts, price, size_raw, base)
    symbols = np.asarray(uniques, dtype=object)
    g = len(s.order_g)
    frames = []
    for name, iv in zip(names, ivs, strict=True):
        to_window = np.empty(g, dtype=np.int64)  # sorted-order window -> this interval's window
        if iv == base:
            w = s.windows
            to_window[s.order_g] = np.arange(g)
        else:
            w, runs = _merge_windows(s.windows, iv)
            to_window[s.order_g] = np.repeat(np.arange(len(runs)), runs)
        volume, pvsum = sums_in_row_order(to_window[s.group], s.flows, w.trades, s.neg_zeros)
        frames.append(_frame(symbols[w.code], name, w.start, iv, w.ohlc, volume, pvsum, w.trades))
    return frames


def _smallest_windows(
    codes: npt.NDArray[np.int64],
    k: int,
    ts: npt.NDArray[np.int64],
    price: npt.NDArray[np.float64],
    size_raw: npt.NDArray[np.float64],
    base: int,
) -> _Sorted:
    """Sort in-order ticks by (window of interval ``base``, symbol code) and reduce those windows."""
    n = len(ts)
    t0 = int(ts[0]) - int(ts[0]) % base
    w = (ts - t0) // base  # window of the smallest interval, from the chunk's first one
    key = w * k + codes
    top = int(key[-1])  # ts is sorted: the last tick has the largest window
    small = np.int16 if top <= 32_767 else np.int32 if top <= 2**31 - 1 else np.int64
    order = np.argsort(key.astype(small), kind="stable")  # a radix sort for small keys
    key_s = key[order]
    p_s = price[order]
    z_s = size_raw[order]
    change = np.empty(n, dtype=bool)
    change[0] = True
    np.not_equal(key_s[1:], key_s[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    ends = np.append(starts[1:], n)
    lengths = ends - starts
    group = np.repeat(np.arange(len(starts), dtype=np.int64), lengths)  # window of each sorted tick
    flows = np.empty((2, n))  # per sorted tick: size (0.0 when none), price x size
    flows[0] = z_s
    np.copyto(flows[0], 0.0, where=np.isnan(z_s))
    np.multiply(p_s, flows[0], out=flows[1])
    g_key = key_s[starts]
    order_g = np.lexsort((g_key // k, g_key % k))  # -> (symbol, window) order
    b_starts, b_ends = starts[order_g], ends[order_g]
    high = np.maximum.reduceat(p_s, starts)
    low = np.minimum.reduceat(p_s, starts)
    ohlc = Ohlc(
        open=p_s[b_starts],
        high=high[order_g],
        low=low[order_g],
        close=p_s[b_ends - 1],
        first_ts=ts[order[b_starts]],
        last_ts=ts[order[b_ends - 1]],
        high_ts=ts[order[_first_where(p_s == np.repeat(high, lengths), group)]][order_g],
        low_ts=ts[order[_first_where(p_s == np.repeat(low, lengths), group)]][order_g],
        sized=np.logical_or.reduceat(~np.isnan(z_s), starts)[order_g],
    )
    windows = _Windows((g_key % k)[order_g], (t0 + (g_key // k) * base)[order_g], lengths[order_g], ohlc)
    return _Sorted(group, order_g, flows, negative_zeros(flows), windows)


def _merge_windows(small: _Windows, iv: int) -> tuple[_Windows, npt.NDArray[np.int64]]:
    """The windows of interval ``iv`` (a multiple of ``small``'s), each a run of ``small``'s
    windows of one symbol; and the length of each run."""
    wsi = small.start - small.start % iv
    gs, runs = group_bounds(small.code, wsi)
    ge = gs + runs
    b = small.ohlc
    high = np.maximum.reduceat(b.high, gs)
    low = np.minimum.reduceat(b.low, gs)
    ohlc = Ohlc(
        open=b.open[gs],
        high=high,
        low=low,
        close=b.close[ge - 1],
        first_ts=b.first_ts[gs],
        last_ts=b.last_ts[ge - 1],
        high_ts=np.minimum.reduceat(np.where(b.high == np.repeat(high, runs), b.high_ts, _POS_INF), gs),
        low_ts=np.minimum.reduceat(np.where(b.low == np.repeat(low, runs), b.low_ts, _POS_INF), gs),
        sized=np.logical_or.reduceat(b.sized, gs),
    )
    return _Windows(small.code[gs], wsi[gs], np.add.reduceat(small.trades, gs), ohlc), runs


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


