"""Online anomaly detection on closed candles, with River.

* :mod:`~cryptolab.anomaly.features`: pure, per-stream candle features
  (:class:`FeatureExtractor`) and their vectorised twin (:func:`candle_features`).
* :mod:`~cryptolab.anomaly.base`: the :class:`Detector` protocol,
  :class:`BaseDetector`, severities and :func:`stream_seed`.
* :mod:`~cryptolab.anomaly.thresholds`: composable threshold policies that turn a
  score into a severity (:class:`FixedThreshold`, :class:`QuantileThreshold`, as
  River's ``ThresholdFilter`` and ``QuantileFilter``) and :class:`Thresholded`,
  any detector under any policy.
* One module per detector kind: :mod:`~cryptolab.anomaly.rule` (the intra-candle
  rule), :mod:`~cryptolab.anomaly.zscore` (robust z-score) and
  :mod:`~cryptolab.anomaly.hst` (River's HalfSpaceTrees), both built on
  :mod:`~cryptolab.anomaly.learned` (quantile threshold, ADWIN resets), and
  :mod:`~cryptolab.anomaly.ensemble`; :mod:`~cryptolab.anomaly.registry` names
  them (:data:`DETECTORS`, :func:`make_detectors`);
  :mod:`~cryptolab.anomaly.detectors` gathers them all.
* :mod:`~cryptolab.anomaly.checks`: the detector contract, to run on your own
  detectors (:func:`check_detector`).
* :mod:`~cryptolab.anomaly.scorer`: :class:`AnomalyScorer` (the pipeline's
  scorer, restart-exact) and :func:`score_history` (notebooks).
* :mod:`~cryptolab.anomaly.scores`: :func:`describe_score`, what a detector's
  score means, in words.
* :mod:`~cryptolab.anomaly.evaluation`: precision, recall and detection delay of
  detectors on labelled candles (``evaluate``); :mod:`cryptolab.evaluation` builds
  the synthetic and recorded data sets.

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
    from cryptolab.anomaly.base import SEVERITIES, BaseDetector, Detector, Severity, stream_seed
    from cryptolab.anomaly.checks import check_detector
    from cryptolab.anomaly.ensemble import EnsembleDetector
    from cryptolab.anomaly.hst import HalfSpaceTreesDetector
    from cryptolab.anomaly.registry import DETECTORS, default_detectors, make_detectors
    from cryptolab.anomaly.rule import RuleDetector
    from cryptolab.anomaly.scorer import AnomalyScorer, HistoryFn, score_history
    from cryptolab.anomaly.scores import describe_score
    from cryptolab.anomaly.thresholds import (
        FixedThreshold,
        QuantileThreshold,
        Thresholded,
        ThresholdPolicy,
    )
    from cryptolab.anomaly.zscore import RobustZScoreDetector

# Detectors and the scorer import River (which imports SQLAlchemy, scikit-learn
# hooks...): they load on first use, so the pure features stay light.
_LAZY: dict[str, str] = {
    **dict.fromkeys(("SEVERITIES", "BaseDetector", "Detector", "Severity", "stream_seed"),
                    "cryptolab.anomaly.base"),
    **dict.fromkeys(("FixedThreshold", "QuantileThreshold", "ThresholdPolicy", "Thresholded"),
                    "cryptolab.anomaly.thresholds"),
    "RuleDetector": "cryptolab.anomaly.rule",
    "RobustZScoreDetector": "cryptolab.anomaly.zscore",
    "HalfSpaceTreesDetector": "cryptolab.anomaly.hst",
    "EnsembleDetector": "cryptolab.anomaly.ensemble",
    **dict.fromkeys(("DETECTORS", "default_detectors", "make_detectors"), "cryptolab.anomaly.registry"),
    "check_detector": "cryptolab.anomaly.checks",
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
    "FixedThreshold",
    "HalfSpaceTreesDetector",
    "HistoryFn",
    "QuantileThreshold",
    "RobustZScoreDetector",
    "RuleDetector",
    "Severity",
    "ThresholdPolicy",
    "Thresholded",
    "candle_features",
    "check_detector",
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
