"""What differs between PostgreSQL and SQLite: one strategy object per backend, chosen once.

:func:`dialect_for` picks :class:`PostgresDialect` or :class:`SqliteDialect` from the
store URL; everything else in :mod:`cryptolab.store` asks that object instead of testing
the backend's name. Each strategy builds its engines (PostgreSQL: a write pool whose
sessions end a silent transaction after ``idle_in_transaction_session_timeout``, and an
autocommit read pool; SQLite: one engine issuing ``BEGIN`` itself, ``BEGIN IMMEDIATE``
for writes), locks the schema and progress rows its own way, and writes a batch's
candles (PostgreSQL: one statement over arrays; SQLite: an ``executemany`` upsert).

Examples
--------
>>> dialect_for(normalise_url("postgresql://app@db/cryptolab")).name
'postgresql'
>>> d = dialect_for(normalise_url("sqlite://"))
>>> d.name, d.packed_history_sql is None
('sqlite', True)
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar, Final, Literal, NamedTuple

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import StaticPool

from cryptolab.config import redact_url
from cryptolab.errors import StoreError
from cryptolab.store.packed import PACKED_SQL
from cryptolab.store.records import PartitionProgress
from cryptolab.store.rows import candle_rows
from cryptolab.store.schema import (
    _ALERT_KEY,
    _CANDLE_KEY,
    HISTORY_COLUMNS,
    HYPERTABLE_CHUNK_MS,
    alerts_table,
    candles_table,
    late_ticks_table,
    trade_gaps_table,
)

__all__ = ["Dialect", "Engines", "PostgresDialect", "SqliteDialect", "dialect_for", "normalise_url"]

log = logging.getLogger(__name__)

_ADVISORY_LOCK_ID: Final = 0x63727970746F6C  # "cryptol"
_SQLITE_BUSY_TIMEOUT_MS: Final = 10_000
#: PostgreSQL ends a write transaction whose client stays silent inside it this long (ms).
_PG_IDLE_IN_TXN_MS: Final = 15_000

# PostgreSQL writes of a consumer batch: each one statement over arrays (one round trip),
# where an executemany would bind every row through SQLAlchemy.
_PG_UPSERT_CANDLES: Final = """\
INSERT INTO candles (symbol, "interval", window_start, window_end, open, high, low, close, volume,
                     vwap, trades, first_ts, last_ts, high_ts, low_ts, revision, final, gap)
SELECT * FROM unnest(%s::text[], %s::text[], %s::int8[], %s::int8[], %s::float8[], %s::float8[],
                     %s::float8[], %s::float8[], %s::float8[], %s::float8[], %s::int8[], %s::int8[],
                     %s::int8[], %s::int8[], %s::int8[], %s::int4[], %s::bool[], %s::bool[])
ON CONFLICT (symbol, "interval", window_start) DO UPDATE SET
    window_end = EXCLUDED.window_end, open = EXCLUDED.open, high = EXCLUDED.high,
    low = EXCLUDED.low, close = EXCLUDED.close, volume = EXCLUDED.volume, vwap = EXCLUDED.vwap,
    trades = EXCLUDED.trades, first_ts = EXCLUDED.first_ts, last_ts = EXCLUDED.last_ts,
    high_ts = EXCLUDED.high_ts, low_ts = EXCLUDED.low_ts, revision = EXCLUDED.revision,
    final = EXCLUDED.final, gap = EXCLUDED.gap"""
# Fence and progress in one: a row is updated only where the stored offset is the
# expected one (the compare-and-set); the partitions it returns are those that passed.
_PG_ADVANCE_PROGRESS: Final = """UPDATE consumer_progress AS p
SET "offset" = u.next_offset, watermark_ms = u.watermark_ms, state = u.state, updated_at = %s
FROM unnest(%s::int4[], %s::int8[], %s::int8[], %s::int8[], %s::bytea[])
     AS u(partition, expected, next_offset, watermark_ms, state)
