"""The services of one suite run: fresh databases, topics and a Redis database, cleaned up after.

Also where the suite's topics are filled with synthetic ticks (:func:`fill_topic`).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from typing import Any

from benchmarks.results import rnd
from benchmarks.spec import REDIS_DB, START_MS
from cryptolab.config import Settings

__all__ = ["Services", "fill_topic", "pg_conninfo", "redis_db_url", "settings_for"]

log = logging.getLogger(__name__)


def pg_conninfo(url: str) -> str:
    """A psycopg connection string for a SQLAlchemy ``postgresql+psycopg://`` URL.

    Examples
    --------
    >>> pg_conninfo("postgresql+psycopg://u:p@db:5432/x")
    'postgresql://u:p@db:5432/x'
    """
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def redis_db_url(url: str, db: int) -> str:
    """``url`` pointed at logical database ``db``.

    Examples
    --------
    >>> redis_db_url("redis://127.0.0.1:6379/0", 14)
    'redis://127.0.0.1:6379/14'
    >>> redis_db_url("unix:///tmp/r.sock?db=0", 14)  # (redis-py reads the socket's path alike)
    'unix:/tmp/r.sock?db=14'
    """
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "db"] + [("db", str(db))]
        return urlunsplit(parts._replace(query=urlencode(query)))
    return urlunsplit(parts._replace(path=f"/{db}"))


class Services:
    """Fresh databases, a dedicated Redis database and topics for one suite run; cleaned up after.

    Parameters
    ----------
    settings
        Where Kafka, PostgreSQL (a ``postgresql`` store URL; others count as absent) and
        Redis are; the suite uses Redis logical database :data:`~benchmarks.spec.REDIS_DB`.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.kafka = settings.kafka_bootstrap
        self.pg = settings.store_url if settings.store_url and settings.store_url.startswith("postgresql") else None
        self.redis = redis_db_url(settings.redis_url, REDIS_DB) if settings.redis_url else None
        self.run_id = secrets.token_hex(4)
        self._databases: list[str] = []
        self._topics: list[str] = []
        self.notes: dict[str, Any] = {}  # figures one section passes to a later one

    def why_not(self, *needs: str) -> str | None:
        """Why a section needing these services cannot run (``None`` when it can)."""
        hint = "start them with `scripts/services.sh up` then `eval \"$(scripts/services.sh env)\"`"
        missing = []
        if "kafka" in needs and not self.kafka:
            missing.append("a Kafka broker (CRYPTOLAB_KAFKA_BOOTSTRAP or --kafka)")
        if "pg" in needs and not self.pg:
            missing.append("PostgreSQL (CRYPTOLAB_STORE_URL=postgresql+psycopg://... or --store)")
        if "redis" in needs and not self.redis:
            missing.append("Redis (CRYPTOLAB_REDIS_URL or --redis)")
        return f"needs {' and '.join(missing)}: {hint}" if missing else None

    def database(self) -> str:
        """A fresh, empty PostgreSQL database (dropped at the end); its SQLAlchemy URL."""
        import psycopg
        from psycopg import sql
        from sqlalchemy.engine import make_url

        assert self.pg is not None
        name = f"cl_bench_{self.run_id}_{len(self._databases)}"
        with psycopg.connect(pg_conninfo(self.pg), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self._databases.append(name)
        return make_url(self.pg).set(database=name).render_as_string(hide_password=False)

    def topic(self, kind: str, partitions: int) -> str:
        """A fresh topic that keeps its records (retention off: the ticks carry 2023 timestamps)."""
        from confluent_kafka.admin import AdminClient, NewTopic

        name = f"cl_bench_{kind}_{self.run_id}"
        admin = AdminClient({"bootstrap.servers": self.kafka})
        conf = {"retention.ms": "-1", "retention.bytes": "-1"}
        futures = admin.create_topics([NewTopic(name, partitions, 1, config=conf),
                                       NewTopic(name + ".dlq", 1, 1), NewTopic(name + ".late", 1, 1)],
                                      operation_timeout=30, request_timeout=30)
        for fut in futures.values():
            fut.result()
        self._topics += [name, name + ".dlq", name + ".late"]
        return name

    def flush_redis(self) -> None:
        """Empty the suite's Redis database."""
        if self.redis:
            import redis

            client = redis.Redis.from_url(self.redis, socket_timeout=10)
            try:
                client.flushdb()
            finally:
                client.close()

    def close(self) -> None:
        """Delete the topics, drop the databases and flush Redis (failures are logged only)."""
        if self._topics and self.kafka:
            from confluent_kafka.admin import AdminClient

            try:
                admin = AdminClient({"bootstrap.servers": self.kafka})
                for fut in admin.delete_topics(self._topics, operation_timeout=30).values():
                    with contextlib.suppress(Exception):
                        fut.result()
            except Exception:  # cleanup only
                log.warning("could not delete the benchmark topics %s", self._topics, exc_info=True)
        if self._databases and self.pg:
            import psycopg
            from psycopg import sql

            try:
                with psycopg.connect(pg_conninfo(self.pg), autocommit=True) as conn:
                    for name in self._databases:
                        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            except Exception:  # cleanup only
                log.warning("could not drop the benchmark databases %s", self._databases, exc_info=True)
        with contextlib.suppress(Exception):
            self.flush_redis()


def settings_for(svc: Services, **overrides: Any) -> Settings:
    """Settings on the run's Kafka broker (and ``overrides``), ignoring the environment."""
    base: dict[str, Any] = {"kafka_bootstrap": svc.kafka}
    base.update(overrides)
    return Settings.from_env({}, **base)


def fill_topic(settings: Settings, topic: str, *, ticks: int, symbols: int, minutes: float | None = None,
               seed: int = 1) -> dict[str, Any]:
    """Produce ``ticks`` synthetic ticks (event time from 2023-11-14 22:14 UTC) to ``topic``."""
    from cryptolab.producer import TickProducer
    from cryptolab.sources.synthetic import SyntheticMarket

    rate = ticks / (minutes * 60) if minutes else 139.0
    market = SyntheticMarket(symbols=symbols, seed=seed, start_ms=START_MS, duration_ms=None,
                             ticks_per_second=rate)
    t0 = time.perf_counter()
    with TickProducer(settings, topic=topic, create_topic=False) as producer:
        sent = producer.send_wire(market.iter_wire(), limit=ticks)
        producer.flush(300)
        failed = producer.stats.failed
    return {"ticks": sent, "failed": failed, "seconds": rnd(time.perf_counter() - t0),
            "event_minutes": rnd(ticks / rate / 60, 1)}
