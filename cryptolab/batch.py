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
>>> c[["window_start", "open", "high", "low", "close", "volume", "vwap", "trades"]]
               window_start  open  high   low  close  volume  vwap  trades
0 2023-11-14 22:14:00+00:00  10.0  12.0  10.0   11.0     4.0  11.0       3
1 2023-11-14 22:15:00+00:00   9.0   9.0   9.0    9.0     1.0   9.0       1

Candle frames have the columns and dtypes of :func:`cryptolab.history`: ``window_start``
and ``window_end`` are tz-aware UTC datetimes, the tick times (``first_ts``...) epoch-ms
integers. :func:`epoch_ms` and :func:`with_ms_windows` give the integers back:

>>> epoch_ms(c["window_start"]).tolist()
[1700000040000, 1700000100000]
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from cryptolab.models import Candle, Tick, interval_name, parse_interval, parse_intervals

__all__ = [
    "WINDOW_COLUMNS",
    "candles_from_ticks",
    "candles_to_frame",
    "epoch_ms",
    "frame_to_candles",
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

_TS_ALIASES = ("ts_ms", "ts", "timestamp", "time")
#: Ticks per chunk of in-order input (whole windows of the largest interval per chunk).
_CHUNK_TICKS = 1 << 20
#: Threads folding chunks of a large input (numpy releases the GIL in its loops).
_THREADS = min(4, os.cpu_count() or 1)


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
    :func:`candles_from_ticks`, :func:`cryptolab.score_history`). Columns already in
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


