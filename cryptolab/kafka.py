"""Kafka adapter: client configuration, the embedded mock cluster, topics and dead letters.

The same producer and consumer code runs against a real broker and against
librdkafka's in-process mock cluster (``test.mock.num.brokers``), which is the
embedded default when ``CRYPTOLAB_KAFKA_BOOTSTRAP`` is unset.

Topics
------
``ticks``
    Wire-format ticks (:func:`cryptolab.models.encode_tick`), key = symbol,
    message timestamp = event time.
``ticks.dlq``
    Rejected records: the original bytes, with headers ``reason``, ``field``,
    ``stage`` (``produce`` or ``consume``) and, for consumed records, the
    origin ``topic``/``partition``/``offset``.
``ticks.late``
    Ticks later than the allowed lateness (never silently dropped).
``alerts``
    Anomaly alerts (:func:`cryptolab.models.encode_alert`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, Final

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cryptolab.config import Settings
from cryptolab.errors import KafkaServiceError

__all__ = [
    "DLQ_SUFFIX",
    "LATE_SUFFIX",
    "EmbeddedKafka",
    "admin_config",
    "bootstrap_servers",
    "client_config",
    "consumer_config",
    "dlq_headers",
    "end_offsets",
    "ensure_topics",
    "producer_config",
]

log = logging.getLogger(__name__)

DLQ_SUFFIX: Final = ".dlq"
LATE_SUFFIX: Final = ".late"


class EmbeddedKafka:
    """librdkafka's in-process mock cluster, shared by every client in this process.

    The cluster lives inside a hidden producer instance; other clients connect
    to its loopback listener like to any broker. Topics are auto-created on
    first use with the mock's default partition count (4).

    Examples
    --------
    >>> bootstrap = EmbeddedKafka.bootstrap()
    >>> bootstrap.startswith("127.0.0.1:")
    True
    >>> EmbeddedKafka.bootstrap() == bootstrap   # one cluster per process
    True
    """

    _lock: Final = threading.Lock()
    _holder: Producer | None = None
    _bootstrap: str | None = None

    @classmethod
    def bootstrap(cls) -> str:
        """Start the mock cluster if needed and return its bootstrap servers."""
        with cls._lock:
            if cls._bootstrap is None:
                holder = Producer(
                    {
                        "test.mock.num.brokers": 1,
                        "log_level": 3,
                        "logger": logging.getLogger("cryptolab.kafka.mock"),
                    }
                )
                md = holder.list_topics(timeout=10)
                cls._bootstrap = ",".join(f"{b.host}:{b.port}" for b in md.brokers.values())
                cls._holder = holder
                log.info("embedded Kafka mock cluster at %s", cls._bootstrap)
            return cls._bootstrap

    @classmethod
    def running(cls) -> bool:
        """Whether the mock cluster was started in this process."""
        return cls._bootstrap is not None


def bootstrap_servers(settings: Settings) -> str:
    """The bootstrap servers to use: the configured broker, or the embedded mock cluster."""
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    return EmbeddedKafka.bootstrap()


def client_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """Base librdkafka config: bootstrap + pass-through options (SASL/TLS...) + ``extra``."""
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap_servers(settings)}
    conf.update(settings.kafka_options)
    conf.update(extra)
    return conf


def _tuned(settings: Settings, defaults: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Bootstrap, then cryptolab's defaults, then ``CRYPTOLAB_KAFKA_<OPTION>`` (they win over
    the defaults), then ``extra`` (what the calling code needs wins over everything)."""
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap_servers(settings), **defaults}
    conf.update(settings.kafka_options)
    conf.update(extra)
    return conf


def producer_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """Producer config: idempotent, batched and compressed for throughput.

    ``CRYPTOLAB_KAFKA_<OPTION>`` variables override these defaults; ``extra`` overrides both.

    Examples
    --------
    >>> s = Settings.from_env({"CRYPTOLAB_KAFKA_BOOTSTRAP": "b:9092", "CRYPTOLAB_KAFKA_LINGER_MS": "50"})
    >>> producer_config(s)["linger.ms"], producer_config(s, **{"linger.ms": 5})["linger.ms"]
    ('50', 5)
    """
    return _tuned(
        settings,
        {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "batch.num.messages": 100_000,
            "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "compression.type": "lz4",
            "message.timeout.ms": 120_000,
        },
        extra,
    )


