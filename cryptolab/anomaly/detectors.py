"""Anomaly detectors for closed candles: the intra-candle rule and River models.

Every detector follows one protocol (:class:`Detector`), River's one-sample
verbs applied *prequentially*: for each candle, ``score_one`` first, then
``flag(score)``, then ``learn_one``. Scoring never changes the detector, so a
sample's score cannot depend on having learnt it.

Detectors are deterministic given their ``seed`` and the sequence of features
they learn: :class:`~cryptolab.anomaly.AnomalyScorer` gives every
(symbol, interval) stream its own clone seeded from a stable hash
(:func:`stream_seed`), which is what makes alerts after a restart equal those
of an uninterrupted run.

=============== ==================================================================
``rule``        ``|close - open| / open`` >= 5% (LOW), 7% (MEDIUM), 10% (HIGH)
``zscore``      robust z-score of the candle's return, body and range (rolling
                median and 10%-90% range, as :mod:`river.stats` computes
                them); alert when z >= 12 and above River's
                ``QuantileFilter`` (q = 0.98)
``hst``         River ``HalfSpaceTrees`` on the magnitudes of return, body and
                range, scaled by a warm-up; alert when the score >= 0.9 and
                above River's ``QuantileFilter`` (q = 0.98)
``ensemble``    ``zscore`` and ``hst`` must agree (both flag the candle)
=============== ==================================================================

The River detectors reset themselves after a regime change detected by
``river.drift.ADWIN`` on the candle's log range: the model is rebuilt from the
last ``3 * warmup`` candles (mostly from the new regime, since ADWIN notices a
change a few candles after it happens), so it adapts at once instead of
alerting through a whole new volatility regime.

Examples
--------
>>> det = RuleDetector()
>>> det.score_one({"body": -0.08}), det.flag(0.08), det.flag(0.01)
(0.08, 'MEDIUM', None)
>>> sorted(DETECTORS)
['ensemble', 'hst', 'rule', 'zscore']
>>> [d.name for d in default_detectors(seed=0)]
['rule', 'zscore', 'hst', 'ensemble']
"""

from __future__ import annotations

import copy
import logging
import math
import pickle
import zlib
from array import array
from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Final, Literal, Protocol, Self, runtime_checkable

from river import anomaly, base, drift
from river.tree.padded import make_padded_tree

from cryptolab.errors import ValidationError

__all__ = [
    "DETECTORS",
    "SEVERITIES",
    "BaseDetector",
    "Detector",
    "EnsembleDetector",
    "HalfSpaceTreesDetector",
    "RobustZScoreDetector",
    "RuleDetector",
    "Severity",
    "default_detectors",
    "make_detectors",
    "stream_seed",
]

log = logging.getLogger(__name__)

Severity = Literal["LOW", "MEDIUM", "HIGH"]
#: Severities from least to most severe.
SEVERITIES: Final[tuple[Severity, ...]] = ("LOW", "MEDIUM", "HIGH")


def stream_seed(seed: int, symbol: str, interval: str, detector: str) -> int:
    """A stable 32-bit seed for one detector on one (symbol, interval) stream.

    Uses CRC-32 (never Python's salted ``hash()``), so it is the same in every
    process and on every machine.

    Examples
    --------
    >>> stream_seed(0, "BTC-USD", "1m", "hst")
    892702522
    >>> stream_seed(0, "BTC-USD", "1m", "hst") == stream_seed(1, "BTC-USD", "1m", "hst")
    False
    """
    return zlib.crc32(f"{seed}|{symbol}|{interval}|{detector}".encode())


@runtime_checkable
class Detector(Protocol):
    """What every anomaly detector offers (River's verbs, plus a severity).

    ``score_one`` must not change the detector; ``learn_one`` folds a sample
    in; ``flag`` turns a score into a severity (or ``None``) using the
    detector's current threshold. ``clone`` returns a fresh, unfitted copy
    with the same parameters (optionally another seed); ``snapshot`` returns
    the full state as bytes.
    """

    name: str
    seed: int

    def score_one(self, x: Mapping[str, float]) -> float:
        """Anomaly score of ``x`` (higher is more anomalous); no side effect."""
        ...

    def learn_one(self, x: Mapping[str, float]) -> None:
        """Learn ``x``."""
        ...

    def flag(self, score: float) -> Severity | None:
        """Severity of ``score`` under the current threshold, or ``None``."""
        ...

    def clone(self, *, seed: int | None = None) -> Detector:
        """A fresh, unfitted detector with the same parameters."""
        ...

    def snapshot(self) -> bytes:
        """The detector's full state (restore with :meth:`BaseDetector.restore`)."""
        ...


