"""The detector contract: every detector passes the same checks, plus per-detector behaviour.

Contract (the checks shipped in cryptolab.anomaly.checks, one test per check,
parametrised over all detectors, and the whole suite through check_detector):
deterministic for a seed; prequential (scoring has no side effect, so a
sample's score cannot depend on learning it); clones are fresh and
independent; snapshot/restore round-trips; flags are None or a known severity.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Callable, Mapping

import numpy as np
import pytest

from cryptolab.anomaly import (
    DETECTORS,
    BaseDetector,
    EnsembleDetector,
    FixedThreshold,
    HalfSpaceTreesDetector,
    QuantileThreshold,
    RobustZScoreDetector,
    RuleDetector,
    Thresholded,
    check_detector,
    checks,
    default_detectors,
    make_detectors,
    stream_seed,
)
from cryptolab.anomaly.checks import contract_stream
from cryptolab.anomaly.features import Features
from cryptolab.errors import ValidationError

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
    "rule-quantile": lambda: Thresholded(
        RuleDetector(), QuantileThreshold(FixedThreshold(0.002, 0.01, 0.05), q=0.9),
        name="rule-quantile"),
    "hst-fixed": lambda: Thresholded(HalfSpaceTreesDetector(), FixedThreshold(0.8, 0.9, 0.95),
                                     name="hst-fixed"),
}


STREAM = contract_stream()


def run(det: BaseDetector, xs: list[Features]) -> list[tuple[float, str | None]]:
    """Prequential run: score, flag, learn."""
    return checks.prequential(det, xs)


@pytest.fixture(params=sorted(FACTORIES))
def make(request: pytest.FixtureRequest) -> Callable[[], BaseDetector]:
    return FACTORIES[request.param]


# --------------------------------------------------------------------------- contract


def test_implements_the_protocol(make):
    checks.check_protocol(make, STREAM)


def test_deterministic_for_a_seed(make):
    checks.check_deterministic(make, STREAM)


def test_scoring_has_no_side_effect(make):
    """score_one before learn_one: scoring twice, or not at all, changes nothing."""
    checks.check_scoring_has_no_side_effect(make, STREAM)


def test_score_of_a_sample_does_not_depend_on_learning_it(make):
    """The prequential score of x_t equals the score of a twin that has not seen x_t."""
    checks.check_score_independent_of_learning(make, STREAM)


def test_clone_is_fresh_and_independent(make):
    checks.check_clone_is_fresh(make, STREAM)


def test_clone_with_another_seed_keeps_parameters(make):
    checks.check_clone_keeps_parameters(make, STREAM)


def test_snapshot_restore_round_trip(make):
    checks.check_snapshot_round_trip(make, STREAM)


def test_flags_are_known_severities(make):
    checks.check_flags_are_severities(make, STREAM)


def test_restore_rejects_another_type(make):
    checks.check_restore_rejects_another_type(make, STREAM)


def test_check_detector_runs_the_whole_contract(make):
    assert check_detector(make) == list(checks.CHECKS)


# --------------------------------------------------------------------------- the checks themselves


class _Scorer(BaseDetector):
    """A learning detector (a running mean of |body|) to break one promise at a time."""

    _params = ("name",)

    def __init__(self, *, name: str = "probe", seed: int = 0) -> None:
        super().__init__(name=name, seed=seed)
        self.n, self.total = 0, 0.0

    def score_one(self, x: Mapping[str, float]) -> float:
        return abs(x["body"]) - (self.total / self.n if self.n else 0.0)

    def learn_one(self, x: Mapping[str, float]) -> None:
        self.n += 1
        self.total += abs(x["body"])

    def flag(self, score: float):
        return "LOW" if score > 0.03 else None


class _LearnsWhenScoring(_Scorer):
    def score_one(self, x: Mapping[str, float]) -> float:
        s = super().score_one(x)
        self.learn_one(x)
        return s


class _Unseeded(_Scorer):
    def score_one(self, x: Mapping[str, float]) -> float:
        return super().score_one(x) + float(np.random.default_rng().random())


class _StaleClone(_Scorer):
    def clone(self, *, seed: int | None = None):
        return self  # not fresh: the fitted original itself


class _LosesStateOnRestore(_Scorer):
    def __getstate__(self):
        return {"name": self.name, "seed": self.seed, "n": 0, "total": 0.0}


class _BadFlag(_Scorer):
    def flag(self, score: float):
        return "CRITICAL" if score > 0.03 else None


class _AcceptsAnySnapshot(_Scorer):
    @classmethod
    def restore(cls, blob: bytes):
        return pickle.loads(blob)  # no type check


def test_a_well_behaved_probe_passes():
    assert check_detector(_Scorer) == list(checks.CHECKS)


@pytest.mark.parametrize(("cls", "check", "says"), [
    (_LearnsWhenScoring, "scoring_has_no_side_effect", "scoring sample 0 twice"),
    (_Unseeded, "deterministic", "two clones seeded 123 disagree"),
    (_StaleClone, "clone_is_fresh", "not fresh"),
    (_LosesStateOnRestore, "snapshot_round_trip", "does not continue as the original"),
    (_BadFlag, "flags_are_severities", "'CRITICAL'"),
    (_AcceptsAnySnapshot, "restore_rejects_another_type", "snapshot gave"),
])
def test_checks_name_the_broken_promise(cls, check, says):
    with pytest.raises(AssertionError, match=f"breaks '{check}'") as err:
        check_detector(cls)
    assert says in str(err.value) and cls.__name__ in str(err.value)


def test_each_check_runs_alone():
    with pytest.raises(AssertionError, match="breaks 'score_independent_of_learning': sample 0 scored"):
        checks.check_score_independent_of_learning(_Unseeded, STREAM)
    checks.check_deterministic(_LearnsWhenScoring, STREAM)  # deterministic, if not prequential


def test_check_detector_needs_a_real_stream():
    with pytest.raises(ValidationError, match="at least 100"):
        check_detector(RuleDetector, STREAM[:10])


def test_a_non_detector_fails_the_protocol_check():
    with pytest.raises(AssertionError, match="does not implement the Detector protocol"):
        checks.check_protocol(lambda: object(), STREAM)


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