def consumer_config(settings: Settings, group: str | None = None, **extra: Any) -> dict[str, Any]:
    """Consumer config: manual offsets (progress lives in the store), earliest reset.

    ``CRYPTOLAB_KAFKA_<OPTION>`` variables override these defaults; ``extra`` overrides both.
    The group id is always ``group`` (else ``settings.group``): the store keys progress by it.

    Examples
    --------
    >>> s = Settings.from_env({"CRYPTOLAB_KAFKA_BOOTSTRAP": "b:9092",
    ...                        "CRYPTOLAB_KAFKA_SESSION_TIMEOUT_MS": "45000"})
    >>> consumer_config(s, "g")["session.timeout.ms"], consumer_config(s, "g")["group.id"]
    ('45000', 'g')
    """
    return _tuned(
        settings,
        {
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "fetch.min.bytes": 1,
            "fetch.wait.max.ms": 50,
            # The prefetch queue is most of a consumer's memory (librdkafka keeps ~230 bytes
            # per queued tick): ~20,000 ticks per partition and 8 MiB of payload in all are
            # ~40 ms of work at full speed. A full queue is refilled 5 ms after it drains
            # below that (librdkafka's default back-off, 1 s, would starve the consumer).
            # Fetches are small: a fetched buffer stays in memory until every tick in it
            # has been consumed and freed, and 1 MiB per partition / 8 MiB per request kept
            # ~20 MiB more resident than these, for no measurable throughput.
            "max.partition.fetch.bytes": 262_144,
            "fetch.max.bytes": 2_097_152,
            "queued.min.messages": 20_000,
            "queued.max.messages.kbytes": 8_192,
            "fetch.queue.backoff.ms": 5,
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 1_000,
            "max.poll.interval.ms": 300_000,
            "isolation.level": "read_committed",
        },
        {"group.id": group or settings.group, **extra},
    )


def admin_config(settings: Settings) -> dict[str, Any]:
    """AdminClient config."""
    return client_config(settings)


def ensure_topics(
    settings: Settings,
    topics: Mapping[str, int] | None = None,
    *,
    replication: int | None = None,
    timeout: float = 30.0,
) -> dict[str, int]:
    """Create topics if they do not exist; return ``{topic: partition count}``.

    Parameters
    ----------
    settings
        Where the broker is.
    topics
        ``{name: partitions}``. Default: the tick topic with ``settings.partitions``,
        and its ``.dlq``, ``.late`` and the ``alerts`` topics with 1 partition.
    replication
        Replication factor (default ``settings.replication``).
    timeout
        Seconds to wait for the broker.

    Raises
    ------
    KafkaServiceError
        When the broker cannot be reached or refuses to create a topic.

    Notes
    -----
    Topics are created with ``retention.ms=-1``: message timestamps are event times,
    and replays of recorded data would otherwise be deleted by time-based retention.
    On the embedded mock cluster, topics are auto-created with its default of
    4 partitions; the requested count cannot be honoured there.
    """
    if topics is None:
        topics = {
            settings.topic: settings.partitions,
            settings.topic + DLQ_SUFFIX: 1,
            settings.topic + LATE_SUFFIX: 1,
            "alerts": 1,
        }
    rf = replication or settings.replication
    if settings.embedded_kafka:
        p = Producer(client_config(settings))
        out: dict[str, int] = {}
        for name in topics:
            md = p.list_topics(name, timeout=timeout)
            out[name] = len(md.topics[name].partitions)
        return out
    admin = AdminClient(admin_config(settings))
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise KafkaServiceError(
            f"Kafka at {settings.kafka_bootstrap} did not answer within {timeout}s: {exc}"
        ) from None
    # Message timestamps are event times, which for replays of recorded data lie years in
    # the past: time-based retention would delete such segments within minutes. Topics are
    # therefore created with retention by time off (size-based retention still applies).
    wanted = [
        NewTopic(n, p, rf, config={"retention.ms": "-1"}) for n, p in topics.items() if n not in existing
    ]
    if wanted:
        futures = admin.create_topics(wanted, operation_timeout=timeout, request_timeout=timeout)
        for name, fut in futures.items():
            try:
                fut.result()
                log.info("created topic %s", name)
            except KafkaException as exc:
                err = exc.args[0]
                if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                raise KafkaServiceError(f"could not create topic {name}: {err}") from None
    # A topic just created can be missing from the metadata for a moment (its leaders are
    # still being elected, a broker has just restarted): wait until every one shows.
    deadline = time.monotonic() + timeout
    while True:
        md = admin.list_topics(timeout=timeout)
        found = {n: len(md.topics[n].partitions) for n in topics if n in md.topics}
        if len(found) == len(topics) or time.monotonic() >= deadline:
            return found
        time.sleep(0.1)


