"""A live market in one step: :func:`live` and the :class:`LiveSession` handle it returns.

``session = cryptolab.live("binance", symbols="BTC/USDT")`` brings the history first
(:mod:`cryptolab.market.feeds` says which, per source), then runs source -> producer ->
Kafka -> windowing consumer -> store and cache in two background threads, on the embedded
defaults (the in-process mock Kafka, SQLite, the in-process cache) or on the services the
settings name. The handle charts, reads and counts what the session wrote; errors raised
in its threads are kept and raised on the handle (the next call, ``stats.errors``,
:meth:`LiveSession.stop`), never lost.

:meth:`LiveSession.stop` stops the source, lets the producer deliver what it holds, then lets
the consumer drain the topic, close every open window and commit: nothing in flight is lost.

Examples
--------
::

    with cryptolab.live("synthetic", symbols=3, backfill="2h") as session:
        session.chart("BTC-USD", "1m")        # the last two hours at once, then live
        session.history("BTC-USD", "5m")
        session.alerts()
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from cryptolab.config import Settings, redact_url
from cryptolab.errors import CryptolabError, SourceError
from cryptolab.market.feeds import Feed, open_feed, parse_backfill
from cryptolab.models import Alert, Candle, Tick, parse_intervals

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from cryptolab.cache import Cache
    from cryptolab.pipeline import CandlePipeline
    from cryptolab.producer import ProducerStats
    from cryptolab.status import HealthReport
    from cryptolab.store import Store
    from cryptolab.viz import CandleChart

__all__ = ["LiveSession", "SessionStats", "live"]

log = logging.getLogger(__name__)

#: Ticks sent to the producer at once while history streams at full speed.
_BATCH: Final = 1_000
#: Recent alerts kept on the handle (the store keeps them all).
_RECENT_ALERTS: Final = 200
#: The embedded mock cluster lets a member that left go only after its session times out: the
#: member that drains the topic at stop would wait that long for its partitions.
_EMBEDDED_CONSUMER: Final = {"session.timeout.ms": 3_000, "heartbeat.interval.ms": 500}


@dataclass
class SessionStats:
    """What a :class:`LiveSession` has done so far (a snapshot)."""

    #: The source's state: starting, backfilling, live, ended, stopped or failed.
    source: str
    produced: int
    consumed: int
    rejected: int
    dead_letters: int
    #: Final candles per interval.
    candles: dict[str, int]
    candle_updates: int
    alerts: int
    elapsed_s: float
    #: Whether the history is in the store (``live()`` waits for it).
    backfilled: bool
    store_url: str
    errors: list[str] = field(default_factory=list)
    #: Spans of trades the source could not recover (recorded in the store's ``trade_gaps``).
    gaps: int = 0
    #: The source's own counters (failures by kind, reconnects, circuit...), when it keeps some.
    source_stats: dict[str, Any] = field(default_factory=dict)

    @property
    def ticks_per_s(self) -> float:
        """Ticks consumed per second since the session started."""
        return self.consumed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def line(self) -> str:
        """One line for a progress display.

        Examples
        --------
        >>> SessionStats(source="live", produced=10, consumed=8, rejected=0, dead_letters=0,
        ...              candles={"1m": 3}, candle_updates=9, alerts=1, elapsed_s=2.0,
        ...              backfilled=True, store_url="sqlite://").line()
        'live · 8 ticks (4/s) · candles 1m 3 · 1 alerts'
        """
        candles = ", ".join(f"{k} {v:,}" for k, v in self.candles.items()) or "none yet"
        text = f"{self.source} · {self.consumed:,} ticks ({self.ticks_per_s:,.0f}/s) · candles {candles} · " \
               f"{self.alerts} alerts"
        circuit = self.source_stats.get("circuit")
        if circuit not in (None, "closed"):
            text += f" · circuit {circuit}"
        if self.gaps:
            text += f" · {self.gaps} trade gaps"
        if self.errors:
            text += f" · {len(self.errors)} errors"
        return text


class _Tally:
    """Final candles per interval and the recent alerts, counted on the consumer's thread."""

    def __init__(self) -> None:
        self.finals: dict[str, set[tuple[str, int]]] = {}
        self.alerts = 0
        self.recent: deque[Alert] = deque(maxlen=_RECENT_ALERTS)

    def on_commit(self, candles: list[Candle], alerts: list[Alert]) -> None:
        for c in candles:
            if c.final:
                self.finals.setdefault(c.interval, set()).add((c.symbol, c.window_start))
        self.alerts += len(alerts)
        self.recent.extend(alerts)

    def counts(self, order: Sequence[str]) -> dict[str, int]:
        finals = dict(self.finals)
        return {i: len(finals[i]) for i in [*order, *sorted(set(finals) - set(order))] if i in finals}


