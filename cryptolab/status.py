"""The pipeline's health on one screen: services, consumer lag, last commit, dead letters.

:func:`health_report` asks the services themselves: Kafka for each partition's end
offset and the size of the dead-letter topic, the store for the consumer group's
committed progress (the offsets it resumes from, and when each was committed), and the
cache for a ping. ``cryptolab status`` prints it (``--json``), and exits non-zero when a
service is down; in a notebook the report renders as an HTML panel.

The lag of a partition is its end offset minus the group's committed offset in the store
(the store of record; when the store cannot be read, Kafka's own committed offsets of the
group, which the consumer writes as a courtesy, stand in).
"""

from __future__ import annotations

import html
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from cryptolab.config import Settings
from cryptolab.errors import CryptolabError

if TYPE_CHECKING:  # pragma: no cover
    from confluent_kafka import Consumer

    from cryptolab.store import PartitionProgress

__all__ = ["HealthReport", "PartitionHealth", "ServiceHealth", "health_report"]

#: The services a report checks, in the order it lists them.
SERVICES: tuple[str, ...] = ("kafka", "store", "cache")


@dataclass(frozen=True)
class ServiceHealth:
    """Whether a service answered: ``name`` (kafka, store, cache), ``up``, ``where`` (its
    address, passwords hidden) and ``detail`` (what it said, or why it is down)."""

    name: str
    up: bool
    where: str
    detail: str = ""


@dataclass(frozen=True)
class PartitionHealth:
    """One partition of the tick topic: its end offset, the group's committed offset (``None``:
    nothing committed), the lag between them, the watermark and when it was committed (epoch
    ms, ``None`` when unknown)."""

    partition: int
    end: int | None
    committed: int | None
    lag: int | None
    watermark_ms: int | None = None
    committed_at_ms: int | None = None


