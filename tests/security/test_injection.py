"""SQL-looking (and other hostile) names round-trip harmlessly through store, cache, exports and
notebooks.

The wire format rejects such symbols (``validate_symbol``), so they can only
arrive through the Python API; every layer must still treat them as data:
all SQL is parameterised, Redis keys and channels are opaque strings, CSV is
quoted, and the report notebook queries by value. Each test writes the hostile
names next to an ordinary series and checks both come back exactly, and that
every table is still there with the expected row counts.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from cryptolab.cache import MemoryCache, RedisCache
from cryptolab.models import Alert, Candle
from cryptolab.store import LateTick, PartitionProgress, Store

HOSTILE = [
    "BTC'; DROP TABLE candles;--",
    'ETH"; DELETE FROM alerts; --',
    "x' OR '1'='1",
    "Robert'); DROP TABLE consumer_progress;--",
    "%' ESCAPE '\\",
    "; SELECT pg_sleep(5);--",
    "\u2019; DROP TABLE late_ticks;--",  # a typographic quote
    "sym\nwith\tcontrol\x01chars",
    "*",
    "cryptolab:latest:BTC-USD:1m",
]
NORMAL = "BTC-USD"
T0 = 1_700_000_040_000


def _candles(symbol: str, n: int = 3) -> list[Candle]:
    return [Candle(symbol=symbol, interval="1m", window_start=T0 + i * 60_000,
                   window_end=T0 + (i + 1) * 60_000, open=10.0 + i, high=11.0 + i, low=9.0 + i,
                   close=10.5 + i, volume=1.0 + i, vwap=10.2 + i, trades=2 + i, first_ts=T0 + i * 60_000,
                   last_ts=T0 + i * 60_000 + 1, high_ts=T0 + i * 60_000, low_ts=T0 + i * 60_000,
                   final=True)
            for i in range(n)]


def _alert(symbol: str, detector: str = "rule") -> Alert:
    return Alert(symbol=symbol, interval="1m", window_start=T0, detector=detector, severity="HIGH",
                 score=0.5, ts_ms=T0 + 60_000, features={"ret": 0.1})


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = (f"sqlite:///{(tmp_path / 'inj.db').as_posix()}" if request.param == "sqlite"
           else request.getfixturevalue("pg_url"))
    s = Store(url)
    s.init()
    yield s
    s.close()


def _fill(store: Store) -> None:
    for i, sym in enumerate([NORMAL, *HOSTILE]):
        store.commit_batch(
            group=sym, topic=sym,
            candles=_candles(sym),
            alerts=[_alert(sym), _alert(sym, detector=sym)],
            late_ticks=[LateTick(topic=sym, partition=0, offset=i, symbol=sym, ts_ms=T0, price=1.0, size=None,
                                 source=sym, trade_id=sym, watermark_ms=T0)],
            progress={0: PartitionProgress(partition=0, offset=7, watermark_ms=T0, state=sym.encode())},
            expected_offsets={0: None},
        )


def test_hostile_names_round_trip_through_every_store_read(store: Store) -> None:
    _fill(store)
    n = 1 + len(HOSTILE)
    info = store.info()
    counts = {k: v for k, v in info.items() if isinstance(v, int)}
    assert store.candles() and len(store.candles()) == 3 * n, counts
    assert len(store.alert_list()) == 2 * n
    assert store.late_tick_count() == n
    for sym in [NORMAL, *HOSTILE]:
        assert store.candles(sym) == _candles(sym), sym
        df = store.history(sym, "1m")
        assert df["symbol"].tolist() == [sym] * 3 and df["open"].tolist() == [10.0, 11.0, 12.0], sym
        assert [c.window_start for c in store.final_candles_since(sym, "1m", T0 + 10 * 60_000)] == [
            T0, T0 + 60_000, T0 + 120_000]
        assert {a.detector for a in store.alert_list(sym)} == {"rule", sym}
        assert [a.symbol for a in store.alert_list(detector=sym)] == [sym]
        pr = store.load_progress(sym, sym)
        assert pr[0].offset == 7 and pr[0].state == sym.encode()
    # a tautology matches nothing; it is a name like any other
    assert store.history("' OR ''='", "1m").empty
    assert store.candles("nope' OR 1=1 --") == []


def test_hostile_names_round_trip_through_csv_exports(store: Store) -> None:
    _fill(store)
    for sym in HOSTILE:
        buf = io.StringIO()
        assert store.export_candles(buf, symbol=sym) == 3
        rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
        assert [r["symbol"] for r in rows] == [sym] * 3
        buf = io.StringIO()
        assert store.export_alerts(buf, symbol=sym) == 2
        rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
        assert sorted(r["detector"] for r in rows) == sorted(["rule", sym])


def _cache_round_trip(cache: MemoryCache | RedisCache) -> None:
    for sym in [NORMAL, *HOSTILE]:
        cache.publish(_candles(sym))
        cache.publish_alerts([_alert(sym, detector=sym)])
    for sym in [NORMAL, *HOSTILE]:
        assert cache.latest(sym, "1m") == _candles(sym)[-1], sym
        assert cache.recent(sym, "1m", 10) == _candles(sym), sym
    assert {a.symbol for a in cache.recent_alerts(100)} == {NORMAL, *HOSTILE}


def test_hostile_names_round_trip_through_the_in_process_cache() -> None:
    cache = MemoryCache("injection", clock=lambda: 0.0)
    _cache_round_trip(cache)
    cache.clear()


@pytest.mark.integration
def test_hostile_names_round_trip_through_redis(redis_url: str) -> None:
    import redis

    cache = RedisCache(redis_url)
    _cache_round_trip(cache)
    raw = redis.Redis.from_url(redis_url)
    keys = {k.decode() for k in raw.keys("*")}
    for sym in [NORMAL, *HOSTILE]:
        assert f"cryptolab:latest:{sym}:1m" in keys and f"cryptolab:recent:{sym}:1m" in keys, sym
    cache.close()
    raw.close()


@pytest.mark.notebooks
def test_market_report_refuses_a_sql_looking_symbol_and_leaves_the_store_alone(tmp_path: Path) -> None:
    """The report takes symbols as values and validates them: a clear error naming the symbol,
    from render_report before any kernel starts, or from the notebook's own check; the store is
    untouched either way."""
    from cryptolab.batch import candles_from_ticks, frame_to_candles
    from cryptolab.errors import ValidationError
    from cryptolab.notebooks import REPORT_NOTEBOOK, NotebookRunError, render_report, run_notebook
    from cryptolab.sources.synthetic import SyntheticMarket

    url = f"sqlite:///{(tmp_path / 'report.db').as_posix()}"
    s = Store(url)
    s.init()
    m = SyntheticMarket(symbols=2, seed=9, start_ms=T0, duration_ms=2 * 3_600_000, ticks_per_second=2.0,
                        random_injections=0)
    frame = m.to_frame()
    sym = HOSTILE[0]
    frame.loc[frame["symbol"] == "ETH-USD", "symbol"] = sym
    s.commit_batch(group="g", topic="t", candles=frame_to_candles(candles_from_ticks(frame, "1m")))
    before = (s.candles(), s.alert_list(), s.late_tick_count())
    s.close()
    with pytest.raises(ValidationError, match="symbol"):
        render_report(url, tmp_path / "out", symbols=["BTC-USD", sym])
    assert not (tmp_path / "out").exists(), "nothing may run before the parameters are checked"
    with pytest.raises(NotebookRunError) as info:
        run_notebook(REPORT_NOTEBOOK, {"store_url": url, "symbols": ["BTC-USD", sym], "interval": "1m"},
                     output_dir=tmp_path / "out2", hide_code=True)
    assert "invalid 'symbol'" in str(info.value) and "DROP TABLE candles" in str(info.value)
    after = Store(url)
    assert (after.candles(), after.alert_list(), after.late_tick_count()) == before
    assert len(after.candles(sym)) == len(after.candles("BTC-USD")) > 0
    after.close()