class BaseDetector:
    """Shared plumbing: parameters, ``clone``, ``snapshot``/``restore``, ``repr``.

    Subclasses list their constructor parameters in ``_params`` and implement
    ``score_one``, ``learn_one`` and ``flag``.
    """

    name: str
    seed: int
    _params: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, name: str = "detector", seed: int = 0) -> None:
        self.name = name
        self.seed = seed

    def score_one(self, x: Mapping[str, float]) -> float:  # pragma: no cover - abstract
        """Anomaly score of ``x`` (higher is more anomalous); no side effect."""
        raise NotImplementedError

    def learn_one(self, x: Mapping[str, float]) -> None:  # pragma: no cover - abstract
        """Learn ``x``."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """The constructor parameters (without ``seed``)."""
        return {p: copy.deepcopy(getattr(self, p)) for p in self._params}

    def clone(self, *, seed: int | None = None) -> Self:
        """A fresh, unfitted detector with the same parameters and ``seed`` (default: same)."""
        return type(self)(**self.params(), seed=self.seed if seed is None else seed)

    def flag(self, score: float) -> Severity | None:  # pragma: no cover - abstract
        """Severity of ``score`` under the current threshold, or ``None``."""
        raise NotImplementedError

    def level(self, score: float) -> float:
        """``score`` on a common scale: 1, 2, 3 for LOW, MEDIUM, HIGH; below 1 when not flagged.

        Below 1 it is the fraction of the current threshold that ``score``
        reaches (capped just under 1), so detectors with different score
        scales can be combined (see :class:`EnsembleDetector`).
        """
        sev = self.flag(score)
        if sev is not None:
            return float(SEVERITIES.index(sev) + 1)
        thr = self._threshold_now()
        return 0.0 if not thr > 0 or not score > 0 else min(score / thr, 0.999)

    def _threshold_now(self) -> float:
        return math.inf

    def snapshot(self) -> bytes:
        """The full state as bytes (pickle: restore only snapshots you made yourself)."""
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def restore(cls, blob: bytes) -> Self:
        """Rebuild a detector from :meth:`snapshot` (trusted bytes only: this unpickles)."""
        obj = pickle.loads(blob)  # documented: restore only your own snapshots
        if not isinstance(obj, cls):
            raise ValidationError("snapshot", f"is a {type(obj).__name__}, not a {cls.__name__}")
        return obj

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args}, seed={self.seed})"


def _check_levels(low: float, medium: float, high: float) -> None:
    if not (math.isfinite(low) and 0 < low <= medium <= high and math.isfinite(high)):
        raise ValidationError("levels", f"need 0 < low <= medium <= high, got {low}, {medium}, {high}")


def _severity(score: float, low: float, medium: float, high: float) -> Severity | None:
    if not score >= low:  # also False for NaN
        return None
    if score >= high:
        return "HIGH"
    if score >= medium:
        return "MEDIUM"
    return "LOW"


class RuleDetector(BaseDetector):
    """The classic intra-candle rule: ``|close - open| / open`` above a level.

    No learning: the score is the absolute body of the candle, and the
    severity is LOW at 5%, MEDIUM at 7% and HIGH at 10% (each level included).

    Parameters
    ----------
    low, medium, high
        Severity levels of the absolute body.
    name
        Detector name (the ``detector`` column of alerts).
    seed
        Unused (the rule is deterministic); kept for the common interface.

    Examples
    --------
    >>> rule = RuleDetector()
    >>> [rule.flag(rule.score_one({"body": b})) for b in (0.049, 0.05, -0.07, 0.12)]
    [None, 'LOW', 'MEDIUM', 'HIGH']
    """

    _params = ("low", "medium", "high", "name")

    def __init__(
        self,
        *,
        low: float = 0.05,
        medium: float = 0.07,
        high: float = 0.10,
        name: str = "rule",
        seed: int = 0,
    ) -> None:
        _check_levels(low, medium, high)
        self.low, self.medium, self.high = float(low), float(medium), float(high)
        self.name = name
        self.seed = seed

    def score_one(self, x: Mapping[str, float]) -> float:
        """``|body|``, the candle's relative open-to-close move."""
        return abs(float(x["body"]))

    def learn_one(self, x: Mapping[str, float]) -> None:
        """Nothing to learn."""

    def flag(self, score: float) -> Severity | None:
        """LOW / MEDIUM / HIGH at the fixed levels."""
        return _severity(score, self.low, self.medium, self.high)

    def _threshold_now(self) -> float:
        return self.low