class LiveSession:
    """A live market running in background threads, behind one handle (made by :func:`live`).

    Parameters
    ----------
    feed
        The source and its history (:func:`cryptolab.market.feeds.open_feed`).
    settings
        Services and intervals; the session uses a topic and group of its own.
    cache_name
        The in-process cache's bus when no Redis is configured: ``"default"`` (the one
        ``CandleChart.live()`` and ``cryptolab.latest`` follow), except for a synthetic market,
        which gets one of its own (its candles never mix with real ones).
    """

    def __init__(self, feed: Feed, settings: Settings | None = None, *, cache_name: str | None = None) -> None:
        self.feed = feed
        self.settings = _session_settings(feed, settings or Settings.from_env())
        self.store_url = self.settings.resolved_store_url()
        self.intervals: tuple[str, ...] = self.settings.intervals
        self.cache_name = cache_name or (f"live-{uuid.uuid4().hex[:8]}" if feed.own_store else "default")
        self.pipeline: CandlePipeline | None = None
        self.backfill_report: Any = None
        self._symbols: dict[str, None] = dict.fromkeys(feed.symbols)
        self._tally = _Tally()
        self._stop = threading.Event()
        self._history_sent = threading.Event()
        self._targets: dict[int, int] | None = None
        self._threads: list[threading.Thread] = []
        self._errors: list[tuple[str, BaseException]] = []
        self._raised: set[int] = set()
        self._state = "starting"
        #: the producer's live counters, once the source thread has started it
        self.producer_stats: ProducerStats | None = None
        self._produced = 0
        self._rejected = 0
        self._gaps = 0
        self._backfilled = False
        self._stopped = False
        self._started_at = time.monotonic()
        self._store: Store | None = None
        self._cache: Cache | None = None
        self._charts: list[CandleChart] = []

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> LiveSession:
        return self.start() if not self._threads and not self._stopped else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"LiveSession({self.feed.name!r}, symbols={self.symbols}, intervals={list(self.intervals)}, "
                f"state={self._state!r}, store={redact_url(self.store_url)!r})")

    @property
    def symbols(self) -> list[str]:
        """The session's symbols (those seen so far, for a replayed file that names them)."""
        return list(self._symbols)

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return bool(self._threads) and not self._stopped

    @property
    def source_ended(self) -> bool:
        """True once a finite source (a replayed file) has yielded its last tick, or failed."""
        return self._state in ("ended", "failed")

    def start(self, *, wait: bool = True, timeout: float = 600.0) -> LiveSession:
        """Bring the history, start the threads and (``wait``) return once the history is stored.

        Raises
        ------
        CryptolabError
            The store or the source is unusable, or a thread failed before the history was stored.
        TimeoutError
            The history was not stored within ``timeout`` seconds.
        """
        if self._threads or self._stopped:
            return self
        from cryptolab.cache import MemoryCache, open_cache
        from cryptolab.pipeline import CandlePipeline
        from cryptolab.store import Store

        s = self.settings
        store = Store.from_settings(s)
        store.init()
        self._store = Store.from_settings(s)  # reads (charts, history) on a connection pool of their own
        self._cache = open_cache(s) if s.redis_url else MemoryCache(self.cache_name)
        from cryptolab.sources.composite import CompositeSource

        src = self.feed.source
        inner = src.source if isinstance(src, CompositeSource) else src  # what a composite wraps
        if hasattr(inner, "on_gap"):
            inner.on_gap = self._on_gap  # trades it could not recover: recorded, counted
        if self.feed.backfill is not None:
            self._state = "backfilling"
            self.backfill_report = self.feed.backfill(s, self.store_url)
        self.pipeline = CandlePipeline(s, store=store, cache=self._cache, batch_timeout=0.1,
                                       on_commit=self._tally.on_commit,
                                       consumer_overrides=_EMBEDDED_CONSUMER if s.embedded_kafka else None)
        self._started_at = time.monotonic()
        for target, name in ((self._produce, "cryptolab-live-source"), (self._consume, "cryptolab-live-pipeline")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        if wait:
            self.wait_backfilled(timeout)
        return self

    def wait_backfilled(self, timeout: float = 600.0) -> None:
        """Wait until the history the source brought first is consumed and committed.

        Raises
        ------
        TimeoutError
            Not within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while not self._backfilled:
            self._raise_new()
            if self._history_sent.is_set() and self._history_committed():
                self._backfilled = True
                break
            if time.monotonic() >= deadline:
                raise TimeoutError(f"the history of {self.feed.name} was not stored within {timeout:g}s")
            time.sleep(0.05)

    def _history_committed(self) -> bool:
        """Whether the group's stored progress has reached the end offsets after the history."""
        targets = self._targets
        if targets is None or self._store is None:
            return True  # the source brings no history through Kafka
        done = self._store.load_progress(self.settings.group, self.settings.topic)
        return all(high <= 0 or (p in done and done[p].offset >= high) for p, high in targets.items())

    def stop(self, timeout: float = 120.0) -> SessionStats:
        """Stop the source, deliver what is in flight, drain the topic, close every window, commit.

        Returns the final :attr:`stats`; raises the first error of the session's threads that
        was not raised yet (after everything was stopped).
        """
        if not self._stopped:
            self._stopped = True
            self._stop.set()
            stopper = getattr(self.feed.source, "stop", None)
            if callable(stopper):
                stopper()
            for thread in self._threads[:1]:  # the source's thread: it flushes the producer
                thread.join(timeout)
            pipeline = self.pipeline
            if pipeline is not None:
                pipeline.stop()
                for thread in self._threads[1:]:
                    thread.join(timeout)
                if not any(where == "pipeline" for where, _ in self._errors):
                    self._drain(pipeline)
            for chart in self._charts:
                chart.detach()
            if self._state not in ("failed", "ended"):
                self._state = "stopped"
        self._raise_new()
        return self.stats

    def _drain(self, pipeline: CandlePipeline) -> None:
        """Consume the topic to its end, close every open window and commit (on this thread)."""
        pipeline._stop.clear()  # the same member (its windows, its scorer), a run of its own
        try:
            pipeline.run(stop_at_end=True)
        except BaseException as exc:  # kept and raised by stop()
            self._fail("drain", exc)

    def close(self) -> None:
        """:meth:`stop`, then close the store the handle reads."""
        try:
            self.stop()
        finally:
            if self._store is not None:
                self._store.close()
                self._store = None
            if self.pipeline is not None:
                self.pipeline.store.close()

    # --------------------------------------------------------------------- errors
    def _fail(self, where: str, exc: BaseException) -> None:
        log.error("live session %s failed: %s", where, exc, exc_info=exc)
        self._errors.append((where, exc))
        if where == "source":
            self._state = "failed"

    def _raise_new(self) -> None:
        """Raise the first error not raised yet (each error is raised once)."""
        for where, exc in self._errors:
            if id(exc) not in self._raised:
                self._raised.add(id(exc))
                if isinstance(exc, CryptolabError | KeyboardInterrupt):
                    raise exc
                raise SourceError(f"the live session's {where} failed: {type(exc).__name__}: {exc}") from exc

    @property
    def errors(self) -> list[BaseException]:
        """Every error raised in the session's threads, in order (raised or not)."""
        return [exc for _, exc in self._errors]

    # -------------------------------------------------------------------- threads
    def _produce(self) -> None:
        from cryptolab.producer import TickProducer

        feed = self.feed
        try:
            if feed.history_end_ms is None and not (feed.kind == "replay" and feed.source.speed is None):
                self._history_sent.set()  # no history through Kafka: a live source, or a paced file
            with TickProducer(self.settings) as producer:
                self.producer_stats = producer.stats  # live counters (metrics read them)
                self._state = "live" if feed.history_end_ms is None else "backfilling"
                self._send(producer, self.feed.source.iter_ticks(on_reject=producer.dead_letter))
                producer.flush()
                self._rejected = producer.stats.rejected
            if not self._history_sent.is_set():
                self._mark_history_sent()
            if not self._stop.is_set():
                self._state = "ended"
        except BaseException as exc:  # raised on the handle
            self._fail("source", exc)
            self._history_sent.set()

    def _send(self, producer: Any, ticks: Iterator[Tick]) -> None:
        """Send ``ticks``: history in batches at full speed, then each as it is due."""
        feed = self.feed
        history_end = feed.history_end_ms
        immediate = feed.kind in ("coingecko", "exchange") or getattr(feed.source, "speed", None) is not None
        wall0 = time.monotonic()
        batch: list[Tick] = []
        seen = self._symbols

        def send() -> None:
            nonlocal batch
            if batch:
                self._produced += producer.send_many(batch, validated=feed.source.validated)
                batch = []

        for tick in ticks:
            if self._stop.is_set():
                break
            if tick.symbol not in seen:
                seen[tick.symbol] = None
            if history_end is None:  # a live source: each tick as it comes
                batch.append(tick)
                if len(batch) >= _BATCH or immediate:
                    send()
                    producer.poll(0)
                continue
            if tick.ts_ms >= history_end:
                if not self._history_sent.is_set():
                    send()
                    producer.flush()
                    self._mark_history_sent()
                    self._state = "live"
                    wall0 = time.monotonic()
                lag = wall0 + (tick.ts_ms - history_end) / 1000 / feed.speed - time.monotonic()
                if lag > 0:
                    send()
                    producer.poll(0)
                    while lag > 0 and not self._stop.wait(min(lag, 0.5)):
                        lag = wall0 + (tick.ts_ms - history_end) / 1000 / feed.speed - time.monotonic()
                        producer.poll(0)
            batch.append(tick)
            if len(batch) >= _BATCH:
                send()
        send()

    def _mark_history_sent(self) -> None:
        """Note the topic's end offsets once the history is delivered (what :meth:`wait_backfilled` waits for)."""
        if self.feed.history_end_ms is not None or self.feed.kind == "replay":
            from confluent_kafka import Consumer

            from cryptolab.kafka import consumer_config, end_offsets

            probe = Consumer(consumer_config(self.settings, f"{self.settings.group}.probe"))
            try:
                self._targets = {p: high for p, (_low, high) in end_offsets(probe, self.settings.topic).items()}
            finally:
                probe.close()
        self._history_sent.set()

    def _on_gap(self, gap: Any) -> None:
        """Record a :class:`~cryptolab.sources.trade_gaps.TradeGap` in the store (source thread)."""
        self._reader().gaps.record([gap])
        self._gaps += 1

    def _consume(self) -> None:
        try:
            if self.pipeline is not None and not self._stop.is_set():
                self.pipeline.run()
        except BaseException as exc:  # raised on the handle
            self._fail("pipeline", exc)

    # ---------------------------------------------------------------------- reads
    @property
    def stats(self) -> SessionStats:
        """What the session has done so far; the errors of its threads are in ``errors``."""
        ps = self.pipeline.stats if self.pipeline is not None else None
        src = getattr(self.feed.source, "stats", None)
        as_dict = getattr(src, "as_dict", None)
        return SessionStats(
            source=self._state, produced=self._produced,
            consumed=ps.ticks if ps is not None else 0,
            rejected=self._rejected, dead_letters=ps.dead_letters if ps is not None else 0,
            candles=self._tally.counts(self.intervals),
            candle_updates=ps.candle_updates if ps is not None else 0,
            alerts=self._tally.alerts, elapsed_s=time.monotonic() - self._started_at,
            backfilled=self._backfilled, store_url=redact_url(self.store_url) or "",
            errors=[f"{where}: {type(exc).__name__}: {exc}" for where, exc in self._errors],
            source_stats=as_dict() if callable(as_dict) else {}, gaps=self._gaps,
        )

    def _symbol(self, symbol: str | None) -> str:
        if symbol is None:
            if not self._symbols:
                raise CryptolabError("the session has no symbol yet: name one")
            return next(iter(self._symbols))
        return self.feed.markets.get(symbol, symbol)

    def _interval(self, interval: str | None) -> str:
        return interval or self.intervals[0]

    def _reader(self) -> Store:
        """The store the handle reads (opened again after :meth:`close`: the candles stay)."""
        if self._store is None:
            if not self._threads:
                raise CryptolabError("the session was not started: call start()")
            from cryptolab.store import Store

            self._store = Store.from_settings(self.settings)
        return self._store

    def history(self, symbol: str | None = None, interval: str | None = None, start: Any = None,
                end: Any = None, *, final_only: bool = False, limit: int | None = None) -> pd.DataFrame:
        """Candles of one series from the session's store (see :meth:`cryptolab.store.Store.history`),
        with a boolean ``gap_affected`` column: a recorded trade gap overlaps the window, so its
        candle may lack trades (:meth:`gaps`).

        ``symbol`` defaults to the first symbol, ``interval`` to the first interval; an exchange
        session also takes the market's ccxt symbol (``BTC/USDT``).
        """
        self._raise_new()
        reader = self._reader()
        frame = reader.history(self._symbol(symbol), self._interval(interval), start, end,
                               final_only=final_only, limit=limit)
        return reader.gaps.mark(frame)

    def gaps(self, symbol: str | None = None) -> pd.DataFrame:
        """The trade gaps recorded in the session's store (of ``symbol``, else of every symbol of
        the session): spans of trades the source could not recover, with the reason."""
        import pandas as pd

        reader = self._reader()
        names = [self._symbol(symbol)] if symbol is not None else self.symbols
        frames = [reader.gaps.frame(name) for name in names]
        return pd.concat(frames, ignore_index=True) if frames else reader.gaps.frame("")

    def alerts(self, symbol: str | None = None, interval: str | None = None, start: Any = None,
               end: Any = None, *, detector: str | None = None, limit: int | None = None) -> pd.DataFrame:
        """The session's stored alerts (every symbol and interval unless named)."""
        self._raise_new()
        return self._reader().alerts(None if symbol is None else self._symbol(symbol), interval, start, end,
                                     detector=detector, limit=limit)

    def recent_alerts(self) -> list[Alert]:
        """The newest alerts this session raised (up to 200), oldest first."""
        return list(self._tally.recent)

    def chart(self, symbol: str | None = None, interval: str | None = None, **kwargs: Any) -> CandleChart:
        """A :class:`~cryptolab.viz.CandleChart` attached to this session: the stored history at once,
        then every update (``kwargs`` go to the chart: ``maxlen``, ``visible_bars``...)."""
        from cryptolab.viz import CandleChart

        self._raise_new()
        chart = CandleChart(symbol=self._symbol(symbol), interval=self._interval(interval),
                            symbols=self.symbols, intervals=self.intervals, **kwargs)
        chart.attach(self._cache, store=self._reader())
        self._charts.append(chart)
        return chart

    def health(self, timeout: float = 5.0) -> HealthReport:
        """The pipeline's health, as ``cryptolab status`` shows it (an HTML panel in a notebook):
        services, lag per partition, last commit, dead letters (:func:`cryptolab.status.health_report`).

        Examples
        --------
        >>> session = live("synthetic", backfill="10m")   # doctest: +SKIP
        >>> session.health().ok                            # doctest: +SKIP
        True
        """
        from cryptolab.status import health_report

        return health_report(self.settings, timeout=timeout)

    @property
    def cache(self) -> Cache:
        """The cache the session publishes to (the dashboard follows it)."""
        if self._cache is None:
            raise CryptolabError("the session was not started")
        return self._cache

    @property
    def store(self) -> Store:
        """The store the handle reads (the session's)."""
        return self._reader()


def _session_settings(feed: Feed, base: Settings) -> Settings:
    """The session's settings: the feed's needs, a topic and group of its own, maybe a store of its own."""
    run = uuid.uuid4().hex[:8]
    s = replace(base, topic=f"{base.topic}.live.{run}", group=f"{base.group}.live.{run}", **feed.settings)
    if feed.own_store and not base.store_url:
        # a database file of its own: a synthetic market never mixes with real candles, and two
        # sessions (a notebook and a dashboard, say) never write to the same SQLite file
        folder = Path(base.data_dir) / "live"
        folder.mkdir(parents=True, exist_ok=True)
        db = folder / f"live-{os.getpid()}-{run}.db"
        s = replace(s, store_url=f"sqlite:///{db.as_posix()}")
    return s


def live(
    source: str,
    symbols: int | str | Sequence[str] | None = None,
    intervals: str | Sequence[str] = "1m,5m,15m",
    backfill: str | int | None = "6h",
    settings: Settings | None = None,
    composite: Sequence[str] | None = None,
    **source_options: Any,
) -> LiveSession:
    """Start a live market session: history first, then source -> Kafka -> candles -> store and cache.

    Parameters
    ----------
    source
        ``"synthetic"``, ``"coingecko"``, ``"replay:PATH"`` or a ccxt exchange id
        (``"binance"``, ``"coinbase"``, ``"kraken"``...).
    symbols
        synthetic: a count or symbols (default 5); coingecko: CoinGecko ids (default bitcoin,
        ethereum); an exchange: ccxt market symbols (default ``BTC/USDT``), stored as
        ``VENUE:BASE-QUOTE``; a replay: the file's own.
    intervals
        Candle intervals (``"1m,5m,15m"``).
    backfill
        How much history comes first (``"6h"``; ``0`` for none): synthetic and exchange
        sources (a replayed file is its own history; CoinGecko's quotes have none).
    settings
        Services (default: the environment, i.e. the embedded defaults unless configured).
        A synthetic session writes to a SQLite file of its own in ``<data_dir>/live`` unless
        a store is configured.
    composite
        Cross-venue series built beside the venue series (``["BTC-USDT"]``, or
        ``["BTC-USD=BINANCE:BTC-USDT,COINBASE:BTC-USD"]``; :mod:`cryptolab.sources.composite`).
    source_options
        The source's own options (:func:`cryptolab.market.feeds.open_feed`): ``speed``,
        ``seed``, ``ticks_per_second``, ``spike_every_s``; ``base_url``, ``poll_interval``;
        ``api_url``, ``ws_url``; ``format``...

    Returns
    -------
    LiveSession
        Started, with its history already in the store.

    Raises
    ------
    ValidationError
        An unknown source, symbol, interval, option or backfill.

    Examples
    --------
    >>> import cryptolab
    >>> from cryptolab import Settings
    >>> import tempfile
    >>> with cryptolab.live("synthetic", symbols=2, intervals="1m", backfill="30m",
    ...                     settings=Settings.from_env({}, data_dir=tempfile.mkdtemp())) as session:
    ...     backfilled = len(session.history("BTC-USD", "1m"))
    >>> backfilled >= 29
    True
    >>> session.stats.source, session.stats.errors
    ('stopped', [])
    """
    base = settings or Settings.from_env()
    names = parse_intervals(intervals if isinstance(intervals, str) else list(intervals))
    feed = open_feed(source, symbols=symbols, backfill_ms=parse_backfill(backfill), intervals=names,
                     settings=base, **source_options)
    if composite:
        from cryptolab.sources.composite import parse_composites, with_composite

        specs = parse_composites(composite)
        feed.source = with_composite(feed.source, specs)
        feed.symbols = [*feed.symbols, *(n for n in specs if n not in feed.symbols)]
    session = LiveSession(feed, replace(base, intervals=names))
    try:
        return session.start()
    except BaseException:
        session.close()
        raise
