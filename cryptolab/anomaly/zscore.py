"""``zscore``: the robust z-score of the candle's move, with rolling statistics as River computes them.

The score is the largest, over ``features``, of ``|x - rolling median| /
(rolling 10%-90% range / 2.563)``: the statistics are those of
``river.stats.RollingQuantile`` and ``river.stats.RollingIQR``, bit for bit,
from one shared sorted window per feature (:class:`_RollingWindow`). The
threshold, the learning behind it and the drift resets are those of every
learning detector (:mod:`cryptolab.anomaly.learned`).

Examples
--------
>>> det = RobustZScoreDetector()
>>> det.policy
QuantileThreshold(FixedThreshold(low=12.0, medium=20.0, high=35.0), q=0.98)
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, insort
from collections.abc import Mapping, Sequence
from typing import Any, Final

from river import base

from cryptolab.anomaly.learned import _RiverDetector
from cryptolab.errors import ValidationError

__all__ = ["RobustZScoreDetector"]


#: Width of the 10%-90% range of a normal distribution, in standard deviations.
_IDR_SIGMAS: Final = 2.5631


class _RollingWindow:
    """The last ``size`` values, kept sorted: any rolling quantile, as ``river.stats`` computes it.

    ``river.stats.RollingQuantile`` and ``RollingIQR`` keep one window each (a
    rolling median and a 10%-90% range are three windows of the same values,
    ~35 KiB per feature in River's native buffers). One sorted ``array('d')``
    and one ring buffer answer all three, interpolating between order statistics
    exactly as River does (``tests/unit/test_anomaly_zscore_window.py`` checks
    equality with River to the last bit).

    Examples
    --------
    >>> w = _RollingWindow(3)
    >>> for v in (5.0, 1.0, 3.0, 9.0):
    ...     w.update(v)
    >>> w.quantile(0.5), w.quantile(0.9) - w.quantile(0.1)   # of 1, 3 and 9: 5 has left
    (3.0, 6.4)
    """

    __slots__ = ("_pos", "_ring", "_sorted", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._ring = array("d")    # arrival order (a circular buffer once full)
        self._sorted = array("d")  # the same values, ascending
        self._pos = 0

    def __len__(self) -> int:
        return len(self._sorted)

    def update(self, x: float) -> None:
        """Add ``x``; past ``size`` values, the oldest leaves."""
        if len(self._ring) == self.size:
            old = self._ring[self._pos]
            self._ring[self._pos] = x
            self._pos = (self._pos + 1) % self.size
            del self._sorted[bisect_left(self._sorted, old)]
        else:
            self._ring.append(x)
        insort(self._sorted, x)

    def quantile(self, q: float) -> float:
        """The ``q`` quantile, linearly interpolated between order statistics (River's rule)."""
        s = self._sorted
        idx = q * (len(s) - 1)
        lower = math.floor(idx)
        higher = min(lower + 1, len(s) - 1)
        return s[lower] + (s[higher] - s[lower]) * (idx - lower)


class _RobustZModel(base.AnomalyDetector):  # type: ignore[misc]
    """Max over features of ``|x - rolling median| / (rolling inter-decile range / 2.563)``."""

    def __init__(self, features: tuple[str, ...], window: int, warmup: int, floors: dict[str, float]) -> None:
        self.features = features
        self.window = window
        self.warmup = warmup
        self.floors = floors
        self.n = 0
        self._windows = {f: _RollingWindow(window) for f in features}

    @property
    def ready(self) -> bool:
        return self.n >= self.warmup

    def warm_start(self, samples: list[dict[str, float]]) -> None:
        for x in samples:
            self.learn_one(x)

    def learn_one(self, x: dict[Any, Any]) -> None:
        for f in self.features:
            v = x[f]
            self._windows[f].update(v)
        self.n += 1

    def z(self, x: Mapping[str, float]) -> dict[str, float]:
        out = {}
        for f in self.features:
            w = self._windows[f]
            if not w:
                out[f] = 0.0
                continue
            med = w.quantile(0.5)
            spread = w.quantile(0.9) - w.quantile(0.1)
            scale = max(spread / _IDR_SIGMAS, self.floors.get(f, 1e-4))
            out[f] = (x[f] - med) / scale
        return out

    def score_one(self, x: dict[Any, Any]) -> float:
        if not self.ready:
            return 0.0
        return max(abs(v) for v in self.z(x).values())


class RobustZScoreDetector(_RiverDetector):
    """Robust z-score of the candle's move, with rolling statistics as ``river.stats`` computes them.

    For each feature in ``features`` the score uses the median and the
    10%-90% range of the last ``window`` learnt candles (the values of
    ``river.stats.RollingQuantile`` and ``river.stats.RollingIQR`` at 10% and 90%,
    from one shared sorted window per feature):
    ``z = |x - median| / max((q90 - q10) / 2.563, floor)``; the detector's score is
    the largest ``z``. Candles flagged as anomalous are not learnt, so a
    crash does not widen the scale that judges the next candles. The threshold
    (``policy``) is a :class:`~cryptolab.anomaly.thresholds.QuantileThreshold`
    (level ``q``) over a :class:`~cryptolab.anomaly.thresholds.FixedThreshold`
    (``threshold``, ``medium``, ``high``).

    Parameters
    ----------
    features
        Feature names (see :data:`~cryptolab.anomaly.features.FEATURE_NAMES`).
    window
        Rolling window of the median and the 10%-90% range, in candles.
    warmup
        Candles learnt before the first non-zero score.
    q
        Level of the quantile of the scores an alert must reach (River's
        ``QuantileFilter``): the alert rate stays below about ``1 - q``.
    threshold, medium, high
        Minimum z for LOW, MEDIUM and HIGH alerts.
    floor
        Smallest scale (a relative move), so a flat market does not alert on
        a one-tick move.
    drift_delta
        ADWIN's ``delta`` for the reset on regime change, or ``None`` for no reset.
    name, seed
        Detector name; seed (the model itself draws no random numbers).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(1)
    >>> det = RobustZScoreDetector(warmup=20)
    >>> for _ in range(200):
    ...     m = rng.gauss(0, 0.001)
    ...     det.learn_one({"ret": m, "body": m, "range": abs(m) + 0.001})
    >>> calm = det.score_one({"ret": 0.0005, "body": 0.0005, "range": 0.0015})
    >>> crash = det.score_one({"ret": -0.04, "body": -0.04, "range": 0.041})
    >>> det.flag(calm), det.flag(crash)
    (None, 'HIGH')
    """

    _params = (
        "features", "window", "warmup", "q", "threshold", "medium", "high",
        "floor", "drift_delta", "name",
    )

    def __init__(
        self,
        *,
        features: Sequence[str] = ("ret", "body", "range"),
        window: int = 240,
        warmup: int = 10,
        q: float = 0.98,
        threshold: float = 12.0,
        medium: float = 20.0,
        high: float = 35.0,
        floor: float = 1e-4,
        drift_delta: float | None = 0.002,
        name: str = "zscore",
        seed: int = 0,
    ) -> None:
        if window < 4:
            raise ValidationError("window", f"must be >= 4, got {window}")
        if not floor > 0:
            raise ValidationError("floor", f"must be > 0, got {floor}")
        self.window = int(window)
        self.floor = float(floor)
        self._init_common(
            features=features, q=q, threshold=threshold, medium=medium, high=high,
            warmup=warmup, drift_delta=drift_delta, name=name, seed=seed,
        )

    def _make_model(self, seed: int) -> _RobustZModel:
        return _RobustZModel(
            self.features, self.window, self.warmup, dict.fromkeys(self.features, self.floor)
        )

    def zscores(self, x: Mapping[str, float]) -> dict[str, float]:
        """The signed z of each feature (what drove the score)."""
        return dict(self._model.z(self._x(x)))
