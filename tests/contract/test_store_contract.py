"""The store contract: one test body per behaviour, run against SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import dataclasses
import random
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cryptolab.errors import FencedError, StoreError
from cryptolab.models import Alert, Candle, iso_utc
from cryptolab.store import (
    ALERT_CSV_COLUMNS,
    CANDLE_CSV_COLUMNS,
    HISTORY_COLUMNS,
    SCHEMA_VERSION,
    LateTick,
    PartitionProgress,
    Store,
)

T0 = 1_700_000_040_000  # 2023-11-14T22:14:00Z, a minute boundary
MIN = 60_000
NASTY_SYMBOLS = [
    "BTC'; DROP TABLE candles;--",
    'ETH"); DROP TABLE alerts; --',
    "%s %(symbol)s :symbol ? $1",
    "ünï'cødé\\",
]


def candle(
    i: int = 0,
    *,
    symbol: str = "BTC-USD",
    interval: str = "1m",
    step: int = MIN,
    revision: int = 0,
    final: bool = True,
    gap: bool = False,
    close: float | None = None,
    vwap: float | None = 100.25,
) -> Candle:
    ws = T0 + i * step
    base = 100.0 + i
    return Candle(
        symbol=symbol, interval=interval, window_start=ws, window_end=ws + step,
        open=base, high=base + 2.5, low=base - 1.25, close=base + 0.5 if close is None else close,
        volume=1.5 + i, vwap=vwap, trades=3 + i, first_ts=ws + 1, last_ts=ws + step - 1,
        high_ts=ws + 10, low_ts=ws + 20, revision=revision, final=final, gap=gap,
    )


def alert(i: int = 0, *, symbol: str = "BTC-USD", detector: str = "rule", score: float = 4.5) -> Alert:
    return Alert(
        symbol=symbol, interval="1m", window_start=T0 + i * MIN, detector=detector,
        severity="HIGH", score=score, ts_ms=T0 + (i + 1) * MIN, features={"ret": 0.031, "z": score},
    )


def late(offset: int, *, partition: int = 0) -> LateTick:
    return LateTick(
        topic="ticks", partition=partition, offset=offset, symbol="BTC-USD", ts_ms=T0 + offset,
        price=99.5, size=0.25, source="test", trade_id=str(offset), watermark_ms=T0 + 10 * MIN,
    )


def prog(partition: int, offset: int, *, wm: int | None = None, state: bytes = b"") -> dict[int, PartitionProgress]:
    return {partition: PartitionProgress(partition=partition, offset=offset, watermark_ms=wm, state=state)}


# --------------------------------------------------------------------------- candles


def test_upsert_and_read_back(store: Store) -> None:
    cs = [candle(i, symbol=s, interval=iv) for s in ("ETH-USD", "BTC-USD") for iv in ("5m", "1m")
          for i in range(4)]
    random.Random(1).shuffle(cs)
    assert store.commit_batch(group="g", topic="ticks", candles=cs) == []
    expected = sorted(cs, key=lambda c: c.key)
    assert store.candles() == expected
    assert store.candles("ETH-USD", "5m") == [c for c in expected if c.key[:2] == ("ETH-USD", "5m")]


def test_revision_upsert_replaces_the_row(store: Store) -> None:
    store.commit_batch(group="g", topic="t", candles=[candle(0), candle(1)])
    revised = candle(0, revision=1, close=123.0)
    store.commit_batch(group="g", topic="t", candles=[revised])
    assert store.candles() == [revised, candle(1)]


def test_same_key_twice_in_one_batch_last_wins(store: Store) -> None:
    first, second = candle(0, final=False), candle(0, revision=0, final=True, close=101.75)
    store.commit_batch(group="g", topic="t", candles=[first, second])
    assert store.candles() == [second]


def test_none_vwap_and_gap_flag_round_trip(store: Store) -> None:
    cs = [candle(0, vwap=None), candle(1, gap=True, final=True)]
    store.commit_batch(group="g", topic="t", candles=cs)
    assert store.candles() == cs


def test_thousands_of_candles_in_one_batch(store: Store) -> None:
    cs = [candle(i) for i in range(3000)]
    store.commit_batch(group="g", topic="t", candles=cs)
    assert len(store.candles()) == 3000
    assert store.candles()[-1] == cs[-1]


# --------------------------------------------------------------------------- alerts


def test_alerts_are_inserted_at_most_once(store: Store) -> None:
    a = alert(0)
    assert store.commit_batch(group="g", topic="t", alerts=[a]) == [a]
    again = dataclasses.replace(a, score=99.0, severity="LOW")
    other = alert(1)
    assert store.commit_batch(group="g", topic="t", alerts=[again, other]) == [other]
    assert store.alert_list() == [a, other]


def test_duplicate_alerts_in_one_batch_insert_once(store: Store) -> None:
    a, b = alert(0), alert(0, detector="zscore")
    dup = dataclasses.replace(a, score=1.0)
    assert store.commit_batch(group="g", topic="t", alerts=[a, dup, b]) == [a, b]
    assert store.alert_list() == [a, b]


def test_alerts_frame_columns_and_types(store: Store) -> None:
    store.commit_batch(group="g", topic="t", alerts=[alert(1), alert(0)])
    df = store.alerts()
    assert list(df.columns) == ["symbol", "interval", "window_start", "detector", "severity",
                                "score", "ts_ms", "features"]
    assert str(df.window_start.dt.tz) == "UTC"
    assert df.window_start.tolist() == [pd.Timestamp(T0, unit="ms", tz="UTC"),
                                        pd.Timestamp(T0 + MIN, unit="ms", tz="UTC")]
    assert df.features.iloc[0] == {"ret": 0.031, "z": 4.5}
    assert store.alerts(start=T0 + MIN).window_start.tolist() == [pd.Timestamp(T0 + MIN, unit="ms", tz="UTC")]
    assert store.alerts(detector="nope").empty


# --------------------------------------------------------------------------- progress and fencing


def test_load_progress_round_trip(store: Store) -> None:
    state = bytes(range(256)) + b"\x00tail"
    store.commit_batch(group="g", topic="ticks", progress={
        0: PartitionProgress(partition=0, offset=10, watermark_ms=T0, state=state),
        2: PartitionProgress(partition=2, offset=0, watermark_ms=None, state=b""),
    }, expected_offsets={0: None, 2: None})
    store.commit_batch(group="other", topic="ticks", progress=prog(0, 99), expected_offsets={0: None})
    got = store.load_progress("g", "ticks")
    assert got == {
        0: PartitionProgress(partition=0, offset=10, watermark_ms=T0, state=state),
        2: PartitionProgress(partition=2, offset=0, watermark_ms=None, state=b""),
    }
    assert store.load_progress("g", "ticks", [2, 5]) == {2: got[2]}
    assert store.load_progress("g", "other-topic") == {}
    assert store.load_progress("other", "ticks")[0].offset == 99


def test_progress_advances_when_expected_matches(store: Store) -> None:
    store.commit_batch(group="g", topic="t", progress=prog(1, 5), expected_offsets={1: None})
    store.commit_batch(group="g", topic="t", progress=prog(1, 9, wm=T0, state=b"s"), expected_offsets={1: 5})
    assert store.load_progress("g", "t") == prog(1, 9, wm=T0, state=b"s")


@pytest.mark.parametrize(
    ("stored", "expected"),
    [(10, 5), (10, None), (None, 10), (10, 11)],
    ids=["stale-offset", "expects-none-but-row", "expects-row-but-none", "ahead-of-store"],
)
def test_fenced_commit_writes_nothing(store: Store, stored: int | None, expected: int | None) -> None:
    if stored is not None:
        store.commit_batch(group="g", topic="t", candles=[candle(0)], progress=prog(0, stored),
                           expected_offsets={0: None})
    before_candles, before_alerts = store.candles(), store.alert_list()
    before_progress = store.load_progress("g", "t")
    with pytest.raises(FencedError, match="partition 0"):
        store.commit_batch(
            group="g", topic="t",
            candles=[candle(0, revision=5, close=1.0), candle(7)],
            alerts=[alert(0)], late_ticks=[late(3)],
            progress={**prog(0, 50), **prog(1, 4)}, expected_offsets={0: expected, 1: None},
        )
    assert store.candles() == before_candles
    assert store.alert_list() == before_alerts
    assert store.late_tick_count() == 0
    assert store.load_progress("g", "t") == before_progress


def test_fenced_advance_names_the_stale_partition_and_writes_nothing(store: Store) -> None:
    # every partition has stored progress and moves on: the usual batch of a running consumer
    store.commit_batch(group="g", topic="t", progress={**prog(0, 10), **prog(1, 20)},
                       expected_offsets={0: None, 1: None})
    before = store.load_progress("g", "t")
    with pytest.raises(FencedError, match=r"partition 1: expected offset 19, store has offset 20"):
        store.commit_batch(group="g", topic="t", candles=[candle(0)], alerts=[alert(0)],
                           progress={**prog(0, 15, state=b"x"), **prog(1, 25, state=b"y")},
                           expected_offsets={0: 10, 1: 19})
    assert store.load_progress("g", "t") == before  # partition 0 passed its check, yet did not move
    assert store.candles() == [] and store.alert_list() == []
    store.commit_batch(group="g", topic="t", candles=[candle(0)],
                       progress={**prog(0, 15, wm=T0, state=b"x"), **prog(1, 25, state=b"y")},
                       expected_offsets={0: 10, 1: 20})
    assert store.load_progress("g", "t") == {**prog(0, 15, wm=T0, state=b"x"), **prog(1, 25, state=b"y")}
    assert store.candles() == [candle(0)]


def test_awkward_values_round_trip_bit_for_bit(store: Store) -> None:
    odd = [0.1, 1 / 3, 5e-324, 1.7976931348623157e308, 2.0**-1074 * 3, 123456789.12345679]
    cs = [
        dataclasses.replace(
            candle(i, revision=i, final=i % 2 == 0, gap=i % 3 == 0, vwap=None if i % 2 else odd[-1 - i]),
            open=x, high=x, low=x, close=x, volume=x, window_end=2**62 + i,
            trades=2**40 + i, first_ts=-(2**40), last_ts=0,
        )
        for i, x in enumerate(odd)
    ]
    store.commit_batch(group="g", topic="t", candles=cs)
    back = store.candles()
    assert back == cs
    assert repr(back) == repr(cs)  # the same doubles, None stays None


def test_numpy_scalars_in_candles_are_stored_as_numbers(store: Store) -> None:
    import numpy as np

    plain = candle(0, vwap=1 / 3)
    scalars = dataclasses.replace(
        plain, open=np.float64(plain.open), vwap=np.float64(1 / 3), trades=np.int64(plain.trades),
        window_end=np.int64(plain.window_end), final=np.bool_(True),
    )
    store.commit_batch(group="g", topic="t", candles=[scalars])
    assert repr(store.candles()) == repr([plain])


def test_fencing_checks_partitions_only_in_expected(store: Store) -> None:
    store.commit_batch(group="g", topic="t", progress=prog(3, 8), expected_offsets={3: None})
    with pytest.raises(FencedError):
        store.commit_batch(group="g", topic="t", candles=[candle(0)], progress=prog(0, 1),
                           expected_offsets={0: None, 3: 7})
    assert store.candles() == []
    store.commit_batch(group="g", topic="t", candles=[candle(0)], progress=prog(0, 1),
                       expected_offsets={0: None, 3: 8})
    assert store.load_progress("g", "t") == {**prog(0, 1), **prog(3, 8)}


def test_progress_without_expected_offset_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="expected_offsets"):
        store.commit_batch(group="g", topic="t", candles=[candle(0)], progress=prog(0, 1))
    assert store.candles() == []


def _race(stores: dict[str, Store], rnd: int) -> dict[str, object]:
    """Let every store commit the same step at once; return ``{name: "ok" | FencedError}``."""
    start = threading.Barrier(len(stores))
    results: dict[str, object] = {}

    def commit(name: str, store: Store) -> None:
        start.wait()
        try:
            store.commit_batch(group="g", topic="t", candles=[candle(rnd, symbol=f"WIN-{name}")],
                               progress=prog(0, rnd + 1), expected_offsets={0: rnd})
            results[name] = "ok"
        except FencedError as exc:
            results[name] = exc

    threads = [threading.Thread(target=commit, args=item) for item in stores.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_racing_consumers_exactly_one_wins(store_backend: Any) -> None:
    a, b = store_backend.make(), store_backend.make()
    a.commit_batch(group="g", topic="t", progress=prog(0, 0), expected_offsets={0: None})
    for rnd in range(5):
        results = _race({"A": a, "B": b}, rnd)
        winners = [n for n, r in results.items() if r == "ok"]
        assert len(winners) == 1, results
        assert all(isinstance(r, FencedError) for n, r in results.items() if n not in winners)
        assert {c.symbol for c in a.candles() if c.window_start == T0 + rnd * MIN} == {f"WIN-{winners[0]}"}
    assert a.load_progress("g", "t")[0].offset == 5


def test_failed_batch_commits_nothing(store: Store) -> None:
    bad = dataclasses.replace(candle(5), open=None)  # type: ignore[arg-type]  # NOT NULL violation
    with pytest.raises(StoreError) as info:
        store.commit_batch(group="g", topic="t", candles=[candle(0), bad], alerts=[alert(0)],
                           late_ticks=[late(1)], progress=prog(0, 3), expected_offsets={0: None})
    assert not isinstance(info.value, FencedError)
    assert store.candles() == [] and store.alert_list() == []
    assert store.late_tick_count() == 0 and store.load_progress("g", "t") == {}
    # the store is still usable afterwards
    store.commit_batch(group="g", topic="t", candles=[candle(0)], progress=prog(0, 3),
                       expected_offsets={0: None})
    assert store.candles() == [candle(0)]


# --------------------------------------------------------------------------- late ticks


def test_late_ticks_recorded_once(store: Store) -> None:
    store.commit_batch(group="g", topic="ticks", late_ticks=[late(1), late(2), late(1, partition=1)])
    store.commit_batch(group="g", topic="ticks", late_ticks=[late(2), late(3)])
    assert store.late_tick_count() == 4


# --------------------------------------------------------------------------- history


def test_history_range_order_and_dtypes(store: Store) -> None:
    cs = [candle(i, final=i < 8) for i in range(10)]
    cs.append(candle(3, symbol="ETH-USD"))
    cs.append(candle(3, interval="5m", step=5 * MIN))
    random.Random(7).shuffle(cs)
    store.commit_batch(group="g", topic="t", candles=cs)

    df = store.history("BTC-USD", "1m")
    assert list(df.columns) == list(HISTORY_COLUMNS)
    assert len(df) == 10
    assert df.window_start.is_monotonic_increasing
    for col in ("window_start", "window_end"):
        assert isinstance(df[col].dtype, pd.DatetimeTZDtype) and str(df[col].dt.tz) == "UTC"
    for col in ("first_ts", "last_ts", "high_ts", "low_ts", "trades", "revision"):
        assert df[col].dtype == "int64", col
    for col in ("open", "high", "low", "close", "volume", "vwap"):
        assert df[col].dtype == "float64", col
    assert df.final.dtype == bool and df.gap.dtype == bool
    first = candle(0)
    row = df.iloc[0]
    assert row.window_start == pd.Timestamp(first.window_start, unit="ms", tz="UTC")
    assert (row.open, row.high, row.low, row.close, row.volume, row.vwap) == (
        first.open, first.high, first.low, first.close, first.volume, first.vwap)
    assert (row.first_ts, row.last_ts, row.high_ts, row.low_ts) == (
        first.first_ts, first.last_ts, first.high_ts, first.low_ts)

    # [start, end) in every accepted time form
    start, end = T0 + 2 * MIN, T0 + 5 * MIN
    for s, e in [(start, end), (iso_utc(start), iso_utc(end)),
                 (pd.Timestamp(start, unit="ms", tz="UTC"), pd.Timestamp(end, unit="ms", tz="UTC")),
                 (pd.Timestamp(start, unit="ms", tz="UTC").tz_convert("Asia/Tokyo").to_pydatetime(),
                  pd.Timestamp(end, unit="ms", tz="UTC").tz_convert("US/Eastern"))]:
        got = store.history("BTC-USD", "1m", s, e)
        assert got.window_start.tolist() == [pd.Timestamp(t, unit="ms", tz="UTC") for t in (start, start + MIN, start + 2 * MIN)]
    assert len(store.history("BTC-USD", "1m", final_only=True)) == 8
    last3 = store.history("BTC-USD", "1m", limit=3)
    assert last3.open.tolist() == [107.0, 108.0, 109.0]
    assert store.history("BTC-USD", "60s", start=T0 + 9 * MIN).open.tolist() == [109.0]
    assert store.history("BTC-USD", "5m").open.tolist() == [103.0]


def test_history_of_unknown_series_is_an_empty_typed_frame(store: Store) -> None:
    df = store.history("NOPE-USD", "1m")
    assert df.empty and list(df.columns) == list(HISTORY_COLUMNS)
    assert isinstance(df.window_start.dtype, pd.DatetimeTZDtype)
    assert df.close.dtype == "float64" and df.final.dtype == bool


def test_final_candles_since(store: Store) -> None:
    cs = [candle(i, final=i != 4, gap=i == 2) for i in range(6)]
    store.commit_batch(group="g", topic="t", candles=cs)
    got = store.final_candles_since("BTC-USD", "1m", T0 + 5 * MIN)
    assert [c.window_start for c in got] == [T0, T0 + MIN, T0 + 3 * MIN]
    assert store.final_candles_since("BTC-USD", "1m", T0 + 6 * MIN, limit=2) == [cs[3], cs[5]]


# --------------------------------------------------------------------------- exports


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def test_export_candles_csv(store: Store, tmp_path: Path) -> None:
    cs = [candle(i) for i in range(5)] + [candle(0, symbol="ETH-USD", vwap=None)]
    store.commit_batch(group="g", topic="t", candles=cs)
    out = tmp_path / "sub" / "candles.csv"
    assert store.export_candles(out) == 6
    header, rows = _read_csv(out)
    assert header == list(CANDLE_CSV_COLUMNS)
    assert [r["symbol"] for r in rows] == ["BTC-USD"] * 5 + ["ETH-USD"]
    first = rows[0]
    assert first["window_start"] == "2023-11-14T22:14:00Z" == iso_utc(cs[0].window_start)
    assert first["window_end"] == "2023-11-14T22:15:00Z"
    assert float(first["open"]) == cs[0].open and float(first["vwap"]) == cs[0].vwap
    assert (first["trades"], first["revision"], first["final"]) == ("3", "0", "true")
    assert rows[-1]["vwap"] == ""
    n = store.export_candles(out, symbol="BTC-USD", interval="1m", start=iso_utc(T0 + MIN),
                             end=T0 + 3 * MIN)
    assert n == 2
    assert [r["window_start"] for r in _read_csv(out)[1]] == [iso_utc(T0 + MIN), iso_utc(T0 + 2 * MIN)]
    assert [p.name for p in out.parent.iterdir()] == ["candles.csv"]  # no temporary left behind


def test_export_alerts_csv(store: Store, tmp_path: Path) -> None:
    store.commit_batch(group="g", topic="t", alerts=[alert(1), alert(0, detector="zscore", score=3.25)])
    out = tmp_path / "alerts.csv"
    assert store.export_alerts(out) == 2
    header, rows = _read_csv(out)
    assert header == list(ALERT_CSV_COLUMNS)
    assert rows[0] == {"symbol": "BTC-USD", "interval": "1m", "window_start": iso_utc(T0),
                       "detector": "zscore", "severity": "HIGH", "score": "3.25"}
    assert rows[1]["window_start"] == iso_utc(T0 + MIN)


# --------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize("symbol", NASTY_SYMBOLS)
def test_injection_looking_symbols_round_trip(store: Store, tmp_path: Path, symbol: str) -> None:
    c, a = candle(0, symbol=symbol), alert(0, symbol=symbol)
    store.commit_batch(group=symbol, topic=symbol, candles=[c, candle(1)], alerts=[a],
                       progress=prog(0, 1), expected_offsets={0: None})
    assert store.candles(symbol) == [c]
    assert store.history(symbol, "1m").symbol.tolist() == [symbol]
    assert store.alert_list(symbol) == [a]
    assert store.load_progress(symbol, symbol)[0].offset == 1
    out = tmp_path / "c.csv"
    assert store.export_candles(out, symbol=symbol) == 1
    assert _read_csv(out)[1][0]["symbol"] == symbol
    assert store.export_alerts(out, symbol=symbol) == 1
    assert _read_csv(out)[1][0]["symbol"] == symbol
    # every table is still there and holds what it should
    assert len(store.candles()) == 2 and len(store.alert_list()) == 1


# --------------------------------------------------------------------------- schema


def test_init_is_idempotent(store_backend: Any) -> None:
    first = store_backend.make()
    first.commit_batch(group="g", topic="t", candles=[candle(0)], alerts=[alert(0)],
                       progress=prog(0, 1), expected_offsets={0: None})
    second = store_backend.make()  # runs init() again on the same database
    second.init()
    assert second.schema_version() == SCHEMA_VERSION
    assert second.candles() == [candle(0)] and second.alert_list() == [alert(0)]
    info = second.info()
    assert (info["candles"], info["alerts"], info["schema_version"], info["trade_gaps"]) == (1, 1, SCHEMA_VERSION, 0)
    assert info["series"][0]["symbol"] == "BTC-USD"
    assert info["progress"][0]["offset"] == 1


def test_trade_gaps_are_recorded_once_counted_and_mark_the_windows_they_overlap(store_backend: Any) -> None:
    from types import SimpleNamespace

    store = store_backend.make()
    sym = candle(0).symbol
    gap = SimpleNamespace(symbol=sym, start_ms=candle(1).window_start + 1, end_ms=candle(2).window_start,
                          reason="fetch_trades failed", source="binance")
    assert store.gaps.record([gap, gap]) == 1 and store.gaps.record([gap]) == 0  # idempotent
    assert store.gaps.count() == store.gaps.count(sym) == 1 and store.info()["trade_gaps"] == 1
    store.commit_batch(group="g", topic="t", candles=[candle(i) for i in range(4)], progress=prog(0, 1),
                       expected_offsets={0: None})
    marked = store.gaps.mark(store.history(sym, candle(0).interval))
    assert marked["gap_affected"].tolist() == [False, True, True, False]
    assert store.gaps.frame(sym)["reason"].tolist() == ["fetch_trades failed"]


def test_sparse_emission_is_stored_from_its_columns(store: Store) -> None:
    """An aggregator's finals on sparse data hold column blocks; stored without building their
    candles, the rows are those candles, bit for bit (sizes missing: VWAP NULL; windows of two
    ticks beside windows of one)."""
    from cryptolab.candles import CandleAggregator

    agg = CandleAggregator(intervals="1m,5m", out_of_orderness_ms=0, allowed_lateness_ms=0)
    n = 600
    ts = [T0 + (i // 2) * 10 * MIN + (i % 2) * 1_000 * (i % 3 == 0) + 7 * (i % 2) for i in range(n)]
    price = [100.0 + (i * 37 % 101) / 7 for i in range(n)]
    size = [float("nan") if i // 2 % 5 == 0 else 0.1 + i / 1_000 for i in range(n)]
    agg.add_columns([i // 2 % 3 for i in range(n)], ["BTC-USD", "ETH-USD", "SOL-USD"], ts, price, size)
    finals = agg.drain().finals
    assert finals.blocks >= 1 and len(finals) > n // 2
    store.commit_batch(group="g", topic="t", candles=finals)
    assert all(part[0]._candles is None for part in finals._parts if isinstance(part, tuple))  # never built
    assert store.candles() == sorted(finals, key=lambda c: c.key)
    assert any(c.vwap is None for c in finals) and any(c.trades == 2 for c in finals)
