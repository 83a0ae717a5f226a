"""The SQL store of record: candles, alerts, late ticks and consumer progress.

One :class:`Store` speaks to PostgreSQL (psycopg 3; a TimescaleDB hypertable
when the extension is available) or to SQLite (the embedded default), through
SQLAlchemy Core. Times are stored as ``BIGINT`` epoch milliseconds UTC and
converted to pandas Timestamps only at the edge (:meth:`Store.history`).

Exactly-once effect comes from :meth:`Store.commit_batch`: candles, alerts,
late ticks *and* the consumer's progress (next offset, watermark, windowing
state) are written in ONE transaction, and the progress rows are fenced: a
consumer whose idea of the stored offset is stale (because another member of
the group committed past it after a rebalance) gets :class:`FencedError` and
nothing of its batch is written.

Tables
------
``candles``
    Primary key ``(symbol, interval, window_start)``; every :class:`Candle`
    field. A later revision of a window replaces the row.
``alerts``
    Primary key ``(symbol, interval, window_start, detector)``; ``severity``,
    ``score``, ``ts_ms``, ``features`` (JSON). At most one alert per key.
``late_ticks``
    Ticks later than the allowed lateness, unique by ``(topic, partition, offset)``.
``consumer_progress``
    Primary key ``(group_id, topic, partition)``; ``offset`` (the next offset
    to consume), ``watermark_ms``, ``state`` (opaque bytes), ``updated_at``
    (epoch ms).
``schema_version``
    One row per applied schema version.

Examples
--------
>>> from cryptolab.models import Alert, Candle
>>> store = Store("sqlite://")
>>> store.init()
>>> c = Candle(symbol="BTC-USD", interval="1m", window_start=1_700_000_040_000,
...            window_end=1_700_000_100_000, open=100.0, high=101.0, low=99.5, close=100.5,
...            volume=3.0, vwap=100.2, trades=3, first_ts=1_700_000_041_000,
...            last_ts=1_700_000_099_000, high_ts=1_700_000_050_000,
...            low_ts=1_700_000_060_000, final=True)
>>> a = Alert(symbol="BTC-USD", interval="1m", window_start=c.window_start, detector="rule",
...           severity="HIGH", score=4.2, ts_ms=c.window_end, features={"ret": 0.05})
>>> progress = {0: PartitionProgress(partition=0, offset=42, watermark_ms=c.window_end, state=b"")}
>>> inserted = store.commit_batch(group="g", topic="ticks", candles=[c], alerts=[a],
...                               progress=progress, expected_offsets={0: None})
>>> [x.detector for x in inserted]
['rule']
>>> store.commit_batch(group="g", topic="ticks", alerts=[a], progress=progress,
...                    expected_offsets={0: None})
Traceback (most recent call last):
...
cryptolab.errors.FencedError: group 'g' topic 'ticks' partition 0: expected no stored progress, store has offset 42 (another consumer committed; re-read progress)
>>> store.history("BTC-USD", "1m")[["window_start", "open", "close", "final"]]
               window_start   open  close  final
0 2023-11-14 22:14:00+00:00  100.0  100.5   True
>>> store.load_progress("g", "ticks")[0].offset
42
>>> store.close()
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Literal, TypeAlias

import numpy as np
import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import StaticPool

from cryptolab.config import Settings, redact_url
from cryptolab.errors import FencedError, StoreError, ValidationError
from cryptolab.models import Alert, Candle, interval_name, iso_utc, parse_interval

if TYPE_CHECKING:  # pandas is imported when a DataFrame is asked for: a consumer never loads it
    import pandas as pd

__all__ = [
    "ALERT_CSV_COLUMNS",
    "CANDLE_CSV_COLUMNS",
    "HISTORY_COLUMNS",
    "SCHEMA_VERSION",
    "LateTick",
    "PartitionProgress",
    "Store",
    "TimeLike",
    "history",
    "to_ms",
]

log = logging.getLogger(__name__)

#: Version of the table layout written by :meth:`Store.init`.
SCHEMA_VERSION: Final = 1
#: TimescaleDB chunk size for the ``candles`` hypertable (7 days, in ms).
HYPERTABLE_CHUNK_MS: Final = 7 * 86_400_000
#: Columns of :meth:`Store.history`, in order.
HISTORY_COLUMNS: Final = (
    "symbol", "interval", "window_start", "window_end", "open", "high", "low", "close",
    "volume", "vwap", "trades", "first_ts", "last_ts", "high_ts", "low_ts", "revision",
    "final", "gap",
)
#: Columns of :meth:`Store.export_candles`, in order.
CANDLE_CSV_COLUMNS: Final = (
    "symbol", "interval", "window_start", "window_end", "open", "high", "low", "close",
    "volume", "vwap", "trades", "revision", "final",
)
#: Columns of :meth:`Store.export_alerts`, in order.
ALERT_CSV_COLUMNS: Final = ("symbol", "interval", "window_start", "detector", "severity", "score")
#: Columns of :meth:`Store.alerts`, in order.
ALERT_COLUMNS: Final = (
    "symbol", "interval", "window_start", "detector", "severity", "score", "ts_ms", "features",
)

#: Anything :func:`to_ms` understands as a point in time.
TimeLike: TypeAlias = "int | str | datetime | pd.Timestamp | np.datetime64"

_MIN_MS: Final = -(2**62)
_MAX_MS: Final = 2**62
_ADVISORY_LOCK_ID: Final = 0x63727970746F6C  # "cryptol"
_SQLITE_BUSY_TIMEOUT_MS: Final = 10_000
#: PostgreSQL ends a write transaction whose client stays silent inside it this long (ms).
_PG_IDLE_IN_TXN_MS: Final = 15_000


# --------------------------------------------------------------------------- data


@dataclass(frozen=True, kw_only=True)
class PartitionProgress:
    """What a consumer has durably done on one partition.

    Parameters
    ----------
    partition
        Kafka partition number.
    offset
        The next offset to consume (Kafka's committed-offset convention).
    watermark_ms
        The partition's event-time watermark, epoch ms, or ``None`` before any tick.
    state
        Opaque windowing state to resume from (``b""`` when there is none).

    Examples
    --------
    >>> PartitionProgress(partition=0, offset=10, watermark_ms=None, state=b"")
    PartitionProgress(partition=0, offset=10, watermark_ms=None, state=b'')
    """

    partition: int
    offset: int
    watermark_ms: int | None
    state: bytes = b""


@dataclass(frozen=True, kw_only=True)
class LateTick:
    """A tick that arrived after its window's allowed lateness, kept for audit.

    Examples
    --------
    >>> LateTick(topic="ticks", partition=1, offset=7, symbol="BTC-USD", ts_ms=1_700_000_000_000,
    ...          price=37000.0, size=0.1, source="binance", trade_id="9",
    ...          watermark_ms=1_700_000_300_000).offset
    7
    """

    topic: str
    partition: int
    offset: int
    symbol: str
    ts_ms: int
    price: float
    size: float | None
    source: str
    trade_id: str | None
    watermark_ms: int


# --------------------------------------------------------------------------- schema

_metadata = sa.MetaData()
_JSON = sa.JSON().with_variant(pg_dialect.JSONB(), "postgresql")

candles_table: Final = sa.Table(
    "candles",
    _metadata,
    sa.Column("symbol", sa.String(64), primary_key=True),
    sa.Column("interval", sa.String(16), primary_key=True),
    sa.Column("window_start", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("window_end", sa.BigInteger, nullable=False),
    sa.Column("open", sa.Double, nullable=False),
    sa.Column("high", sa.Double, nullable=False),
    sa.Column("low", sa.Double, nullable=False),
    sa.Column("close", sa.Double, nullable=False),
    sa.Column("volume", sa.Double, nullable=False),
    sa.Column("vwap", sa.Double, nullable=True),
    sa.Column("trades", sa.BigInteger, nullable=False),
    sa.Column("first_ts", sa.BigInteger, nullable=False),
    sa.Column("last_ts", sa.BigInteger, nullable=False),
    sa.Column("high_ts", sa.BigInteger, nullable=False),
    sa.Column("low_ts", sa.BigInteger, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False, default=0),
    sa.Column("final", sa.Boolean, nullable=False, default=False),
    sa.Column("gap", sa.Boolean, nullable=False, default=False),
)

alerts_table: Final = sa.Table(
    "alerts",
    _metadata,
    sa.Column("symbol", sa.String(64), primary_key=True),
    sa.Column("interval", sa.String(16), primary_key=True),
    sa.Column("window_start", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("detector", sa.String(64), primary_key=True),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("score", sa.Double, nullable=False),
    sa.Column("ts_ms", sa.BigInteger, nullable=False),
    sa.Column("features", _JSON, nullable=False),
    sa.Index("ix_alerts_window_start", "window_start"),
)

late_ticks_table: Final = sa.Table(
    "late_ticks",
    _metadata,
    sa.Column("topic", sa.String(255), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("offset", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("ts_ms", sa.BigInteger, nullable=False),
    sa.Column("price", sa.Double, nullable=False),
    sa.Column("size", sa.Double, nullable=True),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("trade_id", sa.String(64), nullable=True),
    sa.Column("watermark_ms", sa.BigInteger, nullable=False),
    sa.Column("recorded_at", sa.BigInteger, nullable=False),
    sa.Index("ix_late_ticks_symbol_ts", "symbol", "ts_ms"),
)

progress_table: Final = sa.Table(
    "consumer_progress",
    _metadata,
    sa.Column("group_id", sa.String(255), primary_key=True),
    sa.Column("topic", sa.String(255), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("offset", sa.BigInteger, nullable=False),
    sa.Column("watermark_ms", sa.BigInteger, nullable=True),
    sa.Column("state", sa.LargeBinary, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

schema_version_table: Final = sa.Table(
    "schema_version",
    _metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", sa.BigInteger, nullable=False),
)

_C = candles_table.c
_CANDLE_COLS: Final = [getattr(_C, name) for name in HISTORY_COLUMNS]
_CANDLE_KEY: Final = ("symbol", "interval", "window_start")
_ALERT_KEY: Final = ("symbol", "interval", "window_start", "detector")

#: Schema migrations: ``{target_version: [statements]}`` run in order by :meth:`Store.init`.
_MIGRATIONS: Final[dict[int, list[str]]] = {}


# --------------------------------------------------------------------------- helpers


def to_ms(value: TimeLike | None, name: str = "time") -> int | None:
    """Convert a point in time to epoch milliseconds UTC (``None`` stays ``None``).

    Accepts epoch-ms integers, ISO-8601 strings, ``datetime`` (naive means
    UTC), pandas Timestamps and numpy datetime64.

    Examples
    --------
    >>> to_ms(1_700_000_000_000)
    1700000000000
    >>> to_ms("2023-11-14T22:13:20Z"), to_ms("2023-11-14 22:13:20")
    (1700000000000, 1700000000000)
    >>> from datetime import timedelta, timezone
    >>> to_ms(datetime(2023, 11, 14, 23, 13, 20, tzinfo=timezone(timedelta(hours=1))))
    1700000000000
    >>> to_ms("yesterday-ish")
    Traceback (most recent call last):
    ...
    cryptolab.errors.ValidationError: invalid 'time': 'yesterday-ish' is not an ISO-8601 time or epoch ms
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValidationError(name, f"{value!r} is not a time")
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        import pandas as pd

        try:
            ts = pd.Timestamp(text)
        except (ValueError, TypeError):
            raise ValidationError(name, f"{value!r} is not an ISO-8601 time or epoch ms") from None
    elif isinstance(value, datetime | np.datetime64):
        import pandas as pd

        ts = pd.Timestamp(value)
    else:
        raise ValidationError(name, f"{value!r} ({type(value).__name__}) is not a time")
    if ts is pd.NaT:
        raise ValidationError(name, f"{value!r} is not a time")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int((ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(1, "ms"))


def _normalise_interval(interval: str) -> str:
    return interval_name(parse_interval(interval))


def _normalise_url(url: str | URL) -> URL:
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


def _json_dumps(obj: Any) -> str:
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY).decode()


#: Readers of a candle's :data:`HISTORY_COLUMNS`, in order (SQLite rows, PostgreSQL's upsert arrays).
_CANDLE_FIELDS: Final = tuple(attrgetter(c) for c in HISTORY_COLUMNS)


def _candle_row(c: Candle) -> dict[str, Any]:
    values = (f(c) for f in _CANDLE_FIELDS)
    # numpy scalars as Python numbers: sqlite3 would store them as BLOBs
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in zip(HISTORY_COLUMNS, values, strict=True)}


