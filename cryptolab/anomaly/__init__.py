"""Online anomaly detection on closed candles, with River.

* :mod:`~cryptolab.anomaly.features`: pure, per-stream candle features
  (:class:`FeatureExtractor`) and their vectorised twin (:func:`candle_features`).
* :mod:`~cryptolab.anomaly.detectors`: the :class:`Detector` protocol, the
  intra-candle rule, River detectors (robust z-score, HalfSpaceTrees) with
  QuantileFilter thresholds and ADWIN resets, and an ensemble.
* :mod:`~cryptolab.anomaly.scorer`: :class:`AnomalyScorer` (the pipeline's
  scorer, restart-exact) and :func:`score_history` (notebooks).
* :mod:`~cryptolab.anomaly.scores`: :func:`describe_score`, what a detector's
  score means, in words.

Examples
--------
>>> import pandas as pd
>>> from cryptolab.anomaly import score_history
>>> df = pd.DataFrame({"symbol": "ETH-USD", "interval": "5m",
...                    "window_start": [0, 300_000], "window_end": [300_000, 600_000],
...                    "open": [2000.0, 2001.0], "high": [2002.0, 2001.0],
...                    "low": [1999.0, 1790.0], "close": [2001.0, 1800.0],
...                    "volume": [10.0, 80.0]})
>>> score_history(df, ["rule"])["severity_rule"].tolist()
[None, 'HIGH']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cryptolab.anomaly.features import FEATURE_NAMES, FeatureExtractor, Features, candle_features

if TYPE_CHECKING:  # pragma: no cover
    from cryptolab.anomaly.detectors import (
        DETECTORS,
        SEVERITIES,
        BaseDetector,
        Detector,
        EnsembleDetector,
        HalfSpaceTreesDetector,
        RobustZScoreDetector,
        RuleDetector,
        Severity,
        default_detectors,
        make_detectors,
        stream_seed,
    )
    from cryptolab.anomaly.scorer import AnomalyScorer, HistoryFn, score_history
    from cryptolab.anomaly.scores import describe_score

# Detectors and the scorer import River (which imports SQLAlchemy, scikit-learn
# hooks...): they load on first use, so the pure features stay light.
_LAZY: dict[str, str] = {
    **dict.fromkeys(
        ("DETECTORS", "SEVERITIES", "BaseDetector", "Detector", "EnsembleDetector",
         "HalfSpaceTreesDetector", "RobustZScoreDetector", "RuleDetector", "Severity",
         "default_detectors", "make_detectors", "stream_seed"),
        "cryptolab.anomaly.detectors",
    ),
    **dict.fromkeys(("AnomalyScorer", "HistoryFn", "score_history"), "cryptolab.anomaly.scorer"),
    "describe_score": "cryptolab.anomaly.scores",
}

__all__ = [
    "DETECTORS",
    "FEATURE_NAMES",
    "SEVERITIES",
    "AnomalyScorer",
    "BaseDetector",
    "Detector",
    "EnsembleDetector",
    "FeatureExtractor",
    "Features",
    "HalfSpaceTreesDetector",
    "HistoryFn",
    "RobustZScoreDetector",
    "RuleDetector",
    "Severity",
    "candle_features",
    "default_detectors",
    "describe_score",
    "make_detectors",
    "score_history",
    "stream_seed",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cryptolab.anomaly' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
