"""AnomalyScorer: restart-exact alerts, skipping rules, score_history agreement."""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

import cryptolab
from cryptolab.anomaly import AnomalyScorer, RuleDetector, default_detectors, score_history
from cryptolab.batch import candles_from_ticks, frame_to_candles, with_ms_windows
from cryptolab.errors import ValidationError
from cryptolab.models import Alert, Candle
from cryptolab.sources.synthetic import Injection, SyntheticMarket

T0 = 1_700_000_000_000


@pytest.fixture(scope="module")
def candles() -> list[Candle]:
    """Two hours of 3 symbols, 1m and 5m candles, with injected moves: alerts are raised."""
    m = SyntheticMarket(
        symbols=3, seed=21, start_ms=T0, duration_ms=2 * 3_600_000, ticks_per_second=15,
        random_injections=8, min_magnitude=0.03, max_magnitude=0.12,
        injections=[Injection(symbol="ETH-USD", at_ms=T0 + 30 * 60_000, kind="crash", magnitude=0.2)],
    )
    frame = candles_from_ticks(m.to_frame(), intervals="1m,5m")
    # the pipeline hands candles over as they close: in window-end order across streams
    return sorted(frame_to_candles(frame), key=lambda c: (c.window_end, c.symbol, c.interval))


def history_from(seen: list[Candle]):
    calls: list[tuple[str, str, int]] = []

    def history(symbol: str, interval: str, before_ms: int) -> list[Candle]:
        calls.append((symbol, interval, before_ms))
        return [c for c in seen if c.symbol == symbol and c.interval == interval
                and c.window_start < before_ms]

    history.calls = calls  # type: ignore[attr-defined]
    return history


def keys(alerts: list[Alert]) -> list[tuple]:
    return [(a.key, a.severity, a.score, a.ts_ms) for a in alerts]


def test_alerts_are_raised_and_well_formed(candles):
    alerts = AnomalyScorer(detectors=default_detectors(seed=0)).score(candles, now_ms=0)
    assert {a.detector for a in alerts} >= {"rule", "zscore", "hst"}
    by_key = {(c.symbol, c.interval, c.window_start): c for c in candles}
    for a in alerts:
        c = by_key[(a.symbol, a.interval, a.window_start)]
        assert a.ts_ms == c.window_end  # event time, not wall clock
        assert a.severity in ("LOW", "MEDIUM", "HIGH")
        assert "body" in a.features and "ret" in a.features
        if a.detector == "zscore":
            assert any(k.startswith("z_") for k in a.features)
    assert len({a.key for a in alerts}) == len(alerts)  # at most one per window and detector