def _candle_from_row(r: Sequence[Any]) -> Candle:
    return Candle(
        symbol=r[0], interval=r[1], window_start=int(r[2]), window_end=int(r[3]),
        open=float(r[4]), high=float(r[5]), low=float(r[6]), close=float(r[7]),
        volume=float(r[8]), vwap=None if r[9] is None else float(r[9]), trades=int(r[10]),
        first_ts=int(r[11]), last_ts=int(r[12]), high_ts=int(r[13]), low_ts=int(r[14]),
        revision=int(r[15]), final=bool(r[16]), gap=bool(r[17]),
    )


def _alert_row(a: Alert) -> dict[str, Any]:
    return {
        "symbol": a.symbol,
        "interval": a.interval,
        "window_start": a.window_start,
        "detector": a.detector,
        "severity": a.severity,
        "score": float(a.score),
        "ts_ms": a.ts_ms,
        "features": dict(a.features),
    }


def _late_row(t: LateTick, now_ms: int) -> dict[str, Any]:
    return {
        "topic": t.topic,
        "partition": t.partition,
        "offset": t.offset,
        "symbol": t.symbol,
        "ts_ms": t.ts_ms,
        "price": t.price,
        "size": t.size,
        "source": t.source,
        "trade_id": t.trade_id,
        "watermark_ms": t.watermark_ms,
        "recorded_at": now_ms,
    }


# History frame layout: numeric columns as fetched (symbol and interval are the query's).
_NUMERIC: Final = HISTORY_COLUMNS[2:]
_FLOAT_COLS: Final = ("open", "high", "low", "close", "volume", "vwap")
_INT_COLS: Final = ("trades", "first_ts", "last_ts", "high_ts", "low_ts", "revision")

