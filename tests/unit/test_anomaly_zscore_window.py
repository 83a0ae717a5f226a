"""The robust z-score's shared rolling window gives River's rolling statistics, bit for bit."""

from __future__ import annotations

import random
import sys

from hypothesis import given, settings
from hypothesis import strategies as st
from river import stats

from cryptolab.anomaly.detectors import RobustZScoreDetector, _RobustZModel, _RollingWindow

values = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1.0, 1.0, 2.5]),  # ties
)


@settings(max_examples=150, deadline=None)
@given(size=st.integers(1, 60), xs=st.lists(values, min_size=1, max_size=200))
def test_quantiles_equal_rivers_rolling_quantile_and_iqr(size: int, xs: list[float]) -> None:
    window = _RollingWindow(size)
    median = stats.RollingQuantile(0.5, size)
    spread = stats.RollingIQR(size, 0.1, 0.9)
    for i, x in enumerate(xs):
        window.update(x)
        median.update(x)
        spread.update(x)
        assert len(window) == min(size, i + 1)
        assert window.quantile(0.5) == median.get()
        assert window.quantile(0.9) - window.quantile(0.1) == spread.get()


class _RiverStatsZ:
    """The robust z-score model written with river.stats windows (the reference)."""

    def __init__(self, features: tuple[str, ...], window: int, floor: float) -> None:
        self.floor = floor
        self.median = {f: stats.RollingQuantile(0.5, window) for f in features}
        self.spread = {f: stats.RollingIQR(window, 0.1, 0.9) for f in features}

    def learn_one(self, x: dict[str, float]) -> None:
        for f, m in self.median.items():
            m.update(x[f])
            self.spread[f].update(x[f])

    def z(self, x: dict[str, float]) -> dict[str, float]:
        return {f: (x[f] - m.get()) / max(self.spread[f].get() / 2.5631, self.floor)
                for f, m in self.median.items()}


def test_model_z_scores_equal_the_river_stats_reference() -> None:
    rng = random.Random(7)
    features = ("ret", "body", "range")
    ours = _RobustZModel(features, window=40, warmup=1, floors=dict.fromkeys(features, 1e-4))
    ref = _RiverStatsZ(features, 40, 1e-4)
    for i in range(400):
        m = rng.gauss(0, 0.002) * (8 if i % 37 == 0 else 1)
        x = {"ret": m, "body": round(m * 0.9, 5), "range": abs(m) + 0.001}
        if i:
            assert ours.z(x) == ref.z(x)
        ours.learn_one(x)
        ref.learn_one(x)


def test_detector_scores_are_the_models_largest_z() -> None:
    det = RobustZScoreDetector(window=40, warmup=10, seed=1)
    rng = random.Random(3)
    for _ in range(60):
        m = rng.gauss(0, 0.002)
        det.learn_one({"ret": m, "body": m, "range": abs(m) + 0.001})
    x = {"ret": 0.03, "body": 0.03, "range": 0.031}
    model = det.model
    assert det.score_one(x) == max(abs(v) for v in model.z(x).values()) > 12


def test_a_full_window_holds_two_float_arrays_and_nothing_more() -> None:
    """240 values in a ring and in sorted order: about 3.8 KiB, where River's rolling median
    and 10%-90% range keep three windows of their own (measured ~27 KiB per feature)."""
    window = _RollingWindow(240)
    rng = random.Random(1)
    for _ in range(1000):
        window.update(rng.random())
    arrays = (window._ring, window._sorted)
    assert [len(a) for a in arrays] == [240, 240]
    assert all(a.typecode == "d" for a in arrays)
    held = sys.getsizeof(window) + sum(sys.getsizeof(a) for a in arrays)
    assert held < 2 * 240 * 8 * 1.15 + 400, held
