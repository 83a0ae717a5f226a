"""The detector contract: every detector passes the same checks, plus per-detector behaviour.

Contract (one test body, parametrised over all detectors): deterministic for a
seed; prequential (scoring has no side effect, so a sample's score cannot
depend on learning it); clones are fresh and independent; snapshot/restore
round-trips; flags are None or a known severity.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest

from cryptolab.anomaly import (
    DETECTORS,
    SEVERITIES,
    BaseDetector,
    Detector,
    EnsembleDetector,
    HalfSpaceTreesDetector,
    RobustZScoreDetector,
    RuleDetector,
    default_detectors,
    make_detectors,
    stream_seed,
)
from cryptolab.anomaly.features import FeatureExtractor, Features
from cryptolab.errors import ValidationError
from cryptolab.models import Candle

T0 = 1_700_000_040_000
MIN = 60_000

FACTORIES: dict[str, Callable[[], BaseDetector]] = {
    "rule": RuleDetector,
    "zscore": RobustZScoreDetector,
    "zscore-no-drift": lambda: RobustZScoreDetector(name="zscore-no-drift", drift_delta=None),
    "hst": HalfSpaceTreesDetector,
    "hst-deep": lambda: HalfSpaceTreesDetector(name="hst-deep", warmup=40, window_size=40,
                                               height=6, n_trees=15),
    "ensemble": EnsembleDetector,
    "ensemble-rule-zscore": lambda: EnsembleDetector(
        name="ensemble-rule-zscore", members=[RuleDetector(low=0.02), RobustZScoreDetector()]),
}


def feature_stream(n: int = 400, seed: int = 7) -> list[Features]:
    """Features of a random walk with a few crashes and a volatility regime change."""
    rng = np.random.default_rng(seed)
    fx = FeatureExtractor()
    out = []
    price = 100.0
    for i in range(n):
        vol = 0.001 if i < n // 2 else 0.006  # regime change half way (exercises drift resets)
        move = rng.normal(0.0, vol)
        if i % 97 == 60:
            move = -0.08 if i % 2 else 0.06
        o, c = price, price * math.exp(move)
        h = max(o, c) * (1 + abs(rng.normal(0, vol / 2)))
        lo = min(o, c) * (1 - abs(rng.normal(0, vol / 2)))
        ws = T0 + i * MIN
        out.append(fx.update(Candle(
            symbol="BTC-USD", interval="1m", window_start=ws, window_end=ws + MIN, open=o,
            high=h, low=lo, close=c, volume=float(rng.lognormal(0, 0.5)), vwap=(o + c) / 2,
            trades=int(rng.integers(1, 50)), first_ts=ws, last_ts=ws, high_ts=ws, low_ts=ws,
            final=True)))
        price = c
    return out


STREAM = feature_stream()


def run(det: BaseDetector, xs: list[Features]) -> list[tuple[float, str | None]]:
    """Prequential run: score, flag, learn."""
    out = []
    for x in xs:
        s = det.score_one(x)
        out.append((s, det.flag(s)))
        det.learn_one(x)
    return out


@pytest.fixture(params=sorted(FACTORIES))
def make(request: pytest.FixtureRequest) -> Callable[[], BaseDetector]:
    return FACTORIES[request.param]


# --------------------------------------------------------------------------- contract


def test_implements_the_protocol(make):
    det = make()
    assert isinstance(det, Detector)
    assert det.name and isinstance(det.seed, int)


def test_deterministic_for_a_seed(make):
    a = make().clone(seed=123)
    b = make().clone(seed=123)
    assert run(a, STREAM) == run(b, STREAM)


def test_scoring_has_no_side_effect(make):
    """score_one before learn_one: scoring twice, or not at all, changes nothing."""
    scored, silent = make(), make()
    for x in STREAM:
        s1 = scored.score_one(x)
        s2 = scored.score_one(x)
        assert s1 == s2 or (math.isnan(s1) and math.isnan(s2))
        scored.learn_one(x)
        silent.learn_one(x)  # never scored
    probe = STREAM[:50]
    assert [scored.score_one(x) for x in probe] == [silent.score_one(x) for x in probe]
    assert scored.snapshot() == silent.snapshot()


def test_score_of_a_sample_does_not_depend_on_learning_it(make):
    """The prequential score of x_t equals the score of a twin that has not seen x_t."""
    det, twin = make(), make()
    for t, x in enumerate(STREAM):
        s = det.score_one(x)
        assert s == twin.score_one(x), f"sample {t}"
        det.learn_one(x)
        twin.learn_one(x)


def test_clone_is_fresh_and_independent(make):
    original = make()
    run(original, STREAM[:250])
    probe = STREAM[250:300]
    before = [original.score_one(x) for x in probe]
    state = original.snapshot()

    clone = original.clone()
    assert type(clone) is type(original) and repr(clone) == repr(original)
    assert run(clone, STREAM) == run(make(), STREAM)  # fresh: same as a new detector
    assert [original.score_one(x) for x in probe] == before  # untouched by the clone's learning
    assert original.snapshot() == state


def test_clone_with_another_seed_keeps_parameters(make):
    det = make()
    other = det.clone(seed=det.seed + 1)
    assert other.seed == det.seed + 1
    assert repr(other.clone(seed=det.seed)) == repr(det)


def test_snapshot_restore_round_trip(make):
    det = make()
    run(det, STREAM[:220])
    restored = type(det).restore(det.snapshot())
    assert run(restored, STREAM[220:]) == run(det, STREAM[220:])


def test_flags_are_known_severities(make):
    results = run(make(), STREAM)
    assert {sev for _, sev in results} <= {None, *SEVERITIES}
    assert all(isinstance(s, float) and not math.isnan(s) for s, _ in results)


def test_restore_rejects_another_type(make):
    det = make()
    other = RuleDetector() if not isinstance(det, RuleDetector) else RobustZScoreDetector()
    with pytest.raises(ValidationError):
        type(det).restore(other.snapshot())


# --------------------------------------------------------------------------- behaviour


@pytest.mark.parametrize(("body", "severity"), [
    (0.0, None), (0.0499, None), (0.05, "LOW"), (-0.0699, "LOW"), (0.07, "MEDIUM"),
    (-0.0999, "MEDIUM"), (0.10, "HIGH"), (-0.5, "HIGH"),
])
def test_rule_levels(body, severity):
    rule = RuleDetector()
    assert rule.flag(rule.score_one({"body": body})) == severity


@pytest.mark.parametrize("name", ["zscore", "hst", "ensemble"])
def test_river_detectors_flag_a_crash_in_a_calm_market(name):
    det = DETECTORS[name]()
    calm = STREAM[:55]  # before the first injected move (60) and the regime change (200)
    run(det, calm)
    crash = dict(calm[-1], ret=-0.04, body=-0.04, range=0.045, lower_wick=0.005)
    assert det.flag(det.score_one(crash)) is not None
    assert det.flag(det.score_one(calm[-1])) is None


def test_quantile_filter_caps_the_alert_rate():
    """With a low fixed threshold, River's QuantileFilter alone decides: rate ~ 1 - q."""
    rng = np.random.default_rng(11)
    det = RobustZScoreDetector(threshold=0.1, medium=0.2, high=0.3, q=0.95, drift_delta=None)
    flags = 0
    n = 4000
    for t in rng.standard_t(3, size=n) * 0.001:  # heavy-tailed noise, no anomalies
        x = {"ret": float(t), "body": float(t), "range": abs(float(t)) + 0.001}
        flags += det.flag(det.score_one(x)) is not None
        det.learn_one(x)
    assert 0.02 < flags / n < 0.08


