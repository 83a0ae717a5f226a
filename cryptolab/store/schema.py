"""The store's tables, their column layouts, and the schema's creation and migrations.

Tables
------
``candles``
    Primary key ``(symbol, interval, window_start)``; every :class:`~cryptolab.models.Candle`
    field. A later revision of a window replaces the row.
``alerts``
    Primary key ``(symbol, interval, window_start, detector)``; ``severity``,
    ``score``, ``ts_ms``, ``features`` (JSON). At most one alert per key.
``late_ticks``
    Ticks later than the allowed lateness, unique by ``(topic, partition, offset)``.
``trade_gaps``
    Spans of a symbol's trades a live source could not recover (a websocket was down and
    the exchange's REST history did not give them back): primary key ``(symbol, start_ms,
    end_ms)``; ``reason``, ``source``, ``recorded_at``. Added in schema v3.
``consumer_progress``
    Primary key ``(group_id, topic, partition)``; ``offset`` (the next offset
    to consume), ``watermark_ms``, ``state`` (opaque bytes), ``updated_at``
    (epoch ms).
``rules``
    User alert rules (:class:`~cryptolab.models.rules.Rule`), primary key ``id``;
    ``params`` (JSON). Since schema v2.
``webhook_deliveries``
    The webhook outbox: one row per (alert, URL), written in the transaction that
    inserts the alert; ``status`` (``pending``, ``delivered``, ``failed``), ``attempts``,
    ``next_attempt_ms``, ``lease_until_ms``, ``last_status``, ``last_error``. Since schema v2.
``schema_version``
    One row per applied schema version.

Examples
--------
>>> [t.name for t in _metadata.sorted_tables]  # doctest: +NORMALIZE_WHITESPACE
['alerts', 'candles', 'consumer_progress', 'late_ticks', 'rules', 'schema_version', 'trade_gaps',
 'webhook_deliveries']
>>> HISTORY_COLUMNS[:4], _NUMERIC[0]
(('symbol', 'interval', 'window_start', 'window_end'), 'window_start')
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect

from cryptolab.errors import StoreError
from cryptolab.models.wire import MAX_TEXT

if TYPE_CHECKING:
    from cryptolab.store.database import Database

__all__ = [
    "ALERT_COLUMNS",
    "ALERT_CSV_COLUMNS",
    "CANDLE_CSV_COLUMNS",
    "HISTORY_COLUMNS",
    "HYPERTABLE_CHUNK_MS",
    "SCHEMA_VERSION",
    "alerts_table",
    "candles_table",
    "init_schema",
    "late_ticks_table",
    "progress_table",
    "rules_table",
    "schema_version_table",
    "stored_schema_version",
    "trade_gaps_table",
    "webhook_deliveries_table",
]

log = logging.getLogger(__name__)

#: Version of the table layout written by :meth:`~cryptolab.store.Store.init`.
SCHEMA_VERSION: Final = 3
#: TimescaleDB chunk size for the ``candles`` hypertable (7 days, in ms).
HYPERTABLE_CHUNK_MS: Final = 7 * 86_400_000
#: Columns of :meth:`~cryptolab.store.Store.history`, in order.
HISTORY_COLUMNS: Final = (
    "symbol", "interval", "window_start", "window_end", "open", "high", "low", "close",
    "volume", "vwap", "trades", "first_ts", "last_ts", "high_ts", "low_ts", "revision",
    "final", "gap",
)
#: Columns of :meth:`~cryptolab.store.Store.export_candles`, in order.
CANDLE_CSV_COLUMNS: Final = (
    "symbol", "interval", "window_start", "window_end", "open", "high", "low", "close",
    "volume", "vwap", "trades", "revision", "final",
)
#: Columns of :meth:`~cryptolab.store.Store.export_alerts`, in order.
ALERT_CSV_COLUMNS: Final = ("symbol", "interval", "window_start", "detector", "severity", "score")
#: Columns of :meth:`~cryptolab.store.Store.alerts`, in order.
ALERT_COLUMNS: Final = (
    "symbol", "interval", "window_start", "detector", "severity", "score", "ts_ms", "features",
)

# History frame layout: numeric columns as fetched (symbol and interval are the query's).
_NUMERIC: Final = HISTORY_COLUMNS[2:]
_FLOAT_COLS: Final = ("open", "high", "low", "close", "volume", "vwap")
_INT_COLS: Final = ("trades", "first_ts", "last_ts", "high_ts", "low_ts", "revision")

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
    sa.Column("source", sa.String(MAX_TEXT), nullable=False),  # the wire's longest text
    sa.Column("trade_id", sa.String(MAX_TEXT), nullable=True),
    sa.Column("watermark_ms", sa.BigInteger, nullable=False),
    sa.Column("recorded_at", sa.BigInteger, nullable=False),
    sa.Index("ix_late_ticks_symbol_ts", "symbol", "ts_ms"),
)

trade_gaps_table: Final = sa.Table(
    "trade_gaps",
    _metadata,
    sa.Column("symbol", sa.String(64), primary_key=True),
    sa.Column("start_ms", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("end_ms", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("reason", sa.String(MAX_TEXT), nullable=False),
    sa.Column("source", sa.String(MAX_TEXT), nullable=False),
    sa.Column("recorded_at", sa.BigInteger, nullable=False),
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

rules_table: Final = sa.Table(
    "rules",
    _metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("params", _JSON, nullable=False),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("interval", sa.String(16), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("webhook", sa.Text, nullable=True),
    sa.Column("webhook_format", sa.String(16), nullable=False),
)

webhook_deliveries_table: Final = sa.Table(
    "webhook_deliveries",
    _metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.String(64), nullable=False),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("interval", sa.String(16), nullable=False),
    sa.Column("window_start", sa.BigInteger, nullable=False),
    sa.Column("detector", sa.String(64), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("url_hash", sa.String(64), nullable=False),
    sa.Column("format", sa.String(16), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_ms", sa.BigInteger, nullable=False),
    sa.Column("lease_until_ms", sa.BigInteger, nullable=True),
    sa.Column("last_status", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("delivered_ms", sa.BigInteger, nullable=True),
    sa.UniqueConstraint("alert_id", "url_hash", name="uq_webhook_deliveries_alert_url"),
    sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_ms"),
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

#: Schema migrations: ``{target_version: [statements]}`` run in order by :func:`init_schema`
#: (new tables need none: ``create_all`` creates them first).
#: v2: the rules and webhook_deliveries tables; v3: trade_gaps.
_MIGRATIONS: Final[dict[int, list[str]]] = {2: [], 3: []}


def init_schema(db: Database) -> bool:
    """Create or upgrade the schema of ``db``; return whether ``candles`` is a hypertable.

    Idempotent and safe to run from several processes at once: the backend
    serialises it (an advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite).

    Raises
    ------
    StoreError
        When the database cannot be reached, or its schema is newer than
        :data:`SCHEMA_VERSION`.
    """
    if db.dialect.prepare_init() and _schema_is_current(db):
        # Nothing to create: no write lock taken, so a reader (a chart, history()) opening
        # a file that a busy pipeline writes to never waits behind its transactions.
        return False
    with db.errors("schema init"), db.write() as conn:
        db.dialect.lock_schema(conn)
        _metadata.create_all(conn, checkfirst=True)
        sv = schema_version_table
        current = conn.execute(sa.select(sa.func.max(sv.c.version))).scalar()
        now = int(time.time() * 1000)
        if current is None:
            conn.execute(sa.insert(sv), {"version": SCHEMA_VERSION, "applied_at": now})
            log.info("created cryptolab schema v%d in %r", SCHEMA_VERSION, db)
        elif current > SCHEMA_VERSION:
            raise StoreError(
                f"{db!r} has schema version {current}, newer than the {SCHEMA_VERSION} "
                "this cryptolab understands: upgrade cryptolab"
            )
        else:
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS.get(version, []):
                    conn.exec_driver_sql(statement)
                conn.execute(sa.insert(sv), {"version": version, "applied_at": now})
                log.info("upgraded %r to schema v%d", db, version)
        return db.dialect.enable_timescale(conn)


def _schema_is_current(db: Database) -> bool:
    """Whether the schema is already at :data:`SCHEMA_VERSION` (read in a read transaction).

    The version row is written in the transaction that creates the tables, so its
    presence means every table exists.
    """
    try:
        with db.read() as conn:
            current = conn.execute(sa.select(sa.func.max(schema_version_table.c.version))).scalar()
    except sa.exc.SQLAlchemyError:  # no schema yet, or unreadable: the write path decides
        return False
    return current == SCHEMA_VERSION


def stored_schema_version(db: Database) -> int | None:
    """The schema version stored in ``db``, or ``None`` before :func:`init_schema`."""
    with db.errors("schema version"), db.read() as conn:
        if not sa.inspect(conn).has_table("schema_version"):
            return None
        version = conn.execute(sa.select(sa.func.max(schema_version_table.c.version))).scalar()
        return None if version is None else int(version)
