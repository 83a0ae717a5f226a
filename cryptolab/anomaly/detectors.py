"""Anomaly detectors for closed candles: the intra-candle rule and River models (one import path).

Each detector kind has a module of its own; this module gathers them (it is
the path they have always been imported from):

=============== ================================ ======================================================
``rule``        :mod:`~cryptolab.anomaly.rule`   ``|close - open| / open`` >= 5% (LOW), 7% (MEDIUM),
                                                 10% (HIGH)
``zscore``      :mod:`~cryptolab.anomaly.zscore` robust z-score of the candle's return, body and range
                                                 (rolling median and 10%-90% range, as
                                                 :mod:`river.stats` computes them); alert when z >= 12
                                                 and above the scores' 0.98 quantile (River's
                                                 ``QuantileFilter``)
``hst``         :mod:`~cryptolab.anomaly.hst`    River ``HalfSpaceTrees`` on the magnitudes of return,
                                                 body and range, scaled by a warm-up; alert when the
                                                 score >= 0.9 and above the scores' 0.98 quantile
``ensemble``    :mod:`~cryptolab.anomaly.ensemble` ``zscore`` and ``hst`` must agree (both flag the candle)
=============== ================================ ======================================================

The protocol and shared plumbing are in :mod:`~cryptolab.anomaly.base`, the
threshold policies in :mod:`~cryptolab.anomaly.thresholds`, what ``zscore`` and
``hst`` share (quantile threshold, ADWIN drift resets) in
:mod:`~cryptolab.anomaly.learned`, the registry by name in
:mod:`~cryptolab.anomaly.registry`, and the contract every detector keeps in
:mod:`~cryptolab.anomaly.checks`.

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

from cryptolab.anomaly.base import SEVERITIES, BaseDetector, Detector, Severity, stream_seed
from cryptolab.anomaly.ensemble import EnsembleDetector
from cryptolab.anomaly.hst import HalfSpaceTreesDetector
from cryptolab.anomaly.hst import _FlatHalfSpaceTrees as _FlatHalfSpaceTrees
from cryptolab.anomaly.hst import _ScaledHST as _ScaledHST
from cryptolab.anomaly.learned import _RiverDetector as _RiverDetector
from cryptolab.anomaly.registry import DETECTORS, default_detectors, make_detectors
from cryptolab.anomaly.rule import RuleDetector
from cryptolab.anomaly.thresholds import check_levels, severity_at
from cryptolab.anomaly.zscore import _IDR_SIGMAS as _IDR_SIGMAS
from cryptolab.anomaly.zscore import RobustZScoreDetector
from cryptolab.anomaly.zscore import _RobustZModel as _RobustZModel
from cryptolab.anomaly.zscore import _RollingWindow as _RollingWindow

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

# private names of the former single module (``_FlatHalfSpaceTrees``, ``_RollingWindow``...)
# stay importable from here
_check_levels = check_levels
_severity = severity_at
