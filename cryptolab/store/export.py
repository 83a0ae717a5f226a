"""What leaves the store as a whole: CSV exports of candles and alerts, and ``info()``.

:func:`export_series` writes one file per symbol and/or interval, named by a template;
a symbol is written in a file name by :func:`cryptolab.models.venues.file_symbol`
(``BINANCE:BTC-USDT`` -> ``BINANCE~BTC-USDT``: no ``:`` or ``/``, which Windows refuses).

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
import string
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import sqlalchemy as sa

from cryptolab.errors import ValidationError
from cryptolab.models import iso_utc
from cryptolab.models.venues import by_venue, file_symbol
from cryptolab.store.queries import alerts_select
from cryptolab.store.schema import (
    _C,
    ALERT_CSV_COLUMNS,
    CANDLE_CSV_COLUMNS,
    alerts_table,
    candles_table,
    late_ticks_table,
    progress_table,
    trade_gaps_table,
)
from cryptolab.store.times import TimeLike, normalise_interval, to_ms

if TYPE_CHECKING:
    from cryptolab.store.database import Database

__all__ = ["export_alerts", "export_candles", "export_series", "info", "series_files", "venues"]

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


def series_files(
    db: Database,
    template: str | os.PathLike[str],
    what: str = "candles",
    *,
    symbol: str | None = None,
    interval: str | None = None,
) -> list[tuple[Path, dict[str, str]]]:
    """The files a per-series export writes: ``(path, {"symbol": .., "interval": ..})`` each.

    ``template`` holds ``{symbol}`` and/or ``{interval}`` (for example
    ``exports/{symbol}_{interval}.csv``): one file per distinct value of what it holds,
    among the stored ``what`` (``"candles"`` or ``"alerts"``) matching ``symbol`` and
    ``interval``. ``{symbol}`` is written by :func:`~cryptolab.models.venues.file_symbol`.
    The filters each file is exported with are the placeholders' values plus the
    ``symbol``/``interval`` given.

    Raises
    ------
    ValidationError
        A template with neither placeholder, another placeholder, or bad braces.

    Examples
    --------
    >>> from cryptolab.store import Store
    >>> from cryptolab.models import Candle
    >>> s = Store("sqlite://"); s.init()
    >>> _ = s.commit_batch(group="g", topic="t", candles=[Candle(
    ...     symbol=sym, interval="1m", window_start=60_000, window_end=120_000, open=1.0,
    ...     high=1.0, low=1.0, close=1.0, volume=1.0, vwap=1.0, trades=1, first_ts=60_000,
    ...     last_ts=60_000, high_ts=60_000, low_ts=60_000, final=True)
    ...     for sym in ("BINANCE:BTC-USDT", "BTC-USD")])
    >>> [(p.as_posix(), f) for p, f in series_files(s._db, "out/{symbol}.csv")]
    [('out/BINANCE~BTC-USDT.csv', {'symbol': 'BINANCE:BTC-USDT'}), ('out/BTC-USD.csv', {'symbol': 'BTC-USD'})]
    >>> series_files(s._db, "out/all.csv")
    Traceback (most recent call last):
    ...
    cryptolab.errors.ValidationError: invalid 'out': 'out/all.csv' holds neither {symbol} nor {interval}
    """
    text = os.fspath(template)
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
    except ValueError as exc:
        raise ValidationError("out", f"{text!r}: {exc}") from None
    if fields - {"symbol", "interval"}:
        raise ValidationError("out", f"{text!r}: only {{symbol}} and {{interval}} may be used, "
                                     f"not {sorted(fields - {'symbol', 'interval'})}")
    if not fields:
        raise ValidationError("out", f"{text!r} holds neither {{symbol}} nor {{interval}}")
    if what not in ("candles", "alerts"):
        raise ValidationError("what", f"{what!r} is not candles or alerts")
    table = candles_table if what == "candles" else alerts_table
    keys = [k for k in ("symbol", "interval") if k in fields]
    stmt = sa.select(*(table.c[k] for k in keys)).distinct().order_by(*(table.c[k] for k in keys))
    if symbol is not None:
        stmt = stmt.where(table.c.symbol == symbol)
    if interval is not None:
        stmt = stmt.where(table.c.interval == normalise_interval(interval))
    with db.errors("export"), db.read() as conn:
        rows = conn.execute(stmt).all()
    out: list[tuple[Path, dict[str, str]]] = []
    for row in rows:
        values = dict(zip(keys, row, strict=True))
        shown = {**values, **({"symbol": file_symbol(values["symbol"])} if "symbol" in values else {})}
        out.append((Path(text.format_map(shown)), values))
    return out


def export_series(
    db: Database,
    template: str | os.PathLike[str],
    what: str = "candles",
    *,
    symbol: str | None = None,
    interval: str | None = None,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    progress: bool = False,
) -> dict[Path, int]:
    """Write one CSV per file of :func:`series_files`; return the rows written per file.

    Each file is written like :func:`export_candles` / :func:`export_alerts` (atomically),
    with the file's symbol and/or interval and ``start``/``end``. ``progress`` shows a
    progress bar (tqdm, on standard error). :meth:`Store.export_series
    <cryptolab.store.Store.export_series>` calls it.

    Examples
    --------
    >>> import tempfile
    >>> from cryptolab.models import Candle
    >>> from cryptolab.store import Store
    >>> with Store("sqlite://") as s:
    ...     s.init()
    ...     _ = s.commit_batch(group="g", topic="t", candles=[Candle(
    ...         symbol="COINBASE:BTC-USD", interval="1m", window_start=60_000, window_end=120_000,
    ...         open=1, high=1, low=1, close=1, volume=1, vwap=1, trades=1, first_ts=60_000,
    ...         last_ts=60_000, high_ts=60_000, low_ts=60_000, final=True)])
    ...     written = s.export_series(tempfile.mkdtemp() + "/{symbol}_{interval}.csv")
    >>> [(p.name, n) for p, n in written.items()]
    [('COINBASE~BTC-USD_1m.csv', 1)]
    """
    files: Iterable[tuple[Path, dict[str, str]]] = series_files(
        db, template, what, symbol=symbol, interval=interval)
    if progress:
        from tqdm import tqdm

        files = tqdm(files, desc=f"export {what}", unit=" files", file=sys.stderr, mininterval=0.5)
    write = export_candles if what == "candles" else export_alerts
    return {path: write(db, path, symbol=f.get("symbol", symbol), interval=f.get("interval", interval),
                        start=start, end=end)
            for path, f in files}


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
        out["trade_gaps"] = int(conn.execute(sa.select(sa.func.count()).select_from(trade_gaps_table))
                                .scalar_one()) if version >= 2 else 0
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
        out["venues"] = venues(out["series"])
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


def venues(series: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Series grouped by venue (``info()["venues"]``): venues A-Z, then the venue-less (``None``).

    Each entry: ``venue``, ``symbols`` (sorted), ``series`` and ``candles`` (counts).

    Examples
    --------
    >>> venues([{"symbol": "BTC-USD", "candles": 3}, {"symbol": "BINANCE:BTC-USDT", "candles": 5},
    ...         {"symbol": "BINANCE:BTC-USDT", "candles": 1}])  # doctest: +NORMALIZE_WHITESPACE
    [{'venue': 'BINANCE', 'symbols': ['BINANCE:BTC-USDT'], 'series': 2, 'candles': 6},
     {'venue': None, 'symbols': ['BTC-USD'], 'series': 1, 'candles': 3}]
    """
    groups = by_venue(sorted(s["symbol"] for s in series))
    out = []
    for venue, symbols in groups.items():
        names = set(symbols)
        members = [s for s in series if s["symbol"] in names]
        out.append({"venue": venue, "symbols": symbols, "series": len(members),
                    "candles": sum(int(s["candles"]) for s in members)})
    return out
