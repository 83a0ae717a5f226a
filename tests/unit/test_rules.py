"""User alert rules: the model's validation, each kind's semantics, and restart-exact evaluation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptolab.anomaly.rules import RuleEvaluator, evaluate
from cryptolab.errors import ValidationError
from cryptolab.models import Candle
from cryptolab.models.rules import Rule

MIN = 60_000


def candle(i: int, o: float, c: float, v: float = 1.0, *, symbol: str = "BTC-USD", interval: str = "1m",
           gap: bool = False, final: bool = True) -> Candle:
    return Candle(symbol=symbol, interval=interval, window_start=MIN * i, window_end=MIN * (i + 1), open=o,
                  high=max(o, c), low=min(o, c), close=c, volume=v, vwap=None, trades=0 if gap else 3,
                  first_ts=MIN * i, last_ts=MIN * i, high_ts=MIN * i, low_ts=MIN * i, final=final, gap=gap)


@pytest.mark.parametrize("kwargs, field", [
    ({"kind": "cross_sideways", "params": {"level": 1}}, "kind"),
    ({"kind": "cross_above", "params": {}}, "level"),
    ({"kind": "cross_above", "params": {"level": float("nan")}}, "level"),
    ({"kind": "cross_above", "params": {"level": True}}, "level"),
    ({"kind": "cross_above", "params": {"level": 1, "pct": 2}}, "params"),
    ({"kind": "move", "params": {"pct": 0}}, "pct"),
    ({"kind": "move", "params": {"pct": 1, "candles": 0}}, "candles"),
    ({"kind": "move", "params": {"pct": 1, "candles": 2.5}}, "candles"),
    ({"kind": "move", "params": {"pct": 1, "direction": "sideways"}}, "direction"),
    ({"kind": "volume_spike", "params": {"factor": 2, "lookback": 10**6}}, "lookback"),
    ({"kind": "move", "params": {"pct": 1}, "symbol": "BTC';DROP TABLE candles;--"}, "symbol"),
    ({"kind": "move", "params": {"pct": 1}, "interval": "7x"}, "interval"),
    ({"kind": "move", "params": {"pct": 1}, "id": "a b"}, "id"),
    ({"kind": "move", "params": {"pct": 1}, "id": "x" * 41}, "id"),
    ({"kind": "move", "params": {"pct": 1}, "severity": "URGENT"}, "severity"),
    ({"kind": "move", "params": {"pct": 1}, "webhook": "file:///etc/passwd"}, "webhook"),
    ({"kind": "move", "params": {"pct": 1}, "webhook_format": "teams"}, "webhook_format"),
    ({"kind": "move", "params": {"pct": 1}, "enabled": "yes"}, "enabled"),
])
def test_a_bad_rule_is_a_validation_error_naming_its_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        Rule(**kwargs)
    assert err.value.field == field


_rules = st.one_of(
    st.builds(lambda k, lv: Rule(kind=k, params={"level": lv}), st.sampled_from(["cross_above", "cross_below"]),
              st.floats(0.01, 1e6)),
    st.builds(lambda p, n, d: Rule(kind="move", params={"pct": p, "candles": n, "direction": d}),
              st.floats(0.01, 50), st.integers(1, 30), st.sampled_from(["up", "down", "any"])),
    st.builds(lambda f, m: Rule(kind="volume_spike", params={"factor": f, "lookback": m}),
              st.floats(0.1, 20), st.integers(1, 30)),
)


@given(_rules)
def test_rules_round_trip_through_their_dict(rule: Rule) -> None:
    assert Rule.from_dict(rule.to_dict()) == rule


def test_crossings_need_the_previous_close_on_the_other_side() -> None:
    up = Rule(id="up", kind="cross_above", params={"level": 100})
    down = Rule(id="down", kind="cross_below", params={"level": 100})
    assert evaluate(up, candle(1, 99, 100), [candle(0, 98, 99.99)]) is not None  # reaching it is crossing
    assert evaluate(up, candle(1, 99, 100), [candle(0, 98, 100)]) is None  # already there
    assert evaluate(up, candle(1, 99, 101), []) is None  # no previous candle: silent
    assert evaluate(down, candle(1, 101, 99), [candle(0, 100, 101)]) is not None
    assert evaluate(down, candle(1, 101, 99), [candle(0, 100, 99.5)]) is None
    # an intra-candle excursion is not a crossing: closes are compared
    assert evaluate(up, candle(1, 90, 95), [candle(0, 90, 95)]) is None


def test_moves_compare_the_first_open_with_the_last_close_in_the_asked_direction() -> None:
    prev = [candle(0, 100, 101), candle(1, 101, 102)]
    three = Rule(id="m3", kind="move", params={"pct": 2.5, "candles": 3})
    a = evaluate(three, candle(2, 102, 103), prev)
    assert a is not None and a.score == pytest.approx(3.0) and a.features["from_open"] == 100
    assert evaluate(three, candle(2, 102, 103), prev[1:]) is None  # not enough candles yet
    assert evaluate(Rule(id="one", kind="move", params={"pct": 2.5}), candle(2, 102, 103), prev) is None
    fall = candle(2, 100, 96)
    assert evaluate(Rule(id="d", kind="move", params={"pct": 3, "direction": "down"}), fall, []) is not None
    assert evaluate(Rule(id="u", kind="move", params={"pct": 3, "direction": "up"}), fall, []) is None
    assert evaluate(Rule(id="x", kind="move", params={"pct": 4.5}), fall, []) is None  # 4%: not more than 4.5%


def test_volume_spike_is_against_the_mean_of_the_previous_candles() -> None:
    rule = Rule(id="v", kind="volume_spike", params={"factor": 3, "lookback": 3})
    prev = [candle(i, 1, 1, v) for i, v in enumerate([100.0, 1.0, 2.0, 3.0])]  # only the last 3 count
    assert evaluate(rule, candle(4, 1, 1, 6.01), prev).features["mean_volume"] == pytest.approx(2.0)
    assert evaluate(rule, candle(4, 1, 1, 6.0), prev) is None  # exactly 3x: not more
    assert evaluate(rule, candle(4, 1, 1, 50.0), prev[:2]) is None  # warming up
    assert evaluate(rule, candle(4, 1, 1, 5.0), [candle(i, 1, 1, 0.0) for i in range(3)]) is None


def test_alerts_carry_the_rules_key_severity_and_event_time() -> None:
    rule = Rule(id="hi", kind="move", params={"pct": 1}, severity="HIGH")
    a = evaluate(rule, candle(5, 100, 110), [])
    assert a is not None
    assert (a.detector, a.severity, a.ts_ms, a.window_start) == ("rule:hi", "HIGH", 6 * MIN, 5 * MIN)


def test_the_evaluator_matches_symbol_and_interval_skips_gaps_and_replays() -> None:
    rules = [Rule(id="btc", kind="move", params={"pct": 1}, symbol="BTC-USD"),
             Rule(id="all5", kind="move", params={"pct": 1}, interval="5m"),
             Rule(id="off", kind="move", params={"pct": 1}, enabled=False)]
    ev = RuleEvaluator(rules)
    out = ev.score([candle(0, 100, 110), candle(0, 100, 110, symbol="ETH-USD"),
                    candle(0, 100, 110, interval="5m", symbol="ETH-USD"), candle(1, 100, 110, gap=True),
                    candle(2, 100, 110, final=False)])
    assert [(a.detector, a.symbol, a.interval) for a in out] == [("rule:btc", "BTC-USD", "1m"),
                                                                 ("rule:all5", "ETH-USD", "5m")]
    assert ev.score([candle(0, 100, 110)]) == []  # the same window again


closes = st.lists(st.floats(50, 150, allow_nan=False), min_size=2, max_size=60)


@settings(max_examples=60, deadline=None)
@given(closes, st.data())
def test_a_restart_anywhere_raises_the_alerts_of_an_uninterrupted_run(prices: list[float], data) -> None:
    """The store holds the candles committed before the restart; a new evaluator reads them."""
    rules = [Rule(id="x", kind="cross_above", params={"level": 100}),
             Rule(id="m", kind="move", params={"pct": 5, "candles": 4}),
             Rule(id="v", kind="volume_spike", params={"factor": 1.5, "lookback": 5})]
    candles = [candle(i, prices[i - 1] if i else p, p, v=1.0 + (i * 7) % 5) for i, p in enumerate(prices)]
    whole = RuleEvaluator(rules).score(candles)
    cut = data.draw(st.integers(0, len(candles)))
    stored = candles[:cut]

    def history(symbol: str, interval: str, before: int, n: int) -> list[Candle]:
        return [c for c in stored if c.window_start < before][-n:]

    first = RuleEvaluator(rules).score(candles[:cut])
    second = RuleEvaluator(rules, history=history).score(candles[cut:])
    assert first + second == whole


def test_changing_the_rules_rereads_history_for_the_new_look_back() -> None:
    stored = [candle(i, 100, 100, 1.0) for i in range(5)]
    reads: list[int] = []

    def history(symbol: str, interval: str, before: int, n: int) -> list[Candle]:
        reads.append(n)
        return [c for c in stored if c.window_start < before][-n:]

    ev = RuleEvaluator([Rule(id="m", kind="move", params={"pct": 50})], history=history)
    assert ev.score([candle(5, 100, 100, 1.0)]) == [] and reads == []  # no look-back: no read
    ev.set_rules([Rule(id="v", kind="volume_spike", params={"factor": 2, "lookback": 5})])
    stored.append(candle(5, 100, 100, 1.0))
    assert [a.detector for a in ev.score([candle(6, 100, 100, 9.0)])] == ["rule:v"]
    assert reads == [5]
