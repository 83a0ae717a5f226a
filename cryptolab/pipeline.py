"""CandlePipeline: consume ticks -> aggregate candles -> score -> commit exactly once.

One pipeline is one member of a Kafka consumer group; to scale, run more
processes (``cryptolab consume``) up to the topic's partition count.

The exactly-once effect comes from committing results and progress together:
for every batch, candles (closed and revised), alerts, too-late ticks and the
consumer's progress for each partition (next offset, watermark and the
windowing state) are written in **one** database transaction, fenced on the
offset the batch started from. On start, restart or rebalance a member loads
that progress, restores its windows and seeks to the stored offset, so the
result is the same as if nothing had happened. Kafka's own committed offsets
are written too, but only as a courtesy for lag monitoring.

Commits run on a thread of their own, one at a time: while batch N is written
(store, then cache), batch N+1 is consumed and folded; N+1 is committed only
after N has landed, with N's offsets as its fencing token. When N is fenced,
what was folded meanwhile is dropped and folded again from the stored offsets.
When the topic has nothing more to give, the pipeline waits for the commit in
flight before it waits for messages, so a live feed's commits are not delayed.

Redis (or the in-process cache) is updated after the commit: at least once,
with idempotent payloads (monotonic "latest" keys). When it is down, updates
are kept (latest per key) and replayed when it returns; the SQL path goes on.
When the store is down, the pipeline pauses its partitions and retries the
same commit: nothing is committed twice and nothing is lost.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from itertools import chain, repeat
from operator import attrgetter
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from cryptolab.config import Settings
from cryptolab.errors import (
    CacheError,
    EndNotReachedError,
    FencedError,
    KafkaServiceError,
    StoreError,
    ValidationError,
)
from cryptolab.kafka import (
    DLQ_SUFFIX,
    consumer_config,
    dlq_headers,
    end_offsets,
    ensure_topics,
    producer_config,
)
from cryptolab.models import (
    MAX_PRICE,
    MAX_RECORD_BYTES,
    MAX_SIZE,
    MAX_TS_MS,
    MIN_TS_MS,
    SYMBOL_RE,
    Alert,
    Candle,
    encode_alert,
    interval_name,
    iso_utc,
    tick_from_dict,
)
from cryptolab.windows import (
    CandleAggregator,
    state_from_bytes,
    state_has_open_windows,
    state_to_bytes,
)

if TYPE_CHECKING:  # pragma: no cover
    from cryptolab.cache import Cache
    from cryptolab.store import PartitionProgress, Store

__all__ = ["CandlePipeline", "PipelineStats"]

log = logging.getLogger(__name__)

_TICK_KEYS = frozenset({"v", "symbol", "ts", "price", "size", "source", "trade_id"})
_MAX_CACHE_BACKLOG = 100_000
#: stop_at_end: how often the group's stored progress is read again (s), and how often a member
#: that has nothing of its own left says which partitions it waits for (s).
_END_CHECK_S = 1.0
_END_SAY_S = 5.0


@dataclass
class PipelineStats:
    """Counters of one :meth:`CandlePipeline.run` (also live on ``pipeline.stats``)."""

    ticks: int = 0
    dead_letters: int = 0
    late_ticks: int = 0
    candles_final: int = 0
    candle_updates: int = 0
    alerts: int = 0
    batches: int = 0
    commits: int = 0
    fenced: int = 0
    store_retries: int = 0
    cache_failures: int = 0
    rebalances: int = 0
    idle_closes: int = 0
    elapsed_s: float = 0.0

    @property
    def ticks_per_s(self) -> float:
        """Throughput over the run."""
        return self.ticks / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Counters as a plain dict (with ``ticks_per_s``)."""
        d = asdict(self)
        d["ticks_per_s"] = round(self.ticks_per_s, 1)
        return d


@dataclass
class _Owned:
    """What this member knows about a partition it owns."""

    expected: int | None  # offset stored in the progress table (fencing token)
    next_offset: int  # next offset to consume
    last_seen: float = field(default_factory=time.monotonic)
    dirty: bool = False
    idle_closed: bool = False
    finished: bool = False  # stop_at_end: drained to its end offset, windows closed, not fetched any more


@dataclass(slots=True)
class _Commit:
    """One batch's results and progress, on their way to the store and then the cache."""

    finals: list[Candle]
    updates: list[Candle]
    alerts: list[Alert]
    late: list[Any]
    progress: dict[int, Any]
    expected: dict[int, int | None]
    inserted: list[Alert] = field(default_factory=list)
    fenced: FencedError | None = None


class _Columns:
    """One partition's valid ticks of a batch, as columns (and where each came from)."""

    __slots__ = ("codes", "offsets", "price", "records", "size", "ts")

    def __init__(self) -> None:
        self.codes: list[int] = []
        self.ts: list[int] = []
        self.price: list[float] = []
        self.size: list[float | None] = []
        self.offsets: list[int] = []
        self.records: list[dict[str, Any]] = []


def _precise_error(record: Any, exc: Exception) -> Exception:
    """The full validator's error for a record the fast path choked on (it names the field)."""
    try:
        tick_from_dict(record)
    except ValidationError as precise:
        return precise
    return exc


try:  # the consumer's fast path decodes and validates wire records in one C pass
    import msgspec
except ImportError:  # pragma: no cover - msgspec is a dependency; orjson + checks otherwise
    msgspec = None  # type: ignore[assignment]