# PostgreSQL fast path: the server packs the rows into ONE bytea of fixed-size big-endian
# records (int8send/float8send/boolsend), read with one numpy.frombuffer instead of
# building 16 Python objects per candle on the client. It is still one prepared,
# parameterised SELECT. Records are self-contained, so the aggregate needs no ORDER BY
# (no sort on the server): the client orders them by window_start.
_PACKED_TYPES: Final = {**dict.fromkeys(_FLOAT_COLS, ">f8"), **dict.fromkeys(_INT_COLS, ">i8"),
                        "window_start": ">i8", "window_end": ">i8", "final": "?", "gap": "?"}
_PACKED_DTYPE: Final = np.dtype([(name, _PACKED_TYPES[name]) for name in _NUMERIC])
_PACKED_SQL: Final = """\
SELECT count(*), string_agg(
    int8send(window_start) || int8send(window_end)
    || float8send(open) || float8send(high) || float8send(low) || float8send(close)
    || float8send(volume) || float8send(COALESCE(vwap, 'NaN'::float8))
    || int8send(trades) || int8send(first_ts) || int8send(last_ts) || int8send(high_ts)
    || int8send(low_ts) || int8send(CAST(revision AS BIGINT)) || boolsend(final) || boolsend(gap),
    ''::bytea)
FROM (
    SELECT * FROM candles
    WHERE symbol = :symbol AND "interval" = :interval
      AND window_start >= :start AND window_start < :end AND (final OR NOT :final_only)
    ORDER BY window_start DESC LIMIT :limit
) AS c"""


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


def _frame_from_packed(symbol: str, interval: str, n: int, data: bytes | None) -> pd.DataFrame | None:
    """Decode the packed history rows; ``None`` when the layout is not the expected one."""
    from cryptolab._frames import history_frame

    data = data or b""
    if len(data) != n * _PACKED_DTYPE.itemsize:
        return None
    rec = np.frombuffer(data, dtype=_PACKED_DTYPE)
    starts = rec["window_start"]
    if n > 1 and not (starts[1:] > starts[:-1]).all():
        rec = rec[np.argsort(starts, kind="stable")]
    return history_frame(symbol, interval, {k: rec[k] for k in _NUMERIC}, n)


