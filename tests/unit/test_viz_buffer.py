"""The chart's pure data logic: stream vs patch vs ignore, rollover, revisions, moving averages."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import replace
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptolab.errors import ValidationError
from cryptolab.models import Alert, Candle
from cryptolab.viz.buffer import (
    AlertBuffer,
    CandleBuffer,
    Op,
    Patch,
    Reset,
    Stream,
    coalesce,
    version_of,
)

T0 = 1_700_000_040_000  # a minute boundary
MIN = 60_000


def candle(
    k: int,
    close: float = 100.0,
    *,
    trades: int = 1,
    revision: int = 0,
    final: bool = False,
    symbol: str = "BTC-USD",
    interval: str = "1m",
    open_: float = 100.0,
) -> Candle:
    ws = T0 + k * MIN
    return Candle(
        symbol=symbol, interval=interval, window_start=ws, window_end=ws + MIN, open=open_,
        high=max(open_, close) + 1.0, low=min(open_, close) - 1.0, close=close,
        volume=float(trades), vwap=None, trades=trades, first_ts=ws, last_ts=ws + trades,
        high_ts=ws, low_ts=ws, revision=revision, final=final,
    )


class FakeSource:
    """A ColumnDataSource twin with Bokeh's stream/patch/rollover semantics."""

    def __init__(self, data: dict[str, list[Any]]) -> None:
        self.data = {k: list(v) for k, v in data.items()}

    def apply(self, ops: list[Op]) -> None:
        for op in ops:
            if isinstance(op, Stream):
                for k, v in op.rows.items():
                    col = self.data[k]
                    col.extend(v)
                    if len(col) > op.rollover:
                        del col[: len(col) - op.rollover]
            elif isinstance(op, Patch):
                for k, cells in op.patches.items():
                    for i, v in cells:
                        self.data[k][i] = v
            elif isinstance(op, Reset):
                self.data = {k: list(v) for k, v in op.data.items()}


def same_data(a: dict[str, list[Any]], b: dict[str, list[Any]]) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        if len(a[k]) != len(b[k]):
            return False
        for x, y in zip(a[k], b[k], strict=True):
            if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
                continue
            if x != y:
                return False
    return True


# ----------------------------------------------------------------- examples


def test_new_window_streams_and_open_candle_patches_in_place() -> None:
    buf = CandleBuffer(symbol="BTC-USD", interval="1m", maxlen=10)
    ops = buf.apply(candle(0, 101.0))
    assert len(ops) == 1 and isinstance(ops[0], Stream)
    assert ops[0].rows["close"] == [101.0] and ops[0].rollover == 10
    ops = buf.apply(candle(0, 99.0, trades=2))
    assert len(ops) == 1 and isinstance(ops[0], Patch)
    assert ops[0].patches["close"] == [(0, 99.0)]
    assert ops[0].patches["direction"] == [(0, "down")]
    assert len(buf) == 1
    assert buf.column("close") == [99.0]


def test_late_revision_patches_its_bar_at_any_index() -> None:
    buf = CandleBuffer(symbol="BTC-USD", interval="1m", maxlen=10, ma_windows=(3,))
    for k in range(6):
        buf.apply(candle(k, 100.0 + k, final=k < 5))
    ops = buf.apply(candle(1, 90.0, revision=1, final=True))
    assert len(ops) == 1 and isinstance(ops[0], Patch)
    patch = ops[0].patches
    assert patch["close"] == [(1, 90.0)]
    assert patch["revision"] == [(1, 1)]
    # MA3 moves at rows 2 and 3 (row 1 has no MA3 yet; row 4 no longer includes row 1).
    assert [i for i, _ in patch["ma3"]] == [2, 3]
    assert buf.column("ma3")[3] == pytest.approx((90.0 + 102.0 + 103.0) / 3)
    assert buf.column("close") == [100.0, 90.0, 102.0, 103.0, 104.0, 105.0]


def test_stale_revisions_and_duplicates_are_ignored() -> None:
    buf = CandleBuffer(symbol="BTC-USD", interval="1m", maxlen=10)
    buf.apply(candle(0, 101.0, trades=5))
    buf.apply(candle(0, 102.0, revision=2, final=True, trades=7))
    assert buf.apply(candle(0, 50.0, revision=1, final=True, trades=6)) == []  # older revision
    assert buf.apply(candle(0, 50.0, trades=9)) == []  # an open copy after the final one
    assert buf.apply(candle(0, 102.0, revision=2, final=True, trades=7)) == []  # duplicate
    assert buf.column("close") == [102.0]
    assert buf.stats.ignored == 3


def test_other_series_are_ignored() -> None:
    buf = CandleBuffer(symbol="BTC-USD", interval="1m")
    assert buf.apply(candle(0, symbol="ETH-USD")) == []
    assert buf.apply(candle(0, interval="5m")) == []
    assert len(buf) == 0 and buf.stats.other_series == 2


