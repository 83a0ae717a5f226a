"""What leaves the store as a whole: CSV exports of candles and alerts, and ``info()``.

The functions take the store's :class:`~cryptolab.store.database.Database`;
:class:`~cryptolab.store.Store` (written ``Store`` below) calls them.

Examples
--------
>>> import io
>>> from cryptolab.store.database import Database
>>> from cryptolab.store.schema import init_schema
>>> db = Database("sqlite://", pool_size=5); _ = init_schema(db)
>>> buf = io.StringIO()
>>> export_alerts(db, buf)
0
>>> buf.getvalue()
'symbol,interval,window_start,detector,severity,score\\n'
>>> info(db, 1, False)["series"]
[]
>>> db.close()
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import sqlalchemy as sa

from cryptolab.models import iso_utc
from cryptolab.store.queries import alerts_select
from cryptolab.store.schema import (
    _C,
    ALERT_CSV_COLUMNS,
    CANDLE_CSV_COLUMNS,
    alerts_table,
    candles_table,
    late_ticks_table,
    progress_table,
)
from cryptolab.store.times import TimeLike, normalise_interval, to_ms

if TYPE_CHECKING:
    from cryptolab.store.database import Database

__all__ = ["export_alerts", "export_candles", "info"]

log = logging.getLogger(__name__)

#: A row of the SELECT as the CSV writes it.
_Formatter = Callable[[Sequence[Any]], list[Any]]


def export_candles(
    db: Database,
    path: str | os.PathLike[str] | IO[str],
    *,
    symbol: str | None = None,
    interval: str | None = None,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
) -> int:
    """Write candles to CSV; return the number of rows written (:meth:`Store.export_candles`).

    Columns (:data:`~cryptolab.store.schema.CANDLE_CSV_COLUMNS`): ``symbol, interval,
    window_start, window_end, open, high, low, close, volume, vwap, trades, revision,
    final``; times are ISO-8601 UTC (``2023-11-14T22:14:00Z``), ``vwap`` is empty when
    unknown, ``final`` is ``true``/``false``. Rows are sorted by ``(symbol, interval,
    window_start)``; ``window_start`` in ``[start, end)``. A file path is written
    atomically (a temporary file renamed into place).

    Examples
    --------
    >>> import io
    >>> from cryptolab.models import Candle
    >>> from cryptolab.store import Store
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
        stmt = stmt.where(_C.interval == normalise_interval(interval))
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

    return _export(db, path, CANDLE_CSV_COLUMNS, stmt, fmt, "export_candles")


def export_alerts(
    db: Database,
    path: str | os.PathLike[str] | IO[str],
    *,
    symbol: str | None = None,
    interval: str | None = None,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    detector: str | None = None,
) -> int:
    """Write alerts to CSV; return the number of rows written (:meth:`Store.export_alerts`).

    Columns (:data:`~cryptolab.store.schema.ALERT_CSV_COLUMNS`): ``symbol, interval,
    window_start, detector, severity, score``; ``window_start`` is ISO-8601 UTC. Rows
    are sorted by ``(window_start, symbol, interval, detector)``.

    Examples
    --------
    >>> import io
    >>> from cryptolab.models import Alert
    >>> from cryptolab.store import Store
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
    stmt = alerts_select(symbol, interval, start, end, detector, None)

    def fmt(r: Sequence[Any]) -> list[Any]:
        return [r[0], r[1], iso_utc(int(r[2])), r[3], r[4], float(r[5])]

    return _export(db, path, ALERT_CSV_COLUMNS, stmt, fmt, "export_alerts")


def _export(
    db: Database,
    path: str | os.PathLike[str] | IO[str],
    header: Sequence[str],
    stmt: sa.Select[Any],
    fmt: _Formatter,
    what: str,
) -> int:
    """Write the CSV to a file object, or atomically to a path (a temporary file renamed)."""
    if hasattr(path, "write"):
        return _write_csv(db, cast("IO[str]", path), header, stmt, fmt, what)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            n = _write_csv(db, fh, header, stmt, fmt, what)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    log.info("wrote %d rows to %s", n, target)
    return n


def _write_csv(
    db: Database, fh: IO[str], header: Sequence[str], stmt: sa.Select[Any], fmt: _Formatter, what: str
) -> int:
    """Write ``header`` and the rows of ``stmt`` (streamed in parts) to ``fh``; return the rows."""
    writer = csv.writer(fh, lineterminator="\n")
    writer.writerow(header)
    n = 0
    # A transaction on the primary engine: PostgreSQL streams through a server-side cursor.
    with db.errors(what), db.serial(), db.engine.connect() as conn:
        result = conn.execution_options(yield_per=5000).execute(stmt)
        for part in result.partitions():
            writer.writerows(fmt(r) for r in part)
            n += len(part)
    return n


def info(db: Database, version: int | None, timescale: bool) -> dict[str, Any]:
    """Summary for ``cryptolab db info`` (:meth:`Store.info`): backend, schema, counts, progress.

    ``version`` is the stored schema version (``None``: no schema, nothing is read)
    and ``timescale`` whether ``candles`` is a hypertable.
    """
    out: dict[str, Any] = {
        "url": db.redacted_url,
        "dialect": db.dialect.name,
        "schema_version": version,
        "timescale": timescale,
    }
    if version is None:
        return out
    c = _C
    with db.errors("info"), db.read() as conn:
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