@dataclass
class HealthReport:
    """What :func:`health_report` found; ``str()`` is the text screen, ``_repr_html_`` the panel.

    Examples
    --------
    >>> report = HealthReport(group="g", topic="ticks", checked_ms=1_700_000_000_000,
    ...     services=[ServiceHealth("kafka", True, "localhost:9092"),
    ...               ServiceHealth("store", False, "postgresql://db/x", "connection refused")],
    ...     partitions=[PartitionHealth(0, end=10, committed=7, lag=3,
    ...                                 committed_at_ms=1_699_999_990_000)],
    ...     dead_letters=2)
    >>> report.ok, report.down, report.lag, report.last_commit_ms
    (False, ['store'], 3, 1699999990000)
    >>> print(report)  # doctest: +NORMALIZE_WHITESPACE
    cryptolab status  group g  topic ticks  at 2023-11-14T22:13:20Z
    kafka          up    localhost:9092
    store          DOWN  postgresql://db/x  connection refused
    last commit    2023-11-14T22:13:10Z (10s before)
    dead letters   2 (ticks.dlq)
    lag            3 messages over 1 partition(s)
      partition        end  committed      lag  committed at
      0                 10          7        3  2023-11-14T22:13:10Z
    >>> "<table" in report._repr_html_()
    True
    """

    group: str
    topic: str
    checked_ms: int
    services: list[ServiceHealth]
    partitions: list[PartitionHealth] = field(default_factory=list)
    dead_letters: int | None = None
    #: where the committed offsets came from: ``store``, ``kafka`` or ``None`` (neither answered)
    committed_from: str | None = "store"

    @property
    def ok(self) -> bool:
        """Whether every service answered."""
        return all(s.up for s in self.services)

    @property
    def down(self) -> list[str]:
        """The names of the services that did not answer."""
        return [s.name for s in self.services if not s.up]

    @property
    def lag(self) -> int | None:
        """Messages behind, all partitions together (``None`` when no partition's is known)."""
        known = [p.lag for p in self.partitions if p.lag is not None]
        return sum(known) if known else None

    @property
    def last_commit_ms(self) -> int | None:
        """When the group last committed (epoch ms), or ``None``."""
        times = [p.committed_at_ms for p in self.partitions if p.committed_at_ms is not None]
        return max(times) if times else None

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able data (``cryptolab status --json``)."""
        return {
            "ok": self.ok, "down": self.down, "group": self.group, "topic": self.topic,
            "checked_ms": self.checked_ms, "checked": _iso(self.checked_ms),
            "services": {s.name: {"up": s.up, "where": s.where, "detail": s.detail}
                         for s in self.services},
            "last_commit_ms": self.last_commit_ms,
            "last_commit": None if self.last_commit_ms is None else _iso(self.last_commit_ms),
            "dead_letters": self.dead_letters, "lag": self.lag,
            "committed_from": self.committed_from,
            "partitions": [asdict(p) for p in self.partitions],
        }

    def text(self) -> str:
        """The one-screen text (``cryptolab status``)."""
        lines = [f"cryptolab status  group {self.group}  topic {self.topic}  at {_iso(self.checked_ms)}"]
        for s in self.services:
            lines.append(f"{s.name:<14} {'up' if s.up else 'DOWN':<5} {s.where}"
                         + (f"  {s.detail}" if s.detail else ""))
        for label, value in self._summary():
            lines.append(f"{label:<14} {value}")
        if self.partitions:
            lines.append(f"  {'partition':<10} {'end':>10} {'committed':>10} {'lag':>8}  committed at")
            for p in self.partitions:
                lines.append(f"  {p.partition:<10} {_n(p.end):>10} {_n(p.committed):>10} {_n(p.lag):>8}  "
                             + ("-" if p.committed_at_ms is None else _iso(p.committed_at_ms)))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    def _summary(self) -> list[tuple[str, str]]:
        last = self.last_commit_ms
        ago = "" if last is None else f" ({max(0, self.checked_ms - last) / 1000:.0f}s before)"
        dlq = "unknown" if self.dead_letters is None else f"{self.dead_letters:,}"
        lag = "unknown" if self.lag is None else f"{self.lag:,} messages over {len(self.partitions)} partition(s)"
        if self.committed_from == "kafka":
            lag += " (Kafka's committed offsets: the store did not answer)"
        return [("last commit", "never" if last is None else _iso(last) + ago),
                ("dead letters", f"{dlq} ({self.topic}.dlq)"), ("lag", lag)]

    def _repr_html_(self) -> str:
        e = html.escape
        state = "ok" if self.ok else "DOWN: " + ", ".join(self.down)
        color = "#2e7d32" if self.ok else "#c62828"
        td = "<td style='text-align:left'>"  # text reads from the left (notebooks right-align cells)
        rows = "".join(
            f"<tr>{td}{e(s.name)}</td><td style='text-align:left;color:{'#2e7d32' if s.up else '#c62828'}'>"
            f"{'up' if s.up else 'DOWN'}</td>{td}{e(s.where)}</td>{td}{e(s.detail)}</td></tr>"
            for s in self.services)
        summary = "".join(f"<tr>{td}{e(k)}</td><td colspan='3' style='text-align:left'>{e(v)}</td></tr>"
                          for k, v in self._summary())
        parts = "".join(
            f"<tr><td>{p.partition}</td><td>{_n(p.end)}</td><td>{_n(p.committed)}</td><td>{_n(p.lag)}</td>"
            f"<td>{'-' if p.committed_at_ms is None else _iso(p.committed_at_ms)}</td></tr>"
            for p in self.partitions)
        table = ("<table><tr><th>partition</th><th>end</th><th>committed</th><th>lag</th>"
                 f"<th>committed at</th></tr>{parts}</table>") if parts else ""
        return (f"<div class='cryptolab-health'><b>cryptolab</b> group <code>{e(self.group)}</code> topic "
                f"<code>{e(self.topic)}</code>: <b style='color:{color}'>{e(state)}</b>"
                f"<table>{rows}{summary}</table>{table}</div>")


def health_report(
    settings: Settings | None = None, *, group: str | None = None, topic: str | None = None,
    timeout: float = 5.0,
) -> HealthReport:
    """Ask Kafka, the store and the cache how the pipeline of ``settings`` is doing.

    Parameters
    ----------
    settings
        Where the services are (default ``Settings.from_env()``).
    group, topic
        The consumer group and tick topic (default: those of ``settings``).
    timeout
        Seconds to wait for Kafka's answers (the store and the cache answer or refuse at once).

    Examples
    --------
    With nothing configured, the embedded defaults: no broker to ask, an in-process cache::

        >>> import tempfile
        >>> report = health_report(Settings.from_env({}, data_dir=tempfile.mkdtemp()))
        >>> [(s.name, s.up) for s in report.services], report.partitions
        ([('kafka', True), ('store', False), ('cache', True)], [])
        >>> report.services[1].detail.startswith("no database at")
        True
    """
    s = settings or Settings.from_env()
    group, topic = group or s.group, topic or s.topic
    services: dict[str, ServiceHealth] = {}
    report = HealthReport(group=group, topic=topic, checked_ms=int(time.time() * 1000), services=[])
    ends, dlq, kafka_committed = _kafka(s, group, topic, timeout, services)
    progress = _store(s, group, topic, services)
    services["cache"] = _cache(s)
    report.services = [services[name] for name in SERVICES]
    report.dead_letters = dlq
    committed = {p: pr.offset for p, pr in progress.items()} if progress is not None else kafka_committed
    report.committed_from = "store" if progress is not None else ("kafka" if kafka_committed else None)
    for p in sorted(set(ends or {}) | set(committed or {})):
        low_high = (ends or {}).get(p)
        done = (committed or {}).get(p)
        lag = None
        if low_high is not None:
            lag = max(0, low_high[1] - (low_high[0] if done is None else done))
        pr = (progress or {}).get(p)
        report.partitions.append(PartitionHealth(
            partition=p, end=None if low_high is None else low_high[1], committed=done, lag=lag,
            watermark_ms=None if pr is None else pr.watermark_ms,
            committed_at_ms=None if pr is None else pr.updated_ms))
    return report


def _kafka(
    s: Settings, group: str, topic: str, timeout: float, services: dict[str, ServiceHealth],
) -> tuple[dict[int, tuple[int, int]] | None, int | None, dict[int, int] | None]:
    """End offsets of ``topic``, the size of its dead-letter topic and the group's committed
    offsets in Kafka; records Kafka's health in ``services``."""
    from cryptolab.kafka import DLQ_SUFFIX, EmbeddedKafka, bootstrap_servers, consumer_config

    if s.embedded_kafka and not EmbeddedKafka.running():
        services["kafka"] = ServiceHealth("kafka", True, "embedded",
                                          "the in-process mock cluster, not running here: no broker to ask")
        return None, None, None
    from confluent_kafka import Consumer

    where = s.kafka_bootstrap or f"embedded {bootstrap_servers(s)} (this process)"
    # the group's id, to read its committed offsets: without subscribing, it does not join
    consumer = Consumer(consumer_config(s, group, log_level=0))  # the reason is reported, not logged
    try:
        try:
            md = consumer.list_topics(timeout=timeout)
        except Exception as exc:  # KafkaException: no broker answered
            services["kafka"] = ServiceHealth("kafka", False, where, _reason(exc))
            return None, None, None
        ends = _ends(consumer, topic, md, timeout)
        dlq_ends = _ends(consumer, topic + DLQ_SUFFIX, md, timeout)
        dlq = 0 if dlq_ends is None else sum(high - low for low, high in dlq_ends.values())
        detail = f"{len(md.brokers)} broker(s)" + ("" if ends is not None else f"; no topic {topic!r}")
        services["kafka"] = ServiceHealth("kafka", True, where, detail)
        return ends, dlq, _group_committed(consumer, topic, ends, timeout)
    finally:
        consumer.close()