if msgspec is not None:

    class _WireTick(msgspec.Struct, forbid_unknown_fields=True):
        """A wire record that passes the fast path's checks exactly.

        It is accepted only when :func:`~cryptolab.models.tick_from_dict` would accept it
        with the same values (an int price becomes a float in both); more is rejected
        (an int ``trade_id``, a float ``ts``, ``"v": 1.0``): such batches go one by one.
        """

        v: Literal[1]
        symbol: str
        ts: Annotated[int, msgspec.Meta(ge=MIN_TS_MS, lt=MAX_TS_MS)]
        price: Annotated[float, msgspec.Meta(gt=0.0, lt=MAX_PRICE)]
        size: Annotated[float, msgspec.Meta(ge=0.0, lt=MAX_SIZE)] | None = None
        source: Annotated[str, msgspec.Meta(max_length=64)] | None = None
        trade_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None


def _wire_decoder() -> Callable[[bytes], Any] | None:
    """The decoder of :class:`_WireTick` (``None`` without msgspec)."""
    if msgspec is None:  # pragma: no cover
        return None
    decode: Callable[[bytes], Any] = msgspec.json.Decoder(_WireTick).decode
    return decode


_decode_wire = _wire_decoder()
_symbol_of = attrgetter("symbol")
_ts_of = attrgetter("ts")
_price_of = attrgetter("price")
_size_of = attrgetter("size")


def _learn_symbol(symbol: str, codes: dict[str, int], names: list[str]) -> int:
    """The code of a validated symbol, given the next one when it is new (``names[code] == symbol``)."""
    code = codes.get(symbol)
    if code is None:
        code = codes[symbol] = len(names)
        names.append(symbol)
    return code


def _symbol_codes(symbols: Iterable[str], codes: dict[str, int], names: list[str]) -> list[int] | None:
    """The code of each symbol, learning well-formed new ones (``None`` when one is not).

    Examples
    --------
    >>> codes, names = {"BTC-USD": 0}, ["BTC-USD"]
    >>> _symbol_codes(["ETH-USD", "BTC-USD", "ETH-USD"], codes, names), names
    ([1, 0, 1], ['BTC-USD', 'ETH-USD'])
    >>> _symbol_codes(["BTC-USD", "no spaces"], codes, names) is None, names
    (True, ['BTC-USD', 'ETH-USD'])
    """
    symbols = list(symbols)
    code = list(map(codes.get, symbols))
    if None not in code:
        return code  # type: ignore[return-value]
    new = {s for s, c in zip(symbols, code, strict=True) if c is None}
    if not all(type(s) is str and SYMBOL_RE.fullmatch(s) for s in new):
        return None
    for s in sorted(new):
        _learn_symbol(s, codes, names)
    return list(map(codes.__getitem__, symbols))


def _struct_columns(
    records: list[Any], codes: dict[str, int], names: list[str]
) -> tuple[list[int], list[int], list[float], list[float | None]] | None:
    """Columns of validated wire records (``None`` when a symbol is malformed: one by one)."""
    code = _symbol_codes(map(_symbol_of, records), codes, names)
    if code is None:
        return None
    return (code, list(map(_ts_of, records)), list(map(_price_of, records)),  # type: ignore[return-value]
            list(map(_size_of, records)))


def _days_hours(ms: int) -> str:
    """A duration for people.

    Examples
    --------
    >>> _days_hours(90_061_000), _days_hours(3_600_000 * 5), _days_hours(2_000)
    ('1 day 1 h', '5.0 h', '2 s')
    """
    hours = ms / 3_600_000
    if hours >= 24:
        days, rest = divmod(int(hours), 24)
        return f"{days:,} day{'s' if days > 1 else ''}" + (f" {rest} h" if rest else "")
    return f"{hours:.1f} h" if hours >= 1 else f"{ms // 1000} s"


def _field(record: Any, name: str) -> Any:
    """A field of a decoded record: a dict (one by one) or a wire struct (in bulk)."""
    return record.get(name) if isinstance(record, dict) else getattr(record, name)


def _runs(parts: list[int]) -> list[tuple[int, int]]:
    """``[a, b)`` ranges of consecutive messages from the same partition.

    Examples
    --------
    >>> _runs([0, 0, 1, 1, 1, 0])
    [(0, 2), (2, 5), (5, 6)]
    """
    n = len(parts)
    if parts.count(parts[0]) == n:
        return [(0, n)]
    arr = np.asarray(parts)
    bounds = [0, *(np.flatnonzero(arr[1:] != arr[:-1]) + 1).tolist(), n]
    return list(zip(bounds, bounds[1:], strict=False))


_get = dict.get
_item = dict.__getitem__
_NONE = type(None)


def _valid_columns(
    records: list[Any], codes: dict[str, int], names: list[str]
) -> tuple[list[int], list[int], list[float], list[float | None]] | None:
    """Symbol codes, times, prices and sizes of decoded records when every one passes the
    per-record fast checks of ``CandlePipeline._read_records``; ``None`` when one does not.

    Each check runs over the whole batch at C speed (``map``, ``set``, ``min``/``max``).

    Examples
    --------
    >>> ok = {"v": 1, "symbol": "BTC-USD", "ts": 1_700_000_000_000, "price": 2.0, "size": None}
    >>> _valid_columns([ok], {"BTC-USD": 0}, ["BTC-USD"])
    ([0], [1700000000000], [2.0], [None])
    >>> _valid_columns([ok, {**ok, "v": True}], {"BTC-USD": 0}, ["BTC-USD"]) is None
    True
    """
    n = len(records)
    if set(map(type, records)) != {dict} or not _TICK_KEYS.issuperset(chain.from_iterable(records)):
        return None
    v = list(map(_get, records, repeat("v")))
    if set(map(type, v)) != {int} or v.count(1) != n:
        return None
    ts = list(map(_item, records, repeat("ts")))
    if set(map(type, ts)) != {int} or min(ts) < MIN_TS_MS or max(ts) >= MAX_TS_MS:
        return None
    price = list(map(_item, records, repeat("price")))
    if set(map(type, price)) != {float} or not (min(price) > 0.0 and max(price) < MAX_PRICE):
        return None
    size = list(map(_get, records, repeat("size")))
    kinds = set(map(type, size))
    if not kinds <= {float, _NONE}:
        return None
    if float in kinds:
        sized: list[Any] = [z for z in size if z is not None] if _NONE in kinds else size
        if not (min(sized) >= 0.0 and max(sized) < MAX_SIZE):
            return None
    for name in ("source", "trade_id"):
        text = list(map(_get, records, repeat(name)))
        if not set(map(type, text)) <= {str, _NONE} or max(map(len, filter(None, text)), default=0) > 64:
            return None
    code = _symbol_codes(map(_item, records, repeat("symbol")), codes, names)
    if code is None:
        return None
    return code, ts, price, size  # type: ignore[return-value]