WHERE p.group_id = %s AND p.topic = %s AND p.partition = u.partition AND p."offset" = u.expected
RETURNING p.partition"""
_PG_BOOL: Final = {True: "t", False: "f"}


def normalise_url(url: str | URL) -> URL:
    """The SQLAlchemy URL of a store (``postgresql://`` means psycopg 3).

    Raises
    ------
    StoreError
        The URL is malformed or names neither PostgreSQL nor SQLite.

    Examples
    --------
    >>> normalise_url("postgres://u@h/db").drivername
    'postgresql+psycopg'
    >>> normalise_url("mysql://u@h/db")
    Traceback (most recent call last):
    ...
    cryptolab.errors.StoreError: unsupported store URL scheme 'mysql': use postgresql+psycopg://... or sqlite:///path
    """
    try:
        u = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise StoreError(f"invalid store URL {redact_url(str(url))!r}: {exc}") from None
    backend = u.get_backend_name()
    if backend in ("postgresql", "postgres"):
        if u.drivername in ("postgresql", "postgres"):
            u = u.set(drivername="postgresql+psycopg")
        return u
    if backend == "sqlite":
        return u
    raise StoreError(
        f"unsupported store URL scheme {u.drivername!r}: use postgresql+psycopg://... or sqlite:///path"
    )


def dialect_for(url: URL) -> Dialect:
    """The strategy of the backend ``url`` names (a URL from :func:`normalise_url`)."""
    if url.get_backend_name() == "postgresql":
        return PostgresDialect(url)
    return SqliteDialect(url)


def _json_dumps(obj: Any) -> str:
    """JSON for the ``features`` column (numpy values included)."""
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _pg_numbers(values: list[Any]) -> str:
    """A PostgreSQL array literal of ints or floats (``None`` as NULL), cast by the query.

    Built with ``str.join`` at C speed: psycopg adapts a list element by element in
    Python. ``str`` of a float reads back as the same double (numpy scalars too).

    Examples
    --------
    >>> _pg_numbers([1, 2]), _pg_numbers([0.1, None, -0.0]), _pg_numbers([True, False])
    ('{1,2}', '{0.1,NULL,-0.0}', '{t,f}')
    >>> import numpy as np
    >>> _pg_numbers([np.float64(1 / 3), np.int64(7)])
    '{0.3333333333333333,7}'
    """
    if not values:
        return "{}"
    if type(values[0]) is bool:
        return "{" + ",".join(map(_PG_BOOL.__getitem__, values)) + "}"
    if None in values:
        return "{" + ",".join(["NULL" if v is None else str(v) for v in values]) + "}"
    return "{" + ",".join(map(str, values)) + "}"


def _pg_texts(values: list[str]) -> str:
    r"""A PostgreSQL array literal of strings, cast by the query: every element double-quoted,
    a backslash or a double quote in it escaped with a backslash.

    Built with one ``str.join`` when no element needs escaping (symbols and intervals, nearly
    always): psycopg adapts a text list element by element in Python, a regular expression
    per element.

    Examples
    --------
    >>> _pg_texts(["BTC-USD", "1m"]), _pg_texts([]), _pg_texts(['a"b', "c\\d", "e,f{g}", "NULL"])
    ('{"BTC-USD","1m"}', '{}', '{"a\\"b","c\\\\d","e,f{g}","NULL"}')
    """
    if not values:
        return "{}"
    body = '","'.join(values)
    if "\\" in body or '"' in body:
        body = '","'.join(v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return '{"' + body + '"}'


def _is_disconnect(exc: BaseException) -> bool:
    """Whether ``exc`` is psycopg's lost-connection error."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, psycopg.OperationalError)


class Engines(NamedTuple):
    """The engines of one store: ``write`` (transactions), ``read`` and the in-process lock."""

    write: Engine
    read: Engine
    #: Held around every use of a connection shared by all threads (in-memory SQLite).
    lock: threading.RLock | None


#: Opens a read connection (:meth:`cryptolab.store.database.Database.read`).
ReadOpener = Callable[[], AbstractContextManager[Connection]]


class Dialect(ABC):
    """How one backend does what differs between backends.

    Parameters
    ----------
    url
        The store URL (from :func:`normalise_url`).
    """

    #: The backend's name, as :attr:`cryptolab.store.Store.dialect` reports it.
    name: ClassVar[Literal["postgresql", "sqlite"]]
    #: The packed history SELECT (one bytea of fixed-size records), ``None`` without one.
    packed_history_sql: ClassVar[str | None]

    def __init__(self, url: URL) -> None:
        self.url = url
        dialect_mod: Any = self._dialect_module()
        #: Insert alerts unless their key exists; returns the keys inserted.
        self.insert_alerts = (
            dialect_mod.insert(alerts_table)
            .on_conflict_do_nothing(index_elements=list(_ALERT_KEY))
            .returning(*(alerts_table.c[k] for k in _ALERT_KEY))
        )
        #: Record late ticks unless already recorded.
        self.insert_late = dialect_mod.insert(late_ticks_table).on_conflict_do_nothing(
            index_elements=["topic", "partition", "offset"]
        )
        #: Record trade gaps unless already recorded; returns the symbols of the rows inserted.
        self.insert_gap = dialect_mod.insert(trade_gaps_table).on_conflict_do_nothing(
            index_elements=["symbol", "start_ms", "end_ms"]
        ).returning(trade_gaps_table.c.symbol)

    @staticmethod
    @abstractmethod
    def _dialect_module() -> Any:
        """SQLAlchemy's dialect module (its ``insert`` knows ``ON CONFLICT``)."""

    @abstractmethod
    def engines(self, pool_size: int) -> Engines:
        """Create the store's engines (``pool_size`` connections per pool where pooled)."""

    @abstractmethod
    def query_dialect(self, read_engine: Engine) -> sa.Dialect:
        """The dialect the read statements are compiled with for the raw DBAPI cursor."""

    @abstractmethod
    def begin_write(self, conn: Connection) -> None:
        """Prepare ``conn`` (not yet in a transaction) for a write transaction."""

    @abstractmethod
    def prepare_init(self) -> bool:
        """Prepare for schema creation; True when a read may show there is nothing to do."""

    @abstractmethod
    def lock_schema(self, conn: Connection) -> None:
        """Serialise schema creation with other processes (inside the write transaction)."""

    @abstractmethod
    def enable_timescale(self, conn: Connection) -> bool:
        """Make ``candles`` a TimescaleDB hypertable where possible; return whether it is."""

    @abstractmethod
    def timescale(self, read: ReadOpener) -> bool:
        """Whether ``candles`` is a TimescaleDB hypertable (``read`` opens a connection)."""

    @abstractmethod
    def lock_rows(self, stmt: sa.Select[Any]) -> sa.Select[Any]:
        """``stmt`` locking the progress rows it reads until the transaction ends."""

    @abstractmethod
    def compare_and_set(
        self,
        conn: Connection,
        group: str,
        topic: str,
        progress: Mapping[int, PartitionProgress],
        expected: Mapping[int, int | None],
        now: int,
    ) -> list[int] | None:
        """Check the fence and write the progress in one statement, where the backend can.

        Returns
        -------
        list of int or None
            ``None`` when this batch's progress is not written this way (check the
            fence and write it row by row); else the partitions whose stored offset
            was not the expected one (their rows unchanged), sorted.
        """

    @abstractmethod
    def write_candles(self, conn: Connection, columns: list[list[Any]]) -> None:
        """Upsert candles given as columns (:func:`~cryptolab.store.rows.candle_columns_by_key`:
        unique by key): a later revision of a window replaces the row."""

    @abstractmethod
    def is_disconnect(self, exc: BaseException) -> bool:
        """Whether a DBAPI error means the connection is lost."""


class PostgresDialect(Dialect):
    """PostgreSQL (psycopg 3), with TimescaleDB when the extension is available."""

    name = "postgresql"
    packed_history_sql = PACKED_SQL

    @staticmethod
    def _dialect_module() -> Any:
        return pg_dialect

    def engines(self, pool_size: int) -> Engines:
        return Engines(
            self._engine(pool_size, autocommit=False), self._engine(pool_size, autocommit=True), None
        )

    def _engine(self, pool_size: int, *, autocommit: bool) -> Engine:
        query = self.url.query
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in query:
            connect_args["connect_timeout"] = 10
        if "application_name" not in query:
            connect_args["application_name"] = "cryptolab"
        kwargs: dict[str, Any] = {
            "pool_size": pool_size,
            "max_overflow": pool_size,
            "pool_recycle": 1800,
            "connect_args": connect_args,
            "json_serializer": _json_dumps,
            "json_deserializer": orjson.loads,
        }
        if autocommit:
            kwargs["isolation_level"] = "AUTOCOMMIT"
            kwargs["pool_reset_on_return"] = None
        engine = sa.create_engine(self.url, **kwargs)
        if not autocommit and "options" not in query:

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn: Any, _record: Any) -> None:
                # A writer that stalls inside a transaction (SIGSTOP, a paused VM, a hung
                # process) must not hold the progress rows locked for ever: the server ends
                # its transaction, the next owner commits, and the fence refuses the stale
                # writer when it wakes up.
                with dbapi_conn.cursor() as cur:
                    cur.execute(f"SET idle_in_transaction_session_timeout = {_PG_IDLE_IN_TXN_MS}")
                dbapi_conn.commit()

        return engine

    def query_dialect(self, read_engine: Engine) -> sa.Dialect:
        return read_engine.dialect

    def begin_write(self, conn: Connection) -> None:
        pass  # READ COMMITTED; the rows that matter are locked or compared-and-set

    def prepare_init(self) -> bool:
        return False  # the advisory lock makes concurrent inits wait, not fail

    def lock_schema(self, conn: Connection) -> None:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK_ID})

    def timescale(self, read: ReadOpener) -> bool:
        with read() as conn:
            return self._is_hypertable(conn)

    def _timescale_available(self, conn: Connection) -> bool:
        q = sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
        return conn.execute(q).first() is not None

    def _is_hypertable(self, conn: Connection) -> bool:
        installed = conn.execute(
            sa.text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
        ).first()
        if installed is None:
            return False
        row = conn.execute(
            sa.text(
                "SELECT 1 FROM timescaledb_information.hypertables "
                "WHERE hypertable_name = 'candles' AND hypertable_schema = current_schema()"
            )
        ).first()
        return row is not None

    def enable_timescale(self, conn: Connection) -> bool:
        if self._is_hypertable(conn):
            return True
        if not self._timescale_available(conn):
            log.info("TimescaleDB is not available: candles is a plain PostgreSQL table")
            return False
        try:
            with conn.begin_nested():
                conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS timescaledb"))
                conn.execute(
                    sa.text(
                        "SELECT create_hypertable('candles', 'window_start', "
                        "chunk_time_interval => CAST(:chunk AS BIGINT), "
                        "if_not_exists => TRUE, migrate_data => TRUE)"
                    ),
                    {"chunk": HYPERTABLE_CHUNK_MS},
                )
        except sa.exc.DBAPIError as exc:
            log.warning(
                "TimescaleDB could not be enabled (%s): candles stays a plain table",
                str(exc.orig).strip().splitlines()[0] if exc.orig else exc,
            )
            return False
        log.info("candles is a TimescaleDB hypertable (chunks of %d ms)", HYPERTABLE_CHUNK_MS)
        return True

    def lock_rows(self, stmt: sa.Select[Any]) -> sa.Select[Any]:
        return stmt.with_for_update()

    def compare_and_set(
        self,
        conn: Connection,
        group: str,
        topic: str,
        progress: Mapping[int, PartitionProgress],
        expected: Mapping[int, int | None],
        now: int,
    ) -> list[int] | None:
        # the usual batch: every partition has stored progress, which it moves on
        if not progress or expected.keys() != progress.keys() or None in expected.values():
            return None
        parts = sorted(progress)
        rows = conn.exec_driver_sql(
            _PG_ADVANCE_PROGRESS,
            (
                now, parts, [expected[p] for p in parts], [progress[p].offset for p in parts],
                [progress[p].watermark_ms for p in parts], [bytes(progress[p].state) for p in parts],
                group, topic,
            ),
        ).all()
        if len(rows) == len(parts):
            return []
        return sorted(set(parts) - {int(r[0]) for r in rows})

    def write_candles(self, conn: Connection, columns: list[list[Any]]) -> None:
        # In CANDLE_FIELDS order, as the statement lists them
        conn.exec_driver_sql(
            _PG_UPSERT_CANDLES, (*map(_pg_texts, columns[:2]), *map(_pg_numbers, columns[2:]))  # text, then numbers
        )

    def is_disconnect(self, exc: BaseException) -> bool:
        return _is_disconnect(exc)