def _frame_from_rows(symbol: str, interval: str, rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """History frame from DBAPI rows of the numeric columns (one C-level conversion).

    Every value goes through float64 first: exact for epoch-ms times and
    counts (all below 2**53); ``None`` (an unknown vwap) becomes NaN.
    """
    from cryptolab._frames import history_frame

    n = len(rows)
    m = np.array(rows, dtype=np.float64).reshape(n, len(_NUMERIC)).T
    return history_frame(symbol, interval, dict(zip(_NUMERIC, m, strict=True)), n)


class _Query:
    """A statement compiled once for the raw DBAPI cursor (server-side prepared on PostgreSQL)."""

    __slots__ = ("defaults", "sql")

    def __init__(self, stmt: sa.Select[Any] | sa.TextClause, dialect: sa.Dialect) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql: str = compiled.string
        self.defaults: dict[str, Any] = dict(compiled.params)

    def params(self, **values: Any) -> dict[str, Any]:
        return {**self.defaults, **values}


def _history_select(*, final_only: bool, limited: bool) -> sa.Select[Any]:
    cond = [
        _C.symbol == sa.bindparam("symbol", type_=sa.String),
        _C.interval == sa.bindparam("interval", type_=sa.String),
        _C.window_start >= sa.bindparam("start", type_=sa.BigInteger),
        _C.window_start < sa.bindparam("end", type_=sa.BigInteger),
    ]
    if final_only:
        cond.append(_C.final.is_(True))
    cols: list[Any] = [getattr(_C, name) for name in _NUMERIC]
    stmt = sa.select(*cols).where(*cond)
    if limited:
        return stmt.order_by(_C.window_start.desc()).limit(
            sa.bindparam("limit", type_=sa.Integer)
        )
    return stmt.order_by(_C.window_start)


# --------------------------------------------------------------------------- store


class Store:
    """The SQL store of record (PostgreSQL/TimescaleDB or SQLite).

    Parameters
    ----------
    url
        SQLAlchemy URL: ``postgresql+psycopg://user:pw@host/db`` (``postgresql://``
        is taken to mean psycopg 3), ``sqlite:///path/to/file.db`` or ``sqlite://``
        (in memory, shared by all threads of this process).
    pool_size
        Connections kept per pool (PostgreSQL).

    Notes
    -----
    Nothing is created until :meth:`init` runs (``cryptolab db init``); it is
    idempotent and safe to call from several processes at once.

    Errors from the database are raised as :class:`~cryptolab.errors.StoreError`
    (transient: retry the call), except a lost fencing check, which raises
    :class:`~cryptolab.errors.FencedError` (do not retry: re-read the progress).

    SQLite files use WAL journaling with ``synchronous=NORMAL``: a power loss
    can lose the last commits, never half of one; progress and results live in
    the same transaction, so the consumer simply re-processes from the last
    durable offset.

    Examples
    --------
    >>> Store("postgresql://app:s3cret@db.example/cryptolab")
    Store('postgresql+psycopg://app:***@db.example/cryptolab')
    >>> with Store("sqlite://") as s:
    ...     s.init()
    ...     (s.dialect, s.timescale, s.schema_version(), len(s.history("BTC-USD", "1m")))
    ('sqlite', False, 1, 0)
    """

    def __init__(self, url: str | URL, *, pool_size: int = 5) -> None:
        self._url = _normalise_url(url)
        self._url_text = self._url.render_as_string(hide_password=False)
        self.dialect: Literal["postgresql", "sqlite"] = (
            "postgresql" if self._url.get_backend_name() == "postgresql" else "sqlite"
        )
        self._timescale: bool | None = None
        self._lock: threading.RLock | None = None
        if self.dialect == "postgresql":
            self._engine = self._pg_engine(pool_size, autocommit=False)
            self._read_engine = self._pg_engine(pool_size, autocommit=True)
        else:
            self._engine = self._sqlite_engine()
            self._read_engine = self._engine
        rd: sa.Dialect = self._read_engine.dialect
        if self.dialect == "sqlite":
            rd = sqlite_dialect.dialect(paramstyle="named")  # sqlite3 binds :name from a dict
        variants = [(f, lim) for f in (False, True) for lim in (False, True)]
        self._q_history = {
            (f, lim): _Query(_history_select(final_only=f, limited=lim), rd) for f, lim in variants
        }
        self._q_packed: _Query | None = None
        if self.dialect == "postgresql":
            packed = sa.text(_PACKED_SQL).bindparams(
                sa.bindparam("symbol", type_=sa.String), sa.bindparam("interval", type_=sa.String),
                sa.bindparam("start", type_=sa.BigInteger), sa.bindparam("end", type_=sa.BigInteger),
                sa.bindparam("final_only", type_=sa.Boolean),
                sa.bindparam("limit", type_=sa.BigInteger),
            )
            self._q_packed = _Query(packed, rd)
        self._packed_ok = self._q_packed is not None
        self._build_statements()

    # ---------------------------------------------------------------- engines

    def _pg_engine(self, pool_size: int, *, autocommit: bool) -> Engine:
        query = self._url.query
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
        engine = sa.create_engine(self._url, **kwargs)
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

    def _sqlite_engine(self) -> Engine:
        database = self._url.database or ""
        memory = database in ("", ":memory:") or "mode=memory" in str(self._url)
        kwargs: dict[str, Any] = {
            "json_serializer": _json_dumps,
            "json_deserializer": orjson.loads,
        }
        if memory:
            # One connection shared by every thread (else each thread sees its own database).
            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"] = {"check_same_thread": False}
            self._lock = threading.RLock()
        engine = sa.create_engine(self._url, **kwargs)

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

        return engine

    def _build_statements(self) -> None:
        dialect_mod: Any = pg_dialect if self.dialect == "postgresql" else sqlite_dialect
        ins = dialect_mod.insert(candles_table)
        self._upsert_candles = ins.on_conflict_do_update(
            index_elements=list(_CANDLE_KEY),
            set_={k: ins.excluded[k] for k in HISTORY_COLUMNS if k not in _CANDLE_KEY},
        )
        self._insert_alerts = (
            dialect_mod.insert(alerts_table)
            .on_conflict_do_nothing(index_elements=list(_ALERT_KEY))
            .returning(*(alerts_table.c[k] for k in _ALERT_KEY))
        )
        self._insert_late = dialect_mod.insert(late_ticks_table).on_conflict_do_nothing(
            index_elements=["topic", "partition", "offset"]
        )
        pc = progress_table.c
        self._insert_progress = sa.insert(progress_table)
        self._update_progress = (
            sa.update(progress_table)
            .where(
                pc.group_id == sa.bindparam("b_group"),
                pc.topic == sa.bindparam("b_topic"),
                pc.partition == sa.bindparam("b_partition"),
                pc.offset == sa.bindparam("b_expected"),
            )
            .values(
                offset=sa.bindparam("offset"),
                watermark_ms=sa.bindparam("watermark_ms"),
                state=sa.bindparam("state"),
                updated_at=sa.bindparam("updated_at"),
            )
        )

    @contextlib.contextmanager
    def _serial(self) -> Iterator[None]:
        if self._lock is None:
            yield
        else:
            with self._lock:
                yield

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction (SQLite: BEGIN IMMEDIATE)."""
        with self._serial(), self._engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._serial(), self._read_engine.connect() as conn:
            yield conn

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except (FencedError, ValidationError):
            raise
        except StoreError:
            raise
        except sa.exc.SQLAlchemyError as exc:
            orig = getattr(exc, "orig", None) or exc
            detail = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
            raise StoreError(f"{what} failed on {self!r}: {detail}") from exc

    # ---------------------------------------------------------------- basics

    @classmethod
    def from_settings(cls, settings: Settings, *, pool_size: int = 5) -> Store:
        """Open the store named by ``settings`` (the embedded SQLite file when unset).

        Creates :attr:`Settings.data_dir` for the embedded database.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()) / "data"
        >>> s = Store.from_settings(Settings.from_env({}, data_dir=d))
        >>> s.dialect, d.is_dir()
        ('sqlite', True)
        >>> s.close()
        """
        url = settings.resolved_store_url()
        if not settings.store_url:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(url, pool_size=pool_size)

    @property
    def url(self) -> str:
        """The store URL with the password hidden."""
        return redact_url(self._url_text) or ""

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every pooled connection (an in-memory SQLite database is gone afterwards)."""
        self._engine.dispose()
        if self._read_engine is not self._engine:
            self._read_engine.dispose()

    @property
    def timescale(self) -> bool:
        """True when ``candles`` is a TimescaleDB hypertable."""
        if self._timescale is None:
            if self.dialect != "postgresql":
                self._timescale = False
            else:
                with self._errors("timescale check"), self._read() as conn:
                    self._timescale = self._is_hypertable(conn)
        return self._timescale

    # ---------------------------------------------------------------- schema

    def init(self) -> None:
        """Create or upgrade the schema; idempotent, safe to run concurrently.

        On PostgreSQL, when the ``timescaledb`` extension is available it is
        enabled (``CREATE EXTENSION IF NOT EXISTS``) and ``candles`` becomes a
        hypertable on ``window_start`` (7-day chunks); when it is not available,
        or enabling it fails (no privilege, not preloaded), ``candles`` stays a
        plain table and this is logged.

        Raises
        ------
        StoreError
            When the database cannot be reached, or its schema is newer than
            this version of cryptolab understands.
        """
        if self.dialect == "sqlite" and self._url.database not in (None, "", ":memory:"):
            Path(self._url.database).parent.mkdir(parents=True, exist_ok=True)
        if self.dialect == "sqlite" and self._schema_is_current():
            # Nothing to create: no write lock taken, so a reader (a chart, history()) opening
            # a file that a busy pipeline writes to never waits behind its transactions.
            self._timescale = False
            return
        with self._errors("schema init"), self._write() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK_ID})
            _metadata.create_all(conn, checkfirst=True)
            sv = schema_version_table
            current = conn.execute(sa.select(sa.func.max(sv.c.version))).scalar()
            now = int(time.time() * 1000)
            if current is None:
                conn.execute(sa.insert(sv), {"version": SCHEMA_VERSION, "applied_at": now})
                log.info("created cryptolab schema v%d in %r", SCHEMA_VERSION, self)
            elif current > SCHEMA_VERSION:
                raise StoreError(
                    f"{self!r} has schema version {current}, newer than the {SCHEMA_VERSION} "
                    "this cryptolab understands: upgrade cryptolab"
                )
            else:
                for version in range(current + 1, SCHEMA_VERSION + 1):
                    for statement in _MIGRATIONS.get(version, []):
                        conn.exec_driver_sql(statement)
                    conn.execute(sa.insert(sv), {"version": version, "applied_at": now})
                    log.info("upgraded %r to schema v%d", self, version)
            if self.dialect == "postgresql":
                self._timescale = self._enable_timescale(conn)
            else:
                self._timescale = False

    def _schema_is_current(self) -> bool:
        """Whether the schema is already at :data:`SCHEMA_VERSION` (read in a read transaction).

        The version row is written in the transaction that creates the tables, so its
        presence means every table exists.
        """
        try:
            with self._read() as conn:
                current = conn.execute(sa.select(sa.func.max(schema_version_table.c.version))).scalar()
        except sa.exc.SQLAlchemyError:  # no schema yet, or unreadable: the write path decides
            return False
        return current == SCHEMA_VERSION

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

    def _enable_timescale(self, conn: Connection) -> bool:
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

    def schema_version(self) -> int | None:
        """The schema version stored in the database, or ``None`` before :meth:`init`."""
        with self._errors("schema version"), self._read() as conn:
            if not sa.inspect(conn).has_table("schema_version"):
                return None
            version = conn.execute(sa.select(sa.func.max(schema_version_table.c.version))).scalar()
            return None if version is None else int(version)

    def info(self) -> dict[str, Any]:
        """Summary for ``cryptolab db info``: backend, schema, row counts, progress.

        Examples
        --------
        >>> with Store("sqlite://") as s:
        ...     s.init()
        ...     info = s.info()
        >>> info["dialect"], info["schema_version"], info["candles"], info["series"]
        ('sqlite', 1, 0, [])
        """
        version = self.schema_version()
        out: dict[str, Any] = {
            "url": self.url,
            "dialect": self.dialect,
            "schema_version": version,
            "timescale": self.timescale if version is not None else False,
        }
        if version is None:
            return out
        c = _C
        with self._errors("info"), self._read() as conn:
            for name, table in (("candles", candles_table), ("alerts", alerts_table),
                                ("late_ticks", late_ticks_table)):
                out[name] = int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
            series = conn.execute(
                sa.select(c.symbol, c.interval, sa.func.count(), sa.func.min(c.window_start),
                          sa.func.max(c.window_start))
                .group_by(c.symbol, c.interval)
                .order_by(c.symbol, c.interval)
            ).all()
            out["series"] = [
                {"symbol": s, "interval": i, "candles": int(n), "first": iso_utc(int(lo)),
                 "last": iso_utc(int(hi))}
                for s, i, n, lo, hi in series
            ]
            pc = progress_table.c
            rows = conn.execute(
                sa.select(pc.group_id, pc.topic, pc.partition, pc.offset, pc.watermark_ms,
                          pc.updated_at)
                .order_by(pc.group_id, pc.topic, pc.partition)
            ).all()
            out["progress"] = [
                {"group": g, "topic": t, "partition": int(p), "offset": int(o),
                 "watermark": None if w is None else iso_utc(int(w)),
                 "updated_at": iso_utc(int(u))}
                for g, t, p, o, w, u in rows
            ]
        return out

    # ---------------------------------------------------------------- writes

    def commit_batch(
        self,
        *,
        group: str,
        topic: str,
        candles: Sequence[Candle] = (),
        alerts: Sequence[Alert] = (),
        late_ticks: Sequence[LateTick] = (),
        progress: Mapping[int, PartitionProgress] | None = None,
        expected_offsets: Mapping[int, int | None] | None = None,
    ) -> list[Alert]:
        """Write one consumer batch atomically, fenced by the consumer's progress.

        In ONE transaction: upsert ``candles`` (a row with the same
        ``(symbol, interval, window_start)`` is replaced; within the batch the
        last candle of a key wins), insert ``alerts`` unless their key exists,
        insert ``late_ticks`` unless already recorded, and write ``progress``.

        Fencing: for every partition in ``progress`` (and any extra partition in
        ``expected_offsets``, which is checked but not written), the stored
        offset must equal ``expected_offsets[p]``, ``None`` meaning no progress
        may be stored yet. The rows are locked while checked (``SELECT ... FOR
        UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so of two racing
        consumers exactly one passes. On PostgreSQL, when every partition has
        stored progress, one compare-and-set ``UPDATE ... WHERE offset =
        expected`` is both the check and the write.

        Parameters
        ----------
        group, topic
            Consumer group and topic the progress belongs to.
        candles, alerts, late_ticks
            Results of the batch.
        progress
            ``{partition: PartitionProgress}`` to store.
        expected_offsets
            ``{partition: offset or None}`` as the caller last read or wrote them.

        Returns
        -------
        list of Alert
            The alerts actually inserted (those whose key was new), in input order.

        Raises
        ------
        FencedError
            A stored offset differs from the expected one; nothing was written.
        StoreError
            The database failed (connection lost, timeout...); nothing was
            written; the call may be retried.
        ValueError
            A partition in ``progress`` has no entry in ``expected_offsets``.
        """
        progress = progress or {}
        expected = dict(expected_offsets or {})
        missing = [p for p in progress if p not in expected]
        if missing:
            raise ValueError(
                f"expected_offsets has no entry for partition(s) {sorted(missing)}: pass the "
                "offset read by load_progress() (None when there was none)"
            )
        for p, prog in progress.items():
            if prog.partition != p:
                raise ValueError(f"progress[{p}] is for partition {prog.partition}")
        unique_candles = list({c.key: c for c in candles}.values())
        unique_alerts: dict[tuple[str, str, int, str], Alert] = {}
        for a in alerts:
            unique_alerts.setdefault(a.key, a)
        now = int(time.time() * 1000)
        late_rows = [_late_row(t, now) for t in late_ticks]
        pg = self.dialect == "postgresql"
        # the usual batch: every partition has stored progress, which it moves on
        advance = pg and bool(progress) and expected.keys() == progress.keys() and None not in expected.values()
        with self._errors("commit_batch"), self._write() as conn:
            if advance:
                self._advance_progress_pg(conn, group, topic, progress, expected, now)
            elif expected:
                self._check_fence(conn, group, topic, expected)
            if unique_candles and pg:
                columns = [list(map(f, unique_candles)) for f in _CANDLE_FIELDS]
                conn.exec_driver_sql(
                    _PG_UPSERT_CANDLES, (*columns[:2], *map(_pg_numbers, columns[2:]))  # text, then numbers
                )
            elif unique_candles:
                conn.execute(self._upsert_candles, list(map(_candle_row, unique_candles)))
            inserted_keys: set[tuple[Any, ...]] = set()
            if unique_alerts:
                result = conn.execute(
                    self._insert_alerts, [_alert_row(a) for a in unique_alerts.values()]
                )
                inserted_keys = {(s, i, int(w), d) for s, i, w, d in result.all()}
            if late_rows:
                conn.execute(self._insert_late, late_rows)
            if progress and not advance:
                self._write_progress(conn, group, topic, progress, expected, now)
        return [a for k, a in unique_alerts.items() if k in inserted_keys]

    def _advance_progress_pg(
        self,
        conn: Connection,
        group: str,
        topic: str,
        progress: Mapping[int, PartitionProgress],
        expected: Mapping[int, int | None],
        now: int,
    ) -> None:
        """Check the fence and write the progress of partitions that all have some, in one
        statement; raise :class:`FencedError` (the caller rolls back) when one fails."""
        parts = sorted(progress)
        rows = conn.exec_driver_sql(
            _PG_ADVANCE_PROGRESS,
            (
                now, parts, [expected[p] for p in parts], [progress[p].offset for p in parts],
                [progress[p].watermark_ms for p in parts], [bytes(progress[p].state) for p in parts],
                group, topic,
            ),
        ).all()
        if len(rows) != len(parts):
            failed = sorted(set(parts) - {int(r[0]) for r in rows})
            # those rows were not updated: the check reads what the other consumer stored
            self._check_fence(conn, group, topic, {p: expected[p] for p in failed})
            raise FencedError(_fence_message(group, topic, failed[0], expected[failed[0]], None, lost=True))

    def _check_fence(
        self, conn: Connection, group: str, topic: str, expected: Mapping[int, int | None]
    ) -> None:
        pc = progress_table.c
        stmt = (
            sa.select(pc.partition, pc.offset)
            .where(pc.group_id == group, pc.topic == topic, pc.partition.in_(sorted(expected)))
            .order_by(pc.partition)
        )
        if self.dialect == "postgresql":
            stmt = stmt.with_for_update()
        stored = {int(p): int(o) for p, o in conn.execute(stmt).all()}
        for p in sorted(expected):
            want, have = expected[p], stored.get(p)
            if want != have:
                raise FencedError(_fence_message(group, topic, p, want, have))

    def _write_progress(
        self,
        conn: Connection,
        group: str,
        topic: str,
        progress: Mapping[int, PartitionProgress],
        expected: Mapping[int, int | None],
        now: int,
    ) -> None:
        updates: list[dict[str, Any]] = []
        inserts: list[dict[str, Any]] = []
        for p, prog in sorted(progress.items()):
            row = {
                "offset": prog.offset,
                "watermark_ms": prog.watermark_ms,
                "state": bytes(prog.state),
                "updated_at": now,
            }
            want = expected[p]
            if want is None:
                inserts.append({"group_id": group, "topic": topic, "partition": p, **row})
            else:
                updates.append(
                    {"b_group": group, "b_topic": topic, "b_partition": p, "b_expected": want, **row}
                )
        for u in updates:
            # Rows are locked by the fence check; the WHERE on the old offset makes the
            # update safe even without that lock.
            if conn.execute(self._update_progress, u).rowcount != 1:
                raise FencedError(
                    _fence_message(group, topic, u["b_partition"], u["b_expected"], None, lost=True)
                )
        if inserts:
            try:
                with conn.begin_nested():
                    conn.execute(self._insert_progress, inserts)
            except sa.exc.IntegrityError:
                parts = [r["partition"] for r in inserts]
                raise FencedError(
                    f"group {group!r} topic {topic!r} partition(s) {parts}: another consumer "
                    "stored progress first (re-read progress)"
                ) from None

    # ---------------------------------------------------------------- reads

    def load_progress(
        self, group: str, topic: str, partitions: Iterable[int] | None = None
    ) -> dict[int, PartitionProgress]:
        """Stored progress of ``group`` on ``topic`` (all partitions, or those given).

        Partitions without stored progress are absent from the result.

        Examples
        --------
        >>> with Store("sqlite://") as s:
        ...     s.init()
        ...     _ = s.commit_batch(group="g", topic="t", expected_offsets={3: None},
        ...                        progress={3: PartitionProgress(partition=3, offset=9,
        ...                                  watermark_ms=None, state=b"x")})
        ...     s.load_progress("g", "t"), s.load_progress("g", "t", [0])
        ({3: PartitionProgress(partition=3, offset=9, watermark_ms=None, state=b'x')}, {})
        """
        pc = progress_table.c
        stmt = sa.select(pc.partition, pc.offset, pc.watermark_ms, pc.state).where(
            pc.group_id == group, pc.topic == topic
        )
        if partitions is not None:
            stmt = stmt.where(pc.partition.in_(sorted(set(partitions))))
        with self._errors("load_progress"), self._read() as conn:
            rows = conn.execute(stmt.order_by(pc.partition)).all()
        return {
            int(p): PartitionProgress(
                partition=int(p), offset=int(o), watermark_ms=None if w is None else int(w),
                state=bytes(s) if s is not None else b"",
            )
            for p, o, w, s in rows
        }

    def history(
        self,
        symbol: str,
        interval: str,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        *,
        final_only: bool = False,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Candles of one series with ``window_start`` in ``[start, end)`` as a DataFrame.

        Parameters
        ----------
        symbol
            Instrument, e.g. ``"BTC-USD"``.
        interval
            Candle interval, e.g. ``"1m"`` (``"60s"`` is the same series).
        start, end
            Bounds on ``window_start`` (epoch ms, ISO-8601 string, datetime or
            Timestamp; naive times are UTC). ``None`` means unbounded.
        final_only
            Only candles whose window has closed.
        limit
            Keep only the most recent ``limit`` candles of the range.

        Returns
        -------
        pandas.DataFrame
            Columns :data:`HISTORY_COLUMNS`, sorted by ``window_start``:
            ``window_start``/``window_end`` are tz-aware UTC Timestamps
            (``datetime64[ms, UTC]``); ``first_ts``, ``last_ts``, ``high_ts``,
            ``low_ts`` are int64 epoch ms; ``vwap`` is NaN when unknown.

        Examples
        --------
        >>> from cryptolab.models import Candle
        >>> s = Store("sqlite://"); s.init()
        >>> t0 = 1_700_000_040_000
        >>> _ = s.commit_batch(group="g", topic="t", candles=[
        ...     Candle(symbol="ETH-USD", interval="1m", window_start=t0 + i * 60_000,
        ...            window_end=t0 + (i + 1) * 60_000, open=10.0 + i, high=11.0 + i,
        ...            low=9.0 + i, close=10.5 + i, volume=1.0, vwap=None, trades=1,
        ...            first_ts=t0, last_ts=t0, high_ts=t0, low_ts=t0, final=i < 2)
        ...     for i in range(3)])
        >>> df = s.history("ETH-USD", "1m", start="2023-11-14T22:15:00Z")
        >>> df[["window_start", "open", "final"]]
                       window_start  open  final
        0 2023-11-14 22:15:00+00:00  11.0   True
        1 2023-11-14 22:16:00+00:00  12.0  False
        >>> len(s.history("ETH-USD", "1m", final_only=True)), s.history("ETH-USD", "1m", limit=1).open.tolist()
        (2, [12.0])
        >>> str(df.window_start.dtype), str(df.first_ts.dtype)
        ('datetime64[ms, UTC]', 'int64')
        """
        if limit is not None and limit < 0:
            raise ValidationError("limit", f"must be >= 0, got {limit}")
        variant = (bool(final_only), limit is not None)
        start_ms = to_ms(start, "start")
        end_ms = to_ms(end, "end")
        interval = _normalise_interval(interval)
        values: dict[str, Any] = {
            "symbol": symbol,
            "interval": interval,
            "start": _MIN_MS if start_ms is None else start_ms,
            "end": _MAX_MS if end_ms is None else end_ms,
        }
        if limit is not None:
            values["limit"] = limit
        if self._packed_ok and self._q_packed is not None:
            q = self._q_packed
            packed_params = q.params(**values, final_only=bool(final_only))
            packed_params["limit"] = _MAX_MS if limit is None else limit
            rows = self._run_raw(q.sql, packed_params, binary=True)
            frame = _frame_from_packed(symbol, interval, int(rows[0][0]), rows[0][1])
            if frame is not None:
                return frame
            log.warning("unexpected packed history layout from %r: using plain SELECTs", self)
            self._packed_ok = False
        q = self._q_history[variant]
        rows = self._run_raw(q.sql, q.params(**values))
        if limit is not None:
            rows.reverse()
        return _frame_from_rows(symbol, interval, rows)

    def _run_raw(self, sql: str, params: Mapping[str, Any], *, binary: bool = False) -> list[Any]:
        """Run a compiled SELECT on a raw DBAPI cursor (binary results on PostgreSQL); all rows."""
        dbapi_error = self._read_engine.dialect.loaded_dbapi.Error
        with self._errors("history"), self._serial():
            try:
                raw = self._read_engine.raw_connection()
            except dbapi_error as exc:
                raise _as_sqlalchemy_error(exc, sql) from exc
            try:
                cur = raw.cursor(binary=True) if binary else raw.cursor()
                try:
                    cur.execute(sql, params)
                    rows: list[Any] = list(cur.fetchall())
                finally:
                    cur.close()
            except dbapi_error as exc:
                if self.dialect == "postgresql" and _is_disconnect(exc):
                    raw.invalidate()
                raise _as_sqlalchemy_error(exc, sql) from exc
            finally:
                raw.close()
        return rows

    def candles(self, symbol: str | None = None, interval: str | None = None) -> list[Candle]:
        """Every stored candle (of a symbol and/or interval) as :class:`Candle` objects.

        Sorted by ``(symbol, interval, window_start)``.
        """
        stmt = sa.select(*_CANDLE_COLS)
        if symbol is not None:
            stmt = stmt.where(_C.symbol == symbol)
        if interval is not None:
            stmt = stmt.where(_C.interval == _normalise_interval(interval))
        stmt = stmt.order_by(_C.symbol, _C.interval, _C.window_start)
        with self._errors("candles"), self._read() as conn:
            return [_candle_from_row(r) for r in conn.execute(stmt)]

    def final_candles_since(
        self, symbol: str, interval: str, before_ms: int, limit: int | None = None
    ) -> list[Candle]:
        """Final, non-gap candles with ``window_start < before_ms``, ascending.

        With ``limit``, only the most recent ``limit`` of them (to warm up
        online models after a restart).

        Examples
        --------
        >>> from cryptolab.models import Candle
        >>> s = Store("sqlite://"); s.init()
        >>> t0 = 1_700_000_040_000
        >>> _ = s.commit_batch(group="g", topic="t", candles=[
        ...     Candle(symbol="X", interval="1m", window_start=t0 + i * 60_000,
        ...            window_end=t0 + (i + 1) * 60_000, open=1.0, high=1.0, low=1.0,
        ...            close=1.0, volume=0.0, vwap=None, trades=0, first_ts=t0, last_ts=t0,
        ...            high_ts=t0, low_ts=t0, final=True, gap=i == 1) for i in range(4)])
        >>> [(c.window_start - t0) // 60_000 for c in s.final_candles_since("X", "1m", t0 + 180_000)]
        [0, 2]
        >>> [(c.window_start - t0) // 60_000 for c in s.final_candles_since("X", "1m", t0 + 10**6, limit=2)]
        [2, 3]
        """
        stmt = sa.select(*_CANDLE_COLS).where(
            _C.symbol == symbol,
            _C.interval == _normalise_interval(interval),
            _C.window_start < before_ms,
            _C.final.is_(True),
            _C.gap.is_(False),
        )
        if limit is not None:
            stmt = stmt.order_by(_C.window_start.desc()).limit(limit)
        else:
            stmt = stmt.order_by(_C.window_start)
        with self._errors("final_candles_since"), self._read() as conn:
            out = [_candle_from_row(r) for r in conn.execute(stmt)]
        if limit is not None:
            out.reverse()
        return out

    def _alerts_select(
        self,
        symbol: str | None,
        interval: str | None,
        start: TimeLike | None,
        end: TimeLike | None,
        detector: str | None,
        limit: int | None,
    ) -> sa.Select[Any]:
        ac = alerts_table.c
        stmt = sa.select(*(ac[k] for k in ALERT_COLUMNS))
        if symbol is not None:
            stmt = stmt.where(ac.symbol == symbol)
        if interval is not None:
            stmt = stmt.where(ac.interval == _normalise_interval(interval))
        if detector is not None:
            stmt = stmt.where(ac.detector == detector)
        start_ms, end_ms = to_ms(start, "start"), to_ms(end, "end")
        if start_ms is not None:
            stmt = stmt.where(ac.window_start >= start_ms)
        if end_ms is not None:
            stmt = stmt.where(ac.window_start < end_ms)
        order = (ac.window_start, ac.symbol, ac.interval, ac.detector)
        if limit is not None:
            return stmt.order_by(*(o.desc() for o in order)).limit(limit)
        return stmt.order_by(*order)

    def alert_list(
        self,
        symbol: str | None = None,
        interval: str | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        *,
        detector: str | None = None,
        limit: int | None = None,
    ) -> list[Alert]:
        """Stored alerts as :class:`Alert` objects, filtered like :meth:`alerts`.

        Sorted by ``(window_start, symbol, interval, detector)``; with ``limit``,
        the most recent ``limit``.
        """
        stmt = self._alerts_select(symbol, interval, start, end, detector, limit)
        with self._errors("alerts"), self._read() as conn:
            rows = list(conn.execute(stmt).all())
        if limit is not None:
            rows.reverse()
        return [
            Alert(symbol=s, interval=i, window_start=int(w), detector=d, severity=sev,
                  score=float(sc), ts_ms=int(ts), features=dict(f or {}))
            for s, i, w, d, sev, sc, ts, f in rows
        ]

    def alerts(
        self,
        symbol: str | None = None,
        interval: str | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        *,
        detector: str | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Stored alerts as a DataFrame.

        Columns: ``symbol``, ``interval``, ``window_start`` (UTC Timestamp),
        ``detector``, ``severity``, ``score``, ``ts_ms`` (int epoch ms),
        ``features`` (dict). Filters: ``window_start`` in ``[start, end)``.

        Examples
        --------
        >>> from cryptolab.models import Alert
        >>> s = Store("sqlite://"); s.init()
        >>> _ = s.commit_batch(group="g", topic="t", alerts=[
        ...     Alert(symbol="BTC-USD", interval="1m", window_start=1_700_000_040_000,
        ...           detector="zscore", severity="MEDIUM", score=3.1, ts_ms=1_700_000_100_000,
        ...           features={"z": 3.1})])
        >>> s.alerts()[["window_start", "detector", "score", "features"]]
                       window_start detector  score    features
        0 2023-11-14 22:14:00+00:00   zscore    3.1  {'z': 3.1}
        """
        from cryptolab._frames import alerts_frame

        return alerts_frame(self.alert_list(symbol, interval, start, end, detector=detector, limit=limit))

    def late_tick_count(self) -> int:
        """Number of late ticks recorded."""
        with self._errors("late_tick_count"), self._read() as conn:
            stmt = sa.select(sa.func.count()).select_from(late_ticks_table)
            return int(conn.execute(stmt).scalar_one())

    def forget(
        self, symbols: Sequence[str], start: TimeLike, end: TimeLike, *, group_prefix: str | None = None
    ) -> int:
        """Delete what runs wrote for ``symbols`` in ``[start, end)``; return the candles deleted.

        In one transaction: the candles and alerts whose ``window_start``, and the too-late
        ticks whose ``ts_ms``, fall in ``[start, end)``; with ``group_prefix``, also the
        consumer progress of every group whose id starts with it. The demo uses it to
        start again from a clean slate in a shared store.

        Examples
        --------
        >>> from cryptolab.models import Candle
        >>> with Store("sqlite://") as s:
        ...     s.init()
        ...     _ = s.commit_batch(group="g", topic="t", candles=[Candle(
        ...         symbol="BTC-USD", interval="1m", window_start=60_000 * m, window_end=60_000 * (m + 1),
        ...         open=1, high=1, low=1, close=1, volume=0, vwap=None, trades=1, first_ts=0,
        ...         last_ts=0, high_ts=0, low_ts=0, final=True) for m in range(3)])
        ...     s.forget(["BTC-USD"], 60_000, 180_000), len(s.candles())
        (2, 1)
        """
        lo, hi = to_ms(start, "start"), to_ms(end, "end")
        names = list(symbols)
        deleted = 0
        with self._errors("forget"), self._write() as conn:
            for table, col in ((candles_table, "window_start"), (alerts_table, "window_start"),
                               (late_ticks_table, "ts_ms")):
                t = table.c[col]
                result = conn.execute(sa.delete(table).where(
                    table.c.symbol.in_(names), t >= lo, t < hi))
                if table is candles_table:
                    deleted = int(result.rowcount or 0)
            if group_prefix:
                conn.execute(sa.delete(progress_table).where(
                    progress_table.c.group_id.startswith(group_prefix, autoescape=True)))
        return deleted

    # ---------------------------------------------------------------- exports

    def export_candles(
        self,
        path: str | os.PathLike[str] | IO[str],
        *,
        symbol: str | None = None,
        interval: str | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
    ) -> int:
        """Write candles to CSV; return the number of rows written.

        Columns (:data:`CANDLE_CSV_COLUMNS`): ``symbol, interval, window_start,
        window_end, open, high, low, close, volume, vwap, trades, revision,
        final``; times are ISO-8601 UTC (``2023-11-14T22:14:00Z``), ``vwap`` is
        empty when unknown, ``final`` is ``true``/``false``. Rows are sorted by
        ``(symbol, interval, window_start)``; ``window_start`` in ``[start, end)``.
        A file path is written atomically (a temporary file renamed into place).

        Examples
        --------
        >>> import io
        >>> from cryptolab.models import Candle
        >>> s = Store("sqlite://"); s.init()
        >>> _ = s.commit_batch(group="g", topic="t", candles=[Candle(
        ...     symbol="BTC-USD", interval="1m", window_start=1_700_000_040_000,
        ...     window_end=1_700_000_100_000, open=1.0, high=2.0, low=0.5, close=1.5,
        ...     volume=3.0, vwap=None, trades=3, first_ts=1_700_000_040_000,
        ...     last_ts=1_700_000_040_000, high_ts=1_700_000_040_000,
        ...     low_ts=1_700_000_040_000, final=True)])
        >>> buf = io.StringIO()
        >>> s.export_candles(buf)
        1
        >>> print(buf.getvalue(), end="")
        symbol,interval,window_start,window_end,open,high,low,close,volume,vwap,trades,revision,final
        BTC-USD,1m,2023-11-14T22:14:00Z,2023-11-14T22:15:00Z,1.0,2.0,0.5,1.5,3.0,,3,0,true
        """
        stmt = sa.select(*(_C[k] for k in CANDLE_CSV_COLUMNS))
        if symbol is not None:
            stmt = stmt.where(_C.symbol == symbol)
        if interval is not None:
            stmt = stmt.where(_C.interval == _normalise_interval(interval))
        start_ms, end_ms = to_ms(start, "start"), to_ms(end, "end")
        if start_ms is not None:
            stmt = stmt.where(_C.window_start >= start_ms)
        if end_ms is not None:
            stmt = stmt.where(_C.window_start < end_ms)
        stmt = stmt.order_by(_C.symbol, _C.interval, _C.window_start)

        def fmt(r: Sequence[Any]) -> list[Any]:
            return [
                r[0], r[1], iso_utc(int(r[2])), iso_utc(int(r[3])), r[4], r[5], r[6], r[7],
                r[8], "" if r[9] is None else r[9], int(r[10]), int(r[11]),
                "true" if r[12] else "false",
            ]

        return self._export(path, CANDLE_CSV_COLUMNS, stmt, fmt, "export_candles")

    def export_alerts(
        self,
        path: str | os.PathLike[str] | IO[str],
        *,
        symbol: str | None = None,
        interval: str | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        detector: str | None = None,
    ) -> int:
        """Write alerts to CSV; return the number of rows written.

        Columns (:data:`ALERT_CSV_COLUMNS`): ``symbol, interval, window_start,
        detector, severity, score``; ``window_start`` is ISO-8601 UTC. Rows are
        sorted by ``(window_start, symbol, interval, detector)``.

        Examples
        --------
        >>> import io
        >>> from cryptolab.models import Alert
        >>> s = Store("sqlite://"); s.init()
        >>> _ = s.commit_batch(group="g", topic="t", alerts=[
        ...     Alert(symbol="BTC-USD", interval="5m", window_start=1_700_000_100_000,
        ...           detector="rule", severity="HIGH", score=0.25, ts_ms=1_700_000_400_000)])
        >>> buf = io.StringIO()
        >>> s.export_alerts(buf)
        1
        >>> print(buf.getvalue(), end="")
        symbol,interval,window_start,detector,severity,score
        BTC-USD,5m,2023-11-14T22:15:00Z,rule,HIGH,0.25
        """
        stmt = self._alerts_select(symbol, interval, start, end, detector, None)

        def fmt(r: Sequence[Any]) -> list[Any]:
            return [r[0], r[1], iso_utc(int(r[2])), r[3], r[4], float(r[5])]

        return self._export(path, ALERT_CSV_COLUMNS, stmt, fmt, "export_alerts")

    def _export(
        self,
        path: str | os.PathLike[str] | IO[str],
        header: Sequence[str],
        stmt: sa.Select[Any],
        fmt: Any,
        what: str,
    ) -> int:
        if hasattr(path, "write"):
            return self._write_csv(path, header, stmt, fmt, what)  # type: ignore[arg-type]
        target = Path(path)  # type: ignore[arg-type]
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
                n = self._write_csv(fh, header, stmt, fmt, what)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        log.info("wrote %d rows to %s", n, target)
        return n

    def _write_csv(
        self, fh: IO[str], header: Sequence[str], stmt: sa.Select[Any], fmt: Any, what: str
    ) -> int:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        n = 0
        # A transaction on the primary engine: PostgreSQL streams through a server-side cursor.
        with self._errors(what), self._serial(), self._engine.connect() as conn:
            result = conn.execution_options(yield_per=5000).execute(stmt)
            for part in result.partitions():
                writer.writerows(fmt(r) for r in part)
                n += len(part)
        return n


def _fence_message(
    group: str, topic: str, partition: int, want: int | None, have: int | None, *, lost: bool = False
) -> str:
    where = f"group {group!r} topic {topic!r} partition {partition}"
    if lost:
        return f"{where}: stored offset moved away from {want} (another consumer committed; re-read progress)"
    want_s = "no stored progress" if want is None else f"offset {want}"
    have_s = "no progress" if have is None else f"offset {have}"
    return f"{where}: expected {want_s}, store has {have_s} (another consumer committed; re-read progress)"


def _is_disconnect(exc: BaseException) -> bool:
    try:
        import psycopg
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, psycopg.OperationalError)


def _as_sqlalchemy_error(exc: Exception, sql: str) -> sa.exc.SQLAlchemyError:
    if isinstance(exc, sa.exc.SQLAlchemyError):
        return exc
    return sa.exc.DBAPIError(sql, None, exc, connection_invalidated=_is_disconnect(exc))


# --------------------------------------------------------------------------- module level

_STORES: dict[str, Store] = {}
_STORES_LOCK = threading.Lock()


def _shared_store(url: str) -> Store:
    with _STORES_LOCK:
        store = _STORES.get(url)
        if store is None:
            store = Store(url)
            store.init()
            _STORES[url] = store
        return store


def history(
    symbol: str,
    interval: str,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    *,
    store_url: str | None = None,
    settings: Settings | None = None,
    final_only: bool = False,
    limit: int | None = None,
) -> pd.DataFrame:
    """Candle history as a DataFrame (``cryptolab.history``); see :meth:`Store.history`.

    The store is ``store_url``, else ``settings``, else ``Settings.from_env()``
    (the embedded SQLite file when ``CRYPTOLAB_STORE_URL`` is unset). One
    :class:`Store` per URL is kept open for the life of the process, and its
    schema is created on first use.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> url = f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'c.db'}"
    >>> history("BTC-USD", "1m", store_url=url).columns.tolist()[:6]
    ['symbol', 'interval', 'window_start', 'window_end', 'open', 'high']
    """
    if store_url is None:
        settings = settings or Settings.from_env()
        if not settings.store_url:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        store_url = settings.resolved_store_url()
    return _shared_store(store_url).history(
        symbol, interval, start, end, final_only=final_only, limit=limit
    )