class _WarmQuantileFilter(anomaly.QuantileFilter):  # type: ignore[misc]
    """River's QuantileFilter that ignores the scores of a detector still warming up.

    A detector that is not ready returns 0; feeding those zeros to the score
    quantile would pin the threshold at 0 and, with
    ``protect_anomaly_detector``, stop the detector from ever learning again.
    """

    def learn_one(self, x: Any, score: float | None = None) -> None:
        """River's ``QuantileFilter.learn_one``, reusing ``score`` when the caller has it."""
        det: Any = self.anomaly_detector
        if not det.ready:
            det.learn_one(x)
            return
        if score is None:
            score = float(self.score_one(x))  # type: ignore[no-untyped-call]
        if not self.protect_anomaly_detector or not self.classify(score):  # type: ignore[no-untyped-call]
            det.learn_one(x)
        self.quantile.update(score)


class _RiverDetector(BaseDetector):
    """A River anomaly model behind a QuantileFilter threshold, reset on ADWIN drift.

    Subclasses provide ``_make_model(seed)`` (a River ``AnomalyDetector`` with
    a ``ready`` attribute) and the default parameters.
    """

    features: tuple[str, ...]
    q: float
    threshold: float
    medium: float
    high: float
    warmup: int
    drift_delta: float | None
    _filter: _WarmQuantileFilter

    def _init_common(
        self,
        *,
        features: Sequence[str],
        q: float,
        threshold: float,
        medium: float,
        high: float,
        warmup: int,
        drift_delta: float | None,
        name: str,
        seed: int,
    ) -> None:
        if not features:
            raise ValidationError("features", "need at least one feature")
        if not 0 < q < 1:
            raise ValidationError("q", f"must be in (0, 1), got {q}")
        _check_levels(threshold, medium, high)
        if warmup < 2:
            raise ValidationError("warmup", f"must be >= 2, got {warmup}")
        if drift_delta is not None and not 0 < drift_delta < 1:
            raise ValidationError("drift_delta", f"must be in (0, 1) or None, got {drift_delta}")
        self.features = tuple(features)
        self.q = float(q)
        self.threshold, self.medium, self.high = float(threshold), float(medium), float(high)
        self.warmup = int(warmup)
        self.drift_delta = drift_delta
        self.name = name
        self.seed = seed
        self.resets = 0
        self.n_learned = 0
        # the features of the last 3 * warmup candles, flat in ``features`` order (a dict per
        # candle would take 10x the memory, for thousands of streams)
        self._recent = array("d")
        self._memo: tuple[dict[str, float], float] | None = None
        self._adwin: Any = (
            drift.ADWIN(delta=drift_delta, clock=1)  # type: ignore[no-untyped-call]
            if drift_delta is not None
            else None
        )
        self._filter = _WarmQuantileFilter(self._make_model(seed), q=self.q, protect_anomaly_detector=True)

    def _make_model(self, seed: int) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _drift_signal(self, x: Mapping[str, float]) -> float:
        return math.log(max(float(x.get("range", 0.0)), 1e-9))

    @property
    def ready(self) -> bool:
        """Whether the model is past its warm-up (scores are 0 before)."""
        det: Any = self._filter.anomaly_detector
        return bool(det.ready)

    @property
    def current_threshold(self) -> float:
        """The score an alert needs now: the larger of ``threshold`` and the score quantile."""
        qv = self._filter.quantile.get() if self.ready else None
        return self.threshold if qv is None else max(self.threshold, float(qv))

    def _threshold_now(self) -> float:
        return self.current_threshold if self.ready else math.inf

    def _x(self, x: Mapping[str, float]) -> dict[str, float]:
        return {f: float(x[f]) for f in self.features}

    def score_one(self, x: Mapping[str, float]) -> float:
        """The model's score of ``x`` (0 while warming up); no side effect.

        The score is remembered (outside the detector's state) so that
        ``learn_one`` of the same sample does not compute it again.
        """
        xs = self._x(x)
        memo = self._memo
        if memo is not None and memo[0] == xs:
            return memo[1]
        score = float(self._filter.score_one(xs))
        self._memo = (xs, score)
        return score

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_memo"] = None  # a cache, not state
        return state

    def flag(self, score: float) -> Severity | None:
        """An alert needs the score above both the QuantileFilter's quantile and ``threshold``.

        The quantile (level ``q``) caps the alert rate at about ``1 - q`` of
        the candles; ``threshold`` keeps a quiet stream from alerting on its
        own noise. Severity is LOW above that, MEDIUM from ``medium``, HIGH
        from ``high``.
        """
        if not self.ready or not self._filter.classify(score):  # type: ignore[no-untyped-call]
            return None
        return _severity(score, self.threshold, max(self.threshold, self.medium), max(self.threshold, self.high))

    def learn_one(self, x: Mapping[str, float]) -> None:
        """Learn ``x`` (anomalous samples are not learnt by the model); reset on drift."""
        xs = self._x(x)
        memo, self._memo = self._memo, None
        self._filter.learn_one(xs, memo[1] if memo is not None and memo[0] == xs else None)
        recent = self._recent
        recent.extend(xs.values())
        if len(recent) > 3 * self.warmup * len(self.features):
            del recent[: len(self.features)]
        self.n_learned += 1
        if self._adwin is None:
            return
        self._adwin.update(self._drift_signal(x))
        if self._adwin.drift_detected and self.ready:
            # Rebuild from the last ``3 * warmup`` candles: ADWIN notices a
            # change a few candles after it happens, so most of them already
            # belong to the new regime.
            nf = len(self.features)
            rows = [self._recent[i : i + nf] for i in range(0, len(self._recent), nf)]
            self._reset([dict(zip(self.features, row, strict=True)) for row in rows])

    def _reset(self, samples: Iterable[dict[str, float]]) -> None:
        """Rebuild the model (same threshold state) from ``samples``."""
        self.resets += 1
        model = self._make_model(self.seed + self.resets)
        model.warm_start(list(samples))
        self._filter.anomaly_detector = model
        log.debug("%s: drift detected after %d samples, model reset (%d)", self.name, self.n_learned, self.resets)


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
    crash does not widen the scale that judges the next candles.

    Parameters
    ----------
    features
        Feature names (see :data:`~cryptolab.anomaly.features.FEATURE_NAMES`).
    window
        Rolling window of the median and the 10%-90% range, in candles.
    warmup
        Candles learnt before the first non-zero score.
    q
        Level of River's ``QuantileFilter`` over the scores: the alert rate
        stays below about ``1 - q``.
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
        model: Any = self._filter.anomaly_detector
        return dict(model.z(self._x(x)))