def _as_history_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A candle frame with the dtypes of :func:`cryptolab.history`: UTC windows, default strings."""
    out = with_utc_windows(frame)
    strs = [c for c in ("symbol", "interval") if c in out.columns and out[c].dtype != _STR_DTYPE]
    return out.astype(dict.fromkeys(strs, _STR_DTYPE)) if strs else out


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
    acc = np.full(len(st), -0.0)  # -0.0 + x == x, even for x = -0.0 (as the stream's first tick)
    maxlen = int(-neg_len[0])
    for k in range(maxlen):
        n = int(np.searchsorted(neg_len, -k, side="left"))  # segments longer than k
        acc[:n] += x[st[:n] + k]
    out = np.empty_like(acc)
    out[order] = acc
    return out


def _seq_segment_sums2(
    x: npt.NDArray[np.float64], starts: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """:func:`_seq_segment_sum` of both rows of ``x`` (shape ``(2, n)``) at once.

    Many short segments are summed position by position across segments; few long
    ones each with one ``np.add.accumulate`` (a running sum: sequential by nature).
    Returns shape ``(2, len(starts))``.

    Examples
    --------
    >>> x = np.array([[0.1, 0.2, 0.3], [1.0, 2.0, 3.0]])
    >>> _seq_segment_sums2(x, np.array([0, 1]), np.array([1, 2])).tolist()
    [[0.1, 0.5], [1.0, 5.0]]
    """
    n_seg = len(starts)
    out = np.zeros((2, n_seg))
    if n_seg == 0:
        return out
    longest = int(lengths.max())
    if n_seg * 3 < longest * 4:  # few long segments: one C loop each
        accumulate = np.add.accumulate
        for i, (s, m) in enumerate(zip(starts.tolist(), lengths.tolist(), strict=True)):
            out[:, i] = accumulate(x[:, s : s + m], axis=1)[:, -1]
        return out
    order = np.argsort(-lengths, kind="stable")
    idx = starts[order].copy()
    neg_len = -lengths[order]  # ascending
    acc = x[:, idx]
    buf = np.empty_like(acc)
    for k in range(1, longest):
        n = int(np.searchsorted(neg_len, -k, side="left"))  # segments longer than k
        idx[:n] += 1
        np.take(x, idx[:n], axis=1, out=buf[:, :n])
        np.add(acc[:, :n], buf[:, :n], out=acc[:, :n])
    out[:, order] = acc
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
        revision 0. Columns and dtypes are those of :func:`cryptolab.history`:
        ``window_start``/``window_end`` tz-aware UTC datetimes, ``first_ts``,
        ``last_ts``, ``high_ts``, ``low_ts`` epoch-ms integers.
    """
    df = _coerce_ticks(ticks)
    names = parse_intervals(intervals if isinstance(intervals, str) else list(intervals))
    n = len(df)
    if n == 0:
        return _empty_frame()
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
    return _as_history_frame(out.reset_index(drop=True))


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
    n = len(ts)
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
    window with ``np.bincount``, which adds the weights one after the other in array
    (here: arrival) order, as the streaming aggregator does.
    """
    n = len(ts)
    k = len(uniques)
    base = min(ivs)
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
    g = len(starts)
    group = np.repeat(np.arange(g, dtype=np.int64), lengths)  # window of each sorted tick
    vol = np.where(np.isnan(z_s), 0.0, z_s)
    pv = p_s * vol
    neg_zero = bool((np.signbit(vol) & (vol == 0)).any())
    # the smallest interval's windows, in (window, symbol) order
    g_key = key_s[starts]
    order_g = np.lexsort((g_key // k, g_key % k))  # -> (symbol, window) order
    b_code = (g_key % k)[order_g]
    b_ws = (t0 + (g_key // k) * base)[order_g]
    b_starts, b_ends, b_len = starts[order_g], ends[order_g], lengths[order_g]
    b_open, b_close = p_s[b_starts], p_s[b_ends - 1]
    b_first, b_last = ts[order[b_starts]], ts[order[b_ends - 1]]
    b_high = np.maximum.reduceat(p_s, starts)
    b_low = np.minimum.reduceat(p_s, starts)
    b_high_ts = ts[order[_first_where(p_s == np.repeat(b_high, lengths), group)]][order_g]
    b_low_ts = ts[order[_first_where(p_s == np.repeat(b_low, lengths), group)]][order_g]
    b_high, b_low = b_high[order_g], b_low[order_g]
    b_sized = np.logical_or.reduceat(~np.isnan(z_s), starts)[order_g]
    symbols = np.asarray(uniques, dtype=object)
    big = np.iinfo(np.int64).max
    frames = []
    for name, iv in zip(names, ivs, strict=True):
        to_window = np.empty(g, dtype=np.int64)  # sorted-order window -> this interval's window
        if iv == base:
            gs = np.arange(g)
            open_, close, first_ts, last_ts = b_open, b_close, b_first, b_last
            high, low, high_ts, low_ts, any_sized = b_high, b_low, b_high_ts, b_low_ts, b_sized
            w0, code, trades = b_ws, b_code, b_len
            to_window[order_g] = gs
        else:
            wsi = b_ws - b_ws % iv
            chg = np.empty(g, dtype=bool)
            chg[0] = True
            chg[1:] = (b_code[1:] != b_code[:-1]) | (wsi[1:] != wsi[:-1])
            gs = np.flatnonzero(chg)
            ge = np.append(gs[1:], g)
            runs = ge - gs
            open_, close, first_ts, last_ts = b_open[gs], b_close[ge - 1], b_first[gs], b_last[ge - 1]
            high = np.maximum.reduceat(b_high, gs)
            low = np.minimum.reduceat(b_low, gs)
            high_ts = np.minimum.reduceat(np.where(b_high == np.repeat(high, runs), b_high_ts, big), gs)
            low_ts = np.minimum.reduceat(np.where(b_low == np.repeat(low, runs), b_low_ts, big), gs)
            any_sized = np.logical_or.reduceat(b_sized, gs)
            w0, code = wsi[gs], b_code[gs]
            trades = np.add.reduceat(b_len, gs)
            to_window[order_g] = np.repeat(np.arange(len(gs)), runs)
        tick_window = to_window[group]
        m = len(gs)
        volume = np.bincount(tick_window, weights=vol, minlength=m)
        pvsum = np.bincount(tick_window, weights=pv, minlength=m)
        if neg_zero:  # bincount starts from +0.0: a window of -0.0 sizes only sums to -0.0
            all_neg = np.bincount(tick_window, weights=np.signbit(vol) & (vol == 0), minlength=m) == trades
            volume[all_neg] = -0.0
            pvsum[all_neg & (np.bincount(tick_window, weights=np.signbit(pv) & (pv == 0), minlength=m) == trades)] = -0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            vwap = np.where(any_sized & (volume > 0), pvsum / np.where(volume > 0, volume, 1.0), np.nan)
        frames.append(
            pd.DataFrame(
                {
                    "symbol": symbols[code],
                    "interval": name,
                    "window_start": w0,
                    "window_end": w0 + iv,
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": volume,
                    "vwap": vwap,
                    "trades": trades,
                    "first_ts": first_ts,
                    "last_ts": last_ts,
                    "high_ts": high_ts,
                    "low_ts": low_ts,
                    "revision": np.zeros(m, dtype=np.int64),
                    "final": True,
                    "gap": False,
                    "_iv": iv,
                }
            )
        )
    return frames


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
    def dtype(c: str) -> Any:
        if c in ("symbol", "interval"):
            return _STR_DTYPE
        if c in WINDOW_COLUMNS:
            return _UTC_MS
        return "float64" if c in _FLOAT_COLUMNS else "bool" if c in ("final", "gap") else "int64"

    return pd.DataFrame({c: pd.Series(dtype=dtype(c)) for c in CANDLE_COLUMNS})


def frame_to_candles(frame: pd.DataFrame) -> list[Candle]:
    """Convert a candle DataFrame (from :func:`candles_from_ticks` or a store) to Candle objects.

    Time columns may be epoch-ms ints or datetimes (as :func:`cryptolab.history` returns them).

    Examples
    --------
    >>> import pandas as pd
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
    """Candle objects as a DataFrame, in the form of :func:`candles_from_ticks`.

    ``window_start``/``window_end`` are tz-aware UTC datetimes and the tick times
    epoch-ms ints (as :func:`cryptolab.history` returns them); ``vwap`` is NaN when unknown.

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
    return _as_history_frame(df)
