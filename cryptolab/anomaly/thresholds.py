"""Composable thresholds: policies that turn a detector's score into a severity.

A detector *scores*; a threshold policy decides which scores are alerts and how
severe they are, in the spirit of River's anomaly filters
(``river.anomaly.ThresholdFilter`` and ``river.anomaly.QuantileFilter``, which
wrap a detector and ``classify`` its scores):

======================== ===================================================================
:class:`FixedThreshold`  fixed levels: LOW from ``low``, MEDIUM from ``medium``, HIGH from
                         ``high`` (River's ``ThresholdFilter``, with three levels)
:class:`QuantileThreshold` another policy, gated by the running ``q``-quantile of the
                         scores seen so far (River's ``QuantileFilter``): the alert rate
                         stays below about ``1 - q``
:class:`Thresholded`     any detector's score under any policy: a detector again
======================== ===================================================================

Every policy offers River's ``classify(score)`` (its own verdict: what a
protected model does not learn), ``severity(score)`` (the alert's severity, or
``None``), ``threshold()`` (the smallest score that can be flagged now),
``learn_one(score)`` and ``clone()``. Policies see scores only, never features.

The built-in River detectors are such compositions: ``zscore`` flags a score
above ``QuantileThreshold(FixedThreshold(12, 20, 35), q=0.98)``, the ``rule``
scores under ``FixedThreshold(0.05, 0.07, 0.10)``.

Examples
--------
>>> levels = FixedThreshold(1.0, 2.0, 3.0)
>>> levels.severity(0.5), levels.severity(2.5), levels.threshold()
(None, 'MEDIUM', 1.0)
>>> gated = QuantileThreshold(levels, q=0.5)
>>> gated.severity(2.5)         # no score seen yet: no quantile, nothing is flagged
>>> for s in (2.0, 4.0, 6.0):
...     gated.learn_one(s)
>>> gated.threshold(), gated.severity(3.0), gated.severity(5.0)
(4.0, None, 'HIGH')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from cryptolab.anomaly.base import BaseDetector, Severity
from cryptolab.anomaly.native import Quantile
from cryptolab.errors import ValidationError

__all__ = [
    "FixedThreshold",
    "QuantileThreshold",
    "ThresholdPolicy",
    "Thresholded",
    "check_levels",
    "guarded_learn",
    "severity_at",
]


def check_levels(low: float, medium: float, high: float) -> None:
    """Raise :class:`~cryptolab.errors.ValidationError` unless ``0 < low <= medium <= high``, finite.

    Examples
    --------
    >>> check_levels(1.0, 1.0, 2.0)
    >>> check_levels(1.0, 0.5, 2.0)
    Traceback (most recent call last):
    ...
    cryptolab.errors.ValidationError: invalid 'levels': need 0 < low <= medium <= high, got 1.0, 0.5, 2.0
    """
    if not (math.isfinite(low) and 0 < low <= medium <= high and math.isfinite(high)):
        raise ValidationError("levels", f"need 0 < low <= medium <= high, got {low}, {medium}, {high}")


def severity_at(score: float, low: float, medium: float, high: float) -> Severity | None:
    """The severity of ``score`` at fixed levels (each level included), ``None`` below ``low`` or NaN.

    Examples
    --------
    >>> [severity_at(s, 1.0, 2.0, 3.0) for s in (0.99, 1.0, 2.5, 3.0, float("nan"))]
    [None, 'LOW', 'MEDIUM', 'HIGH', None]
    """
    if not score >= low:  # also False for NaN
        return None
    if score >= high:
        return "HIGH"
    if score >= medium:
        return "MEDIUM"
    return "LOW"


@runtime_checkable
class ThresholdPolicy(Protocol):
    """What a threshold policy offers: River's ``classify``, plus a severity and its own learning."""

    def classify(self, score: float) -> bool:
        """The policy's own verdict on ``score`` (a protected model does not learn what it flags)."""
        ...

    def severity(self, score: float) -> Severity | None:
        """The severity of an alert on ``score``, or ``None`` when it is not one."""
        ...

    def threshold(self) -> float:
        """The smallest score that can be flagged now."""
        ...

    def learn_one(self, score: float) -> None:
        """Take ``score`` into account (a stateful policy learns the scores it sees)."""
        ...

    def clone(self) -> ThresholdPolicy:
        """A fresh policy with the same parameters and nothing learnt."""
        ...