class _FlatHalfSpaceTrees(anomaly.HalfSpaceTrees):  # type: ignore[misc]
    """River's ``HalfSpaceTrees`` with its trees stored flat: same model, ~5% of the memory.

    River keeps every node of every tree as a Python object (10 trees of
    height 4 are 310 objects, about 80 KiB); a consumer scoring thousands of
    (symbol, interval) streams holds one model per stream. Here the trees are
    built by River's own ``make_padded_tree`` from the same random generator,
    then laid out in heap order (node ``i`` has children ``2i + 1`` and
    ``2i + 2``) in typed arrays: split features and thresholds per branch,
    masses per node. Learning, the window pivot and scoring follow River's
    ``_walk_learn`` and ``_walk_score`` step for step, so scores are equal to
    River's to the last bit (``tests/unit/test_anomaly_hst_flat.py``).
    """

    def __init__(self, n_trees: int, height: int, window_size: int, seed: int | None) -> None:
        super().__init__(n_trees=n_trees, height=height, window_size=window_size, seed=seed)
        self._names: tuple[Any, ...] = ()
        self._feature = array("H")     # per branch (n_trees x (2**height - 1)): index into _names
        self._threshold = array("d")   # per branch
        self._l_mass = array("i")      # per node (n_trees x (2**(height + 1) - 1))
        self._r_mass = array("i")

    def _build(self, x: Mapping[Any, float]) -> None:
        self._names = tuple(sorted(x))
        index = {name: i for i, name in enumerate(self._names)}
        branches = 2**self.height - 1
        nodes = 2 ** (self.height + 1) - 1
        for _ in range(self.n_trees):
            root = make_padded_tree(  # type: ignore[no-untyped-call]
                limits={i: self.limits[i] for i in self._names}, height=self.height,
                padding=0.15, rng=self.rng, r_mass=0, l_mass=0,
            )
            level = [root]
            feature = [0] * branches
            threshold = [0.0] * branches
            i = 0
            while i < branches:  # breadth first: heap order
                nxt = []
                for node in level:
                    feature[i] = index[node.feature]
                    threshold[i] = node.threshold
                    nxt.extend(node.children)
                    i += 1
                level = nxt
            self._feature.extend(feature)
            self._threshold.extend(threshold)
        self._l_mass = array("i", bytes(self._l_mass.itemsize * nodes * self.n_trees))
        self._r_mass = array("i", self._l_mass)
        self.rng = None  # type: ignore[assignment]  # only the trees needed it: 2.5 KiB less per model

    def _path(self, x: Mapping[Any, float], t: int) -> list[int]:
        """The nodes (heap indices, from the root) that ``x`` visits in tree ``t``.

        Where a split feature is missing from ``x``, the walk goes down the child
        with the larger ``l_mass`` (River's rule).
        """
        branches = 2**self.height - 1
        base_b, base_n = t * branches, t * (2 * branches + 1)
        names, feature, threshold, mass = self._names, self._feature, self._threshold, self._l_mass
        i = 0
        path = [0]
        for _ in range(self.height):
            try:
                value = x[names[feature[base_b + i]]]
            except KeyError:
                left = 2 * i + 1
                i = left + 1 if mass[base_n + left] < mass[base_n + left + 1] else left
            else:
                i = 2 * i + 1 if value < threshold[base_b + i] else 2 * i + 2
            path.append(i)
        return path

    def _leaves(self, x: Mapping[Any, float]) -> list[list[int]] | None:
        """Every tree's path (:meth:`_path`) when ``x`` lacks a split feature, else ``None``."""
        if all(name in x for name in self._names):
            return None
        return [self._path(x, t) for t in range(self.n_trees)]

    def learn_one(self, x: Mapping[Any, float]) -> None:
        """As River's ``learn_one``."""
        if not self._names:
            self._build(x)
        height = self.height
        branches = 2**height - 1
        nodes = 2 * branches + 1
        l_mass = self._l_mass
        paths = self._leaves(x)
        if paths is None:  # every feature present: the walk inlined
            values = [x[name] for name in self._names]
            feature, threshold = self._feature, self._threshold
            base_b = base_n = 0
            for _ in range(self.n_trees):
                i = 0
                for _ in range(height):
                    l_mass[base_n + i] += 1
                    b = base_b + i
                    i = 2 * i + 1 if values[feature[b]] < threshold[b] else 2 * i + 2
                l_mass[base_n + i] += 1
                base_b += branches
                base_n += nodes
        else:
            for t, path in enumerate(paths):
                for i in path:
                    l_mass[t * nodes + i] += 1
        self.counter += 1
        if self.counter == self.window_size:
            self._r_mass = l_mass
            self._l_mass = array("i", bytes(l_mass.itemsize * len(l_mass)))
            self._first_window = False
            self.counter = 0

    def score_one(self, x: Mapping[Any, float]) -> float:
        """As River's ``score_one``."""
        if self._first_window:
            return 0
        size_limit = 0.1 * self.window_size
        height = self.height
        branches = 2**height - 1
        nodes = 2 * branches + 1
        r_mass = self._r_mass
        paths = self._leaves(x)
        values = [x[name] for name in self._names] if paths is None else []
        feature, threshold = self._feature, self._threshold
        score = 0.0
        for t in range(self.n_trees):
            base_b, base_n = t * branches, t * nodes
            path = paths[t] if paths is not None else None
            i = 0
            depth_pow = 1
            tree_score = 0.0
            for d in range(height):
                r = r_mass[base_n + i]
                tree_score += r * depth_pow
                if r < size_limit:
                    break
                if path is None:
                    b = base_b + i
                    i = 2 * i + 1 if values[feature[b]] < threshold[b] else 2 * i + 2
                else:
                    i = path[d + 1]
                depth_pow <<= 1
            else:
                tree_score += r_mass[base_n + i] * depth_pow
            score += tree_score
        return 1 - score / self._max_score  # type: ignore[no-any-return]