def _ends(consumer: Consumer, topic: str, md: Any, timeout: float) -> dict[int, tuple[int, int]] | None:
    """``{partition: (low, high)}`` of ``topic``, or ``None`` when it does not exist."""
    if topic not in md.topics or md.topics[topic].error is not None:
        return None
    from cryptolab.kafka import end_offsets

    return end_offsets(consumer, topic, timeout=timeout)


def _group_committed(consumer: Consumer, topic: str, ends: dict[int, tuple[int, int]] | None,
                     timeout: float) -> dict[int, int] | None:
    """The offsets the group committed in Kafka (the consumer's courtesy commits)."""
    if not ends:
        return None
    from confluent_kafka import TopicPartition

    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in sorted(ends)], timeout=timeout)
    except Exception:  # a broker gone meanwhile
        return None
    return {tp.partition: tp.offset for tp in tps if tp.offset >= 0}


def _store(s: Settings, group: str, topic: str,
           services: dict[str, ServiceHealth]) -> dict[int, PartitionProgress] | None:
    """The group's progress in the store (``None``: unknown); records the store's health."""
    from sqlalchemy.engine import make_url

    from cryptolab.store import Store

    url = s.resolved_store_url()
    try:
        parsed = make_url(url)
    except Exception as exc:
        services["store"] = ServiceHealth("store", False, "?", _reason(exc))
        return None
    where = parsed.render_as_string(hide_password=True)
    db = parsed.database
    if parsed.drivername.startswith("sqlite") and db and db != ":memory:" and not _exists(db):
        services["store"] = ServiceHealth("store", False, where, f"no database at {db}")
        return None
    try:
        with Store(url, pool_size=1) as store:
            version = store.schema_version()
            if version is None:
                services["store"] = ServiceHealth("store", True, where, "no schema (`cryptolab db init`)")
                return {}
            progress = store.load_progress(group, topic)
    except CryptolabError as exc:
        services["store"] = ServiceHealth("store", False, where, _reason(exc))
        return None
    services["store"] = ServiceHealth("store", True, where, f"schema v{version}")
    return progress


def _cache(s: Settings) -> ServiceHealth:
    from cryptolab.cache import open_cache

    if not s.redis_url:
        return ServiceHealth("cache", True, "in-process", "no Redis configured: this process only")
    where = _redact(s.redis_url)
    try:
        cache = open_cache(s)
    except CryptolabError as exc:
        return ServiceHealth("cache", False, where, _reason(exc))
    try:
        up = cache.ping()
    except Exception as exc:
        return ServiceHealth("cache", False, where, _reason(exc))
    finally:
        cache.close()
    return ServiceHealth("cache", up, where, "" if up else "no answer to PING")


def _exists(path: str) -> bool:
    from pathlib import Path

    return Path(path).exists()


def _redact(url: str) -> str:
    """``url`` with its password hidden.

    >>> _redact("redis://:s3cret@localhost:6379/0"), _redact("redis://localhost")
    ('redis://:***@localhost:6379/0', 'redis://localhost')
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _reason(exc: BaseException) -> str:
    """The first line of an error, as short as a status line needs."""
    err: Any = exc.args[0] if exc.args else None
    if callable(getattr(err, "str", None)):  # a KafkaError: its message, not its repr
        return str(err.str())[:200]
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"
