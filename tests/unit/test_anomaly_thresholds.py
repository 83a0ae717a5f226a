"""Threshold policies: fixed levels, the quantile gate (River's QuantileFilter, decision for decision),
and Thresholded, any detector under any policy."""

from __future__ import annotations

import math
import random

import pytest
from river import anomaly

from cryptolab.anomaly import (
    EnsembleDetector,
    FixedThreshold,
    HalfSpaceTreesDetector,
    QuantileThreshold,
    RobustZScoreDetector,
    RuleDetector,
    Thresholded,
    ThresholdPolicy,
    describe_score,
)
from cryptolab.anomaly.checks import contract_stream, prequential
from cryptolab.anomaly.thresholds import guarded_learn
from cryptolab.errors import ValidationError

STREAM = contract_stream()


@pytest.mark.parametrize(("score", "severity"), [
    (0.0, None), (0.999, None), (1.0, "LOW"), (1.999, "LOW"), (2.0, "MEDIUM"), (3.0, "HIGH"),
    (math.inf, "HIGH"), (math.nan, None), (-5.0, None),
])
def test_fixed_levels(score, severity):
    levels = FixedThreshold(1.0, 2.0, 3.0)
    assert levels.severity(score) == severity
    assert levels.classify(score) is (severity is not None)
    assert levels.threshold() == 1.0


@pytest.mark.parametrize("levels", [(0.0, 1.0, 2.0), (2.0, 1.0, 3.0), (1.0, 3.0, 2.0), (1.0, 2.0, math.inf),
                                    (math.nan, 1.0, 2.0)])
def test_fixed_levels_are_validated(levels):
    with pytest.raises(ValidationError):
        FixedThreshold(*levels)


def test_policies_are_policies_and_clone_fresh():
    fixed = FixedThreshold(0.5, 1.0, 2.0)
    gated = QuantileThreshold(fixed, q=0.9)
    assert isinstance(fixed, ThresholdPolicy) and isinstance(gated, ThresholdPolicy)
    assert fixed.clone() == fixed and fixed.clone() is not fixed
    for s in (0.1, 0.2, 5.0, 0.3):
        gated.learn_one(s)
    fresh = gated.clone()
    assert repr(fresh) == repr(gated) == "QuantileThreshold(FixedThreshold(low=0.5, medium=1.0, high=2.0), q=0.9)"
    assert fresh.quantile.get() is None and gated.quantile.get() is not None
    with pytest.raises(ValidationError):
        QuantileThreshold(fixed, q=1.0)


def test_quantile_gate_decides_as_rivers_quantile_filter():
    """guarded_learn + QuantileThreshold over a River model = River's QuantileFilter, sample for sample."""
    rng = random.Random(3)
    rivers = anomaly.QuantileFilter(anomaly.HalfSpaceTrees(seed=5), q=0.95)
    model = anomaly.HalfSpaceTrees(seed=5)
    gate = QuantileThreshold(FixedThreshold(1e-9, 1e-9, 1e-9), q=0.95)
    flagged = 0
    for i in range(1500):
        x = {"a": rng.random(), "b": rng.random() * (0.05 if i % 50 else 1.0)}
        want = rivers.score_one(x)
        got = model.score_one(x)
        assert got == want
        assert gate.classify(got) == rivers.classify(want), i
        flagged += gate.classify(got)
        rivers.learn_one(x)
        guarded_learn(model, gate, x)
        assert gate.quantile.get() == rivers.quantile.get()
    assert 0 < flagged < 1500 / 4


def test_the_river_detectors_are_compositions():
    z, h = RobustZScoreDetector(), HalfSpaceTreesDetector(q=0.9, threshold=0.8)
    assert repr(z.policy) == "QuantileThreshold(FixedThreshold(low=12.0, medium=20.0, high=35.0), q=0.98)"
    assert repr(h.policy) == "QuantileThreshold(FixedThreshold(low=0.8, medium=0.95, high=0.98), q=0.9)"
    assert (h.q, h.threshold, h.medium, h.high) == (0.9, 0.8, 0.95, 0.98)
    assert RuleDetector(low=0.01).policy == FixedThreshold(0.01, 0.07, 0.10)
    assert EnsembleDetector().policy == FixedThreshold(1.0, 2.0, 3.0)
    assert EnsembleDetector().flag(math.inf) == "HIGH"


def test_thresholded_rule_caps_the_alert_rate_where_the_rule_does_not():
    loose = RuleDetector(low=0.0005, medium=0.001, high=0.002)
    gated = Thresholded(loose, QuantileThreshold(loose.policy, q=0.95), name="gated")
    n_loose = sum(sev is not None for _, sev in prequential(loose.clone(), STREAM))
    n_gated = sum(sev is not None for _, sev in prequential(gated, STREAM))
    assert n_loose > len(STREAM) / 3
    assert 0 < n_gated < len(STREAM) * 0.1
    assert describe_score(gated, 0.08) == describe_score("rule", 0.08) == "open-to-close move 8.0%"


def test_thresholded_waits_for_the_wrapped_detectors_warm_up():
    det = Thresholded(RobustZScoreDetector(warmup=20), FixedThreshold(0.1, 0.2, 0.3))
    results = prequential(det, STREAM[:40])
    assert all(sev is None for _, sev in results[:20])
    assert det.ready and det.name == "zscore"
    assert det.policy.threshold() == det._threshold_now() == 0.1


def test_thresholded_protects_the_wrapped_detector():
    """What the policy flags is not learnt (River's protect_anomaly_detector), unless told otherwise."""
    xs = STREAM[:120]
    protected = Thresholded(RobustZScoreDetector(), FixedThreshold(1.0, 2.0, 3.0))
    open_ = Thresholded(RobustZScoreDetector(), FixedThreshold(1.0, 2.0, 3.0), protect=False)
    prequential(protected, xs)
    prequential(open_, xs)
    # (the wrapped zscore still keeps what its own quantile flags from its model)
    assert protected.detector.model.n < open_.detector.model.n


def test_thresholded_validates_and_clones():
    with pytest.raises(ValidationError, match="not a threshold policy"):
        Thresholded(RuleDetector(), 0.5)  # type: ignore[arg-type]
    det = Thresholded(HalfSpaceTreesDetector(seed=3), FixedThreshold(0.8, 0.9, 0.95))
    assert det.seed == 3 == det.detector.seed
    other = det.clone(seed=9)
    assert other.seed == 9 == other.detector.seed and other.policy == det.policy