class _ScaledHST(base.AnomalyDetector):  # type: ignore[misc]
    """HalfSpaceTrees on features min-max scaled by limits fitted on a warm-up, clipped to [0, 1]."""

    def __init__(
        self,
        features: tuple[str, ...],
        warmup: int,
        headroom: float,
        n_trees: int,
        height: int,
        window_size: int,
        seed: int,
    ) -> None:
        self.features = features
        self.warmup = warmup
        self.headroom = headroom
        self.seed = seed
        self.hst = _FlatHalfSpaceTrees(n_trees, height, window_size, seed)
        self.lo: dict[str, float] = {}
        self.span: dict[str, float] = {}
        self._buffer: list[dict[str, float]] = []

    @property
    def ready(self) -> bool:
        return bool(self.span) and not self.hst._first_window

    def _scale(self, x: Mapping[str, float]) -> dict[str, float]:
        out = {}
        for f in self.features:
            v = (x[f] - self.lo[f]) / self.span[f]
            out[f] = 0.0 if v < 0.0 else 1.0 if v > 1.0 else v
        return out

    def _fit(self) -> None:
        for f in self.features:
            values = sorted(abs(s[f]) for s in self._buffer)
            # Magnitudes: 0 maps to 0 and ``headroom`` times the warm-up's 80th
            # percentile to 1, so typical candles fill the bottom of [0, 1] and
            # the rest is room for what the warm-up never saw. Not the maximum:
            # a crash inside the warm-up must not set the scale (the 80th
            # percentile of 10 candles ignores their 2 largest).
            p80 = values[int(0.8 * (len(values) - 1))]
            self.lo[f] = 0.0
            self.span[f] = max(p80, 1e-9) * self.headroom
        for s in self._buffer:
            self.hst.learn_one(self._scale(s))  # type: ignore[no-untyped-call]
        self._buffer = []

    def warm_start(self, samples: list[dict[str, float]]) -> None:
        """Fit the scaling on all of ``samples`` (at least ``warmup``) and learn them."""
        if len(samples) < self.warmup:
            for x in samples:
                self.learn_one(x)
            return
        self._buffer = [dict(x) for x in samples]
        self._fit()

    def learn_one(self, x: dict[Any, Any]) -> None:
        if not self.span:
            self._buffer.append(dict(x))
            if len(self._buffer) >= self.warmup:
                self._fit()
            return
        self.hst.learn_one(self._scale(x))  # type: ignore[no-untyped-call]

    def score_one(self, x: dict[Any, Any]) -> float:
        if not self.ready:
            return 0.0
        return float(self.hst.score_one(self._scale(x)))  # type: ignore[no-untyped-call]