def test_fixed_threshold_keeps_a_quiet_market_silent():
    rng = np.random.default_rng(5)
    det = RobustZScoreDetector()
    flags = 0
    for m in rng.normal(0, 0.001, size=3000):
        x = {"ret": float(m), "body": float(m), "range": abs(float(m)) + 0.001}
        flags += det.flag(det.score_one(x)) is not None
        det.learn_one(x)
    assert flags == 0


def _regime_alerts(det: BaseDetector) -> tuple[int, int]:
    rng = np.random.default_rng(2)
    alerts_after = 0
    for i in range(600):
        vol = 0.001 if i < 300 else 0.02
        m = float(rng.normal(0, vol))
        x = {"ret": m, "body": m, "range": abs(m) + vol}
        flagged = det.flag(det.score_one(x)) is not None
        alerts_after += flagged and i >= 300
        det.learn_one(x)
    return alerts_after, getattr(det, "resets", 0)


@pytest.mark.parametrize("cls", [HalfSpaceTreesDetector, RobustZScoreDetector])
def test_drift_reset_follows_a_regime_change(cls):
    """A 20x volatility jump: ADWIN resets the model, which stops alerting sooner."""
    with_reset, resets = _regime_alerts(cls())
    without, no_resets = _regime_alerts(cls(drift_delta=None))
    assert resets >= 1 and no_resets == 0
    assert with_reset < without


