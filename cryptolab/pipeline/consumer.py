"""CandlePipeline: the consumer's loop and its rebalance callbacks.

One pipeline is one member of a Kafka consumer group. Each batch is polled, decoded
(:mod:`~cryptolab.pipeline.decode`; records that are not ticks go to
:mod:`~cryptolab.pipeline.dead_letters`), folded into the windows of its partition, then
handed with the partitions' progress to the :mod:`~cryptolab.pipeline.committer`, which
publishes what landed through the :mod:`~cryptolab.pipeline.relay`. On assignment (and
after being fenced) a member loads the stored progress, restores its windows and seeks to
the stored offset. ``run(stop_at_end=True)`` ends when :mod:`~cryptolab.pipeline.end` says
the whole topic is done.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from confluent_kafka import Consumer, Message, Producer, TopicPartition

from cryptolab.candles.stream import CandleAggregator
from cryptolab.config import Settings
from cryptolab.errors import FencedError
from cryptolab.kafka import DLQ_SUFFIX, consumer_config, end_offsets, ensure_topics, producer_config
from cryptolab.models import Alert, Candle
from cryptolab.pipeline.committer import CommitJob, Committer
from cryptolab.pipeline.dead_letters import DeadLetters
from cryptolab.pipeline.decode import Columns, Decoder
from cryptolab.pipeline.end import EndOfTopic
from cryptolab.pipeline.partitions import Partitions
from cryptolab.pipeline.relay import Relay
from cryptolab.pipeline.retries import StoreRetry
from cryptolab.pipeline.rules import RuleEngine
from cryptolab.pipeline.stats import CommitTimes, PipelineStats
from cryptolab.pipeline.webhooks import WebhookSender

if TYPE_CHECKING:  # pragma: no cover
    from cryptolab.cache import Cache
    from cryptolab.store import Store

__all__ = ["CandlePipeline"]

#: The package's one logger: its lines keep the name they always had.
log = logging.getLogger("cryptolab.pipeline")

#: Batches handed to one commit, at most, when they were folded while the previous commit was
#: written: the consumer folds one more batch instead of waiting, then commits both in one
#: transaction. The bound limits what a fenced commit makes fold again and the memory held
#: (each deferred batch keeps its output until the commit: 4 cost ~20 MiB more peak RSS than 2
#: in the memory benchmark, for no measurable throughput).
_MAX_DEFERRED = 2


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
    rules
        ``True``: evaluate the store's user alert rules and send their webhooks
        (:mod:`~cryptolab.pipeline.rules`, :mod:`~cryptolab.pipeline.webhooks`); ``False``: not.
    group, topic
        Override the consumer group and tick topic.
    batch_size, batch_timeout
        Messages per ``consume()`` call and how long it may wait (seconds).
    consumer_overrides
        Extra librdkafka consumer options.
    on_commit
        Callback ``f(emission_candles, alerts)`` after each successful commit
        (used by live views and tests), called on the thread that runs :meth:`run`.
    on_batch
        Callback ``f(n)`` with the number of messages of each batch consumed, before the
        batch is decoded and folded, on the thread that runs :meth:`run` (a benchmark
        starts its clock at the first one). It must be quick: it delays the batch.

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
        rules: bool = True,
        group: str | None = None,
        topic: str | None = None,
        batch_size: int = 20_000,
        batch_timeout: float = 0.2,
        consumer_overrides: dict[str, Any] | None = None,
        on_commit: Callable[[list[Candle], list[Alert]], None] | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        s = self.settings
        self.store = store = store if store is not None else _open_store(s)
        self.cache = cache = cache if cache is not None else _open_cache(s)
        self.group = group or s.group
        self.topic = topic or s.topic
        self.batch_size = batch_size
        self.batch_timeout = batch_timeout
        self.on_commit = on_commit
        self.on_batch = on_batch
        self.aggregator = CandleAggregator(intervals=s.intervals, out_of_orderness_ms=s.out_of_orderness_ms,
                                           allowed_lateness_ms=s.allowed_lateness_ms, gap_fill=s.gap_fill)
        if scorer is True:
            from cryptolab.anomaly import AnomalyScorer, default_detectors

            scorer = AnomalyScorer(detectors=default_detectors(seed=0), history=self._stored_finals)
        self.scorer = scorer or None
        self.rules, self._webhooks = _rule_engine(store, s, self._last_finals) if rules else (None, None)
        self.stats = PipelineStats()
        self._consumer_overrides = consumer_overrides or {}
        self._partitions = Partitions(self.topic, self.aggregator)
        self._stop = threading.Event()
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._late_pending: list[Any] = []
        self._retry = StoreRetry(self.stats, self._stop)
        self._dead_letters = DeadLetters(self.topic, self.stats, self._stop)
        self._decoder = Decoder(self._partitions.owned, s.max_clock_skew_ms, self._dead_letters.send)
        self._relay = Relay(cache, self.stats)
        # Commits run on their own thread, one at a time: batch N+1 is folded while batch N
        # is written (the store's and the cache's round trips overlap the consumer's work).
        self._committer = Committer(store, group=self.group, topic=self.topic, retry=self._retry,
                                    stats=self.stats, deliver=self._relay.deliver)
        #: stop_at_end: the partitions not done yet that other members hold (for progress lines)
        self.waiting_for: list[int] = []
        self._assigned = False  # between an assignment and the next revocation (not while joining)
        self._deferred = 0  # batches folded since the last commit was handed over

    # ---------------------------------------------------------------- control
    def stop(self) -> None:
        """Ask :meth:`run` to finish its current batch and return (thread-safe)."""
        self._stop.set()

    @property
    def assignment(self) -> list[int]:
        """Partitions this member owns now."""
        return sorted(self._partitions.owned)

    @property
    def commit_times(self) -> CommitTimes:
        """How long the commits that landed took, and when the last one did."""
        return self._committer.times

    def lag(self) -> dict[int, tuple[int | None, int | None]]:
        """Per owned partition: messages behind the end of its log, and its event-time watermark.

        The end is the high watermark the consumer last fetched (no broker round trip;
        ``None`` until known), the watermark is epoch ms (``None`` before any tick). Safe
        to call from any thread (a metrics scrape): what it reads may be a batch old.
        """
        return self._partitions.lag(self._consumer)

    # ------------------------------------------------------------- rebalance
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._reap()
        self.stats.rebalances += 1
        self._forget_scored()
        ids = [tp.partition for tp in partitions]
        progress = self._retry(lambda: self.store.load_progress(self.group, self.topic, ids))
        self._partitions.take(partitions, progress)
        log.info("assigned partitions %s of %s", ids, self.topic)
        self._assigned = True
        consumer.assign(partitions)
        if partitions:  # a partition paused at its end (stop_at_end) before a rebalance is read again
            consumer.resume(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._reap()  # the last commit lands before another member reads the progress
        self._partitions.release([tp.partition for tp in partitions])
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
        if self.rules is not None:
            self.rules.forget()

    def _stored_finals(self, symbol: str, interval: str, before_ms: int) -> list[Candle]:
        """The scorer's warm-up history, read with the commit's retries (a database restart
        must not kill the consumer when a stream first shows up)."""
        return self._retry(lambda: self.store.final_candles_since(symbol, interval, before_ms))

    def _last_finals(self, symbol: str, interval: str, before_ms: int, limit: int) -> list[Candle]:
        """The rules' look-back: the stream's last ``limit`` stored final candles before a window."""
        return self._retry(lambda: self.store.final_candles_since(symbol, interval, before_ms, limit))

    def _resync(self, partitions: list[int]) -> None:
        """After being fenced: reload progress and seek back to what the store says."""
        progress = self._retry(lambda: self.store.load_progress(self.group, self.topic, partitions))
        self._partitions.resync(partitions, progress, self._consumer)

    # ------------------------------------------------------------------- main
    def run(self, *, timeout: float | None = None, count: int | None = None, stop_at_end: bool = False,
            idle_exit: float | None = None) -> PipelineStats:
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
                got = self._consume_batch(consumer)
                if got:
                    last_msg = time.monotonic()
                if end is not None:
                    self._finish_drained(end)
                self._idle_close()
                self._commit(defer=got)  # nothing came: no batch to fold while waiting
                if self._committer.inflight is None:
                    self._relay.flush()
                if idle_exit is not None and time.monotonic() - last_msg >= idle_exit:
                    why = f"returned after idle_exit={idle_exit:g}s without a message"
                    break
            self._commit(defer=False)  # what was folded while the last commit was written
            self._reap()
            if end is not None:
                if not end.reached and not end.gave_up:  # a limit or a stop: done all the same?
                    self._check_end(end, force=True)
                if end.reached:
                    self._relay.flush(force=True)
        finally:
            if self._committer.inflight is not None:  # leaving on an error: still let the last commit land
                try:
                    self._reap()
                except Exception:
                    log.warning("the last commit failed while stopping on an error", exc_info=True)
            self.stats.elapsed_s += time.monotonic() - started
            self._relay.say_undelivered()
            self._close_clients()
        if end is not None and not end.reached:
            if end.gave_up:
                why = (f"held by other members, without progress for {end.wait_s:g}s "
                       "(CRYPTOLAB_END_WAIT, consume --end-wait)")
            raise end.error(self.topic, self.group, why)
        return self.stats

    def _start(self, stop_at_end: bool) -> tuple[Consumer, EndOfTopic | None]:
        """Create the clients and subscribe; read the end offsets first when ``stop_at_end``."""
        s = self.settings
        if not s.embedded_kafka:
            ensure_topics(s)
        else:
            ensure_topics(s, {self.topic: s.partitions, self.topic + DLQ_SUFFIX: 1, "alerts": 1})
        conf = consumer_config(s, self.group, **self._consumer_overrides)
        consumer = Consumer(conf)
        self._consumer = consumer
        # records never time out: dead letters wait for a broker that is away (see DeadLetters.flush)
        self._producer = Producer(producer_config(s, **{"linger.ms": 5, "message.timeout.ms": 0}))
        self._dead_letters.producer = self._relay.producer = self._producer
        end = None
        if stop_at_end:
            end = EndOfTopic(end_offsets(consumer, self.topic), s.end_wait_ms / 1000)
        self.waiting_for = []
        self._assigned = False
        self._committer.start()
        if self._webhooks is not None:
            self._webhooks.start()
        consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        return consumer, end

    def _close_clients(self) -> None:
        self._committer.shutdown()
        if self._webhooks is not None:
            self._webhooks.close()
        if self._producer is not None:
            self._producer.flush(10)
            self._producer = self._dead_letters.producer = self._relay.producer = None
        if self._consumer is not None:
            try:
                self._consumer.close()
            except Exception:  # pragma: no cover - close after a broker loss
                log.debug("consumer close failed", exc_info=True)
            self._consumer = None
            self._partitions.owned.clear()

    def _finish_drained(self, end: EndOfTopic) -> None:
        """Close the windows of each owned partition consumed to its end offset (once), and stop
        fetching it: the member stays in the group, to take over partitions freed later, without
        reading past the end. The next commit stores the closed windows."""
        done = self._partitions.finish_drained(end.drained)
        if not done:
            return
        log.info("partitions %s drained to their end offsets: windows closed", done)
        if self._consumer is not None:
            self._consumer.pause([TopicPartition(self.topic, p) for p in done])

    def _check_end(self, end: EndOfTopic, *, force: bool = False) -> None:
        """Let ``end`` judge the group's stored progress when due (:meth:`EndOfTopic.check`); once
        this member has nothing of its own left, its last commit lands first."""
        mine = self._partitions.unfinished()
        if not mine and self._committer.inflight is not None:
            self._reap()  # nothing else to do: let the closing commit land, then look
            mine = self._partitions.unfinished()  # a fence resyncs
        others = end.check(
            lambda: self._retry(lambda: self.store.load_progress(self.group, self.topic)),
            owned=self._partitions.owned, idle=not mine, assigned=self._assigned, commits=self.stats.commits,
            force=force,
        )
        if others is not None:
            self.waiting_for = others

    def _idle_close(self) -> None:
        timeout_s = self.settings.idle_timeout_ms / 1000
        if timeout_s <= 0:
            return
        self.stats.idle_closes += self._partitions.idle_close(timeout_s, time.monotonic())

    # ------------------------------------------------------------- per batch
    def _poll(self, consumer: Consumer) -> list[Message]:
        """The next batch: what is already fetched, without waiting; when nothing is, wait
        up to ``batch_timeout`` for the first message and take whatever came with it.

        (``consume(n, timeout)`` alone waits the whole timeout unless ``n`` messages
        arrive, which would hold a live feed's candles back by ``batch_timeout``.) Nor does it
        wait while a batch folded during the last commit is still to be committed.
        """
        msgs: list[Message] = consumer.consume(self.batch_size, 0)
        if msgs or self.batch_timeout <= 0:
            return msgs
        self._reap()  # nothing to fold meanwhile: finish the last commit before waiting
        if self._uncommitted():
            return msgs  # folded while that commit was written: commit it first, without waiting
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
                if self.on_batch is not None:
                    self.on_batch(len(msgs))
                self._process(msgs)
            del msgs
            return got
        finally:
            if paused:
                gc.enable()

    def _process(self, msgs: list[Message]) -> None:
        """Decode a batch and fold its ticks into the windows; keep those too late to fold."""
        batch = self._decoder.read(msgs, time.monotonic())
        n = 0
        names = self._decoder.symbol_names
        fold = self.aggregator.add_columns
        late: list[tuple[int, Columns, list[int]]] = []
        for p, c in batch.items():
            if not c.ts:
                continue
            n += len(c.ts)
            too_late = fold(c.codes, names, c.ts, c.price, np.array(c.size, dtype=np.float64), p)
            if too_late.any():
                late.append((p, c, np.flatnonzero(too_late).tolist()))
        self.stats.ticks += n
        self.stats.batches += 1
        self._deferred += 1
        if late:
            wm = self.aggregator.watermark
            ticks = [t for p, c, rows in late for t in c.late_ticks(self.topic, p, rows, names, wm(p) or 0)]
            self._late_pending.extend(ticks)
            self.stats.late_ticks += len(ticks)

    # ------------------------------------------------------------------ commit
    def _uncommitted(self) -> bool:
        """Whether progress or output was folded since the last commit was handed over."""
        return any(o.dirty for o in self._partitions.owned.values()) or self.aggregator_has_output()

    def _commit(self, *, defer: bool = True) -> None:
        """Hand the results and progress folded since the last commit to the commit thread.

        The previous commit is waited for first: the offsets it stores are this one's
        fencing tokens, and a fenced commit resyncs the partitions before anything more
        is committed. While it is still being written, up to :data:`_MAX_DEFERRED` batches
        are folded meanwhile and then committed together (one transaction, as one batch
        would be), rather than waiting for the store with nothing to do; ``defer=False`` (no
        batch came this time round, or the run ends) commits them now.
        """
        if not self._uncommitted():
            return
        inflight = self._committer.inflight
        if defer and inflight is not None and not inflight[1].done() and self._deferred < _MAX_DEFERRED:
            return  # the next poll folds another batch, or (none there) waits for this commit
        self._reap()
        if not self._uncommitted():
            return  # the last commit was fenced: its partitions were resynced
        self._deferred = 0
        em = self.aggregator.drain()
        alerts, deliveries = _alerts_of(self.scorer, self.rules, em.first_finals)
        if self._dead_letters.pending and self._dead_letters.producer is not None:
            self._dead_letters.flush()
        progress, expected = self._partitions.checkpoint()
        job = CommitJob(finals=em.finals, updates=em.updates, alerts=alerts, late=self._late_pending,
                        progress=progress, expected=expected, deliveries=deliveries)
        self._late_pending = []
        if self._committer.running:
            self._committer.submit(job)
        else:  # not running (a direct call): commit on this thread
            self._committer.write(job)
            self._finalize(job)

    def _reap(self) -> None:
        """Wait for the commit in flight, if any, and account for it (on the consumer's thread)."""
        job = self._committer.reap()
        if job is not None:
            self._finalize(job)

    def _finalize(self, job: CommitJob) -> None:
        if job.fenced is not None:
            self._fenced(job.fenced)
            return
        self._partitions.stored(job.progress)
        self.stats.commits += 1
        self.stats.candles_final += len(job.finals)
        self.stats.candle_updates += len(job.updates)
        self.stats.alerts += len(job.inserted)
        if job.deliveries and self._webhooks is not None:
            self._webhooks.nudge()
        if self._consumer is not None and job.progress:
            _courtesy_commit(self._consumer, self.topic, job.progress)
        if self.on_commit is not None:
            self.on_commit([*job.updates, *job.finals], job.inserted)

    def _fenced(self, exc: FencedError) -> None:
        self.stats.fenced += 1
        log.warning("fenced (%s): another member owns these partitions now; resyncing", exc)
        self._late_pending = []
        self._forget_scored()  # this batch was scored but never committed
        # Everything not committed is folded again from the stored offsets: the fenced batch,
        # and what was folded while it was being written.
        self.aggregator.discard_pending()
        self._resync(list(self._partitions.owned))

    def aggregator_has_output(self) -> bool:
        """Whether the aggregator holds output not yet committed/published."""
        return self.aggregator.has_output()


def _alerts_of(scorer: Any, rules: RuleEngine | None, first_finals: Sequence[Candle]) -> tuple[list[Alert], list[Any]]:
    """The detectors' and the rules' alerts on a commit's first finals, and the rules' webhook deliveries."""
    if not first_finals:
        return [], []
    alerts: list[Alert] = []
    if scorer is not None:
        alerts = list(scorer.score(first_finals, now_ms=int(time.time() * 1000)))
    fired = rules.score(first_finals) if rules is not None else []
    return alerts + fired, (rules.deliveries(fired) if fired and rules is not None else [])


def _courtesy_commit(consumer: Consumer, topic: str, progress: Any) -> None:
    """Commit the stored offsets to Kafka too (monitoring tools read them; the store's are the truth)."""
    offs = [TopicPartition(topic, p, pr.offset) for p, pr in progress.items()]
    try:
        consumer.commit(offsets=offs, asynchronous=True)
    except Exception:  # courtesy commit only
        log.debug("kafka offset commit failed", exc_info=True)


def _open_store(settings: Settings) -> Store:
    from cryptolab.store import Store

    store = Store.from_settings(settings)
    store.init()
    return store


def _open_cache(settings: Settings) -> Cache:
    from cryptolab.cache import open_cache

    return open_cache(settings)


def _rule_engine(store: Any, settings: Settings, history: Any) -> tuple[RuleEngine | None, WebhookSender | None]:
    """The user alert rules of ``store`` and the sender of their webhooks (none for a store without)."""
    if not (hasattr(store, "rules") and hasattr(store, "webhooks")):
        return None, None
    return RuleEngine(store.rules, settings, history=history), WebhookSender(store.webhooks, settings)