class HalfSpaceTreesDetector(_RiverDetector):
    """River's ``HalfSpaceTrees`` on candle features scaled by a warm-up.

    HalfSpaceTrees needs features in ``[0, 1]``: the detector buffers the
    first ``warmup`` candles, then scales each feature's magnitude so that 0
    maps to 0 and ``headroom`` times the warm-up's 80th-percentile magnitude
    maps to 1, and clips (not the maximum, so that a crash inside the warm-up
    does not set the scale). Typical candles fill the bottom of ``[0, 1]``; the rest is
    room for moves the warm-up never saw. Magnitudes (absolute return and
    body, range) are used, since a crash and a spike are equally anomalous.
    After an ADWIN drift the scaling is fitted again on the recent candles.
    Threshold as for every River detector: River's ``QuantileFilter`` (level
    ``q``) and a minimum ``threshold``.

    Parameters
    ----------
    features
        Feature names; ``ret``, ``body`` and ``vwap_dev`` are taken in absolute value.
    warmup
        Candles used to fit the scaling (at least ``window_size``).
    headroom
        The magnitude that maps to 1, as a multiple of the warm-up's 80th-percentile magnitude.
    n_trees, height, window_size
        As in ``river.anomaly.HalfSpaceTrees``.
    q, threshold, medium, high, drift_delta, name, seed
        As in :class:`RobustZScoreDetector` (scores are in ``[0, 1]``).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(2)
    >>> det = HalfSpaceTreesDetector(warmup=60, window_size=60, seed=3)
    >>> def feats(m):
    ...     return {"ret": m, "body": m, "range": abs(m) + 0.001, "upper_wick": 0.0005,
    ...             "lower_wick": 0.0005}
    >>> for _ in range(300):
    ...     det.learn_one(feats(rng.gauss(0, 0.001)))
    >>> det.score_one(feats(0.05)) > det.score_one(feats(0.0005))
    True
    """

    _params = (
        "features", "warmup", "headroom", "n_trees", "height", "window_size", "q",
        "threshold", "medium", "high", "drift_delta", "name",
    )
    _ABS: ClassVar[frozenset[str]] = frozenset({"ret", "body", "vwap_dev"})

    def __init__(
        self,
        *,
        features: Sequence[str] = ("ret", "body", "range"),
        warmup: int = 10,
        headroom: float = 12.0,
        n_trees: int = 10,
        height: int = 4,
        window_size: int = 10,
        q: float = 0.98,
        threshold: float = 0.9,
        medium: float = 0.95,
        high: float = 0.98,
        drift_delta: float | None = 0.002,
        name: str = "hst",
        seed: int = 0,
    ) -> None:
        if window_size < 2 or warmup < window_size:
            raise ValidationError("warmup", f"need warmup >= window_size >= 2, got {warmup}, {window_size}")
        if not headroom >= 0:
            raise ValidationError("headroom", f"must be >= 0, got {headroom}")
        if n_trees < 1 or height < 1:
            raise ValidationError("n_trees", f"need n_trees >= 1 and height >= 1, got {n_trees}, {height}")
        self.headroom = float(headroom)
        self.n_trees = int(n_trees)
        self.height = int(height)
        self.window_size = int(window_size)
        self._init_common(
            features=features, q=q, threshold=threshold, medium=medium, high=high,
            warmup=warmup, drift_delta=drift_delta, name=name, seed=seed,
        )

    def _x(self, x: Mapping[str, float]) -> dict[str, float]:
        return {f: abs(float(x[f])) if f in self._ABS else float(x[f]) for f in self.features}

    def _make_model(self, seed: int) -> _ScaledHST:
        return _ScaledHST(
            self.features, self.warmup, self.headroom, self.n_trees, self.height,
            self.window_size, seed,
        )


