"""The seeded synthetic market: determinism, ordering, validity, injections and labels."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from cryptolab.batch import candles_from_ticks, with_ms_windows
from cryptolab.errors import ValidationError
from cryptolab.models import Tick, validate_tick
from cryptolab.sources import Source, make_source
from cryptolab.sources.synthetic import Injection, SyntheticMarket, labels_path, synthetic_symbols


def test_same_seed_same_ticks_other_seed_other_ticks():
    a = list(SyntheticMarket(symbols=3, seed=11, duration_ms=120_000).iter_ticks())
    b = list(SyntheticMarket(symbols=3, seed=11, duration_ms=120_000).iter_ticks())
    c = list(SyntheticMarket(symbols=3, seed=12, duration_ms=120_000).iter_ticks())
    assert a == b
    assert a != c


def test_chunking_does_not_change_the_stream():
    a = list(SyntheticMarket(symbols=4, seed=5, duration_ms=300_000, chunk_size=65_536).iter_ticks())
    b = list(SyntheticMarket(symbols=4, seed=5, duration_ms=300_000, chunk_size=65_536).iter_ticks())
    assert a == b
    # a different chunk size draws the random numbers in other blocks: same law, other path
    small = list(SyntheticMarket(symbols=4, seed=5, duration_ms=300_000, chunk_size=100).iter_ticks())
    assert len(small) > 0 and all(t.ts_ms < 1_700_000_300_000 for t in small)


def test_ticks_are_valid_ordered_and_in_range():
    m = SyntheticMarket(symbols=7, seed=2, duration_ms=600_000, ticks_per_second=50)
    ticks = list(m.iter_ticks())
    assert abs(len(ticks) - 600 * 50) < 5 * math.sqrt(600 * 50)  # Poisson count
    assert all(validate_tick(t) is t for t in ticks)
    assert all(a.ts_ms <= b.ts_ms for a, b in itertools.pairwise(ticks))
    assert ticks[0].ts_ms >= m.start_ms and ticks[-1].ts_ms < m.end_ms
    assert {t.symbol for t in ticks} == set(synthetic_symbols(7))
    assert all(t.source == "synthetic" and t.size > 0 for t in ticks)
    for sym in m.symbols:
        ids = [int(t.trade_id) for t in ticks if t.symbol == sym]
        assert ids == list(range(1, len(ids) + 1))


def test_iteration_equals_frame():
    m = SyntheticMarket(symbols=3, seed=9, duration_ms=200_000)
    df = m.to_frame()
    ticks = list(m.iter_ticks())
    assert len(df) == len(ticks)
    rebuilt = [Tick(symbol=r.symbol, ts_ms=int(r.ts_ms), price=float(r.price), size=float(r.size),
                    source=r.source, trade_id=r.trade_id) for r in df.itertuples()]
    assert rebuilt == ticks


def test_endless_market_streams_and_cannot_be_framed():
    m = SyntheticMarket(symbols=2, seed=1, duration_ms=None, chunk_size=1000)
    first = list(itertools.islice(m.iter_ticks(), 5000))
    assert len(first) == 5000
    with pytest.raises(ValidationError):
        m.to_frame()


def test_volatility_is_about_right():
    m = SyntheticMarket(symbols=["BTC-USD"], seed=4, duration_ms=86_400_000, ticks_per_second=5,
                        jump_intensity=0.0, volatility=0.8)
    df = m.to_frame()
    minute = df.groupby(df.ts_ms // 60_000).price.last()
    r = np.diff(np.log(minute.to_numpy()))
    annual = r.std() * math.sqrt(365 * 24 * 60)
    assert 0.65 < annual < 0.95


@pytest.mark.parametrize(("kind", "magnitude"), [("spike", 0.10), ("crash", 0.07), ("spike", 0.03)])
def test_injected_move_is_seen_by_the_aligned_one_minute_candle(kind, magnitude):
    at = 1_700_000_040_000 + 20 * 60_000
    inj = Injection(symbol="ETH-USD", at_ms=at, kind=kind, magnitude=magnitude)
    m = SyntheticMarket(symbols=3, seed=21, start_ms=1_700_000_040_000, duration_ms=3_600_000,
                        injections=[inj])
    candles = with_ms_windows(candles_from_ticks(m.to_frame(), intervals="1m"))  # at: epoch ms
    c = candles[(candles.symbol == "ETH-USD") & (candles.window_start == at)].iloc[0]
    move = c.close / c.open - 1
    expected = magnitude if kind == "spike" else -magnitude
    assert move == pytest.approx(expected, abs=0.006)
    # the walk continues from the new level: the next candle opens near the moved close
    nxt = candles[(candles.symbol == "ETH-USD") & (candles.window_start == at + 60_000)].iloc[0]
    assert nxt.open == pytest.approx(c.close, rel=0.005)
    assert m.labels == [{"symbol": "ETH-USD", "kind": kind, "magnitude": magnitude,
                         "start_ms": at, "end_ms": at + 60_000}]


def test_random_injections_are_deterministic_aligned_and_apart():
    kw = dict(symbols=4, seed=8, duration_ms=6 * 3_600_000, random_injections=12)
    a, b = SyntheticMarket(**kw), SyntheticMarket(**kw)
    assert a.labels == b.labels and len(a.labels) == 12
    for lab in a.labels:
        assert lab["start_ms"] % 60_000 == 0 and lab["end_ms"] - lab["start_ms"] == 60_000
        assert 0.03 <= lab["magnitude"] <= 0.15
        assert lab["start_ms"] >= a.start_ms + 10 * 60_000 and lab["end_ms"] <= a.end_ms
    by_sym: dict[str, list[int]] = {}
    for lab in a.labels:
        by_sym.setdefault(lab["symbol"], []).append(lab["start_ms"])
    for starts in by_sym.values():
        starts.sort()
        assert all(y - x >= 5 * 60_000 for x, y in itertools.pairwise(starts))
    assert SyntheticMarket(**{**kw, "seed": 9}).labels != a.labels


def test_write_labels_next_to_the_data(tmp_path):
    m = SyntheticMarket(symbols=2, seed=3, duration_ms=3_600_000, random_injections=3)
    out = m.write_labels(tmp_path / "ticks.jsonl")
    assert out == tmp_path / "ticks.labels.json"
    assert json.loads(out.read_text()) == m.labels
    assert labels_path(tmp_path / "x.labels.json") == tmp_path / "x.labels.json"
    assert labels_path(tmp_path / "truth.json") == tmp_path / "truth.json"
    assert labels_path(tmp_path / "ticks.csv.gz") == tmp_path / "ticks.labels.json"


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValidationError, match="symbols"):
        SyntheticMarket(symbols=["BTC-USD", "BTC-USD"])
    with pytest.raises(ValidationError, match="symbol"):
        SyntheticMarket(symbols=["btc usd"])
    with pytest.raises(ValidationError, match="ticks_per_second"):
        SyntheticMarket(ticks_per_second=0)
    with pytest.raises(ValidationError, match="injections"):
        SyntheticMarket(symbols=2, injections=[Injection(symbol="XRP-USD", at_ms=1_700_000_000_000,
                                                         kind="spike", magnitude=0.1)])
    with pytest.raises(ValidationError, match="random_injections"):
        SyntheticMarket(duration_ms=None, random_injections=1)
    with pytest.raises(ValidationError, match="kind"):
        Injection(symbol="X", at_ms=1_700_000_000_000, kind="wobble", magnitude=0.1)  # type: ignore[arg-type]


def test_is_a_registered_source():
    src = make_source("synthetic", symbols=1, duration_ms=1000)
    assert isinstance(src, Source) and src.validated