class FixedThreshold:
    """Fixed severity levels: LOW from ``low``, MEDIUM from ``medium``, HIGH from ``high``.

    River's ``ThresholdFilter`` with three levels; stateless.

    Parameters
    ----------
    low, medium, high
        The levels, ``0 < low <= medium <= high`` (each level included).

    Examples
    --------
    >>> rule = FixedThreshold(0.05, 0.07, 0.10)
    >>> [rule.severity(s) for s in (0.049, 0.05, 0.07, 0.12)]
    [None, 'LOW', 'MEDIUM', 'HIGH']
    >>> rule
    FixedThreshold(low=0.05, medium=0.07, high=0.1)
    """

    __slots__ = ("high", "low", "medium")

    def __init__(self, low: float, medium: float, high: float) -> None:
        check_levels(low, medium, high)
        self.low, self.medium, self.high = float(low), float(medium), float(high)

    def classify(self, score: float) -> bool:
        """``score >= low``."""
        return score >= self.low

    def severity(self, score: float) -> Severity | None:
        """LOW / MEDIUM / HIGH at the fixed levels (:func:`severity_at`, inlined: it runs per candle)."""
        if not score >= self.low:  # also False for NaN
            return None
        if score >= self.high:
            return "HIGH"
        if score >= self.medium:
            return "MEDIUM"
        return "LOW"

    def threshold(self) -> float:
        """``low``."""
        return self.low

    def learn_one(self, score: float) -> None:
        """Nothing to learn."""

    def clone(self) -> FixedThreshold:
        """The same levels."""
        return FixedThreshold(self.low, self.medium, self.high)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FixedThreshold):
            return NotImplemented
        return (self.low, self.medium, self.high) == (other.low, other.medium, other.high)

    def __hash__(self) -> int:
        return hash((self.low, self.medium, self.high))

    def __repr__(self) -> str:
        return f"FixedThreshold(low={self.low!r}, medium={self.medium!r}, high={self.high!r})"


class QuantileThreshold:
    """``levels`` gated by the running ``q``-quantile of the scores learnt: River's ``QuantileFilter``.

    A score is an alert when it reaches the quantile of the scores learnt so
    far (River's ``stats.Quantile``, the ``QuantileFilter``'s own estimator)
    *and* ``levels`` flags it; the severity is ``levels``'. Until a score has
    been learnt (or while the quantile is 0) nothing is flagged. The quantile
    caps a stream's alert rate at about ``1 - q``; the levels keep a quiet
    stream from alerting on its own noise.

    Parameters
    ----------
    levels
        The policy that gives the severity (usually a :class:`FixedThreshold`).
    q
        Quantile level, in ``(0, 1)``.

    Examples
    --------
    >>> policy = QuantileThreshold(FixedThreshold(12.0, 20.0, 35.0), q=0.98)
    >>> policy
    QuantileThreshold(FixedThreshold(low=12.0, medium=20.0, high=35.0), q=0.98)
    >>> policy.threshold()          # no quantile yet: the levels' own minimum
    12.0
    """

    __slots__ = ("levels", "quantile")

    def __init__(self, levels: ThresholdPolicy, q: float = 0.98) -> None:
        if not 0 < q < 1:
            raise ValidationError("q", f"must be in (0, 1), got {q}")
        self.levels = levels
        self.quantile = Quantile(float(q))  # River's stats.Quantile, without importing river.stats

    @property
    def q(self) -> float:
        """The quantile level."""
        return float(self.quantile.q)

    def classify(self, score: float) -> bool:
        """Whether ``score`` reaches the quantile (River's ``QuantileFilter.classify``)."""
        return bool(score >= (self.quantile.get() or math.inf))

    def severity(self, score: float) -> Severity | None:
        """``levels``' severity of ``score`` when it reaches the quantile, else ``None``."""
        if not score >= (self.quantile.get() or math.inf):  # classify(score), inlined
            return None
        return self.levels.severity(score)

    def threshold(self) -> float:
        """The larger of the levels' threshold and the quantile (the levels' alone before any score)."""
        qv = self.quantile.get()
        low = self.levels.threshold()
        return low if qv is None else max(low, float(qv))

    def learn_one(self, score: float) -> None:
        """Update the quantile (and the levels) with ``score``."""
        self.quantile.update(score)
        self.levels.learn_one(score)

    def clone(self) -> QuantileThreshold:
        """A fresh quantile over a clone of the levels."""
        return QuantileThreshold(self.levels.clone(), self.q)

    def __repr__(self) -> str:
        return f"QuantileThreshold({self.levels!r}, q={self.q!r})"


