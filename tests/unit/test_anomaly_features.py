"""Candle features: the streaming extractor and its vectorised twin agree; edge cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptolab.anomaly.features import FEATURE_NAMES, VOL_CLIP, FeatureExtractor, candle_features
from cryptolab.batch import frame_to_candles
from cryptolab.errors import ValidationError
from cryptolab.models import Candle

T0 = 1_700_000_040_000
MIN = 60_000


def candle(i: int, o: float, h: float, lo: float, c: float, v: float = 1.0, *, symbol: str = "BTC-USD",
           interval: str = "1m", trades: int = 5, vwap: float | None = None, gap: bool = False) -> Candle:
    ws = T0 + i * MIN
    return Candle(symbol=symbol, interval=interval, window_start=ws, window_end=ws + MIN, open=o,
                  high=h, low=lo, close=c, volume=v, vwap=vwap, trades=trades, first_ts=ws,
                  last_ts=ws + MIN - 1, high_ts=ws, low_ts=ws, final=True, gap=gap)


def test_first_candle_has_no_previous_state():
    f = FeatureExtractor().update(candle(0, 100.0, 110.0, 95.0, 105.0, 3.0, vwap=104.0))
    assert f["ret"] == 0.0 and f["vol_rel"] == 0.0 and f["trades_rel"] == 0.0
    assert f["body"] == pytest.approx(0.05)
    assert f["range"] == pytest.approx(15.0 / 105.0)
    assert f["upper_wick"] == pytest.approx(5.0 / 105.0)
    assert f["lower_wick"] == pytest.approx(5.0 / 105.0)
    assert f["vwap_dev"] == pytest.approx(1.0 / 104.0)


def test_levels_use_previous_candles_only():
    fx = FeatureExtractor(level_span=1)  # alpha = 1: the level is the previous candle's volume
    fx.update(candle(0, 100.0, 100.0, 100.0, 100.0, 2.0))
    f = fx.update(candle(1, 100.0, 101.0, 100.0, 101.0, 8.0, trades=9))
    assert f["vol_rel"] == pytest.approx(math.log(4.0))
    assert f["trades_rel"] == pytest.approx(math.log(10.0 / 6.0))
    assert f["ret"] == pytest.approx(math.log(1.01))


def test_zero_volume_after_volume_is_clipped_not_infinite():
    fx = FeatureExtractor()
    fx.update(candle(0, 1.0, 1.0, 1.0, 1.0, 5.0))
    assert fx.update(candle(1, 1.0, 1.0, 1.0, 1.0, 0.0))["vol_rel"] == -VOL_CLIP


def test_features_do_not_learn_and_reject_bad_prices():
    fx = FeatureExtractor()
    fx.features(candle(0, 1.0, 1.0, 1.0, 1.0))
    assert fx.count == 0 and fx.prev_close is None
    with pytest.raises(ValidationError):
        fx.features(candle(1, 0.0, 1.0, 0.0, 1.0))
    with pytest.raises(ValidationError):
        FeatureExtractor(level_span=0)


def _stream_features(df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(np.nan, index=df.index, columns=list(FEATURE_NAMES))
    extractors: dict[tuple[str, str], FeatureExtractor] = {}
    order = df.sort_values(["symbol", "interval", "window_start"], kind="stable").index
    for i in order:
        (c,) = frame_to_candles(df.loc[[i]])
        if c.gap:
            continue
        fx = extractors.setdefault((c.symbol, c.interval), FeatureExtractor(level_span=7))
        f = fx.update(c)
        out.loc[i, list(FEATURE_NAMES)] = [f[k] for k in FEATURE_NAMES]
    return out


_row = st.tuples(
    st.sampled_from(["BTC-USD", "ETH-USD"]),
    st.sampled_from(["1m", "5m"]),
    st.floats(1.0, 1000.0),  # open
    st.floats(-0.2, 0.2),  # close move
    st.floats(0.0, 0.1),  # wicks
    st.floats(0.0, 50.0),  # volume
    st.integers(0, 40),  # trades
    st.booleans(),  # gap
    st.booleans(),  # vwap known
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_row, min_size=1, max_size=40))
def test_vectorised_twin_matches_streaming(rows):
    recs = []
    for k, (sym, iv, o, mv, wick, vol, trades, gap, has_vwap) in enumerate(rows):
        c = o * (1 + mv)
        recs.append({
            "symbol": sym, "interval": iv, "window_start": T0 + k * MIN, "window_end": T0 + (k + 1) * MIN,
            "open": o, "high": max(o, c) * (1 + wick), "low": min(o, c) * (1 - wick), "close": c,
            "volume": vol, "vwap": (o + c) / 2 if has_vwap else None, "trades": trades,
            "first_ts": T0, "last_ts": T0, "high_ts": T0, "low_ts": T0, "revision": 0,
            "final": True, "gap": gap,
        })
    df = pd.DataFrame(recs).sample(frac=1.0, random_state=len(recs))  # any row order
    got = candle_features(df, level_span=7)
    want = _stream_features(df)
    assert list(got.index) == list(df.index)
    pd.testing.assert_frame_equal(got, want, rtol=1e-9, atol=1e-12)
    assert got[df["gap"].to_numpy()].isna().all().all()


def test_gap_candles_do_not_move_the_state():
    fx = FeatureExtractor()
    fx.update(candle(0, 100.0, 100.0, 100.0, 100.0, 1.0))
    before = (fx.prev_close, fx.vol_level, fx.count)
    df = pd.DataFrame([
        {"symbol": "X", "interval": "1m", "window_start": 0, "open": 100.0, "high": 100.0,
         "low": 100.0, "close": 100.0, "volume": 1.0, "gap": False},
        {"symbol": "X", "interval": "1m", "window_start": 60_000, "open": 50.0, "high": 50.0,
         "low": 50.0, "close": 50.0, "volume": 0.0, "gap": True},
        {"symbol": "X", "interval": "1m", "window_start": 120_000, "open": 100.0, "high": 101.0,
         "low": 100.0, "close": 101.0, "volume": 1.0, "gap": False},
    ])
    f = candle_features(df)
    assert f.loc[2, "ret"] == pytest.approx(math.log(1.01))  # relative to the last real close
    assert f.loc[2, "vol_rel"] == pytest.approx(0.0)
    assert before == (100.0, 1.0, 1)
