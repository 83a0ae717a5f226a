"""River's quantile and ADWIN without River's packages: River's values, and a lighter consumer.

The detectors reach River's compiled estimators directly (``cryptolab.anomaly.native``)
and draw their HalfSpaceTrees themselves, so that a consumer never imports SciPy.
These tests hold them to River's own classes, value for value, and the whole
scorer to the scorer built on River's classes, score for score.
"""

from __future__ import annotations

import math
import random
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import anomaly, drift, stats
from river.tree.padded import PaddedBranch, make_padded_tree

import cryptolab.anomaly.hst as hst_module
import cryptolab.anomaly.learned as learned_module
import cryptolab.anomaly.thresholds as thresholds_module
from cryptolab.anomaly import AnomalyScorer, default_detectors
from cryptolab.anomaly.hst import _FlatHalfSpaceTrees
from cryptolab.anomaly.learned import _RiverDetector
from cryptolab.anomaly.native import ADWIN, Quantile
from cryptolab.models import Candle

T0 = 1_700_000_000_000


@settings(max_examples=50, deadline=None)
@given(q=st.floats(0.01, 0.99), xs=st.lists(st.floats(-1e6, 1e6, allow_nan=False), max_size=200))
def test_quantile_equals_rivers(q: float, xs: list[float]) -> None:
    ours, rivers = Quantile(q), stats.Quantile(q=q)
    assert ours.get() is rivers.get() is None
    for x in xs:
        ours.update(x)
        rivers.update(x)
        assert ours.get() == rivers.get()
    assert ours.q == rivers.q


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), clock=st.sampled_from([1, 32]),
       delta=st.sampled_from([0.002, 0.05]))
def test_adwin_detects_as_rivers(seed: int, clock: int, delta: float) -> None:
    rng = random.Random(seed)
    ours, rivers = ADWIN(delta=delta, clock=clock), drift.ADWIN(delta=delta, clock=clock)
    detections = 0
    for i in range(1500):
        x = rng.gauss(0.0 if (i // 300) % 2 == 0 else 3.0, 1.0)  # a regime change every 300
        ours.update(x)
        rivers.update(x)
        assert ours.drift_detected == rivers.drift_detected, i
        assert ours.width == rivers.width, i
        detections += ours.drift_detected
    assert detections > 0


def _heap_order(root: PaddedBranch, height: int) -> list[tuple[str, float]]:
    level, out = [root], []
    for _ in range(height):
        out += [(node.feature, node.threshold) for node in level]
        level = [child for node in level for child in node.children]
    return out


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_trees=st.integers(1, 6), height=st.integers(1, 6),
       names=st.sampled_from([("ret",), ("body", "range", "ret"), ("a", "b", "c", "d", "e")]))
def test_trees_are_drawn_as_rivers_make_padded_tree(seed: int, n_trees: int, height: int,
                                                     names: tuple[str, ...]) -> None:
    flat = _FlatHalfSpaceTrees(n_trees, height, 10, seed)
    flat.learn_one(dict.fromkeys(names, 0.5))
    rng = random.Random(seed)
    want: list[tuple[str, float]] = []
    for _ in range(n_trees):
        tree = make_padded_tree(limits={n: (0.0, 1.0) for n in sorted(names)}, height=height,
                                padding=0.15, rng=rng, r_mass=0, l_mass=0)
        want += _heap_order(tree, height)
    got = [(flat._names[f], t) for f, t in zip(flat._feature, flat._threshold, strict=True)]
    assert got == want


@pytest.mark.parametrize("window", [255, 256, 300])
def test_masses_past_a_byte_score_as_rivers(window: int) -> None:
    """Masses are stored in the smallest integer type that holds ``window`` (bytes at 255)."""
    rng = random.Random(window)
    rivers = anomaly.HalfSpaceTrees(n_trees=3, height=3, window_size=window, seed=window)
    flat = _FlatHalfSpaceTrees(3, 3, window, window)
    for _ in range(3 * window + 7):
        x = {"ret": rng.random() ** 4, "body": rng.random(), "range": rng.random()}
        assert flat.score_one(x) == rivers.score_one(x)
        flat.learn_one(x)
        rivers.learn_one(x)
    assert flat._l_mass.typecode == ("B" if window <= 255 else "H")
    assert max(flat._r_mass) == window  # the root saw every sample of the window


def _river_hst(n_trees: int, height: int, window_size: int, seed: int | None) -> anomaly.HalfSpaceTrees:
    return anomaly.HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window_size, seed=seed)