class _EndOfTopic:
    """What ``run(stop_at_end=True)`` waits for, read from the group's stored progress.

    A partition is *done* when the stored progress of the group has reached the end offset the
    partition had when the run started and holds no open window, whichever member did it (a
    partition empty at start is done without progress). :meth:`update` is given the stored
    progress and keeps the partitions not done yet in :attr:`left`, and when they last moved.

    Examples
    --------
    >>> from cryptolab.store import PartitionProgress as P
    >>> end = _EndOfTopic({0: (0, 5), 1: (0, 0), 2: (3, 3)}, wait_s=60)
    >>> end.update({}, now=0.0)
    True
    >>> end.left, end.drained(2, 0), end.drained(0, 4)
    ({0: 0}, True, False)
    >>> end.update({0: P(partition=0, offset=5, watermark_ms=None, state=b"")}, now=1.0), end.left
    (True, {})
    """

    def __init__(self, watermarks: dict[int, tuple[int, int]], wait_s: float) -> None:
        self.targets = {p: high for p, (_low, high) in watermarks.items()}
        self._empty = {p for p, (low, high) in watermarks.items() if high <= low}
        self.wait_s = wait_s
        self.left: dict[int, int] = {}  # partitions not done -> stored offset, capped at the target
        self.reached = False
        self.gave_up = False
        self.checked_at = -math.inf
        self.commits_seen = -1
        self.moved_at = time.monotonic()  # when the partitions not done last moved
        self.waiting_since: float | None = None  # since when this member has had nothing of its own
        self.said_at = -math.inf

    def drained(self, partition: int, next_offset: int) -> bool:
        """Whether a member that will consume ``next_offset`` next has reached the partition's end."""
        return next_offset >= self.targets.get(partition, 0) or partition in self._empty

    def update(self, stored: dict[int, PartitionProgress], now: float) -> bool:
        """Recompute :attr:`left` and :attr:`reached` from ``stored``; return whether anything moved."""
        left: dict[int, int] = {}
        for p, target in self.targets.items():
            pr = stored.get(p)
            if pr is None:
                if target > 0 and p not in self._empty:
                    left[p] = 0
            elif (pr.offset < target and p not in self._empty) or state_has_open_windows(
                    state_from_bytes(pr.state)):
                left[p] = min(pr.offset, target)
        moved = left != self.left
        if moved:
            self.moved_at = now
        self.left = left
        self.reached = not left
        return moved

    def error(self, topic: str, group: str, why: str) -> EndNotReachedError:
        """The error of a run that ended before the topic was done."""
        left = sorted(self.left)
        names = ", ".join(map(str, left))
        return EndNotReachedError(
            f"partition{'s' if len(left) > 1 else ''} {names} of topic {topic!r} not drained to the end "
            f"offsets at start and closed by group {group!r}: {why}",
            partitions=left,
        )


