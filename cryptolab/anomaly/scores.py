"""What a detector's score means, in words (for summaries and tables).

Scores are on each detector's own scale: the ``rule``'s is the candle's
open-to-close move, ``zscore``'s a robust z-score, ``hst``'s a HalfSpaceTrees
score in ``[0, 1]``, and the ``ensemble``'s the *level* of its weakest member
(1, 2, 3 when every member flags the candle, at least LOW, MEDIUM, HIGH; below 1
the fraction of its threshold that the weakest member reaches). A bare ``2.0``
says little; :func:`describe_score` says it.

Examples
--------
>>> describe_score("rule", 0.1039)
'open-to-close move 10.4%'
>>> describe_score("ensemble", 2.0)
'zscore and hst both flag it, the weaker at MEDIUM'
>>> describe_score("ensemble", 0.42)
'not every member flags it: the weakest, of zscore and hst, is at 42% of its threshold'
"""

from __future__ import annotations

import math

from cryptolab.anomaly.base import SEVERITIES, BaseDetector
from cryptolab.anomaly.ensemble import EnsembleDetector
from cryptolab.anomaly.hst import HalfSpaceTreesDetector
from cryptolab.anomaly.registry import DETECTORS
from cryptolab.anomaly.rule import RuleDetector
from cryptolab.anomaly.thresholds import Thresholded
from cryptolab.anomaly.zscore import RobustZScoreDetector

__all__ = ["describe_score"]


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def describe_score(detector: str | BaseDetector, score: float) -> str:
    """``score`` of ``detector`` in words: what it measures, with its unit.

    Parameters
    ----------
    detector
        A detector, or the name of one of :data:`~cryptolab.anomaly.DETECTORS`
        (with its default parameters: the pipeline's detectors). Other names get
        the bare score. A :class:`~cryptolab.anomaly.thresholds.Thresholded`
        detector's score is its wrapped detector's.
    score
        A score the detector gave (an alert's ``score``).

    Returns
    -------
    str
        E.g. ``"open-to-close move 10.4%"``, ``"robust z-score 227"``,
        ``"zscore and hst both flag it, the weaker at MEDIUM"``.

    Examples
    --------
    >>> describe_score("zscore", 226.7), describe_score("hst", 0.9677)
    ('robust z-score 227', 'HalfSpaceTrees score 0.97 (of 1)')
    >>> describe_score("my-model", 3.25)
    'score 3.25'
    """
    det: BaseDetector | None
    if isinstance(detector, BaseDetector):
        det = detector
    else:
        cls = DETECTORS.get(detector)
        det = cls() if cls is not None else None
    while isinstance(det, Thresholded):
        det = det.detector
    if not math.isfinite(score) or det is None:
        return f"score {score:.3g}"
    if isinstance(det, RuleDetector):
        return f"open-to-close move {score:.1%}"
    if isinstance(det, RobustZScoreDetector):
        return f"robust z-score {score:.0f}"
    if isinstance(det, HalfSpaceTreesDetector):
        return f"HalfSpaceTrees score {score:.2f} (of 1)"
    if isinstance(det, EnsembleDetector):
        names = [m.name for m in det.members]
        if score >= 1.0:
            every = "both" if len(names) == 2 else "all" if len(names) > 2 else ""
            level = SEVERITIES[min(int(score), len(SEVERITIES)) - 1]
            weaker = "weaker" if len(names) == 2 else "weakest"
            return (f"{_names(names)} {every} flag it, the {weaker} at {level}" if every
                    else f"{names[0]} flags it at {level}")
        return (f"not every member flags it: the weakest, of {_names(names)}, is at {score:.0%} "
                "of its threshold")
    return f"score {score:.3g}"