def _market(symbol: str, interval: str, rng: random.Random, n: int = 900) -> list[Candle]:
    """Candles whose volatility changes tenfold every 300 (drift resets), with rare spikes."""
    step = 60_000 if interval == "1m" else 300_000
    out, close = [], 100.0
    for i in range(n):
        vol = 0.001 if (i // 300) % 2 == 0 else 0.01
        o = close
        close = o * math.exp(rng.gauss(0.0, vol) + (rng.choice((-0.1, 0.1)) if rng.random() < 0.01 else 0.0))
        hi, lo = max(o, close) * (1 + abs(rng.gauss(0, vol))), min(o, close) * (1 - abs(rng.gauss(0, vol)))
        ws = T0 + step * i
        out.append(Candle(symbol=symbol, interval=interval, window_start=ws, window_end=ws + step,
                          open=o, high=hi, low=lo, close=close, volume=rng.expovariate(1.0),
                          vwap=(o + close) / 2, trades=rng.randint(1, 50), first_ts=ws, last_ts=ws,
                          high_ts=ws, low_ts=ws, final=True))
    return out


def _scores(candles: list[Candle]) -> tuple[list[tuple[str, str, int, str, float, str | None]], int]:
    """Every detector's score and flag for every candle, prequentially; and the drift resets."""
    scorer = AnomalyScorer(detectors=default_detectors(seed=0))
    out = []
    for c in candles:
        st_ = scorer._stream(c.symbol, c.interval, c.window_start)
        _, results = st_.step(c)
        out += [(c.symbol, c.interval, c.window_start, d.name, s, sev)
                for d, (s, sev) in zip(st_.detectors, results, strict=True)]
    resets = sum(d.resets for key in scorer.streams for d in scorer._streams[key].detectors
                 if isinstance(d, _RiverDetector))
    return out, resets


def test_the_scorer_scores_as_with_rivers_own_classes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default detectors on a market with crashes and regime changes: every score and
    flag equal to those of the detectors built on River's Quantile, ADWIN and HalfSpaceTrees."""
    candles = sorted((c for sym in ("BTC-USD", "ETH-USD") for iv in ("1m", "5m")
                      for c in _market(sym, iv, random.Random(f"{sym}{iv}"))),
                     key=lambda c: (c.window_end, c.symbol, c.interval))
    ours, our_resets = _scores(candles)
    monkeypatch.setattr(thresholds_module, "Quantile", lambda q: stats.Quantile(q=q))
    monkeypatch.setattr(learned_module, "ADWIN", drift.ADWIN)
    monkeypatch.setattr(hst_module, "_FlatHalfSpaceTrees", _river_hst)
    rivers, river_resets = _scores(candles)
    assert our_resets == river_resets > 0  # the drift resets were exercised
    assert len(ours) == len(rivers)
    for a, b in zip(ours, rivers, strict=True):
        assert a[:4] == b[:4]
        assert a[4] == b[4] or (math.isnan(a[4]) and math.isnan(b[4])), (a, b)
        assert a[5] == b[5], (a, b)
    assert any(a[5] is not None for a in ours)


def test_a_consumer_scoring_candles_never_imports_scipy() -> None:
    """River's ``stats``, ``drift``, ``anomaly`` and ``tree`` packages load SciPy (~75 MiB)."""
    code = (
        "import sys\n"
        "from cryptolab.anomaly import AnomalyScorer\n"
        "from cryptolab.models import Candle\n"
        "s = AnomalyScorer()\n"
        "for i in range(40):\n"
        "    ws = 60_000 * i\n"
        "    c = Candle(symbol='X', interval='1m', window_start=ws, window_end=ws + 60_000,\n"
        "               open=100.0, high=101.0 + i % 3, low=99.0, close=100.0 + i % 2, volume=1.0,\n"
        "               vwap=None, trades=3, first_ts=ws, last_ts=ws, high_ts=ws, low_ts=ws, final=True)\n"
        "    s.score([c])\n"
        "heavy = ['scipy', 'river.stats', 'river.drift', 'river.anomaly', 'river.tree', 'pandas']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