class SqliteDialect(Dialect):
    """SQLite (the embedded default): WAL files, or one in-memory database per process."""

    name = "sqlite"
    packed_history_sql = None

    def __init__(self, url: URL) -> None:
        super().__init__(url)
        ins = sqlite_dialect.insert(candles_table)
        self._upsert_candles = ins.on_conflict_do_update(
            index_elements=list(_CANDLE_KEY),
            set_={k: ins.excluded[k] for k in HISTORY_COLUMNS if k not in _CANDLE_KEY},
        )

    @staticmethod
    def _dialect_module() -> Any:
        return sqlite_dialect

    def engines(self, pool_size: int) -> Engines:
        database = self.url.database or ""
        memory = database in ("", ":memory:") or "mode=memory" in str(self.url)
        kwargs: dict[str, Any] = {
            "json_serializer": _json_dumps,
            "json_deserializer": orjson.loads,
        }
        lock: threading.RLock | None = None
        if memory:
            # One connection shared by every thread (else each thread sees its own database).
            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"] = {"check_same_thread": False}
            lock = threading.RLock()
        engine = sa.create_engine(self.url, **kwargs)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            try:
                cur.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
                if not memory:
                    cur.execute("PRAGMA journal_mode = WAL")
                    cur.execute("PRAGMA synchronous = NORMAL")
            finally:
                cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return Engines(engine, engine, lock)

    def query_dialect(self, read_engine: Engine) -> sa.Dialect:
        return sqlite_dialect.dialect(paramstyle="named")  # sqlite3 binds :name from a dict

    def begin_write(self, conn: Connection) -> None:
        conn.execution_options(sqlite_begin="IMMEDIATE")  # the write lock, taken at BEGIN

    def prepare_init(self) -> bool:
        if self.url.database not in (None, "", ":memory:"):
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        return True

    def lock_schema(self, conn: Connection) -> None:
        pass  # BEGIN IMMEDIATE already holds the database's write lock

    def enable_timescale(self, conn: Connection) -> bool:
        return False

    def timescale(self, read: ReadOpener) -> bool:
        return False

    def lock_rows(self, stmt: sa.Select[Any]) -> sa.Select[Any]:
        return stmt  # BEGIN IMMEDIATE already holds the database's write lock

    def compare_and_set(
        self,
        conn: Connection,
        group: str,
        topic: str,
        progress: Mapping[int, PartitionProgress],
        expected: Mapping[int, int | None],
        now: int,
    ) -> list[int] | None:
        return None  # checked, then written row by row, under the write lock

    def write_candles(self, conn: Connection, columns: list[list[Any]]) -> None:
        conn.execute(self._upsert_candles, candle_rows(columns))

    def is_disconnect(self, exc: BaseException) -> bool:
        return False
