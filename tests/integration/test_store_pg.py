"""PostgreSQL-specific store behaviour (the shared behaviour is in tests/contract/)."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryptolab.cli import main
from cryptolab.errors import FencedError, StoreError
from cryptolab.models import Candle
from cryptolab.store import HYPERTABLE_CHUNK_MS, SCHEMA_VERSION, PartitionProgress, Store
from cryptolab.store.dialects import PostgresDialect

pytestmark = pytest.mark.integration

T0 = 1_700_000_040_000


def candle(i: int) -> Candle:
    ws = T0 + i * 60_000
    return Candle(symbol="BTC-USD", interval="1m", window_start=ws, window_end=ws + 60_000,
                  open=1.0 + i, high=2.0 + i, low=0.5, close=1.5, volume=1.0, vwap=1.2, trades=1,
                  first_ts=ws, last_ts=ws, high_ts=ws, low_ts=ws, final=True)


def libpq(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class TimescaleAnswers:
    """The server's answers about TimescaleDB, given in place of the real ones.

    A ``before_cursor_execute`` hook on the store's engines rewrites the statements that
    look TimescaleDB up (available? installed? is ``candles`` a hypertable?) into a query
    that answers with a row or without one, and records the statements that would enable
    it (``CREATE EXTENSION``, ``create_hypertable``) instead of running them. Everything
    else runs on the real server.
    """

    def __init__(self, *, available: bool) -> None:
        self.available = available
        self.installed = False
        self.hypertable = False
        self.asked: list[str] = []  # which questions were asked, in order
        self.enabling: list[tuple[str, object]] = []  # statements that would enable it

    @staticmethod
    def _answer(yes: bool) -> str:
        return "SELECT 1" if yes else "SELECT 1 WHERE false"

    def attach(self, store: Store) -> None:
        for engine in {store._engine, store._read_engine}:
            sa.event.listen(engine, "before_cursor_execute", self._rewrite, retval=True)

    def _rewrite(self, _conn: object, _cursor: object, statement: str, parameters: object,
                 _context: object, _many: bool) -> tuple[str, object]:
        if "pg_available_extensions" in statement:
            self.asked.append("available")
            return self._answer(self.available), parameters
        if "FROM pg_extension" in statement:
            self.asked.append("installed")
            return self._answer(self.installed), parameters
        if "timescaledb_information.hypertables" in statement:
            self.asked.append("hypertable")
            return self._answer(self.hypertable), parameters
        if "CREATE EXTENSION" in statement:
            self.enabling.append(("CREATE EXTENSION", None))
            self.installed = True
            return "SELECT 1", parameters
        if "create_hypertable" in statement:
            chunk = parameters.get("chunk") if isinstance(parameters, dict) else None
            self.enabling.append(("create_hypertable", chunk))
            self.hypertable = True
            return "SELECT 1", parameters
        return statement, parameters


@pytest.mark.parametrize("available", [True, False], ids=["with-timescaledb", "without-timescaledb"])
def test_timescale_detection_follows_the_server_answer(pg_url: str, available: bool) -> None:
    answers = TimescaleAnswers(available=available)
    with Store(pg_url) as s:
        answers.attach(s)
        s.init()
        assert s.dialect == "postgresql"
        assert s.timescale is available
        assert "available" in answers.asked  # the answer given was the one consulted
        if available:  # the hypertable path: extension, then the hypertable on window_start
            assert answers.enabling == [("CREATE EXTENSION", None), ("create_hypertable", HYPERTABLE_CHUNK_MS)]
        else:  # the plain-table path: nothing tries to enable TimescaleDB
            assert answers.enabling == []
        # a second init finds what the first one left and enables nothing again
        s.init()
        assert s.timescale is available and len(answers.enabling) == (2 if available else 0)
        s.commit_batch(group="g", topic="t", candles=[candle(0)])  # the candles table works
        assert s.candles() == [candle(0)]
    fresh = Store(pg_url)  # detected lazily by a fresh Store, from the server's answers too
    answers.attach(fresh)
    with fresh:
        assert fresh.timescale is available
    assert answers.asked[-1] == ("hypertable" if available else "installed")


def test_candles_is_a_hypertable_where_timescaledb_exists(pg_url: str) -> None:
    with psycopg.connect(libpq(pg_url)) as conn:
        if conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone() is None:
            pytest.skip("TimescaleDB is not installed on this PostgreSQL server (docker-compose's "
                        "timescale/timescaledb image has it): the real hypertable path cannot run here")
    with Store(pg_url) as s:
        s.init()
        assert s.timescale is True
        s.commit_batch(group="g", topic="t", candles=[candle(0), candle(1)])
        assert s.candles() == [candle(0), candle(1)]
    with psycopg.connect(libpq(pg_url)) as conn:
        dims = conn.execute(
            "SELECT column_name, integer_interval FROM timescaledb_information.dimensions "
            "WHERE hypertable_name = 'candles'").fetchall()
    assert dims == [("window_start", HYPERTABLE_CHUNK_MS)]
    assert Store(pg_url).timescale is True  # detected lazily by a fresh Store too


def test_failing_timescale_setup_falls_back_to_a_plain_table(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Pretend the extension is installable: CREATE EXTENSION then fails (no control file, no
    # privilege or not preloaded). init() must roll back only that step and carry on.
    monkeypatch.setattr(PostgresDialect, "_timescale_available", lambda self, conn: True)
    monkeypatch.setattr(PostgresDialect, "_is_hypertable", lambda self, conn: False)
    with psycopg.connect(libpq(pg_url)) as conn:
        if conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone():
            pytest.skip("TimescaleDB is really available here: the fallback cannot be provoked")
    with Store(pg_url) as s:
        s.init()
        assert s.timescale is False
        assert "TimescaleDB could not be enabled" in caplog.text
        s.commit_batch(group="g", topic="t", candles=[candle(0)])
        assert s.candles() == [candle(0)]
        assert s.schema_version() == SCHEMA_VERSION


def test_concurrent_init_is_safe(pg_url: str) -> None:
    stores = [Store(pg_url) for _ in range(4)]
    start = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def init(s: Store) -> None:
        start.wait()
        try:
            s.init()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=init, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with psycopg.connect(libpq(pg_url)) as conn:
        assert conn.execute("SELECT count(*) FROM schema_version").fetchone() == (1,)
    for s in stores:
        s.close()


def test_lost_connection_raises_store_error_then_recovers(pg_url: str) -> None:
    with Store(pg_url, pool_size=1) as s:
        s.init()
        s.commit_batch(group="g", topic="t", candles=[candle(0)], expected_offsets={0: None},
                       progress={0: PartitionProgress(partition=0, offset=1, watermark_ms=None)})
        assert len(s.history("BTC-USD", "1m")) == 1
        database = sa.make_url(pg_url).database
        with psycopg.connect(libpq(pg_url), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()", (database,))
        # the pooled connections are dead: the first call of each kind fails cleanly...
        with pytest.raises(StoreError) as info:
            s.history("BTC-USD", "1m")
        assert not isinstance(info.value, FencedError)
        with pytest.raises(StoreError):
            s.commit_batch(group="g", topic="t", candles=[candle(1)], expected_offsets={0: 1},
                           progress={0: PartitionProgress(partition=0, offset=2, watermark_ms=None)})
        # ...and a retry works on a fresh connection, with nothing of the failed batch written
        assert s.history("BTC-USD", "1m").open.tolist() == [1.0]
        s.commit_batch(group="g", topic="t", candles=[candle(1)], expected_offsets={0: 1},
                       progress={0: PartitionProgress(partition=0, offset=2, watermark_ms=None)})
        assert s.load_progress("g", "t")[0].offset == 2


def test_packed_history_equals_the_select_path(pg_url: str) -> None:
    import dataclasses

    import pandas as pd

    cs = [dataclasses.replace(candle(i), vwap=None if i % 3 == 0 else 1.0 + i / 7,
                              final=i < 15, gap=i == 4, revision=i % 2, trades=10**9 + i)
          for i in range(20)]
    with Store(pg_url) as s:
        s.init()
        s.commit_batch(group="g", topic="t", candles=cs)
        calls = [dict(), dict(final_only=True), dict(limit=5), dict(final_only=True, limit=3),
                 dict(start=T0 + 5 * 60_000, end=T0 + 9 * 60_000), dict(start=T0 * 2)]
        fast = [s.history("BTC-USD", "1m", **kw) for kw in calls]  # type: ignore[arg-type]
        assert s._packed_ok
        s._packed_ok = False
        slow = [s.history("BTC-USD", "1m", **kw) for kw in calls]  # type: ignore[arg-type]
    for kw, a, b in zip(calls, fast, slow, strict=True):
        pd.testing.assert_frame_equal(a, b, obj=str(kw))
    assert fast[0].vwap.isna().tolist() == [i % 3 == 0 for i in range(20)]
    assert fast[0].trades.tolist() == [10**9 + i for i in range(20)]
    assert fast[2].window_start.tolist() == [pd.Timestamp(T0 + i * 60_000, unit="ms", tz="UTC")
                                             for i in range(15, 20)]


def test_unexpected_packed_layout_falls_back_to_select(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from cryptolab.store import queries

    monkeypatch.setattr(queries, "_frame_from_packed", lambda *a, **k: None)
    with Store(pg_url) as s:
        s.init()
        s.commit_batch(group="g", topic="t", candles=[candle(0), candle(1)])
        assert s.history("BTC-USD", "1m").open.tolist() == [1.0, 2.0]
        assert not s._packed_ok and "unexpected packed history layout" in caplog.text


def test_candles_table_layout(pg_url: str) -> None:
    with Store(pg_url) as s:
        s.init()
    with psycopg.connect(libpq(pg_url)) as conn:
        cols = dict(conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'candles'").fetchall())
        pk = [r[0] for r in conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'candles'::regclass AND i.indisprimary "
            "ORDER BY array_position(i.indkey, a.attnum)").fetchall()]
    assert pk == ["symbol", "interval", "window_start"]
    for col in ("window_start", "window_end", "first_ts", "last_ts", "high_ts", "low_ts"):
        assert cols[col] == "bigint", col
    assert cols["open"] == "double precision" and cols["final"] == "boolean"


def test_db_cli_against_postgres(pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "init", "--store", pg_url]) == 0
    assert main(["db", "init", "--store", pg_url]) == 0
    assert main(["db", "info", "--store", pg_url]) == 0
    out = capsys.readouterr().out
    assert out.count(f"schema v{SCHEMA_VERSION}") == 2 and "dialect     postgresql" in out
    with Store(pg_url) as s:
        s.commit_batch(group="g", topic="t", candles=[candle(0), candle(1)])
    target = tmp_path / "c.csv"
    assert main(["export", "candles", "--store", pg_url, "--out", str(target)]) == 0
    assert len(target.read_text().splitlines()) == 3


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=12),
                max_size=6))
def test_text_array_literals_read_back_as_the_strings(pg_url: str, values: list[str]) -> None:
    """The upsert's text arrays (symbols, intervals) are literals built by cryptolab: PostgreSQL
    reads back exactly the strings, whatever quotes, backslashes, commas or braces they hold."""
    from cryptolab.store.dialects import _pg_texts

    with psycopg.connect(libpq(pg_url)) as conn:
        got = conn.execute("SELECT %s::text[]", (_pg_texts(values),)).fetchone()
    assert got is not None and got[0] == values
