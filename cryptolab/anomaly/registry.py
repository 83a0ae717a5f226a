"""The built-in detectors by name: :data:`DETECTORS`, :func:`default_detectors`, :func:`make_detectors`.

Examples
--------
>>> sorted(DETECTORS)
['ensemble', 'hst', 'rule', 'zscore']
>>> [d.name for d in default_detectors(seed=0)]
['rule', 'zscore', 'hst', 'ensemble']
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from cryptolab.anomaly.base import BaseDetector
from cryptolab.anomaly.ensemble import EnsembleDetector
from cryptolab.anomaly.hst import HalfSpaceTreesDetector
from cryptolab.anomaly.rule import RuleDetector
from cryptolab.anomaly.zscore import RobustZScoreDetector
from cryptolab.errors import ValidationError

__all__ = ["DETECTORS", "default_detectors", "make_detectors"]


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
