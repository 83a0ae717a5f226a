""":class:`Store`, the store of record's one entry point, and ``cryptolab.history``.

:class:`Store` owns a :class:`~cryptolab.store.database.Database` (the backend's
strategy and engines) and delegates: schema to :mod:`~cryptolab.store.schema`, the
fenced commit to :mod:`~cryptolab.store.commit`, reads to
:mod:`~cryptolab.store.queries`, CSV exports and ``info()`` to
:mod:`~cryptolab.store.export`, deletes to :mod:`~cryptolab.store.forget`.

Examples
--------
>>> with Store("sqlite://") as s:
...     s.init()
...     s.late_tick_count(), s.alert_list()
(0, [])
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from sqlalchemy.engine import URL, Connection, Engine

from cryptolab.config import Settings
from cryptolab.models import Alert, Candle
from cryptolab.store import commit, export, forget, queries, schema
from cryptolab.store.database import Database
from cryptolab.store.gaps import TradeGaps
from cryptolab.store.outbox import WebhookOutbox
from cryptolab.store.records import LateTick, PartitionProgress, WebhookDelivery
from cryptolab.store.rules import RuleTable
from cryptolab.store.times import TimeLike

if TYPE_CHECKING:  # pandas is imported when a DataFrame is asked for: a consumer never loads it
    import pandas as pd

__all__ = ["Store", "history"]


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
    ('sqlite', False, 3, 0)
    """

    def __init__(self, url: str | URL, *, pool_size: int = 5) -> None:
        self._db = Database(url, pool_size=pool_size)
        #: The backend: ``"postgresql"`` or ``"sqlite"``.
        self.dialect: Literal["postgresql", "sqlite"] = self._db.dialect.name
        self._timescale: bool | None = None
        self._queries = queries.Queries(self._db)
        #: The user alert rules (:class:`~cryptolab.store.rules.RuleTable`: add, list, remove...).
        self.rules = RuleTable(self._db)
        #: The webhook outbox (:class:`~cryptolab.store.outbox.WebhookOutbox`).
        self.webhooks = WebhookOutbox(self._db)
        # the engines and transactions, for tests and benchmarks that look underneath
        self._engine: Engine = self._db.engine  # transactions (PostgreSQL: idle sessions time out)
        self._read_engine: Engine = self._db.read_engine  # autocommit (PostgreSQL)
        self._write: Callable[[], AbstractContextManager[Connection]] = self._db.write
        self._read: Callable[[], AbstractContextManager[Connection]] = self._db.read

    @property
    def _packed_ok(self) -> bool:
        """Whether :meth:`history` reads PostgreSQL's packed rows."""
        return self._queries.packed_ok

    @_packed_ok.setter
    def _packed_ok(self, value: bool) -> None:
        self._queries.packed_ok = value

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
        return self._db.redacted_url

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every pooled connection (an in-memory SQLite database is gone afterwards)."""
        self._db.close()

    @property
    def timescale(self) -> bool:
        """True when ``candles`` is a TimescaleDB hypertable."""
        if self._timescale is None:
            with self._db.errors("timescale check"):
                self._timescale = self._db.dialect.timescale(self._db.read)
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
        self._timescale = schema.init_schema(self._db)

    def schema_version(self) -> int | None:
        """The schema version stored in the database, or ``None`` before :meth:`init`."""
        return schema.stored_schema_version(self._db)

    def info(self) -> dict[str, Any]:
        """Summary for ``cryptolab db info``: backend, schema, row counts, progress.

        Examples
        --------
        >>> with Store("sqlite://") as s:
        ...     s.init()
        ...     info = s.info()
        >>> info["dialect"], info["schema_version"], info["candles"], info["series"]
        ('sqlite', 3, 0, [])
        """
        version = self.schema_version()
        return export.info(self._db, version, self.timescale if version is not None else False)

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
        deliveries: Sequence[WebhookDelivery] = (),
    ) -> list[Alert]:
        """Write one consumer batch atomically, fenced by the consumer's progress.

        In ONE transaction: upsert ``candles`` (a row with the same
        ``(symbol, interval, window_start)`` is replaced; within the batch the
        last candle of a key wins), insert ``alerts`` unless their key exists,
        insert ``late_ticks`` unless already recorded, insert the webhook
        ``deliveries`` of the alerts inserted (unless already in the outbox), and
        write ``progress``.

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
        deliveries
            Webhook deliveries of ``alerts`` (:mod:`~cryptolab.store.outbox`).

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
        return commit.commit_batch(
            self._db, group=group, topic=topic, candles=candles, alerts=alerts,
            late_ticks=late_ticks, progress=progress, expected_offsets=expected_offsets,
            deliveries=deliveries,
        )

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
        return forget.forget(self._db, symbols, start, end, group_prefix=group_prefix)

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
        return self._queries.load_progress(group, topic, partitions)

    def history(self, symbol: str, interval: str, start: TimeLike | None = None, end: TimeLike | None = None,
                *, final_only: bool = False, limit: int | None = None) -> pd.DataFrame:
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
            Columns :data:`~cryptolab.store.HISTORY_COLUMNS`, sorted by ``window_start``:
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
        return self._queries.history(symbol, interval, start, end, final_only=final_only, limit=limit)

    def candles(self, symbol: str | None = None, interval: str | None = None) -> list[Candle]:
        """Every stored candle (of a symbol and/or interval) as :class:`Candle` objects.

        Sorted by ``(symbol, interval, window_start)``.
        """
        return self._queries.candles(symbol, interval)

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
        return self._queries.final_candles_since(symbol, interval, before_ms, limit)

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
        return self._queries.alert_list(symbol, interval, start, end, detector=detector, limit=limit)

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
        from cryptolab.store.frames import alerts_frame

        return alerts_frame(self.alert_list(symbol, interval, start, end, detector=detector, limit=limit))

    def late_tick_count(self) -> int:
        """Number of late ticks recorded."""
        return self._queries.late_tick_count()

    @property
    def gaps(self) -> TradeGaps:
        """Trade gaps: ``record``, ``count``, ``frame``, ``mark`` (:mod:`cryptolab.store.gaps`)."""
        return TradeGaps(self._db)

    # ---------------------------------------------------------------- exports

    def export_candles(self, path: str | os.PathLike[str] | IO[str], *, symbol: str | None = None,
                       interval: str | None = None, start: TimeLike | None = None,
                       end: TimeLike | None = None) -> int:
        """Write candles to CSV; return the number of rows written.

        Columns (:data:`~cryptolab.store.CANDLE_CSV_COLUMNS`): ``symbol, interval,
        window_start, window_end, open, high, low, close, volume, vwap, trades,
        revision, final``; times are ISO-8601 UTC (``2023-11-14T22:14:00Z``), ``vwap``
        is empty when unknown, ``final`` is ``true``/``false``. Rows are sorted by
        ``(symbol, interval, window_start)``; ``window_start`` in ``[start, end)``.
        A file path is written atomically (a temporary file renamed into place);
        examples in :func:`cryptolab.store.export.export_candles`.
        """
        return export.export_candles(
            self._db, path, symbol=symbol, interval=interval, start=start, end=end
        )

    def export_alerts(self, path: str | os.PathLike[str] | IO[str], *, symbol: str | None = None,
                      interval: str | None = None, start: TimeLike | None = None,
                      end: TimeLike | None = None, detector: str | None = None) -> int:
        """Write alerts to CSV; return the number of rows written.

        Columns (:data:`~cryptolab.store.ALERT_CSV_COLUMNS`): ``symbol, interval,
        window_start, detector, severity, score``; ``window_start`` is ISO-8601 UTC.
        Rows are sorted by ``(window_start, symbol, interval, detector)``; examples in
        :func:`cryptolab.store.export.export_alerts`.
        """
        return export.export_alerts(
            self._db, path, symbol=symbol, interval=interval, start=start, end=end,
            detector=detector,
        )

    def export_series(self, template: str | os.PathLike[str], what: Literal["candles", "alerts"] = "candles",
                      *, symbol: str | None = None, interval: str | None = None, start: TimeLike | None = None,
                      end: TimeLike | None = None, progress: bool = False) -> dict[Path, int]:
        """Write one CSV per symbol and/or interval named by ``template`` (``"out/{symbol}_{interval}.csv"``);
        return the rows written per file. See :func:`cryptolab.store.export.export_series`."""
        return export.export_series(self._db, template, what, symbol=symbol, interval=interval,
                                    start=start, end=end, progress=progress)


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