@pytest.mark.parametrize("split_seed", range(6))
def test_restart_with_history_gives_the_same_alerts(candles, split_seed):
    """Score in one go vs. crash at a random point and restart with a fresh scorer."""
    uninterrupted = AnomalyScorer(detectors=default_detectors(seed=0)).score(candles)

    rng = random.Random(split_seed)
    lo = len(candles) * split_seed // 8  # spread the crash points over the first 3/4
    k = rng.randrange(max(lo, 1), lo + len(candles) // 8)
    # otherwise the test would prove nothing:
    assert any(a.window_start >= candles[k].window_start for a in uninterrupted)
    first = AnomalyScorer(detectors=default_detectors(seed=0))
    before = first.score(candles[:k])
    # after the crash: a new process, whose store holds the candles committed so far
    history = history_from(candles[:k])
    second = AnomalyScorer(detectors=default_detectors(seed=0), history=history)
    after = []
    rest = candles[k:]
    while rest:  # the pipeline hands over batches of varying size
        n = rng.randint(1, 40)
        after += second.score(rest[:n], now_ms=rest[0].window_end)
        rest = rest[n:]

    assert keys(before + after) == keys(uninterrupted)
    # history is asked once per stream, before its first window after the restart
    streams = {(c.symbol, c.interval) for c in candles[k:]}
    assert sorted(history.calls) == sorted(
        (s, i, min(c.window_start for c in candles[k:] if (c.symbol, c.interval) == (s, i)))
        for s, i in streams
    )


def test_restart_replays_history_without_alerting(candles):
    """History is learnt, never alerted on: only the new window can raise an alert."""
    history = history_from(candles)
    scorer = AnomalyScorer(detectors=default_detectors(seed=0), history=history)
    last = max((c for c in candles if c.interval == "1m"), key=lambda c: (c.window_start, c.symbol))
    crash = Candle(**{**last.to_dict(), "window_start": last.window_start + 60_000,
                      "window_end": last.window_end + 60_000, "open": last.close,
                      "close": last.close * 0.85, "low": last.close * 0.85, "high": last.close})
    alerts = scorer.score([crash])
    assert alerts and {a.window_start for a in alerts} == {crash.window_start}
    n_stream = sum(1 for c in candles if (c.symbol, c.interval) == (last.symbol, "1m"))
    assert scorer._streams[(last.symbol, "1m")].learned == n_stream + 1
    assert history.calls == [(last.symbol, "1m", crash.window_start)]


def _c(i: int, o: float, c: float, *, gap: bool = False, final: bool = True, symbol: str = "BTC-USD") -> Candle:
    ws = T0 + 60_000 * i
    return Candle(symbol=symbol, interval="1m", window_start=ws, window_end=ws + 60_000, open=o,
                  high=max(o, c), low=min(o, c), close=c, volume=1.0, vwap=None, trades=3,
                  first_ts=ws, last_ts=ws, high_ts=ws, low_ts=ws, final=final, gap=gap)


def test_skips_gaps_open_candles_and_windows_already_scored():
    scorer = AnomalyScorer(detectors=[RuleDetector()])
    assert scorer.score([_c(0, 100.0, 120.0, gap=True)]) == []
    assert scorer.score([_c(1, 100.0, 120.0, final=False)]) == []
    first = scorer.score([_c(2, 100.0, 110.0)])
    assert [a.window_start for a in first] == [T0 + 120_000]
    assert scorer.score([_c(2, 100.0, 110.0)]) == []  # the same window again
    assert scorer.score([_c(1, 100.0, 110.0)]) == []  # an older window
    assert len(scorer.score([_c(3, 110.0, 100.0), _c(3, 110.0, 100.0)])) == 1


def test_gap_candles_do_not_reach_detectors_or_history():
    history = history_from([_c(0, 100.0, 100.0), _c(1, 100.0, 50.0, gap=True)])
    scorer = AnomalyScorer(detectors=[RuleDetector()], history=history)
    alerts = scorer.score([_c(2, 100.0, 100.2)])
    assert alerts == []
    assert scorer._streams[("BTC-USD", "1m")].learned == 2  # candle 0 replayed, the gap not


def test_forget_makes_the_next_candle_relearn_from_history(candles):
    history = history_from(candles)
    scorer = AnomalyScorer(detectors=["rule"], history=history)
    scorer.learn([candles[0]])
    assert scorer.forget(["NOPE-USD"]) == 0
    assert scorer.forget([candles[0].symbol]) == 1
    assert scorer.streams == []
    assert scorer.forget() == 0


def test_score_history_matches_the_scorer(candles):
    frame = pd.DataFrame([c.to_dict() for c in candles]).sample(frac=1.0, random_state=3)
    out = score_history(frame, seed=0)
    assert list(out.index) == list(frame.index)  # same rows, same order
    for name in ("rule", "zscore", "hst", "ensemble"):
        assert {f"score_{name}", f"flag_{name}", f"severity_{name}"} <= set(out.columns)
    # epoch-ms windows in, UTC datetimes out (as history() shows them); the Alert keys are epoch ms
    assert str(out["window_start"].dtype) == str(out["window_end"].dtype) == "datetime64[ms, UTC]"
    out = with_ms_windows(out)
    assert out["window_start"].tolist() == frame["window_start"].tolist()
    flagged = {
        (r.symbol, r.interval, r.window_start, d)
        for d in ("rule", "zscore", "hst", "ensemble")
        for r in out[out[f"flag_{d}"]].itertuples()
    }
    alerts = AnomalyScorer(detectors=default_detectors(seed=0)).score(candles)
    assert flagged == {a.key for a in alerts}
    sev = out.set_index(["symbol", "interval", "window_start"])
    for a in alerts:
        assert sev.loc[(a.symbol, a.interval, a.window_start), f"severity_{a.detector}"] == a.severity


def test_score_history_leaves_gaps_and_open_rows_unscored():
    df = pd.DataFrame([c.to_dict() for c in [_c(0, 100.0, 101.0), _c(1, 101.0, 101.0, gap=True),
                                             _c(2, 101.0, 95.0), _c(3, 95.0, 80.0, final=False)]])
    out = score_history(df, "rule", features=True)
    assert out["score_rule"].isna().tolist() == [False, True, False, True]
    assert out["flag_rule"].tolist() == [False, False, True, False]
    assert out["severity_rule"].tolist() == [None, None, "LOW", None]
    assert np.isclose(out.loc[2, "f_ret"], np.log(95.0 / 101.0))
    opened = score_history(df, "rule", include_open=True)
    assert opened.loc[3, "severity_rule"] == "HIGH"


def test_score_history_is_the_public_export_and_validates():
    assert cryptolab.score_history is score_history
    with pytest.raises(ValidationError, match="missing candle columns"):
        score_history(pd.DataFrame({"open": [1.0]}))


def test_streams_are_seeded_independently(candles):
    """Two streams with identical candles get different HST seeds but the same rule alerts."""
    twin = [Candle(**{**c.to_dict(), "symbol": "TWIN-USD"}) for c in candles if c.symbol == "BTC-USD"]
    scorer = AnomalyScorer()
    alerts = scorer.score([c for c in candles if c.symbol == "BTC-USD"] + twin)
    by_symbol: dict[str, set] = defaultdict(set)
    for a in alerts:
        if a.detector == "rule":
            by_symbol[a.symbol].add((a.interval, a.window_start))
    assert by_symbol["BTC-USD"] == by_symbol["TWIN-USD"]
    hst = {k: [d for d in st.detectors if d.name == "hst"][0].seed for k, st in scorer._streams.items()}
    assert len(set(hst.values())) == len(hst)


def test_restart_from_the_embedded_store_gives_the_same_alerts(candles, tmp_path):
    """The pipeline's wiring: alerts and candles committed together, history from the store."""
    from cryptolab.store import Store

    uninterrupted = AnomalyScorer(detectors=default_detectors(seed=0)).score(candles)
    store = Store(f"sqlite:///{(tmp_path / 'store.db').as_posix()}")
    store.init()
    try:
        k = len(candles) // 3
        first = AnomalyScorer(detectors=default_detectors(seed=0), history=store.final_candles_since)
        for i in range(0, k, 50):  # batches, each committed with its alerts
            batch = candles[i:min(i + 50, k)]
            store.commit_batch(group="g", topic="ticks", candles=batch, alerts=first.score(batch))
        # crash; a new process re-learns each stream from the store on first sight
        second = AnomalyScorer(detectors=default_detectors(seed=0), history=store.final_candles_since)
        for i in range(k, len(candles), 50):
            batch = candles[i:i + 50]
            store.commit_batch(group="g", topic="ticks", candles=batch, alerts=second.score(batch))
        stored = store.alerts()
        got = sorted(zip(stored["symbol"], stored["interval"], stored["detector"], stored["severity"],
                         stored["score"], strict=True))
        want = sorted((a.symbol, a.interval, a.detector, a.severity, a.score) for a in uninterrupted)
        assert got == want and len(want) > 0
    finally:
        store.close()


def test_ensemble_reuses_the_streams_own_detectors(candles):
    """Bound to the stream's zscore and hst, the ensemble alerts exactly where both do."""
    scorer = AnomalyScorer(detectors=default_detectors(seed=0))
    alerts = scorer.score(candles)
    for st in scorer._streams.values():
        by_name = {d.name: d for d in st.detectors}
        assert [m for m in by_name["ensemble"].members] == [by_name["zscore"], by_name["hst"]]
    keys_of = {d: {a.key[:3] for a in alerts if a.detector == d} for d in ("zscore", "hst", "ensemble")}
    assert keys_of["ensemble"] == keys_of["zscore"] & keys_of["hst"]
    assert keys_of["ensemble"]


def test_score_history_accepts_store_history_frames_with_timestamp_columns():
    """history() and candles_from_ticks() frames score the same, and come back the same."""
    import numpy as np

    from cryptolab.batch import candles_from_ticks, frame_to_candles
    from cryptolab.sources.synthetic import SyntheticMarket
    from cryptolab.store import Store

    df = candles_from_ticks(
        SyntheticMarket(symbols=1, seed=4, duration_ms=3_600_000, random_injections=2).to_frame(), "1m")
    store = Store("sqlite://")
    store.init()
    store.commit_batch(group="g", topic="t", candles=frame_to_candles(df))
    from_store = score_history(store.history("BTC-USD", "1m"))
    from_batch = score_history(df)
    for col in [c for c in from_store.columns if c.startswith(("score_", "flag_"))]:
        assert np.allclose(from_store[col].astype(float), from_batch[col].astype(float), equal_nan=True), col
    pd.testing.assert_frame_equal(from_store, from_batch, check_exact=True)
