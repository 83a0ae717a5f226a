"""The classic intra-candle rule: ``|close - open| / open`` at fixed levels.

Examples
--------
>>> det = RuleDetector()
>>> det.score_one({"body": -0.08}), det.flag(0.08), det.flag(0.01)
(0.08, 'MEDIUM', None)
"""

from __future__ import annotations

from collections.abc import Mapping

from cryptolab.anomaly.base import BaseDetector, Severity
from cryptolab.anomaly.thresholds import FixedThreshold

__all__ = ["RuleDetector"]


class RuleDetector(BaseDetector):
    """The classic intra-candle rule: ``|close - open| / open`` above a level.

    No learning: the score is the absolute body of the candle, and the
    severity is LOW at 5%, MEDIUM at 7% and HIGH at 10% (each level included):
    a :class:`~cryptolab.anomaly.thresholds.FixedThreshold` (``policy``).

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
    >>> rule.policy
    FixedThreshold(low=0.05, medium=0.07, high=0.1)
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
        self.policy = FixedThreshold(low, medium, high)
        self.name = name
        self.seed = seed

    @property
    def low(self) -> float:
        """The LOW level."""
        return self.policy.low

    @property
    def medium(self) -> float:
        """The MEDIUM level."""
        return self.policy.medium

    @property
    def high(self) -> float:
        """The HIGH level."""
        return self.policy.high

    def score_one(self, x: Mapping[str, float]) -> float:
        """``|body|``, the candle's relative open-to-close move."""
        return abs(float(x["body"]))

    def learn_one(self, x: Mapping[str, float]) -> None:
        """Nothing to learn."""

    def flag(self, score: float) -> Severity | None:
        """LOW / MEDIUM / HIGH at the fixed levels."""
        return self.policy.severity(score)

    def _threshold_now(self) -> float:
        return self.policy.threshold()