def end_offsets(consumer: Consumer, topic: str, timeout: float = 30.0) -> dict[int, tuple[int, int]]:
    """Low and high watermark of every partition of ``topic``.

    A topic that was just created (by :func:`ensure_topics` or by auto-creation)
    may briefly answer "not leader for partition", "leader not available" or
    "unknown topic" while its leaders are elected. Such retriable errors are retried
    until ``timeout``; anything else, or a timeout, raises.

    Parameters
    ----------
    consumer
        Any consumer connected to the cluster (its group is not touched).
    topic
        The topic.
    timeout
        Seconds, in all, to wait for every partition's watermarks.

    Returns
    -------
    dict
        ``{partition: (low, high)}``.

    Raises
    ------
    KafkaServiceError
        When the watermarks cannot be read within ``timeout`` (for instance, the topic
        does not exist), or on an error that is not retriable.

    Examples
    --------
    >>> from cryptolab.config import Settings
    >>> s = Settings.from_env({})                  # the embedded mock cluster
    >>> _ = ensure_topics(s, {"doc-empty-topic": 1})
    >>> c = Consumer(consumer_config(s, "doc"))
    >>> offsets = end_offsets(c, "doc-empty-topic")
    >>> sorted(set(offsets.values()))
    [(0, 0)]
    >>> c.close()
    """
    deadline = time.monotonic() + timeout
    while True:
        left = max(0.5, deadline - time.monotonic())
        try:
            md = consumer.list_topics(topic, timeout=left)
            meta = md.topics.get(topic)
            error = KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART) if meta is None else meta.error
            if error is not None:
                raise KafkaException(error)
            return {
                p: tuple(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=left, cached=False))
                for p in meta.partitions
            }
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            code = err.code() if isinstance(err, KafkaError) else None
            if code not in _RETRIABLE_METADATA or time.monotonic() >= deadline:
                raise KafkaServiceError(f"cannot read the end offsets of topic {topic!r}: {err}") from None
            time.sleep(0.2)


_RETRIABLE_METADATA: Final = frozenset({
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._UNKNOWN_PARTITION,
    KafkaError._UNKNOWN_TOPIC,
    KafkaError._TIMED_OUT,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError._TRANSPORT,
})


def dlq_headers(
    reason: str,
    field: str = "record",
    *,
    stage: str,
    origin: tuple[str, int, int] | None = None,
) -> list[tuple[str, bytes]]:
    """Headers for a dead-letter record.

    Examples
    --------
    >>> dlq_headers("must be > 0", "price", stage="produce")
    [('reason', b'must be > 0'), ('field', b'price'), ('stage', b'produce')]
    """
    headers = [
        ("reason", reason.encode("utf-8", "replace")[:1024]),
        ("field", field.encode("utf-8", "replace")[:128]),
        ("stage", stage.encode()),
    ]
    if origin is not None:
        topic, partition, offset = origin
        headers += [
            ("topic", topic.encode()),
            ("partition", str(partition).encode()),
            ("offset", str(offset).encode()),
        ]
    return headers
