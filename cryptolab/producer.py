"""Publish ticks to Kafka: :class:`TickProducer` (and :class:`JsonlSink`, its file twin).

Every tick goes to the tick topic (``settings.topic``, default ``ticks``) as
wire JSON (:func:`cryptolab.models.encode_tick`), keyed by symbol (so one
symbol's ticks stay ordered in one partition), with the Kafka message timestamp
set to the tick's event time. The producer is idempotent (``acks=all``,
``enable.idempotence``): a broker-side retry never writes a duplicate.

Validation happens at the edge. A tick with a non-finite, zero or negative
price, a missing field or a malformed symbol -- or any raw record a source could
not parse -- is *rejected*: its raw bytes go to the dead-letter topic
``<topic>.dlq`` with ``reason``, ``field`` and ``stage=produce`` headers, it is
counted in :attr:`ProducerStats.rejected`, and the producer goes on.

Delivery is counted, not assumed: failures arrive through one error-only
delivery callback (``delivery.report.only.error``), so ``delivered`` is
``produced - failed - in flight``, exact once :meth:`TickProducer.flush`
returned with nothing in flight.

Examples
--------
Writing JSON lines (the wire format) instead of Kafka:

>>> import io
>>> from cryptolab.models import Tick
>>> buf = io.BytesIO()
>>> sink = JsonlSink(buf)
>>> sink.send(Tick(symbol="BTC-USD", ts_ms=1_700_000_000_000, price=37000.5, size=0.1))
True
>>> sink.send({"symbol": "BTC-USD", "ts_ms": 1_700_000_000_000, "price": -1})
False
>>> sink.stats.produced, sink.stats.rejected, dict(sink.stats.rejected_by_field)
(1, 1, {'price': 1})
>>> sink.flush()
0
>>> buf.getvalue()
b'{"v":1,"symbol":"BTC-USD","ts":1700000000000,"price":37000.5,"size":0.1}\\n'

To Kafka (the embedded mock cluster here, since no bootstrap is configured):

>>> from cryptolab.config import Settings
>>> from cryptolab.sources.synthetic import SyntheticMarket
>>> market = SyntheticMarket(symbols=2, seed=1, duration_ms=60_000)
>>> with TickProducer(Settings.from_env({}), topic="doctest-ticks") as producer:
...     n = producer.send_many(market)
>>> (n == len(market.to_frame()), producer.stats.delivered == n, producer.stats.failed)
(True, True, 0)
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Protocol, Self, runtime_checkable

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from cryptolab.config import Settings
from cryptolab.errors import KafkaServiceError, ValidationError
from cryptolab.kafka import DLQ_SUFFIX, dlq_headers, ensure_topics, producer_config
from cryptolab.models import Tick, encode_tick, validate_tick
from cryptolab.sources import Rejected, WireBatch

__all__ = [
    "JsonlSink",
    "ProducerStats",
    "TickProducer",
    "TickSink",
    "coerce_tick",
    "raw_bytes",
    "take_wire",
]

log = logging.getLogger(__name__)

#: Poll the client for delivery reports every this many messages.
POLL_EVERY: Final = 1024
#: librdkafka's RD_KAFKA_PARTITION_UA: let the partitioner choose (by key).
_ANY_PARTITION: Final = -1
_TICK_FIELDS: Final = ("symbol", "ts_ms", "price", "size", "source", "trade_id")


@dataclass
class ProducerStats:
    """Counters of a producer or sink (live; read them any time).

    Attributes
    ----------
    produced
        Ticks handed to Kafka (or written, for :class:`JsonlSink`).
    delivered
        Ticks the broker acknowledged (``produced - failed - in_flight``).
    failed
        Ticks whose delivery failed for good (after librdkafka's retries).
    rejected
        Records rejected by validation (sent to the dead-letter topic).
    dlq_failed
        Dead-letter records whose own delivery failed.
    retries
        Messages librdkafka transmitted again after a failed or unanswered request
        (from its statistics, refreshed every second; idempotence keeps them from
        being written twice).
    queue_full
        Times the local queue was full and ``send`` waited for room.
    in_flight
        Messages enqueued and not yet acknowledged.
    rejected_by_field, errors
        Rejections by field; delivery and client errors by name.
    """

    produced: int = 0
    delivered: int = 0
    failed: int = 0
    rejected: int = 0
    dlq_failed: int = 0
    retries: int = 0
    queue_full: int = 0
    in_flight: int = 0
    rejected_by_field: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        """All counters as a plain dict."""
        return {
            "produced": self.produced,
            "delivered": self.delivered,
            "failed": self.failed,
            "rejected": self.rejected,
            "dlq_failed": self.dlq_failed,
            "retries": self.retries,
            "queue_full": self.queue_full,
            "in_flight": self.in_flight,
            "rejected_by_field": dict(self.rejected_by_field),
            "errors": dict(self.errors),
        }


@runtime_checkable
class TickSink(Protocol):
    """What :class:`TickProducer` and :class:`JsonlSink` both offer."""

    stats: ProducerStats

    def send(self, tick: Tick | Mapping[str, Any] | Rejected) -> bool:
        """Send one tick (validated) or route one rejected record; True when sent."""
        ...

    def send_many(self, ticks: Iterable[Any], *, validated: bool | None = None) -> int:
        """Send many ticks (or a source); return how many were sent."""
        ...

    def send_wire(self, batches: Iterable[WireBatch], *, limit: int | None = None) -> int:
        """Send pre-encoded, already valid records; return how many were sent."""
        ...

    def reject(self, raw: bytes | str | Mapping[str, Any] | list[Any], reason: str,
               field: str = "record") -> None:
        """Route a bad record to the dead letters with a reason."""
        ...

    def flush(self, timeout: float = 30.0) -> int:
        """Wait until everything is written; return how many are still in flight."""
        ...

    def close(self, timeout: float = 30.0) -> None:
        """Flush and release the resources."""
        ...


def take_wire(batches: Iterable[WireBatch], limit: int) -> Iterator[WireBatch]:
    """The first ``limit`` records of a stream of wire batches (the last batch is cut).

    Examples
    --------
    >>> from cryptolab.sources import WireBatch
    >>> b = WireBatch([b"K"] * 3, [b"1", b"2", b"3"], [1, 2, 3])
    >>> [len(x.values) for x in take_wire([b, b], 4)]
    [3, 1]
    """
    left = limit
    for batch in batches:
        if left <= 0:
            return
        if len(batch.values) > left:
            batch = WireBatch(batch.keys[:left], batch.values[:left], batch.timestamps[:left])
        left -= len(batch.values)
        yield batch


def raw_bytes(raw: object) -> bytes:
    """The bytes of a raw record, for a dead letter: bytes as is, text as UTF-8, else JSON.

    Examples
    --------
    >>> raw_bytes({"price": float("nan"), "symbol": "X"})
    b'{"price":null,"symbol":"X"}'
    >>> raw_bytes("1,2,3"), raw_bytes(b"\\xff")
    (b'1,2,3', b'\\xff')
    """
    if isinstance(raw, bytes | bytearray | memoryview):
        return bytes(raw)
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogatepass")
    if isinstance(raw, Tick):
        raw = {f: getattr(raw, f) for f in _TICK_FIELDS}
    try:
        return orjson.dumps(raw, default=repr, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        return repr(raw).encode("utf-8", "replace")


def coerce_tick(record: Tick | Mapping[str, Any]) -> Tick:
    """Validate a :class:`Tick`, or build and validate one from a Python mapping.

    Mappings use the attribute names (``ts_ms``; ``ts`` is accepted too).

    Raises
    ------
    ValidationError
        Naming the first offending field.

    Examples
    --------
    >>> coerce_tick({"symbol": "ETH-USD", "ts": 1_700_000_000_000, "price": 2000})
    Tick(symbol='ETH-USD', ts_ms=1700000000000, price=2000.0, size=None, source='', trade_id=None)
    >>> coerce_tick({"symbol": "ETH-USD", "price": 2000})
    Traceback (most recent call last):
    ...
    cryptolab.errors.ValidationError: invalid 'ts_ms': missing
    """
    if isinstance(record, Tick):
        return validate_tick(record)
    if not isinstance(record, Mapping):
        raise ValidationError("record", f"must be a Tick or a mapping, got {type(record).__name__}")
    d = dict(record)
    if "ts_ms" not in d and "ts" in d:
        d["ts_ms"] = d.pop("ts")
    unknown = set(d) - set(_TICK_FIELDS)
    if unknown:
        raise ValidationError(sorted(unknown)[0], "unknown field")
    for key in ("symbol", "ts_ms", "price"):
        if key not in d or d[key] is None:
            raise ValidationError(key, "missing")
    for key in ("price", "size"):
        v = d.get(key)
        if isinstance(v, int) and not isinstance(v, bool):
            d[key] = float(v) if abs(v) < 10**300 else math.inf
    ts = d["ts_ms"]
    if isinstance(ts, float) and math.isfinite(ts) and ts.is_integer():
        d["ts_ms"] = int(ts)
    d.setdefault("source", "")
    tick = Tick(**d)
    return validate_tick(tick)


class _BaseSink:
    """Shared logic of sinks: validation, rejection routing, ``send_many`` plumbing."""

    _stats: ProducerStats

    def _write(self, tick: Tick) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _write_dead(self, raw: bytes, reason: str, field: str, extra: Mapping[str, str]) -> None:
        raise NotImplementedError  # pragma: no cover - abstract

    def send(self, tick: Tick | Mapping[str, Any] | Rejected) -> bool:
        """Validate and send one tick; a bad one goes to the dead letters.

        Returns True when the tick was sent, False when it was rejected.
        """
        if isinstance(tick, Rejected):
            self._on_reject(tick)
            return False
        try:
            good = coerce_tick(tick)
        except ValidationError as exc:
            self.reject(tick if not isinstance(tick, Tick) else raw_bytes(tick), exc.reason, exc.field)
            return False
        except TypeError as exc:
            self.reject(raw_bytes(tick), str(exc), "record")
            return False
        self._write(good)
        return True

    def reject(
        self,
        raw: bytes | str | Mapping[str, Any] | list[Any],
        reason: str,
        field: str = "record",
        **extra: str,
    ) -> None:
        """Send a raw record to the dead letters with ``reason`` and ``field``, and count it.

        Extra keyword arguments become extra headers (``source``, ``where``...).
        """
        self._stats.rejected += 1
        self._stats.rejected_by_field[field] += 1
        log.debug("rejected (%s): %s", field, reason)
        self._write_dead(raw_bytes(raw), reason, field, extra)

    def dead_letter(self, rej: Rejected) -> None:
        """Route a :class:`~cryptolab.sources.Rejected` record (a source's ``on_reject``).

        Its ``source`` and ``where`` become extra dead-letter headers.
        """
        extra = {k: v for k, v in (("source", rej.source), ("where", rej.where)) if v}
        self.reject(rej.raw, rej.reason, rej.field, **extra)

    _on_reject = dead_letter

    def _wire_of(self, ticks: Iterable[Any], validated: bool | None) -> Iterable[WireBatch] | None:
        """The source's pre-encoded batches, when it has them and is trusted."""
        iter_wire: Callable[[], Iterable[WireBatch]] | None = getattr(ticks, "iter_wire", None)
        trusted = getattr(ticks, "validated", False) if validated is None else validated
        if iter_wire is None or not trusted:
            return None
        return iter_wire()

    def _ticks_of(self, ticks: Iterable[Any], validated: bool | None) -> tuple[Iterable[Any], bool]:
        iter_ticks: Callable[..., Iterable[Any]] | None = getattr(ticks, "iter_ticks", None)
        trusted = bool(validated)
        if iter_ticks is not None:
            if validated is None:
                trusted = bool(getattr(ticks, "validated", False))
            return iter_ticks(on_reject=self._on_reject), trusted
        return ticks, trusted

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self, timeout: float = 30.0) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class TickProducer(_BaseSink):
    """Idempotent Kafka producer of ticks, keyed by symbol, timestamped by event time.

    Parameters
    ----------
    settings
        Where Kafka is (``settings.kafka_bootstrap``; unset = the embedded mock
        cluster, which lives only as long as this process) and the defaults for
        ``topic``, ``partitions`` and ``replication``.
    topic
        Tick topic (default ``settings.topic``); dead letters go to ``<topic>.dlq``.
    create_topic
        Create the topic and its ``.dlq`` if missing (``settings.partitions``
        partitions, ``settings.replication`` replicas; the dead-letter topic has 1).
    partitions, replication
        Override the settings' values for topic creation.
    config
        Extra librdkafka options (dotted names), applied last.
    **client_overrides
        More librdkafka options with underscores for dots
        (``linger_ms=5`` is ``linger.ms=5``).

    Raises
    ------
    KafkaServiceError
        When the broker cannot be reached to create the topic, or a fatal
        producer error occurs (e.g. the idempotent producer was fenced).

    Notes
    -----
    ``send`` is asynchronous: call :meth:`flush` (or leave the ``with`` block,
    or :meth:`close`) to wait for the broker. Failures (after librdkafka's own
    retries, up to ``message.timeout.ms``) are counted in
    :attr:`ProducerStats.failed` and logged; they do not raise, so a long
    running producer survives a broker restart.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        topic: str | None = None,
        create_topic: bool = True,
        partitions: int | None = None,
        replication: int | None = None,
        config: Mapping[str, Any] | None = None,
        **client_overrides: Any,
    ) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        self.topic = topic or self.settings.topic
        self.dlq_topic = self.topic + DLQ_SUFFIX
        self._stats = ProducerStats()
        self._fatal: KafkaError | None = None
        self._dlq_sent = 0
        self._txmsgs = 0
        if create_topic:
            ensure_topics(
                self.settings,
                {self.topic: partitions or self.settings.partitions, self.dlq_topic: 1},
                replication=replication or self.settings.replication,
            )
        extra = {k.replace("_", "."): v for k, v in client_overrides.items()}
        extra.update(config or {})
        conf = producer_config(
            self.settings,
            **{
                "delivery.report.only.error": True,
                "on_delivery": self._on_delivery,
                "error_cb": self._on_error,
                "stats_cb": self._on_stats,
                "statistics.interval.ms": 1_000,
                "logger": logging.getLogger("cryptolab.kafka.producer"),
            },
        )
        conf.update(extra)
        try:
            self._producer = Producer(conf)
        except KafkaException as exc:
            raise KafkaServiceError(f"cannot create Kafka producer: {exc}") from None
        self._keys: dict[str, bytes] = {}
        self._since_poll = 0
        self._closed = False
        log.info(
            "producing to %s (dlq %s) at %s", self.topic, self.dlq_topic,
            "embedded mock cluster" if self.settings.embedded_kafka else self.settings.kafka_bootstrap,
        )

    # -- callbacks (run inside poll/flush, on the calling thread) --------------

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:  # only when delivery.report.only.error is overridden
            return
        name = err.name()
        self._stats.errors[name] += 1
        if msg.topic() == self.dlq_topic:
            self._stats.dlq_failed += 1
        else:
            self._stats.failed += 1
        log.error("delivery to %s failed: %s", msg.topic(), err.str())

    def _on_error(self, err: KafkaError) -> None:
        self._stats.errors[err.name()] += 1
        if err.fatal():
            self._fatal = err
            log.error("fatal Kafka producer error: %s", err.str())
        else:
            log.warning("Kafka client error: %s", err.str())

    def _on_stats(self, payload: str) -> None:
        try:
            data = orjson.loads(payload)
            self._txmsgs = int(data.get("txmsgs", 0))
        except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError):
            pass

    # -- sending ----------------------------------------------------------------

    def _key(self, symbol: str) -> bytes:
        key = self._keys.get(symbol)
        if key is None:
            key = self._keys[symbol] = symbol.encode()
        return key

    def _check_fatal(self) -> None:
        if self._fatal is not None:
            raise KafkaServiceError(f"fatal Kafka producer error: {self._fatal.str()}")
        if self._closed:
            raise KafkaServiceError("the producer is closed")

    def _produce(self, value: bytes, key: bytes | None, ts: int, topic: str,
                 headers: list[tuple[str, bytes]] | None = None) -> None:
        while True:
            try:
                if headers is None:
                    self._producer.produce(topic, value, key, timestamp=ts)
                else:
                    self._producer.produce(topic, value, key, timestamp=ts, headers=headers)
                return
            except BufferError:
                self._stats.queue_full += 1
                self._producer.poll(0.05)
                self._check_fatal()
            except KafkaException as exc:
                raise KafkaServiceError(f"produce to {topic} failed: {exc}") from None

    def _write(self, tick: Tick) -> None:
        self._check_fatal()
        self._produce(encode_tick(tick), self._key(tick.symbol), tick.ts_ms, self.topic)
        self._stats.produced += 1
        self._since_poll += 1
        if self._since_poll >= POLL_EVERY:
            self._since_poll = 0
            self._producer.poll(0)

    def _write_dead(self, raw: bytes, reason: str, field: str, extra: Mapping[str, str]) -> None:
        self._check_fatal()
        headers = dlq_headers(reason, field, stage="produce")
        headers += [(k, v.encode("utf-8", "replace")[:256]) for k, v in extra.items()]
        self._produce(raw, None, int(time.time() * 1000), self.dlq_topic, headers)
        self._dlq_sent += 1

    def send_many(self, ticks: Iterable[Any], *, validated: bool | None = None) -> int:
        """Send many ticks (or a :class:`~cryptolab.sources.Source`); return how many were sent.

        Items may be :class:`Tick` objects, mappings or
        :class:`~cryptolab.sources.Rejected` records (routed to the dead-letter
        topic). Given a source, its ``on_reject`` goes to the dead-letter topic.

        Parameters
        ----------
        ticks
            An iterable of ticks, or a source (anything with ``iter_ticks``).
        validated
            Skip re-validating :class:`Tick` items (they are still type-checked).
            Default: the source's ``validated`` attribute, else False.
        """
        self._check_fatal()
        wire = self._wire_of(ticks, validated)
        if wire is not None:
            return self.send_wire(wire)
        items, trusted = self._ticks_of(ticks, validated)
        producer = self._producer
        produce = producer.produce
        topic = self.topic
        keys = self._keys
        encode = encode_tick
        tick_type = Tick
        fast = 0
        slow = 0
        since_poll = self._since_poll
        try:
            for t in items:
                if type(t) is tick_type and trusted:
                    value = encode(t)
                    key = keys.get(t.symbol) or self._key(t.symbol)
                    try:
                        produce(topic, value, key, _ANY_PARTITION, None, None, t.ts_ms)
                    except BufferError:
                        self._produce(value, key, t.ts_ms, topic)
                    fast += 1
                    since_poll += 1
                    if since_poll >= POLL_EVERY:
                        since_poll = 0
                        producer.poll(0)
                        if self._fatal is not None:
                            self._check_fatal()
                elif self.send(t):
                    slow += 1
        finally:
            self._stats.produced += fast
            self._since_poll = since_poll
        return fast + slow

    def send_wire(self, batches: Iterable[WireBatch], *, limit: int | None = None) -> int:
        """Produce pre-encoded, already valid records (the fast path); return how many.

        For sources whose output is valid by construction and encoded in bulk
        (:meth:`SyntheticMarket.iter_wire
        <cryptolab.sources.synthetic.SyntheticMarket.iter_wire>`): nothing is
        validated or re-encoded here, so never feed it untrusted bytes.
        ``limit`` stops after that many records.
        """
        self._check_fatal()
        if limit is not None:
            batches = take_wire(batches, limit)
        producer = self._producer
        produce = producer.produce
        poll = producer.poll
        topic = self.topic
        sent = 0
        try:
            for keys, values, stamps in batches:
                for j in range(0, len(values), POLL_EVERY):
                    end = j + POLL_EVERY
                    for key, value, ts in zip(keys[j:end], values[j:end], stamps[j:end], strict=True):
                        try:
                            # positional: topic, value, key, partition, callback, on_delivery,
                            # timestamp -- a third faster than keywords on this hot path
                            produce(topic, value, key, _ANY_PARTITION, None, None, ts)
                        except BufferError:
                            self._produce(value, key, ts, topic)
                        sent += 1
                    poll(0)
                if self._fatal is not None:
                    self._check_fatal()
        finally:
            self._stats.produced += sent
        return sent

    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery callbacks for up to ``timeout`` seconds; return how many were served."""
        served = int(self._producer.poll(timeout))
        self._refresh()
        return served

    def _refresh(self, in_flight: int | None = None) -> None:
        if in_flight is None:
            if self._closed:
                in_flight = 0
            else:
                # len() also counts unserved client events (statistics), so serve them first.
                self._producer.poll(0)
                in_flight = len(self._producer)
        st = self._stats
        st.in_flight = in_flight
        # Everything in flight is counted as undelivered: exact once nothing is in flight.
        st.delivered = max(0, st.produced - st.failed - in_flight)
        # Messages transmitted more than once (librdkafka statistics, refreshed every second).
        st.retries = max(st.retries, self._txmsgs - st.produced - self._dlq_sent)

    @property
    def stats(self) -> ProducerStats:
        """Live counters (``delivered`` and ``in_flight`` are refreshed on access)."""
        self._refresh()
        return self._stats

    def flush(self, timeout: float = 30.0) -> int:
        """Wait up to ``timeout`` seconds for every message; return how many are still in flight."""
        remaining = int(self._producer.flush(timeout))
        self._refresh(remaining)
        if remaining:
            log.warning("%d messages still in flight after %.1fs", remaining, timeout)
        return remaining

    def close(self, timeout: float = 30.0) -> None:
        """Flush everything in flight (up to ``timeout`` seconds), then close.

        Messages still undelivered after ``timeout`` are purged and counted as
        failed (with the error ``_PURGE_QUEUE`` or ``_PURGE_INFLIGHT``).
        """
        if self._closed:
            return
        remaining = self.flush(timeout)
        if remaining:
            log.error("%d messages were not delivered within %.1fs; purging them", remaining, timeout)
            self._producer.purge(in_queue=True, in_flight=True, blocking=False)
            self._producer.flush(1.0)
        self._closed = True
        self._refresh(0)

    def __len__(self) -> int:
        """Messages in flight."""
        return len(self._producer)

    def __repr__(self) -> str:
        where = "embedded" if self.settings.embedded_kafka else self.settings.kafka_bootstrap
        return f"TickProducer(topic={self.topic!r}, kafka={where!r}, stats={self._stats.as_dict()})"


class JsonlSink(_BaseSink):
    """Write validated ticks as JSON lines (the wire format) instead of to Kafka.

    Parameters
    ----------
    target
        A path (``"-"`` is standard output) or a binary file object.
    dead_letters
        Where rejected records go, as JSON lines ``{"reason", "field", "raw", ...}``.
        Default: ``<path>.dlq.jsonl`` beside a path target (created only when a
        record is rejected); for a file object, rejected records are only
        counted and logged unless a path is given.
    append
        Append to an existing file instead of replacing it.
    """

    def __init__(
        self,
        target: str | Path | IO[bytes],
        *,
        dead_letters: str | Path | None = None,
        append: bool = False,
    ) -> None:
        self._stats = ProducerStats()
        self._own = False
        self.path: Path | None = None
        if isinstance(target, str | Path):
            if str(target) == "-":
                self._fh: IO[bytes] = sys.stdout.buffer
            else:
                self.path = Path(target)
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "ab" if append else "wb")
                self._own = True
        else:
            self._fh = target
        if dead_letters is not None:
            self.dead_letters_path: Path | None = Path(dead_letters)
        elif self.path is not None:
            self.dead_letters_path = self.path.with_name(self.path.name + ".dlq.jsonl")
        else:
            self.dead_letters_path = None
        self._dead: IO[bytes] | None = None
        self._warned_no_dlq = False
        self._append = append
        self._buf: list[bytes] = []
        self._closed = False

    def _write(self, tick: Tick) -> None:
        self._buf.append(encode_tick(tick))
        self._stats.produced += 1
        self._stats.delivered += 1
        if len(self._buf) >= 8192:
            self._drain()

    def _drain(self) -> None:
        if self._buf:
            self._buf.append(b"")
            self._fh.write(b"\n".join(self._buf))
            self._buf.clear()

    def _write_dead(self, raw: bytes, reason: str, field: str, extra: Mapping[str, str]) -> None:
        if self.dead_letters_path is None:
            if not self._warned_no_dlq:
                self._warned_no_dlq = True
                log.warning("rejected records are only counted: no dead-letter file for this stream "
                            "(first: %s: %s)", field, reason)
            return
        if self._dead is None:
            self.dead_letters_path.parent.mkdir(parents=True, exist_ok=True)
            self._dead = open(self.dead_letters_path, "ab" if self._append else "wb")
        rec = {"reason": reason, "field": field, "stage": "produce",
               "raw": raw.decode("utf-8", "backslashreplace"), **extra}
        self._dead.write(orjson.dumps(rec) + b"\n")

    def send_many(self, ticks: Iterable[Any], *, validated: bool | None = None) -> int:
        """Write many ticks (or a source); return how many were written."""
        wire = self._wire_of(ticks, validated)
        if wire is not None:
            return self.send_wire(wire)
        items, trusted = self._ticks_of(ticks, validated)
        fast = 0
        slow = 0
        buf = self._buf
        encode = encode_tick
        tick_type = Tick
        try:
            for t in items:
                if type(t) is tick_type and trusted:
                    buf.append(encode(t))
                    fast += 1
                    if len(buf) >= 8192:
                        self._drain()
                elif self.send(t):
                    slow += 1
        finally:
            self._stats.produced += fast
            self._stats.delivered += fast
        return fast + slow

    @property
    def stats(self) -> ProducerStats:
        """Counters (every written line counts as delivered)."""
        return self._stats

    def send_wire(self, batches: Iterable[WireBatch], *, limit: int | None = None) -> int:
        """Write pre-encoded, already valid records as lines; return how many."""
        if limit is not None:
            batches = take_wire(batches, limit)
        sent = 0
        for batch in batches:
            self._drain()
            if batch.values:
                self._fh.write(b"\n".join(batch.values) + b"\n")
            sent += len(batch.values)
            self._stats.produced += len(batch.values)
            self._stats.delivered += len(batch.values)
        return sent

    def flush(self, timeout: float = 30.0) -> int:
        """Write buffered lines to the file; always returns 0 (nothing stays in flight)."""
        self._drain()
        self._fh.flush()
        if self._dead is not None:
            self._dead.flush()
        return 0

    def close(self, timeout: float = 30.0) -> None:
        """Flush and close the files this sink opened."""
        if self._closed:
            return
        self.flush()
        if self._own:
            self._fh.close()
        if self._dead is not None:
            self._dead.close()
        self._closed = True

    def __repr__(self) -> str:
        where = str(self.path) if self.path is not None else "<stream>"
        return f"JsonlSink({where!r}, stats={self._stats.as_dict()})"

