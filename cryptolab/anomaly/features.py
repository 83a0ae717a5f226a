"""Features of closed candles, per (symbol, interval): pure code, no I/O.

Every detector sees the same small dictionary of floats per candle
(:data:`FEATURE_NAMES`). They are scale free (relative to price or to the
stream's own recent level), so one set of detector parameters works for
BTC at 37,000 and ADA at 0.38:

============== ===============================================================
``ret``        log return close to close, ``log(close / previous close)``
``body``       ``(close - open) / open``: the move inside the candle (signed)
``range``      ``(high - low) / close``
``upper_wick`` ``(high - max(open, close)) / close``
``lower_wick`` ``(min(open, close) - low) / close``
``vol_rel``    ``log(volume / recent volume level)``, clipped to +-10
``trades_rel`` ``log((trades + 1) / (recent trade-count level + 1))``
``vwap_dev``   ``(close - vwap) / vwap`` (0 without a VWAP)
============== ===============================================================

"Recent level" is an exponentially weighted mean of the *previous* candles of
the stream (span ``level_span``, 30 by default), so a candle's features never
depend on itself through the level. The first candle of a stream has
``ret = vol_rel = trades_rel = 0``. Gap-fill candles (``gap=True``) carry no
trades: they get no features and do not move the state.

:class:`FeatureExtractor` is the streaming form (one candle at a time);
:func:`candle_features` is its vectorised twin for DataFrames and gives the
same numbers (to floating-point rounding).

Examples
--------
>>> from cryptolab.models import Candle
>>> def candle(ws, o, h, lo, c, v):
...     return Candle(symbol="BTC-USD", interval="1m", window_start=ws, window_end=ws + 60_000,
...                   open=o, high=h, low=lo, close=c, volume=v, vwap=None, trades=10,
...                   first_ts=ws, last_ts=ws + 59_000, high_ts=ws, low_ts=ws, final=True)
>>> fx = FeatureExtractor()
>>> f1 = fx.update(candle(1_700_000_040_000, 100.0, 101.0, 99.0, 100.0, 5.0))
>>> f2 = fx.update(candle(1_700_000_100_000, 100.0, 106.0, 100.0, 105.0, 20.0))
>>> round(f2["body"], 4), round(f2["ret"], 4), round(f2["range"], 4), round(f2["vol_rel"], 4)
(0.05, 0.0488, 0.0571, 1.3863)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from cryptolab.errors import ValidationError
from cryptolab.models import Candle

if TYPE_CHECKING:  # imported where a DataFrame is handled: a consumer never loads pandas
    import pandas as pd

__all__ = [
    "FEATURE_NAMES",
    "FeatureExtractor",
    "Features",
    "candle_features",
]

#: A candle's features, as River expects them: feature name -> float.
Features = dict[str, float]

#: The features computed for every candle, in this order.
FEATURE_NAMES: Final = (
    "ret",
    "body",
    "range",
    "upper_wick",
    "lower_wick",
    "vol_rel",
    "trades_rel",
    "vwap_dev",
)

#: ``vol_rel`` is clipped to ``[-VOL_CLIP, VOL_CLIP]`` (zero volume after a busy period).
VOL_CLIP: Final = 10.0
_EPS: Final = 1e-12


def _alpha(level_span: int) -> float:
    if isinstance(level_span, bool) or not isinstance(level_span, int) or level_span < 1:
        raise ValidationError("level_span", f"must be an integer >= 1, got {level_span!r}")
    return 2.0 / (level_span + 1.0)


def _vol_rel(volume: float, level: float) -> float:
    v = math.log((volume + _EPS) / (level + _EPS))
    return min(VOL_CLIP, max(-VOL_CLIP, v))


class FeatureExtractor:
    """Streaming features of one (symbol, interval) stream of closed candles.

    Parameters
    ----------
    level_span
        Span of the exponentially weighted means that define the recent volume
        and trade-count levels (``alpha = 2 / (span + 1)``).

    Examples
    --------
    >>> from cryptolab.models import Candle
    >>> fx = FeatureExtractor(level_span=10)
    >>> c = Candle(symbol="ETH-USD", interval="5m", window_start=1_700_000_100_000,
    ...            window_end=1_700_000_400_000, open=2000.0, high=2010.0, low=1990.0,
    ...            close=2005.0, volume=3.0, vwap=2001.0, trades=7,
    ...            first_ts=1_700_000_100_000, last_ts=1_700_000_399_000,
    ...            high_ts=1_700_000_200_000, low_ts=1_700_000_300_000, final=True)
    >>> f = fx.update(c)
    >>> sorted(f) == sorted(FEATURE_NAMES)
    True
    >>> f["ret"], f["vol_rel"], round(f["body"], 6), round(f["vwap_dev"], 6)
    (0.0, 0.0, 0.0025, 0.001999)
    >>> fx.count
    1
    """

    __slots__ = ("_alpha", "count", "level_span", "prev_close", "trades_level", "vol_level")

    def __init__(self, *, level_span: int = 30) -> None:
        self._alpha = _alpha(level_span)
        self.level_span = level_span
        self.prev_close: float | None = None
        self.vol_level: float | None = None
        self.trades_level: float | None = None
        self.count = 0

    def features(self, candle: Candle) -> Features:
        """The features of ``candle`` given the current state, without updating it."""
        o, h, lo, c = candle.open, candle.high, candle.low, candle.close
        if not (o > 0 and c > 0 and h > 0 and lo > 0):
            raise ValidationError("candle", f"prices must be > 0, got {candle.key}: {o} {h} {lo} {c}")
        vwap = candle.vwap
        vwap_dev = 0.0 if vwap is None or not vwap > 0 else (c - vwap) / vwap
        volume = float(candle.volume)
        trades = float(candle.trades)
        return {
            "ret": 0.0 if self.prev_close is None else math.log(c / self.prev_close),
            "body": (c - o) / o,
            "range": (h - lo) / c,
            "upper_wick": (h - max(o, c)) / c,
            "lower_wick": (min(o, c) - lo) / c,
            "vol_rel": 0.0 if self.vol_level is None else _vol_rel(volume, self.vol_level),
            "trades_rel": (
                0.0
                if self.trades_level is None
                else math.log((trades + 1.0) / (self.trades_level + 1.0))
            ),
            "vwap_dev": vwap_dev,
        }

    def learn(self, candle: Candle) -> None:
        """Fold ``candle`` into the state (previous close, volume and trade levels)."""
        a = self._alpha
        volume = float(candle.volume)
        trades = float(candle.trades)
        self.prev_close = candle.close
        self.vol_level = volume if self.vol_level is None else (1 - a) * self.vol_level + a * volume
        self.trades_level = (
            trades if self.trades_level is None else (1 - a) * self.trades_level + a * trades
        )
        self.count += 1

    def update(self, candle: Candle) -> Features:
        """Features of ``candle``, then learn it: the usual one-call form."""
        f = self.features(candle)
        self.learn(candle)
        return f

    def __repr__(self) -> str:
        return f"FeatureExtractor(level_span={self.level_span}, count={self.count})"


def _group_keys(df: pd.DataFrame) -> list[str]:
    return [k for k in ("symbol", "interval") if k in df.columns]


def candle_features(df: pd.DataFrame, *, level_span: int = 30) -> pd.DataFrame:
    """Vectorised twin of :class:`FeatureExtractor` for a DataFrame of candles.

    Parameters
    ----------
    df
        Candles with at least ``open, high, low, close, volume`` and, when
        present, ``symbol``, ``interval``, ``window_start``, ``vwap``,
        ``trades``, ``gap`` (the frame returned by
        :func:`cryptolab.candles_from_ticks` or :func:`cryptolab.history`).
        Each (symbol, interval) stream is taken in ``window_start`` order.
    level_span
        As in :class:`FeatureExtractor`.

    Returns
    -------
    pandas.DataFrame
        One column per name in :data:`FEATURE_NAMES`, on ``df``'s index. Gap
        rows get NaN and do not move the levels.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"symbol": ["X", "X", "Y"], "interval": "1m",
    ...                    "window_start": [0, 60_000, 0],
    ...                    "open": [100.0, 100.0, 10.0], "high": [101.0, 106.0, 10.0],
    ...                    "low": [99.0, 100.0, 10.0], "close": [100.0, 105.0, 10.0],
    ...                    "volume": [5.0, 20.0, 1.0]})
    >>> candle_features(df)[["ret", "body", "vol_rel"]].round(4)
          ret  body  vol_rel
    0  0.0000  0.00   0.0000
    1  0.0488  0.05   1.3863
    2  0.0000  0.00   0.0000
    """
    import pandas as pd

    alpha = _alpha(level_span)
    out = pd.DataFrame(np.nan, index=df.index, columns=list(FEATURE_NAMES), dtype=float)
    if df.empty:
        return out
    rows = df
    if "gap" in df.columns:
        rows = df[~df["gap"].astype(bool).to_numpy()]
    if "window_start" in rows.columns:
        rows = rows.sort_values([*_group_keys(rows), "window_start"], kind="stable")
    o = rows["open"].to_numpy(dtype=float)
    h = rows["high"].to_numpy(dtype=float)
    lo = rows["low"].to_numpy(dtype=float)
    c = rows["close"].to_numpy(dtype=float)
    if not (np.all(o > 0) and np.all(h > 0) and np.all(lo > 0) and np.all(c > 0)):
        raise ValidationError("candles", "prices must be > 0")
    volume = rows["volume"].to_numpy(dtype=float)
    trades = (
        rows["trades"].to_numpy(dtype=float) if "trades" in rows.columns else np.zeros(len(rows))
    )
    if "vwap" in rows.columns:
        vwap = pd.to_numeric(rows["vwap"], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(vwap) & (vwap > 0)
        vwap_dev = np.where(ok, (c - np.where(ok, vwap, 1.0)) / np.where(ok, vwap, 1.0), 0.0)
    else:
        vwap_dev = np.zeros(len(rows))

    keys = _group_keys(rows)
    if keys:
        codes = rows.groupby(keys, sort=False, observed=True).ngroup().to_numpy()
    else:
        codes = np.zeros(len(rows), dtype=np.int64)
    first = np.ones(len(rows), dtype=bool)
    first[1:] = codes[1:] != codes[:-1]
    prev_close = np.roll(c, 1)
    ret = np.where(first, 0.0, np.log(c / np.where(first, c, prev_close)))

    frame = pd.DataFrame({"g": codes, "v": volume, "t": trades})
    grouped = frame.groupby("g", sort=False)
    vol_level = grouped["v"].transform(lambda s: s.ewm(alpha=alpha, adjust=False).mean())
    trades_level = grouped["t"].transform(lambda s: s.ewm(alpha=alpha, adjust=False).mean())
    vol_prev = np.roll(vol_level.to_numpy(), 1)
    trades_prev = np.roll(trades_level.to_numpy(), 1)
    vol_rel = np.where(
        first,
        0.0,
        np.clip(np.log((volume + _EPS) / (np.where(first, 1.0, vol_prev) + _EPS)), -VOL_CLIP, VOL_CLIP),
    )
    trades_rel = np.where(first, 0.0, np.log((trades + 1.0) / (np.where(first, 0.0, trades_prev) + 1.0)))

    hi_oc = np.maximum(o, c)
    lo_oc = np.minimum(o, c)
    values: dict[str, Any] = {
        "ret": ret,
        "body": (c - o) / o,
        "range": (h - lo) / c,
        "upper_wick": (h - hi_oc) / c,
        "lower_wick": (lo_oc - lo) / c,
        "vol_rel": vol_rel,
        "trades_rel": trades_rel,
        "vwap_dev": vwap_dev,
    }
    computed = pd.DataFrame(values, index=rows.index)
    out.loc[computed.index, list(FEATURE_NAMES)] = computed[list(FEATURE_NAMES)]
    return out