def test_ensemble_flags_only_when_all_members_do():
    ens = EnsembleDetector(members=[RuleDetector(low=0.02), RuleDetector(name="big", low=0.05)])
    assert ens.flag(ens.score_one({"body": 0.03})) is None
    assert ens.flag(ens.score_one({"body": 0.06})) == "LOW"


def test_ensemble_members_are_seeded_per_name_and_unique():
    a, b = EnsembleDetector(seed=1), EnsembleDetector(seed=2)
    assert [m.seed for m in a.members] != [m.seed for m in b.members]
    with pytest.raises(ValidationError):
        EnsembleDetector(members=[RuleDetector(), RuleDetector()])


def test_make_detectors_by_name_and_object():
    dets = make_detectors("rule, zscore", seed=4)
    assert [d.name for d in dets] == ["rule", "zscore"] and all(d.seed == 4 for d in dets)
    mine = RuleDetector(name="mine", low=0.01)
    assert make_detectors([mine, "hst"])[0] is mine
    assert [d.name for d in make_detectors(None)] == [d.name for d in default_detectors()]
    with pytest.raises(ValidationError, match="unknown detector"):
        make_detectors("nope")
    with pytest.raises(ValidationError, match="unique"):
        make_detectors(["rule", RuleDetector()])


@pytest.mark.parametrize("kwargs", [
    {"q": 1.0}, {"q": 0.0}, {"threshold": -1.0}, {"threshold": 5.0, "medium": 4.0},
    {"warmup": 1}, {"window": 2}, {"floor": 0.0}, {"drift_delta": 2.0}, {"features": ()},
])
def test_zscore_rejects_bad_parameters(kwargs):
    with pytest.raises(ValidationError):
        RobustZScoreDetector(**kwargs)


def test_hst_rejects_bad_parameters():
    with pytest.raises(ValidationError):
        HalfSpaceTreesDetector(warmup=5, window_size=10)
    with pytest.raises(ValidationError):
        HalfSpaceTreesDetector(n_trees=0)


def test_stream_seed_is_stable_across_processes():
    code = ("from cryptolab.anomaly import stream_seed;"
            "print(stream_seed(3, 'ETH-USD', '5m', 'hst'))")
    outs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={"PYTHONHASHSEED": str(h), "PATH": ""}).stdout.strip()
        for h in (1, 2)
    }
    assert outs == {str(stream_seed(3, "ETH-USD", "5m", "hst"))}
    assert stream_seed(3, "ETH-USD", "5m", "hst") != stream_seed(3, "ETH-USD", "1m", "hst")