class CandlePipeline:
    """The windowing consumer.

    Parameters
    ----------
    settings
        Where Kafka, the store and the cache are; intervals, lateness, group...
    store, cache
        Adapters (default: built from ``settings``).
    scorer
        ``True`` (default detectors), an ``AnomalyScorer``, or ``None`` to skip scoring.
    group, topic
        Override the consumer group and tick topic.
    batch_size, batch_timeout
        Messages per ``consume()`` call and how long it may wait (seconds).
    consumer_overrides
        Extra librdkafka consumer options.
    on_commit
        Callback ``f(emission_candles, alerts)`` after each successful commit
        (used by live views and tests), called on the thread that runs :meth:`run`.

    Examples
    --------
    The embedded default needs no services::

        >>> from cryptolab import CandlePipeline, Settings, TickProducer   # doctest: +SKIP
        >>> settings = Settings.from_env(data_dir="/tmp/cl")                # doctest: +SKIP
        >>> with TickProducer(settings) as p: p.send_many(ticks)            # doctest: +SKIP
        >>> CandlePipeline(settings).run(stop_at_end=True)                  # doctest: +SKIP
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: Store | None = None,
        cache: Cache | None = None,
        scorer: Any = True,
        group: str | None = None,
        topic: str | None = None,
        batch_size: int = 20_000,
        batch_timeout: float = 0.2,
        consumer_overrides: dict[str, Any] | None = None,
        on_commit: Callable[[list[Candle], list[Alert]], None] | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        s = self.settings
        if store is None:
            from cryptolab.store import Store

            store = Store.from_settings(s)
            store.init()
        if cache is None:
            from cryptolab.cache import open_cache

            cache = open_cache(s)
        self.store = store
        self.cache = cache
        self.group = group or s.group
        self.topic = topic or s.topic
        self.batch_size = batch_size
        self.batch_timeout = batch_timeout
        self.on_commit = on_commit
        self.aggregator = CandleAggregator(
            intervals=s.intervals,
            out_of_orderness_ms=s.out_of_orderness_ms,
            allowed_lateness_ms=s.allowed_lateness_ms,
            gap_fill=s.gap_fill,
        )
        if scorer is True:
            from cryptolab.anomaly import AnomalyScorer, default_detectors

            scorer = AnomalyScorer(detectors=default_detectors(seed=0), history=self._stored_finals)
        self.scorer = scorer or None
        self.stats = PipelineStats()
        self._consumer_overrides = consumer_overrides or {}
        self._owned: dict[int, _Owned] = {}
        self._stop = threading.Event()
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._cache_backlog: dict[tuple[str, str, int], Candle] = {}
        self._alert_backlog: list[Alert] = []
        self._cache_retry_at = 0.0
        self._symbol_codes: dict[str, int] = {}  # validated symbols -> index in _symbol_names
        self._symbol_names: list[str] = []
        self._late_pending: list[Any] = []
        self._dlq_pending = False
        self._ts_limit = MAX_TS_MS  # event times above: dead letters (set per batch from the wall clock)
        # Commits run on their own thread, one at a time: batch N+1 is folded while batch N
        # is written (the store's and the cache's round trips overlap the consumer's work).
        self._committer: ThreadPoolExecutor | None = None
        self._inflight: tuple[_Commit, Future[None]] | None = None
        #: stop_at_end: the partitions not done yet that other members hold (for progress lines)
        self.waiting_for: list[int] = []
        self._assigned = False  # between an assignment and the next revocation (not while joining)

    # ---------------------------------------------------------------- control
    def stop(self) -> None:
        """Ask :meth:`run` to finish its current batch and return (thread-safe)."""
        self._stop.set()

    @property
    def assignment(self) -> list[int]:
        """Partitions this member owns now."""
        return sorted(self._owned)

    # ------------------------------------------------------------- rebalance
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._reap()
        self.stats.rebalances += 1
        self._forget_scored()
        ids = [tp.partition for tp in partitions]
        progress = self._retry_store(lambda: self.store.load_progress(self.group, self.topic, ids))
        for tp in partitions:
            pr = progress.get(tp.partition)
            if pr is None:
                tp.offset = OFFSET_BEGINNING
                self.aggregator.forget(tp.partition)
                self._owned[tp.partition] = _Owned(expected=None, next_offset=0)
            else:
                tp.offset = pr.offset
                self.aggregator.restore(tp.partition, state_from_bytes(pr.state))
                self._owned[tp.partition] = _Owned(expected=pr.offset, next_offset=pr.offset)
        log.info("assigned partitions %s of %s", ids, self.topic)
        self._assigned = True
        consumer.assign(partitions)
        if partitions:  # a partition paused at its end (stop_at_end) before a rebalance is read again
            consumer.resume(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._reap()  # the last commit lands before another member reads the progress
        for tp in partitions:
            self._owned.pop(tp.partition, None)
            self.aggregator.forget(tp.partition)
        self._forget_scored()
        self._assigned = False
        log.info("revoked partitions %s", [tp.partition for tp in partitions])
        consumer.unassign()

    def _forget_scored(self) -> None:
        """Drop the scorer's per-stream models: another member may score these streams next, so
        they must re-learn from the store when they come back (else alerts differ from an
        uninterrupted run)."""
        forget = getattr(self.scorer, "forget", None)
        if forget is not None:
            forget()

    # ------------------------------------------------------------------ store
    def _retry_store(self, fn: Callable[[], Any]) -> Any:
        delay = 0.2
        while True:
            try:
                return fn()
            except FencedError:
                raise
            except StoreError as exc:
                self.stats.store_retries += 1
                if self._stop.is_set():
                    raise
                log.warning("store unavailable (%s); retrying in %.1fs", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _stored_finals(self, symbol: str, interval: str, before_ms: int) -> list[Candle]:
        """The scorer's warm-up history, read with the commit's retries (a database restart
        must not kill the consumer when a stream first shows up)."""
        result: list[Candle] = self._retry_store(
            lambda: self.store.final_candles_since(symbol, interval, before_ms)
        )
        return result

    # ------------------------------------------------------------------- main
    def run(
        self,
        *,
        timeout: float | None = None,
        count: int | None = None,
        stop_at_end: bool = False,
        idle_exit: float | None = None,
    ) -> PipelineStats:
        """Consume until stopped, and return the counters.

        Parameters
        ----------
        timeout
            Return after this many seconds.
        count
            Return after this many ticks.
        stop_at_end
            Return once the *whole topic* is done, whichever member of the group did it: the
            group's stored progress covers every partition up to the end offsets that existed at
            start, and every window is closed and committed. This member drains and closes the
            partitions it owns, then stops reading them but stays in the group: it takes over
            the partitions that members leaving or timing out free, and waits (logging which
            partitions) for those other members hold, up to ``settings.end_wait_ms`` without
            progress. Any end before the topic is done (that wait, ``timeout``, ``count``,
            ``idle_exit``, :meth:`stop`) raises :class:`~cryptolab.errors.EndNotReachedError`.
        idle_exit
            Return after this many seconds without any message.
        """
        consumer, end = self._start(stop_at_end)
        started = time.monotonic()
        last_msg = started
        start_ticks = self.stats.ticks
        why = "stopped"
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if timeout is not None and now - started >= timeout:
                    why = f"returned after timeout={timeout:g}s"
                    break
                if count is not None and self.stats.ticks - start_ticks >= count:
                    why = f"returned after count={count:,} ticks"
                    break
                if end is not None:
                    self._check_end(end)
                    if end.reached or end.gave_up:
                        break
                if self._consume_batch(consumer):
                    last_msg = time.monotonic()
                if end is not None:
                    self._finish_drained(end)
                self._idle_close()
                self._commit()
                if self._inflight is None:
                    self._flush_cache_backlog()
                if idle_exit is not None and time.monotonic() - last_msg >= idle_exit:
                    why = f"returned after idle_exit={idle_exit:g}s without a message"
                    break
            self._reap()
            if end is not None:
                if not end.reached and not end.gave_up:  # a limit or a stop: done all the same?
                    self._check_end(end, force=True)
                if end.reached:
                    self._flush_cache_backlog(force=True)
        finally:
            if self._inflight is not None:  # leaving on an error: still let the last commit land
                try:
                    self._reap()
                except Exception:
                    log.warning("the last commit failed while stopping on an error", exc_info=True)
            self.stats.elapsed_s += time.monotonic() - started
            if self._cache_backlog or self._alert_backlog:
                log.warning(
                    "stopping with %d candle and %d alert updates not delivered to the cache %r "
                    "(unreachable); the store has every final candle and alert",
                    len(self._cache_backlog), len(self._alert_backlog), self.cache,
                )
            self._close_clients()
        if end is not None and not end.reached:
            if end.gave_up:
                why = (f"held by other members, without progress for {end.wait_s:g}s "
                       "(CRYPTOLAB_END_WAIT, consume --end-wait)")
            raise end.error(self.topic, self.group, why)
        return self.stats

    def _start(self, stop_at_end: bool) -> tuple[Consumer, _EndOfTopic | None]:
        """Create the clients and subscribe; read the end offsets first when ``stop_at_end``."""
        s = self.settings
        if not s.embedded_kafka:
            ensure_topics(s)
        else:
            ensure_topics(s, {self.topic: s.partitions, self.topic + DLQ_SUFFIX: 1, "alerts": 1})
        conf = consumer_config(s, self.group, **self._consumer_overrides)
        consumer = Consumer(conf)
        self._consumer = consumer
        # records never time out: dead letters wait for a broker that is away (see _flush_dead_letters)
        self._producer = Producer(producer_config(s, **{"linger.ms": 5, "message.timeout.ms": 0}))
        end = None
        if stop_at_end:
            end = _EndOfTopic(end_offsets(consumer, self.topic), s.end_wait_ms / 1000)
        self.waiting_for = []
        self._assigned = False
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="cryptolab-commit")
        consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        return consumer, end

    def _close_clients(self) -> None:
        if self._committer is not None:
            self._committer.shutdown(wait=True)
            self._committer = None
        if self._producer is not None:
            self._producer.flush(10)
            self._producer = None
        if self._consumer is not None:
            try:
                self._consumer.close()
            except Exception:  # pragma: no cover - close after a broker loss
                log.debug("consumer close failed", exc_info=True)
            self._consumer = None
            self._owned.clear()

    def _finish_drained(self, end: _EndOfTopic) -> None:
        """Close the windows of each owned partition consumed to its end offset (once), and stop
        fetching it: the member stays in the group, to take over partitions freed later, without
        reading past the end. The next commit stores the closed windows."""
        done = [p for p, o in self._owned.items() if not o.finished and end.drained(p, o.next_offset)]
        if not done:
            return
        for p in done:
            self.aggregator.close_partition(p)
            o = self._owned[p]
            o.finished = o.dirty = True
        log.info("partitions %s drained to their end offsets: windows closed", done)
        if self._consumer is not None:
            self._consumer.pause([TopicPartition(self.topic, p) for p in done])

    def _check_end(self, end: _EndOfTopic, *, force: bool = False) -> None:
        """Read the group's stored progress when due (every second, or once this member has nothing
        of its own left and its last commit landed): set ``end.reached``, or ``end.gave_up`` after
        ``end.wait_s`` without progress on the partitions other members hold (the clock runs only
        while this member has an assignment and nothing of its own left: not while the group
        rebalances)."""
        mine = [p for p, o in self._owned.items() if not o.finished]
        if not mine and self._inflight is not None:
            self._reap()  # nothing else to do: let the closing commit land, then look
            mine = [p for p, o in self._owned.items() if not o.finished]  # a fence resyncs
        now = time.monotonic()
        fresh = not mine and self.stats.commits != end.commits_seen
        if not (force or fresh or now - end.checked_at >= _END_CHECK_S):
            return
        end.checked_at, end.commits_seen = now, self.stats.commits
        stored = self._retry_store(lambda: self.store.load_progress(self.group, self.topic))
        end.update(stored, now)
        others = sorted(set(end.left) - set(self._owned))
        self.waiting_for = others
        if end.reached or force:
            return
        if mine or not others:  # this member is at work (or its last commit is on its way)
            end.moved_at, end.waiting_since = now, None
            return
        if end.waiting_since is None:
            end.waiting_since, end.said_at = now, now - _END_SAY_S + 1.0  # first said after 1 s
        if not self._assigned:  # the group is (re)balancing: that is not time lost, and who
            end.moved_at = now  # holds which partition is not known yet: nothing to say
            return
        if now - end.moved_at >= end.wait_s:
            end.gave_up = True
        elif now - end.said_at >= _END_SAY_S:
            end.said_at = now
            log.warning(
                "waiting for partitions %s held by other members (%.0fs; gives up after %gs without "
                "progress)", ", ".join(map(str, others)), now - end.waiting_since, end.wait_s,
            )

    def _idle_close(self) -> None:
        timeout_s = self.settings.idle_timeout_ms / 1000
        if timeout_s <= 0:
            return
        now = time.monotonic()
        for p, o in self._owned.items():
            if o.idle_closed or o.finished:
                continue
            if now - o.last_seen >= timeout_s and self.aggregator.open_windows(p):
                self.aggregator.close_partition(p)
                o.idle_closed = True
                o.dirty = True
                self.stats.idle_closes += 1

    # ------------------------------------------------------------- per batch
    def _poll(self, consumer: Consumer) -> list[Message]:
        """The next batch: what is already fetched, without waiting; when nothing is, wait
        up to ``batch_timeout`` for the first message and take whatever came with it.

        (``consume(n, timeout)`` alone waits the whole timeout unless ``n`` messages
        arrive, which would hold a live feed's candles back by ``batch_timeout``.)
        """
        msgs: list[Message] = consumer.consume(self.batch_size, 0)
        if msgs or self.batch_timeout <= 0:
            return msgs
        self._reap()  # nothing to fold meanwhile: finish the last commit before waiting
        msgs = consumer.consume(1, self.batch_timeout)
        if msgs and self.batch_size > 1:
            msgs += consumer.consume(self.batch_size - 1, 0)
        return msgs

    def _consume_batch(self, consumer: Consumer) -> bool:
        """Poll and fold one batch; return whether any message came.

        The cyclic garbage collector is paused meanwhile: a batch allocates tens of
        thousands of short-lived message objects (freed by reference counting), and
        each collection they trigger would walk every long-lived object of the process.
        """
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            msgs = self._poll(consumer)
            got = bool(msgs)
            if got:
                self._process(msgs)
            del msgs
            return got
        finally:
            if paused:
                gc.enable()

    def _process(self, msgs: list[Message]) -> None:
        batch: dict[int, _Columns] = {}
        now = time.monotonic()
        skew = self.settings.max_clock_skew_ms
        self._ts_limit = int(time.time() * 1000) + skew if skew > 0 else MAX_TS_MS
        if list(map(Message.error, msgs)).count(None) != len(msgs):
            self._read_records(msgs, batch, now)
        else:
            parts = list(map(Message.partition, msgs))
            offsets = list(map(Message.offset, msgs))
            for a, b in _runs(parts):
                if not self._read_run(msgs, parts[a], offsets, a, b, batch, now):
                    self._read_records(msgs[a:b], batch, now)
        n = 0
        names = self._symbol_names
        fold = self.aggregator.add_columns
        late: list[tuple[int, int, Any, str, int, float, float | None]] = []
        for p, c in batch.items():
            if not c.ts:
                continue
            n += len(c.ts)
            too_late = fold(c.codes, names, c.ts, c.price, np.array(c.size, dtype=np.float64), p)
            if too_late.any():
                late.extend(
                    (p, c.offsets[i], c.records[i], names[c.codes[i]], c.ts[i], c.price[i], c.size[i])
                    for i in np.flatnonzero(too_late).tolist()
                )
        self.stats.ticks += n
        self.stats.batches += 1
        if late:
            from cryptolab.store import LateTick

            wm = self.aggregator.watermark
            self._late_pending.extend(
                LateTick(
                    topic=self.topic, partition=p, offset=off, symbol=sym, ts_ms=ts, price=price, size=size,
                    source=str(_field(d, "source") or ""),
                    trade_id=None if _field(d, "trade_id") is None else str(_field(d, "trade_id")),
                    watermark_ms=wm(p) or 0,
                )
                for (p, off, d, sym, ts, price, size) in late
            )
            self.stats.late_ticks += len(late)

    def _read_run(
        self,
        msgs: list[Message],
        p: int,
        offsets: list[int],
        a: int,
        b: int,
        batch: dict[int, _Columns],
        now: float,
    ) -> bool:
        """Collect ``msgs[a:b]`` (one partition, consecutive offsets) in bulk when every
        record passes the same checks as :meth:`_read_records`' fast path; return False,
        having changed nothing, when one does not (that method then takes them one by one).
        """
        o = self._owned.get(p)
        if o is None or o.finished:  # a partition revoked meanwhile, or paused at its end: skipped
            return True
        first, last = offsets[a], offsets[b - 1]
        if first < o.next_offset or last - first != b - a - 1:
            return False  # duplicates after a seek, or gaps: one by one
        values = list(map(Message.value, msgs[a:b]))
        records: list[Any]
        try:
            if max(map(len, values)) > MAX_RECORD_BYTES:
                return False
            if _decode_wire is not None:  # decoded and validated in one C pass
                records = list(map(_decode_wire, values))
                columns = _struct_columns(records, self._symbol_codes, self._symbol_names)
            else:
                records = list(map(orjson.loads, values))
                columns = _valid_columns(records, self._symbol_codes, self._symbol_names)
        except Exception:  # None, not JSON, a failed check, missing keys...: one by one
            return False
        if columns is None or max(columns[1]) > self._ts_limit:  # a tick from the future: one by one
            return False
        o.next_offset = last + 1
        c = batch.get(p)
        if c is None:
            c = batch[p] = _Columns()
            o.dirty = True
            o.last_seen = now
            o.idle_closed = False
        codes, ts, price, size = columns
        c.codes += codes
        c.ts += ts
        c.price += price
        c.size += size
        c.offsets += offsets[a:b]
        c.records += records
        return True

    def _read_records(self, msgs: Sequence[Message], batch: dict[int, _Columns], now: float) -> None:
        """Validate and collect records one by one (errors, duplicates, bad records, new symbols)."""
        loads = orjson.loads
        owned = self._owned
        codes = self._symbol_codes
        keys = _TICK_KEYS
        cur_p = -1
        o: _Owned | None = None
        cols: _Columns | None = None
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consume error: %s", err)
                continue
            p = m.partition()
            if p != cur_p:
                cur_p = p
                o = owned.get(p)
                cols = batch.get(p)
            if o is None or o.finished:  # a partition revoked meanwhile, or paused at its end
                continue
            off = m.offset()
            if off < o.next_offset:  # already applied (duplicate delivery after a seek)
                continue
            o.next_offset = off + 1
            if cols is None:
                cols = batch[p] = _Columns()
                o.dirty = True
                o.last_seen = now
                o.idle_closed = False
            raw = m.value()
            try:
                if raw is None or len(raw) > MAX_RECORD_BYTES:
                    raise ValidationError("record", "empty or oversized record")
                d = loads(raw)
                sym = d["symbol"]
                ts = d["ts"]
                price = d["price"]
                size = d.get("size")
                src = d.get("source")
                tid = d.get("trade_id")
                code = codes.get(sym)
                if not (
                    type(d.get("v")) is int
                    and d["v"] == 1
                    and type(ts) is int
                    and MIN_TS_MS <= ts < MAX_TS_MS
                    and type(price) is float
                    and 0.0 < price < MAX_PRICE
                    and (size is None or (type(size) is float and 0.0 <= size < MAX_SIZE))
                    and (src is None or (type(src) is str and len(src) <= 64))
                    and (tid is None or (type(tid) is str and len(tid) <= 64))
                    and code is not None
                    and d.keys() <= keys
                ):
                    t = tick_from_dict(d)  # slow path: full validation, names the field
                    sym, ts, price, size = t.symbol, t.ts_ms, t.price, t.size
                    code = _learn_symbol(sym, codes, self._symbol_names)
                if ts > self._ts_limit:
                    raise ValidationError("ts", self._ahead_reason(ts))
            except Exception as exc:  # any bad record goes to the DLQ
                if isinstance(exc, KeyError | TypeError | AttributeError):
                    exc = _precise_error(d, exc)  # the fast path choked: name the field
                self._dead_letter(m, exc)
                continue
            cols.codes.append(code)
            cols.ts.append(ts)
            cols.price.append(price)
            cols.size.append(size)
            cols.offsets.append(off)
            cols.records.append(d)

    def _ahead_reason(self, ts: int) -> str:
        ahead = _days_hours(ts - self._ts_limit + self.settings.max_clock_skew_ms)
        return (
            f"{ts} ({iso_utc(ts)}) is {ahead} ahead of the wall clock, more than "
            f"CRYPTOLAB_MAX_CLOCK_SKEW={interval_name(self.settings.max_clock_skew_ms)} (a clock or unit "
            "error upstream; 0s lifts the bound, for data stamped ahead of the clock on purpose)"
        )

    def _dead_letter(self, m: Message, exc: Exception) -> None:
        if isinstance(exc, ValidationError):
            reason, fld = exc.reason, exc.field
        elif isinstance(exc, orjson.JSONDecodeError):
            reason, fld = f"not valid JSON: {exc}", "record"
        elif isinstance(exc, KeyError):
            reason, fld = "missing", str(exc.args[0]) if exc.args else "record"
        elif isinstance(exc, TypeError | AttributeError):
            reason, fld = "must be a JSON object with symbol, ts and price", "record"
        else:
            reason, fld = f"{type(exc).__name__}: {exc}", "record"
        self.stats.dead_letters += 1
        assert self._producer is not None
        headers = dlq_headers(reason, fld, stage="consume", origin=(m.topic() or "", m.partition(), m.offset()))
        self._producer.produce(self.topic + DLQ_SUFFIX, value=m.value(), key=m.key(), headers=headers)
        self._dlq_pending = True
        log.debug("dead letter at %s/%s@%s: %s %s", m.topic(), m.partition(), m.offset(), fld, reason)

    def _commit(self) -> None:
        """Hand the results and progress folded since the last commit to the commit thread.

        The previous commit is waited for first: the offsets it stores are this one's
        fencing tokens, and a fenced commit resyncs the partitions before anything more
        is committed.
        """
        if not any(o.dirty for o in self._owned.values()) and not self.aggregator_has_output():
            return
        self._reap()
        dirty = {p: o for p, o in self._owned.items() if o.dirty}
        if not dirty and not self.aggregator_has_output():
            return  # the last commit was fenced: its partitions were resynced
        em = self.aggregator.drain()
        alerts: list[Alert] = []
        if self.scorer is not None and em.first_finals:
            now_ms = int(time.time() * 1000)
            alerts = list(self.scorer.score(em.first_finals, now_ms=now_ms))
        if self._dlq_pending and self._producer is not None:
            self._flush_dead_letters()
        from cryptolab.store import PartitionProgress

        job = _Commit(
            finals=em.finals, updates=em.updates, alerts=alerts, late=self._late_pending,
            progress={
                p: PartitionProgress(
                    partition=p,
                    offset=o.next_offset,
                    watermark_ms=self.aggregator.watermark(p),
                    state=state_to_bytes(self.aggregator.snapshot(p)),
                )
                for p, o in dirty.items()
            },
            expected={p: o.expected for p, o in dirty.items()},
        )
        self._late_pending = []
        for o in dirty.values():
            o.dirty = False
        if self._committer is None:  # not running (a direct call): commit on this thread
            self._write(job)
            self._finalize(job)
        else:
            self._inflight = (job, self._committer.submit(self._write, job))

    def _write(self, job: _Commit) -> None:
        """Commit ``job`` to the store, then send its alerts and publish it to the cache
        (on the commit thread)."""
        retries = self.stats.store_retries
        try:
            job.inserted = self._retry_store(
                lambda: self.store.commit_batch(
                    group=self.group, topic=self.topic, candles=job.finals, alerts=job.alerts,
                    late_ticks=job.late, progress=job.progress, expected_offsets=job.expected,
                )
            )
        except FencedError as exc:
            if self.stats.store_retries == retries or not self._landed(job.progress):
                job.fenced = exc
                return
            # The connection was lost at COMMIT and the commit had gone through: the retry met
            # our own offsets at the fence. Which alerts were new is unknown: all go out (the
            # cache's payloads are idempotent).
            log.warning("a commit whose outcome was unknown had succeeded (%s)", exc)
            job.inserted = job.alerts
        if job.inserted and self._producer is not None:
            for a in job.inserted:
                self._producer.produce("alerts", key=a.symbol.encode(), value=encode_alert(a))
            self._producer.poll(0)
        self._flush_cache_backlog()  # when the cache was down: is it back?
        self._publish(job.finals + job.updates, job.inserted)  # closed candles first: they are awaited

    def _reap(self) -> None:
        """Wait for the commit in flight, if any, and account for it (on the consumer's thread)."""
        if self._inflight is None:
            return
        job, done = self._inflight
        self._inflight = None
        done.result()  # re-raises what the commit thread could not handle
        self._finalize(job)

    def _finalize(self, job: _Commit) -> None:
        if job.fenced is not None:
            self._fenced(job.fenced)
            return
        for p, pr in job.progress.items():
            o = self._owned.get(p)
            if o is not None:
                o.expected = pr.offset
        self.stats.commits += 1
        self.stats.candles_final += len(job.finals)
        self.stats.candle_updates += len(job.updates)
        self.stats.alerts += len(job.inserted)
        if self._consumer is not None and job.progress:
            offs = [TopicPartition(self.topic, p, pr.offset) for p, pr in job.progress.items()]
            try:
                self._consumer.commit(offsets=offs, asynchronous=True)
            except Exception:  # courtesy commit only
                log.debug("kafka offset commit failed", exc_info=True)
        if self.on_commit is not None:
            self.on_commit(job.updates + job.finals, job.inserted)

    def _fenced(self, exc: FencedError) -> None:
        self.stats.fenced += 1
        log.warning("fenced (%s): another member owns these partitions now; resyncing", exc)
        self._late_pending = []
        self._forget_scored()  # this batch was scored but never committed
        # Everything not committed is folded again from the stored offsets: the fenced batch,
        # and what was folded while it was being written.
        self.aggregator.discard_pending()
        self._resync(list(self._owned))

    def _landed(self, progress: dict[int, Any]) -> bool:
        """Whether the store holds exactly this progress (offsets and window state) already."""
        stored = self._retry_store(lambda: self.store.load_progress(self.group, self.topic, list(progress)))
        return all(
            p in stored and stored[p].offset == pr.offset and bytes(stored[p].state) == bytes(pr.state)
            for p, pr in progress.items()
        )

    def _flush_dead_letters(self) -> None:
        """Wait until every dead letter is durable: their offsets are committed next.

        While Kafka is unreachable this waits (the consumer is stalled anyway) rather
        than give up on the batch or drop the dead letters; on :meth:`stop` the batch
        is abandoned uncommitted, so a restart dead-letters its records again.
        """
        assert self._producer is not None
        waited = 0
        while (remaining := self._producer.flush(5)) > 0:
            waited += 5
            if self._stop.is_set():
                raise KafkaServiceError(
                    f"stopping with {remaining} dead-letter records not delivered: batch not committed"
                )
            log.warning("Kafka unavailable: %d dead-letter records not delivered after %ds; waiting",
                        remaining, waited)
        self._dlq_pending = False

    def aggregator_has_output(self) -> bool:
        """Whether the aggregator holds output not yet committed/published."""
        agg = self.aggregator
        return bool(agg._dirty or agg._first_finals or agg._gaps)

    def _resync(self, partitions: list[int]) -> None:
        """After being fenced: reload progress and seek back to what the store says."""
        progress = self._retry_store(lambda: self.store.load_progress(self.group, self.topic, partitions))
        paused: list[TopicPartition] = []
        for p in partitions:
            pr = progress.get(p)
            o = self._owned.get(p)
            if o is None:
                continue
            if pr is None:
                self.aggregator.forget(p)
                o.expected, o.next_offset = None, 0
                off = OFFSET_BEGINNING
            else:
                self.aggregator.restore(p, state_from_bytes(pr.state))
                o.expected, o.next_offset = pr.offset, pr.offset
                off = pr.offset
            o.dirty = False
            if o.finished:  # closed at its end by a commit that did not land: drained again
                o.finished = False
                paused.append(TopicPartition(self.topic, p))
            if self._consumer is not None:
                try:
                    self._consumer.seek(TopicPartition(self.topic, p, off))
                except Exception:  # partition may be gone after a rebalance
                    log.debug("seek failed for partition %s", p, exc_info=True)
        if paused and self._consumer is not None:
            try:
                self._consumer.resume(paused)
            except Exception:  # partition may be gone after a rebalance
                log.debug("resume failed for partitions %s", paused, exc_info=True)

    # ----------------------------------------------------------------- cache
    def _publish(self, candles: list[Candle], alerts: list[Alert]) -> None:
        if not candles and not alerts:
            return
        if self._cache_backlog or self._alert_backlog:
            self._backlog(candles, alerts)
            return
        try:
            if candles:
                self.cache.publish(candles)
            if alerts:
                self.cache.publish_alerts(alerts)
        except CacheError as exc:
            self.stats.cache_failures += 1
            log.warning("cache unavailable (%s); keeping updates until it returns", exc)
            self._backlog(candles, alerts)
            self._cache_retry_at = time.monotonic() + 1.0

    def _backlog(self, candles: list[Candle], alerts: list[Alert]) -> None:
        for c in candles:
            self._cache_backlog[c.key] = c
        self._alert_backlog.extend(alerts)
        if len(self._cache_backlog) > _MAX_CACHE_BACKLOG:
            # keep the newest windows; older ones are in the store anyway
            keep = sorted(self._cache_backlog.values(), key=lambda c: c.window_start)[-_MAX_CACHE_BACKLOG:]
            self._cache_backlog = {c.key: c for c in keep}
        del self._alert_backlog[:-_MAX_CACHE_BACKLOG]

    def _flush_cache_backlog(self, *, force: bool = False) -> None:
        if not (self._cache_backlog or self._alert_backlog):
            return
        if not force and time.monotonic() < self._cache_retry_at:
            return
        candles = sorted(self._cache_backlog.values(), key=lambda c: (c.window_start, c.revision))
        try:
            if candles:
                self.cache.publish(candles)
            if self._alert_backlog:
                self.cache.publish_alerts(self._alert_backlog)
        except CacheError:
            self.stats.cache_failures += 1
            self._cache_retry_at = time.monotonic() + 2.0
            return
        log.info("cache is back: replayed %d candles and %d alerts", len(candles), len(self._alert_backlog))
        self._cache_backlog = {}
        self._alert_backlog = []