class EnsembleDetector(BaseDetector):
    """Flag a candle only when every member flags it (a unanimous vote).

    The members learn every candle as they would alone. Each member's score
    is turned into a *level* (:meth:`BaseDetector.level`): 1, 2 or 3 for a
    LOW, MEDIUM or HIGH flag, and the fraction of the member's current
    threshold below that. The ensemble's score is the smallest member level,
    so it flags (at the lowest member severity) exactly when all members do.

    Parameters
    ----------
    members
        Detectors (default: a :class:`RobustZScoreDetector` and a
        :class:`HalfSpaceTreesDetector` with their default parameters).
    name, seed
        Detector name; seed (each member gets a seed derived from it and its name).

    Examples
    --------
    >>> ens = EnsembleDetector()
    >>> [m.name for m in ens.members]
    ['zscore', 'hst']
    >>> ens.flag(0.97), ens.flag(1.0), ens.flag(3.0)
    (None, 'LOW', 'HIGH')
    """

    _params = ("members", "name")

    def __init__(
        self,
        *,
        members: Sequence[BaseDetector] | None = None,
        name: str = "ensemble",
        seed: int = 0,
    ) -> None:
        self.name = name
        self.seed = seed
        if members is None:
            members = (RobustZScoreDetector(), HalfSpaceTreesDetector())
        if not members:
            raise ValidationError("members", "need at least one member detector")
        names = [m.name for m in members]
        if len(set(names)) != len(names):
            raise ValidationError("members", f"member names must be unique, got {names}")
        self.members: list[BaseDetector] = [
            m.clone(seed=zlib.crc32(f"{seed}|{m.name}".encode())) for m in members
        ]
        self._shared: set[int] = set()

    def bind(self, siblings: Iterable[BaseDetector]) -> int:
        """Use ``siblings`` as members where they match (same class, name and parameters).

        :class:`~cryptolab.anomaly.AnomalyScorer` runs each detector of a
        stream once per candle: an ensemble over ``zscore`` and ``hst`` next to
        standalone ``zscore`` and ``hst`` detectors reuses their scores
        instead of keeping private copies. A bound member is learnt by its
        owner, not by the ensemble, so every detector must be scored before any
        learns (the scorer does). Returns how many members were bound.
        """
        by_name = {d.name: d for d in siblings if d is not self}
        n = 0
        for i, m in enumerate(self.members):
            s = by_name.get(m.name)
            if (s is not None and type(s) is type(m) and not isinstance(m, EnsembleDetector)
                    and s.params() == m.params()):
                self.members[i] = s
                self._shared.add(i)
                n += 1
        return n

    def params(self) -> dict[str, Any]:
        """The constructor parameters: fresh (unfitted) clones of the members, and the name."""
        return {"members": [m.clone() for m in self.members], "name": self.name}

    def score_one(self, x: Mapping[str, float]) -> float:
        """The smallest member level (>= 1 when every member flags ``x``)."""
        return min(m.level(m.score_one(x)) for m in self.members)

    def flag(self, score: float) -> Severity | None:
        """LOW, MEDIUM or HIGH when the smallest member level is 1, 2 or 3."""
        if not score >= 1.0:
            return None
        return SEVERITIES[min(int(score), 3) - 1]

    def learn_one(self, x: Mapping[str, float]) -> None:
        """Every member learns ``x`` (bound members are learnt by their owner)."""
        for i, m in enumerate(self.members):
            if i not in self._shared:
                m.learn_one(x)


