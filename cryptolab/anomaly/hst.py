"""``hst``: River's ``HalfSpaceTrees`` on candle features scaled by a warm-up.

Three layers: :class:`_FlatHalfSpaceTrees` is River's model with its trees
stored flat (River's scores to the last bit, in a tenth of the memory);
:class:`_ScaledHST` scales the features into ``[0, 1]`` on a warm-up; and
:class:`HalfSpaceTreesDetector` puts them behind the threshold, the learning
and the drift resets of every learning detector (:mod:`cryptolab.anomaly.learned`).

Examples
--------
>>> det = HalfSpaceTreesDetector()
>>> det.policy
QuantileThreshold(FixedThreshold(low=0.9, medium=0.95, high=0.98), q=0.98)
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from river import base

from cryptolab.anomaly.learned import _RiverDetector
from cryptolab.errors import ValidationError

__all__ = ["HalfSpaceTreesDetector"]

#: River's ``make_padded_tree`` padding: a split is drawn away from the edges of its node's range.
_PADDING = 0.15


def _mass_type(window_size: int) -> str:
    """The array type code of masses up to ``window_size``.

    Examples
    --------
    >>> _mass_type(10), _mass_type(255), _mass_type(256), _mass_type(70_000)
    ('B', 'B', 'H', 'i')
    """
    return "B" if window_size <= 0xFF else "H" if window_size <= 0xFFFF else "i"


class _FlatHalfSpaceTrees(base.AnomalyDetector):  # type: ignore[misc]
    """River's ``HalfSpaceTrees`` with its trees stored flat: same model, ~5% of the memory.

    River keeps every node of every tree as a Python object (10 trees of
    height 4 are 310 objects, about 80 KiB); a consumer scoring thousands of
    (symbol, interval) streams holds one model per stream. Here the trees are
    drawn as River's ``make_padded_tree`` draws them (the same calls on a
    ``random.Random(seed)``, node before left subtree before right subtree),
    laid out in heap order (node ``i`` has children ``2i + 1`` and ``2i + 2``)
    in typed arrays: split features and thresholds per branch, masses per
    node. Learning, the window pivot and scoring follow River's ``_walk_learn``
    and ``_walk_score`` step for step, so scores are equal to River's to the
    last bit (``tests/unit/test_anomaly_hst_flat.py``). Nothing of
    ``river.anomaly`` is imported: that package loads SciPy (tens of MiB).
    """

    n_trees: int
    height: int
    window_size: int

    def __init__(self, n_trees: int, height: int, window_size: int, seed: int | None) -> None:
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.seed = seed
        self.counter = 0
        self._first_window = True
        self._names: tuple[Any, ...] = ()
        self._feature = array("H")     # per branch (n_trees x (2**height - 1)): index into _names
        self._threshold = array("d")   # per branch
        # per node (n_trees x (2**(height + 1) - 1)): a node's mass is at most window_size, so
        # the smallest integer type that holds it (a byte per node at the default window)
        self._l_mass = array(_mass_type(window_size))
        self._r_mass = array(self._l_mass.typecode)

    @property
    def size_limit(self) -> float:
        """The mass under which scoring stops going down a tree (River's)."""
        return 0.1 * self.window_size

    @property
    def _max_score(self) -> int:
        """The largest potential score (River's)."""
        return self.n_trees * self.window_size * ((2 << self.height) - 1)  # 2 ** (height + 1) - 1

    def _build(self, x: Mapping[Any, float]) -> None:
        """Draw the trees on the features of ``x``, as River's first ``learn_one`` does.

        River seeds its generator in the constructor and draws from it only here:
        seeding it here gives the same draws without keeping a generator (2.5 KiB)
        in every model not built yet.
        """
        self._names = tuple(sorted(x))
        branches = 2**self.height - 1
        nodes = 2 ** (self.height + 1) - 1
        rng = random.Random(self.seed)
        names = list(self._names)
        index = {name: i for i, name in enumerate(names)}
        feature = [0] * branches
        threshold = [0.0] * branches

        def grow(i: int, height: int, limits: dict[Any, tuple[float, float]]) -> None:
            # make_padded_tree's draws, in its order, written at heap index i
            if height == 0:
                return
            on = rng.choices(population=names, weights=[limits[n][1] - limits[n][0] for n in names])[0]
            a, b = limits[on]
            at = rng.uniform(a + _PADDING * (b - a), b - _PADDING * (b - a))
            feature[i] = index[on]
            threshold[i] = at
            limits[on] = (a, at)
            grow(2 * i + 1, height - 1, limits)
            limits[on] = (at, b)
            grow(2 * i + 2, height - 1, limits)
            limits[on] = (a, b)

        for _ in range(self.n_trees):
            grow(0, self.height, dict.fromkeys(names, (0.0, 1.0)))
            self._feature.extend(feature)
            self._threshold.extend(threshold)
        self._l_mass = array(self._l_mass.typecode, bytes(self._l_mass.itemsize * nodes * self.n_trees))
        self._r_mass = array("i", self._l_mass)

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
            self._l_mass = array(l_mass.typecode, bytes(l_mass.itemsize * len(l_mass)))
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
        return 1 - score / self._max_score


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
    Threshold as for every learning detector (``policy``): the scores'
    ``q``-quantile (River's ``QuantileFilter``) and a minimum ``threshold``,
    a :class:`~cryptolab.anomaly.thresholds.QuantileThreshold` over a
    :class:`~cryptolab.anomaly.thresholds.FixedThreshold`.

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