def guarded_learn(
    model: Any, policy: ThresholdPolicy, x: Any, score: float | None = None, *, protect: bool = True
) -> None:
    """One learning step of ``model`` behind ``policy``: River's ``AnomalyFilter.learn_one``, warm-up aware.

    A model that has a ``ready`` attribute and is not ready yet learns ``x``
    and the policy learns nothing (a warming model's scores are 0: they would
    pin a quantile at 0 and, with ``protect``, stop the model from ever
    learning again). Otherwise the policy learns the score of ``x`` and, with
    ``protect``, the model learns ``x`` only when the policy does not
    ``classify`` it as anomalous, so a crash does not widen the scale that
    judges the next samples.

    Parameters
    ----------
    model
        Anything with ``score_one(x)`` and ``learn_one(x)``.
    policy
        The threshold policy in front of it.
    x
        The sample.
    score
        ``model.score_one(x)`` when the caller has it already.
    protect
        River's ``protect_anomaly_detector``.
    """
    if not getattr(model, "ready", True):
        model.learn_one(x)
        return
    if score is None:
        score = float(model.score_one(x))
    if not protect or not policy.classify(score):
        model.learn_one(x)
    policy.learn_one(score)


class Thresholded(BaseDetector):
    """Any detector's score under another threshold policy: a River anomaly filter as a detector.

    The wrapped detector scores and learns as it would alone (behind
    ``policy``, as :func:`guarded_learn` says); its own flags are ignored:
    ``policy`` flags its scores. Use it to put a quantile gate on the rule, or
    fixed levels of your own on any detector.

    Parameters
    ----------
    detector
        The detector whose score is thresholded (a clone is used, seeded ``seed``).
    policy
        The threshold policy (a clone is used).
    protect
        Do not let the detector learn what ``policy`` classifies as anomalous.
    name
        Detector name (default: the wrapped detector's).
    seed
        Seed of the wrapped clone (default: the wrapped detector's).

    Examples
    --------
    >>> from cryptolab.anomaly import RuleDetector
    >>> rare = Thresholded(RuleDetector(), QuantileThreshold(FixedThreshold(0.02, 0.05, 0.08), q=0.9),
    ...                    name="rare-moves")
    >>> for body in (0.001, 0.03, 0.002, 0.001):
    ...     rare.learn_one({"body": body})
    >>> rare.flag(rare.score_one({"body": 0.06})), rare.flag(rare.score_one({"body": 0.025}))
    ('MEDIUM', None)
    """

    _params = ("detector", "policy", "protect", "name")

    def __init__(
        self,
        detector: BaseDetector,
        policy: ThresholdPolicy,
        *,
        protect: bool = True,
        name: str | None = None,
        seed: int | None = None,
    ) -> None:
        if not isinstance(policy, ThresholdPolicy):
            raise ValidationError("policy", f"not a threshold policy: {policy!r}")
        self.seed = detector.seed if seed is None else seed
        self.name = detector.name if name is None else name
        self.detector = detector.clone(seed=self.seed)
        self.policy = policy.clone()
        self.protect = bool(protect)

    @property
    def ready(self) -> bool:
        """Whether the wrapped detector is past its warm-up (no flag before)."""
        return bool(getattr(self.detector, "ready", True))

    def params(self) -> dict[str, Any]:
        """The constructor parameters: a fresh clone of the detector and of the policy."""
        return {"detector": self.detector.clone(), "policy": self.policy.clone(),
                "protect": self.protect, "name": self.name}

    def score_one(self, x: Mapping[str, float]) -> float:
        """The wrapped detector's score."""
        return self.detector.score_one(x)

    def flag(self, score: float) -> Severity | None:
        """The policy's severity of ``score`` (``None`` while the detector warms up)."""
        if not self.ready:
            return None
        return self.policy.severity(score)

    def _threshold_now(self) -> float:
        return self.policy.threshold() if self.ready else math.inf

    def learn_one(self, x: Mapping[str, float]) -> None:
        """The detector learns ``x`` behind the policy; the policy learns its score."""
        guarded_learn(self.detector, self.policy, x, protect=self.protect)
