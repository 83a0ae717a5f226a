"""The demo's summary: the most severe alerts first, how many more and where, scores in words."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from cryptolab.anomaly import (
    EnsembleDetector,
    HalfSpaceTreesDetector,
    RobustZScoreDetector,
    RuleDetector,
    describe_score,
)
from cryptolab.demo import SHOWN_ALERTS, DemoResult, most_severe_first
from cryptolab.models import Alert

T = 1_700_004_600_000  # 2023-11-14T23:30:00Z


def _alert(interval: str, ws: int, detector: str, severity: str, score: float) -> Alert:
    return Alert(symbol="BTC-USD", interval=interval, window_start=ws, detector=detector,
                 severity=severity, score=score, ts_ms=ws + 60_000)  # type: ignore[arg-type]


#: The nine alerts of `cryptolab demo` (seed 7), in the order the store lists them.
DEMO_ALERTS = [
    _alert("1m", T + 240_000, "ensemble", "MEDIUM", 2.0),
    _alert("1m", T + 240_000, "hst", "MEDIUM", 0.967741935483871),
    _alert("1m", T + 240_000, "rule", "HIGH", 0.10166376059476674),
    _alert("1m", T + 240_000, "zscore", "HIGH", 226.71905913046865),
    _alert("5m", T, "ensemble", "MEDIUM", 2.0),
    _alert("5m", T, "hst", "MEDIUM", 0.967741935483871),
    _alert("5m", T, "rule", "HIGH", 0.10569354059703649),
    _alert("5m", T, "zscore", "HIGH", 115.3277361160787),
    _alert("15m", T, "rule", "HIGH", 0.10389679685294771),
]


def _result(alerts: list[Alert]) -> DemoResult:
    return DemoResult(ticks=1, dead_letters=0, candles={"1m": 1}, alerts=len(alerts),
                      alert_examples=most_severe_first(alerts)[:SHOWN_ALERTS], produce_s=1.0, consume_s=1.0,
                      elapsed_s=1.0, ticks_per_s=1.0, store_url="sqlite:///x.db",
                      outputs={"alerts csv": Path(".cryptolab/demo/alerts.csv")},
                      alert_severities=dict(Counter(a.severity for a in alerts)))


def _alert_block(summary: str) -> list[str]:
    lines = summary.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith("alerts "))
    j = next(k for k in range(i + 1, len(lines)) if not lines[k].startswith(" "))
    return lines[i:j]


def test_the_summary_lists_the_most_severe_alerts_and_says_how_many_more_and_where() -> None:
    head, *listed, more = _alert_block(_result(DEMO_ALERTS).summary())
    assert head == "alerts           9: 5 HIGH, 4 MEDIUM; the most severe first:"
    assert len(listed) == SHOWN_ALERTS
    assert [line.split()[0] for line in listed] == ["HIGH"] * 5  # every HIGH one, rule included
    assert sum(" rule " in line for line in listed) == 3
    assert more.split()[:5] == ["and", "4", "more", "(4", "MEDIUM):"]
    assert ".cryptolab/demo/alerts.csv" in more and "`cryptolab export alerts --out -`" in more


def test_every_alert_listed_once_when_few_and_severity_order_is_stable() -> None:
    few = DEMO_ALERTS[:2] + DEMO_ALERTS[3:4]  # MEDIUM ensemble, MEDIUM hst, HIGH zscore
    head, *listed = _alert_block(_result(few).summary())
    assert head.startswith("alerts           3: 1 HIGH, 2 MEDIUM")
    assert [line.split()[:2] for line in listed] == [["HIGH", "zscore"], ["MEDIUM", "hst"],
                                                     ["MEDIUM", "ensemble"]]
    assert _alert_block(_result([]).summary()) == ["alerts           0"]


def test_scores_are_printed_with_what_they_mean() -> None:
    one_each = [DEMO_ALERTS[0], DEMO_ALERTS[3], DEMO_ALERTS[5], DEMO_ALERTS[6]]
    lines = _alert_block(_result(one_each).summary())[1:]
    assert len(lines) == 4
    text = {line.split()[1] + " " + line.split()[3]: line for line in lines}
    assert text["ensemble 1m"].endswith("zscore and hst both flag it, the weaker at MEDIUM")
    assert text["rule 5m"].endswith("open-to-close move 10.6%")
    assert text["zscore 1m"].endswith("robust z-score 227")
    assert text["hst 5m"].endswith("HalfSpaceTrees score 0.97 (of 1)")
    assert not any(re.search(r"score=|\b2\.0\b", line) for line in lines)


@pytest.mark.parametrize("score", [1.0, 2.0, 3.0, 3.6])
def test_the_ensemble_score_is_the_weakest_members_severity(score: float) -> None:
    three = EnsembleDetector(members=[RuleDetector(), RobustZScoreDetector(), HalfSpaceTreesDetector()])
    said = describe_score(three, score)
    assert said == f"rule, zscore and hst all flag it, the weakest at {three.flag(score)}"
    assert describe_score("ensemble", score).endswith(f"the weaker at {EnsembleDetector().flag(score)}")


def test_an_ensemble_score_below_one_is_a_fraction_of_the_threshold() -> None:
    ens = EnsembleDetector()
    assert ens.flag(0.42) is None
    assert describe_score(ens, 0.42) == (
        "not every member flags it: the weakest, of zscore and hst, is at 42% of its threshold")
