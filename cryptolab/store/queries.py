"""The store's read paths: candle history, candles, alerts, late ticks and consumer progress.

:meth:`Queries.history` is the hot path (charts, reports, ``cryptolab.history``): its
statements are compiled once per store and run on a raw DBAPI cursor (server-side
prepared on PostgreSQL, where the server also packs the rows into one ``bytea``:
:mod:`cryptolab.store.packed`). pandas is imported only by the calls that return a
DataFrame (:mod:`cryptolab.store.frames`).

Examples
--------
>>> from cryptolab.store.database import Database
>>> db = Database("sqlite://", pool_size=5)
>>> from cryptolab.store.schema import init_schema
>>> init_schema(db)
False
>>> q = Queries(db)
>>> len(q.history("BTC-USD", "1m")), q.candles(), q.late_tick_count(), q.load_progress("g", "t")
(0, [], 0, {})
>>> db.close()
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import sqlalchemy as sa

from cryptolab.errors import ValidationError
from cryptolab.models import Alert, Candle
from cryptolab.store.packed import _frame_from_packed
from cryptolab.store.records import PartitionProgress
from cryptolab.store.rows import candle_from_row
from cryptolab.store.schema import (
    _C,
    _CANDLE_COLS,
    _NUMERIC,
    ALERT_COLUMNS,
    alerts_table,
    late_ticks_table,
    progress_table,
)
from cryptolab.store.times import TimeLike, normalise_interval, to_ms

if TYPE_CHECKING:  # pandas is imported when a DataFrame is asked for: a consumer never loads it
    import pandas as pd

    from cryptolab.store.database import Database

__all__ = ["Queries", "alerts_select"]

log = logging.getLogger(__name__)

_MIN_MS: Final = -(2**62)
_MAX_MS: Final = 2**62

def _frame_from_rows(symbol: str, interval: str, rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """History frame from DBAPI rows of the numeric columns (one C-level conversion).

    Every value goes through float64 first: exact for epoch-ms times and
    counts (all below 2**53); ``None`` (an unknown vwap) becomes NaN.
    """
    from cryptolab.store.frames import history_frame

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
    """The plain history SELECT of the numeric columns, one of its four variants."""
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


def alerts_select(
    symbol: str | None,
    interval: str | None,
    start: TimeLike | None,
    end: TimeLike | None,
    detector: str | None,
    limit: int | None,
) -> sa.Select[Any]:
    """The SELECT of :data:`~cryptolab.store.schema.ALERT_COLUMNS` of the alerts asked for.

    Sorted by ``(window_start, symbol, interval, detector)``; with ``limit``, the
    most recent ``limit`` in descending order.
    """
    ac = alerts_table.c
    stmt = sa.select(*(ac[k] for k in ALERT_COLUMNS))
    if symbol is not None:
        stmt = stmt.where(ac.symbol == symbol)
    if interval is not None:
        stmt = stmt.where(ac.interval == normalise_interval(interval))
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


class Queries:
    """The read paths of one store; each method is documented on :class:`~cryptolab.store.Store`.

    Parameters
    ----------
    db
        The store's connections.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        rd = db.dialect.query_dialect(db.read_engine)
        variants = [(f, lim) for f in (False, True) for lim in (False, True)]
        self._q_history = {
            (f, lim): _Query(_history_select(final_only=f, limited=lim), rd) for f, lim in variants
        }
        self._q_packed: _Query | None = None
        if db.dialect.packed_history_sql is not None:
            packed = sa.text(db.dialect.packed_history_sql).bindparams(
                sa.bindparam("symbol", type_=sa.String), sa.bindparam("interval", type_=sa.String),
                sa.bindparam("start", type_=sa.BigInteger), sa.bindparam("end", type_=sa.BigInteger),
                sa.bindparam("final_only", type_=sa.Boolean),
                sa.bindparam("limit", type_=sa.BigInteger),
            )
            self._q_packed = _Query(packed, rd)
        #: Whether :meth:`history` reads the packed rows (it stops after an unexpected layout).
        self.packed_ok = self._q_packed is not None

    def load_progress(
        self, group: str, topic: str, partitions: Iterable[int] | None = None
    ) -> dict[int, PartitionProgress]:
        """Stored progress of ``group`` on ``topic`` (all partitions, or those given)."""
        pc = progress_table.c
        stmt = sa.select(pc.partition, pc.offset, pc.watermark_ms, pc.state, pc.updated_at).where(
            pc.group_id == group, pc.topic == topic
        )
        if partitions is not None:
            stmt = stmt.where(pc.partition.in_(sorted(set(partitions))))
        with self._db.errors("load_progress"), self._db.read() as conn:
            rows = conn.execute(stmt.order_by(pc.partition)).all()
        return {
            int(p): PartitionProgress(
                partition=int(p), offset=int(o), watermark_ms=None if w is None else int(w),
                state=bytes(s) if s is not None else b"", updated_ms=int(u),
            )
            for p, o, w, s, u in rows
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
        """Candles of one series with ``window_start`` in ``[start, end)`` as a DataFrame."""
        if limit is not None and limit < 0:
            raise ValidationError("limit", f"must be >= 0, got {limit}")
        variant = (bool(final_only), limit is not None)
        start_ms = to_ms(start, "start")
        end_ms = to_ms(end, "end")
        interval = normalise_interval(interval)
        values: dict[str, Any] = {
            "symbol": symbol,
            "interval": interval,
            "start": _MIN_MS if start_ms is None else start_ms,
            "end": _MAX_MS if end_ms is None else end_ms,
        }
        if limit is not None:
            values["limit"] = limit
        if self.packed_ok and self._q_packed is not None:
            q = self._q_packed
            packed_params = q.params(**values, final_only=bool(final_only))
            packed_params["limit"] = _MAX_MS if limit is None else limit
            rows = self._db.run_raw(q.sql, packed_params, binary=True)
            frame = _frame_from_packed(symbol, interval, int(rows[0][0]), rows[0][1])
            if frame is not None:
                return frame
            log.warning("unexpected packed history layout from %r: using plain SELECTs", self._db)
            self.packed_ok = False
        q = self._q_history[variant]
        rows = self._db.run_raw(q.sql, q.params(**values))
        if limit is not None:
            rows.reverse()
        return _frame_from_rows(symbol, interval, rows)

    def candles(self, symbol: str | None = None, interval: str | None = None) -> list[Candle]:
        """Every stored candle (of a symbol and/or interval), by ``(symbol, interval, window_start)``."""
        stmt = sa.select(*_CANDLE_COLS)
        if symbol is not None:
            stmt = stmt.where(_C.symbol == symbol)
        if interval is not None:
            stmt = stmt.where(_C.interval == normalise_interval(interval))
        stmt = stmt.order_by(_C.symbol, _C.interval, _C.window_start)
        with self._db.errors("candles"), self._db.read() as conn:
            return [candle_from_row(r) for r in conn.execute(stmt)]

    def final_candles_since(
        self, symbol: str, interval: str, before_ms: int, limit: int | None = None
    ) -> list[Candle]:
        """Final, non-gap candles with ``window_start < before_ms``, ascending (the last ``limit``)."""
        stmt = sa.select(*_CANDLE_COLS).where(
            _C.symbol == symbol,
            _C.interval == normalise_interval(interval),
            _C.window_start < before_ms,
            _C.final.is_(True),
            _C.gap.is_(False),
        )
        if limit is not None:
            stmt = stmt.order_by(_C.window_start.desc()).limit(limit)
        else:
            stmt = stmt.order_by(_C.window_start)
        with self._db.errors("final_candles_since"), self._db.read() as conn:
            out = [candle_from_row(r) for r in conn.execute(stmt)]
        if limit is not None:
            out.reverse()
        return out

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
        """Stored alerts as :class:`Alert` objects, by ``(window_start, symbol, interval, detector)``."""
        stmt = alerts_select(symbol, interval, start, end, detector, limit)
        with self._db.errors("alerts"), self._db.read() as conn:
            rows = list(conn.execute(stmt).all())
        if limit is not None:
            rows.reverse()
        return [
            Alert(symbol=s, interval=i, window_start=int(w), detector=d, severity=sev,
                  score=float(sc), ts_ms=int(ts), features=dict(f or {}))
            for s, i, w, d, sev, sc, ts, f in rows
        ]

    def late_tick_count(self) -> int:
        """Number of late ticks recorded."""
        with self._db.errors("late_tick_count"), self._db.read() as conn:
            stmt = sa.select(sa.func.count()).select_from(late_ticks_table)
            return int(conn.execute(stmt).scalar_one())