#: Detector classes by name.
DETECTORS: Final[dict[str, type[BaseDetector]]] = {
    "rule": RuleDetector,
    "zscore": RobustZScoreDetector,
    "hst": HalfSpaceTreesDetector,
    "ensemble": EnsembleDetector,
}


def default_detectors(*, seed: int = 0) -> list[BaseDetector]:
    """The detectors the pipeline runs: ``rule``, ``zscore``, ``hst`` and ``ensemble``.

    Examples
    --------
    >>> [type(d).__name__ for d in default_detectors(seed=1)]
    ['RuleDetector', 'RobustZScoreDetector', 'HalfSpaceTreesDetector', 'EnsembleDetector']
    """
    return [cls(seed=seed) for cls in DETECTORS.values()]


def make_detectors(
    detectors: None | str | BaseDetector | Iterable[str | BaseDetector], *, seed: int = 0
) -> list[BaseDetector]:
    """Detectors from names (``"rule,zscore"`` or a list), objects, or ``None`` for the defaults.

    Examples
    --------
    >>> [d.name for d in make_detectors("rule, hst")]
    ['rule', 'hst']
    >>> make_detectors(["rule", "lstm"])
    Traceback (most recent call last):
    ...
    cryptolab.errors.ValidationError: invalid 'detectors': unknown detector 'lstm' (known: ensemble, hst, rule, zscore)
    """
    if detectors is None:
        return default_detectors(seed=seed)
    if isinstance(detectors, str):
        items: list[str | BaseDetector] = [d.strip() for d in detectors.split(",") if d.strip()]
    elif isinstance(detectors, BaseDetector):
        items = [detectors]
    else:
        items = list(detectors)
    out: list[BaseDetector] = []
    for item in items:
        if isinstance(item, str):
            cls = DETECTORS.get(item)
            if cls is None:
                known = ", ".join(sorted(DETECTORS))
                raise ValidationError("detectors", f"unknown detector {item!r} (known: {known})")
            out.append(cls(seed=seed))
        elif isinstance(item, BaseDetector):
            out.append(item)
        else:
            raise ValidationError("detectors", f"not a detector: {item!r}")
    if not out:
        raise ValidationError("detectors", "need at least one detector")
    names = [d.name for d in out]
    if len(set(names)) != len(names):
        raise ValidationError("detectors", f"detector names must be unique, got {names}")
    return out