def test_rollover_keeps_memory_bounded_and_ignores_windows_that_rolled_off() -> None:
    buf = CandleBuffer(symbol="BTC-USD", interval="1m", maxlen=5)
    for k in range(50):
        buf.apply(candle(k, 100.0 + k))
        assert len(buf) == min(k + 1, 5)
    assert buf.column("window_start") == [T0 + k * MIN for k in range(45, 50)]
    assert buf.stats.rolled_over == 45
    assert buf.apply(candle(44, 1.0, revision=3, final=True)) == []  # rolled off
    assert buf.apply(candle(10, 1.0)) == []  # older than the buffer
    assert len(buf) == 5


def test_moving_averages_match_pandas_across_rollover() -> None:
    closes = [100 + 10 * math.sin(k / 7) + k * 0.1 for k in range(300)]
    buf = CandleBuffer(symbol="BTC-USD", interval="1m", maxlen=80)
    for k, c in enumerate(closes):
        buf.apply(candle(k, c, final=True))
    series = pd.Series(closes)
    for n in (20, 50):
        expected = series.rolling(n).mean().tolist()[-80:]
        assert buf.column(f"ma{n}") == pytest.approx(expected, rel=1e-12)


def test_revision_of_the_oldest_row_uses_the_rolled_over_closes() -> None:
    buf = CandleBuffer(symbol="BTC-USD", interval="1m", maxlen=10, ma_windows=(4,))
    closes = [float(100 + k) for k in range(30)]
    for k, c in enumerate(closes):
        buf.apply(candle(k, c, final=True))
    first = 20  # the oldest row in the buffer
    buf.apply(candle(first, 0.0, revision=1, final=True))
    closes[first] = 0.0
    expected = pd.Series(closes).rolling(4).mean().tolist()[-10:]
    assert buf.column("ma4") == pytest.approx(expected)


def test_ma_is_nan_until_enough_bars() -> None:
    buf = CandleBuffer(symbol="BTC-USD", interval="1m", ma_windows=(3,))
    for k in range(3):
        buf.apply(candle(k, 100.0 + k))
    ma = buf.column("ma3")
    assert math.isnan(ma[0]) and math.isnan(ma[1]) and ma[2] == pytest.approx(101.0)


def test_a_missing_window_between_two_bars_resets_the_view() -> None:
    buf = CandleBuffer(symbol="BTC-USD", interval="1m", maxlen=10, ma_windows=(2,))
    for k in (0, 1, 3):
        buf.apply(candle(k, 100.0 + k))
    ops = buf.apply(candle(2, 200.0))
    assert len(ops) == 1 and isinstance(ops[0], Reset)
    assert buf.column("window_start") == [T0 + k * MIN for k in range(4)]
    assert buf.column("ma2")[2:] == [pytest.approx(150.5), pytest.approx(151.5)]
    assert ops[0].data == buf.data()


def test_decide_does_not_change_the_buffer() -> None:
    buf = CandleBuffer(symbol="BTC-USD", interval="1m", maxlen=3)
    assert buf.decide(candle(0)) == "stream"
    assert len(buf) == 0
    buf.apply(candle(0))
    assert buf.decide(candle(0, trades=2)) == "patch"
    assert buf.decide(candle(0)) == "ignore"
    assert buf.decide(candle(-5)) == "reset"  # not full yet: older windows may still come


def test_extend_coalesces_a_batch() -> None:
    buf = CandleBuffer(symbol="BTC-USD", interval="1m", maxlen=100)
    batch = [candle(0, 100.0 + t, trades=t) for t in range(1, 20)]
    batch += [candle(1, 110.0, trades=1), candle(2, 111.0, trades=1), candle(2, 112.0, trades=2)]
    ops = buf.extend(batch)
    assert [type(op).__name__ for op in ops] == ["Stream", "Patch", "Stream", "Patch"]
    view = FakeSource(CandleBuffer(symbol="BTC-USD", interval="1m").data())
    view.apply(ops)
    assert same_data(view.data, buf.data())


def test_invalid_parameters() -> None:
    with pytest.raises(ValidationError):
        CandleBuffer(symbol="X", interval="1m", maxlen=0)
    with pytest.raises(ValidationError):
        CandleBuffer(symbol="X", interval="7m")
    with pytest.raises(ValidationError):
        CandleBuffer(symbol="X", interval="1m", ma_windows=(0,))


def test_version_orders_revision_then_final_then_trades() -> None:
    base = candle(0, trades=3)
    assert version_of(replace(base, trades=4)) > version_of(base)
    assert version_of(replace(base, final=True, trades=1)) > version_of(base)
    assert version_of(replace(base, revision=1, final=True, trades=1)) > version_of(
        replace(base, final=True, trades=50)
    )


def test_the_pure_buffer_imports_no_bokeh() -> None:
    """What lint-imports cannot see: importing the buffer runs cryptolab.viz's __init__, whose
    names load lazily (its own imports are the pure-core contract's)."""
    code = "import sys, cryptolab.viz.buffer; print(sorted(m for m in sys.modules if m.split('.')[0] in ('bokeh', 'confluent_kafka', 'redis', 'sqlalchemy')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -------------------------------------------------------------- properties

# An event: (window index, revision, final, trades); the content is a function of
# (window, version) so that equal versions carry equal values.
events = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=40),
        st.integers(min_value=0, max_value=3),
        st.booleans(),
        st.integers(min_value=1, max_value=6),
    ),
    min_size=1,
    max_size=120,
)


def event_candle(k: int, revision: int, final: bool, trades: int) -> Candle:
    close = 100.0 + ((k * 7919 + revision * 104729 + int(final) * 13 + trades * 31) % 997) / 10
    return candle(k, close, trades=trades, revision=revision, final=final or revision > 0,
                  open_=100.0 + (k % 5))


@settings(max_examples=300, deadline=None)
@given(evts=events, maxlen=st.integers(min_value=1, max_value=25), batch=st.integers(1, 8))
def test_view_mirrors_buffer_and_buffer_keeps_the_newest_version(
    evts: list[tuple[int, int, bool, int]], maxlen: int, batch: int
) -> None:
    buf = CandleBuffer(symbol="BTC-USD", interval="1m", maxlen=maxlen, ma_windows=(3, 5))
    view = FakeSource(buf.data())
    cs = [event_candle(*e) for e in evts]
    for i in range(0, len(cs), batch):
        view.apply(buf.extend(cs[i : i + batch]))
        assert same_data(view.data, buf.data())
    # Rows: the newest `maxlen` distinct windows, each at its greatest version.
    best: dict[int, Candle] = {}
    for c in cs:
        cur = best.get(c.window_start)
        if cur is None or version_of(c) > version_of(cur):
            best[c.window_start] = c
    kept = sorted(best)[-maxlen:]
    assert buf.column("window_start") == kept
    assert buf.column("close") == [best[ws].close for ws in kept]
    assert buf.column("revision") == [best[ws].revision for ws in kept]
    assert len(buf) <= maxlen
    # Moving averages over rows fully inside the buffer are exact.
    closes = buf.column("close")
    for n in (3, 5):
        ma = buf.column(f"ma{n}")
        for i in range(n - 1, len(closes)):
            assert ma[i] == pytest.approx(sum(closes[i - n + 1 : i + 1]) / n)


@settings(max_examples=200, deadline=None)
@given(evts=events, maxlen=st.integers(min_value=1, max_value=12))
def test_coalescing_never_changes_the_result(
    evts: list[tuple[int, int, bool, int]], maxlen: int
) -> None:
    one = CandleBuffer(symbol="BTC-USD", interval="1m", maxlen=maxlen, ma_windows=(2,))
    raw: list[Op] = []
    for e in evts:
        raw.extend(one.apply(event_candle(*e)))
    a = FakeSource(CandleBuffer(symbol="BTC-USD", interval="1m", ma_windows=(2,)).data())
    b = FakeSource(a.data)
    a.apply(raw)
    b.apply(coalesce(raw))
    assert same_data(a.data, b.data)
    assert same_data(a.data, one.data())


@settings(max_examples=60, deadline=None)
@given(evts=events, maxlen=st.integers(min_value=1, max_value=15))
def test_a_real_bokeh_source_mirrors_the_buffer(
    evts: list[tuple[int, int, bool, int]], maxlen: int
) -> None:
    from bokeh.models import ColumnDataSource

    from cryptolab.viz.chart import apply_ops

    buf = CandleBuffer(symbol="BTC-USD", interval="1m", maxlen=maxlen)
    source = ColumnDataSource(buf.data())
    for e in evts:
        apply_ops(source, buf.apply(event_candle(*e)))
    assert same_data({k: list(v) for k, v in source.data.items()}, buf.data())


# ------------------------------------------------------------------ alerts


def alert(k: int, detector: str = "rule", score: float = 0.5, symbol: str = "BTC-USD") -> Alert:
    return Alert(symbol=symbol, interval="1m", window_start=T0 + k * MIN, detector=detector,
                 severity="HIGH", score=score, ts_ms=T0 + (k + 1) * MIN)


def test_alert_markers_are_deduplicated_updated_and_bounded() -> None:
    buf = AlertBuffer(symbol="BTC-USD", interval="1m", maxlen=3)
    assert isinstance(buf.apply(alert(0), y=1.0)[0], Stream)
    assert buf.apply(alert(0), y=1.0) == []
    ops = buf.apply(alert(0, score=0.9), y=1.0)
    assert isinstance(ops[0], Patch) and ops[0].patches == {"score": [(0, 0.9)]}
    assert isinstance(buf.apply(alert(0, detector="hst"), y=1.0)[0], Stream)  # another detector
    assert buf.apply(alert(1, symbol="ETH-USD"), y=1.0) == []
    for k in range(1, 6):
        buf.apply(alert(k), y=float(k))
    assert len(buf) == 3
    assert buf.data()["window_start"] == [T0 + k * MIN for k in (3, 4, 5)]
    move = buf.move(T0 + 4 * MIN, 42.0)
    assert move == [Patch({"y": [(1, 42.0)]})]
    assert buf.move(T0 + 4 * MIN, 42.0) == []
