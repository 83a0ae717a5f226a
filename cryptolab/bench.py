"""The performance suite: cryptolab side by side with its peers, in one run.

``cryptolab bench --json PATH`` (``make bench``) measures, against the real Kafka,
PostgreSQL and Redis named by ``CRYPTOLAB_KAFKA_BOOTSTRAP``, ``CRYPTOLAB_STORE_URL`` and
``CRYPTOLAB_REDIS_URL``:

``producer``
    Ticks/s from the synthetic source through :class:`~cryptolab.producer.TickProducer`,
    vs a bare confluent-kafka ``produce`` loop with the same payloads
    (``benchmarks/bench_producer.py``).
``consumer``
    A topic pre-filled with ``ticks`` ticks over ``symbols`` symbols, consumed into
    1m/5m/15m candles by the cryptolab pipeline (sinks on: PostgreSQL + Redis), by
    Quix Streams (tumbling windows with ``Earliest``, ``Max``, ``Min``, ``Latest`` and
    ``Sum``), and by a bare ``consume(batch)`` + JSON-decode loop that builds nothing
    (the ceiling). Each runs in its own process; the clock starts at its first message.
    The candles of cryptolab and Quix are compared (OHLC and volume, bit for bit).
``latency``
    A live, paced feed (event time = wall-clock time at send) through the pipeline
    (windows 1s/5s/15s so that many close during the run); a Redis subscriber
    measures tick event time -> candle published, and window end -> final candle
    published.
``history``, ``latest``
    ``Store.history`` of 100 and 1,000 candles into a DataFrame vs the raw driver's
    fetch, and ``latest()`` from Redis vs a raw redis-py ``GET``
    (``benchmarks/bench_store.py``).
``scoring``
    CPU that anomaly scoring adds to a consumer at 100,000 ticks/s over 1,000 symbols
    (``benchmarks/bench_scoring.py``).
``batch``
    :func:`~cryptolab.batch.candles_from_ticks` on ``batch_ticks`` ticks vs a polars
    group-by computing the same candles (checked equal).
``memory``
    Peak RSS of a consumer process (scoring on) holding ``memory_symbols`` symbols x
    3 intervals.

The result is one JSON document with the fixed keys of :data:`KEYS` (``null`` when a
section was skipped, with the reason under ``"skipped"``), ``targets`` (each key's
target and whether it holds), ``checks`` (correctness checks that must hold),
``details`` (every figure of every section), ``machine`` and ``versions``.

Nothing here is a test: no figure is asserted; ``checks`` are correctness checks.

Examples
--------
The pure sections need no services::

    >>> result = run_suite(only=["batch"], config=BenchConfig.quick_config())  # doctest: +SKIP
    >>> result["batch_vs_polars"] > 0                                          # doctest: +SKIP
    True
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import importlib.util
import io
import json
import logging
import math
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import numpy as np
import orjson

from cryptolab.config import Settings, redact_url
from cryptolab.models import parse_interval

__all__ = [
    "KEYS",
    "SECTIONS",
    "TARGETS",
    "BenchConfig",
    "check_targets",
    "run_suite",
    "write_json",
]

log = logging.getLogger(__name__)

#: The sections of the suite, in the order they run.
SECTIONS: Final = ("producer", "consumer", "latency", "history", "latest", "scoring", "batch", "memory")

#: The fixed result keys: what each means, and the section that measures it.
KEYS: Final[dict[str, tuple[str, str]]] = {
    "producer_ticks_per_s": ("producer", "TickProducer ticks/s from the synthetic source, to acknowledged"),
    "producer_vs_bare": ("producer", "producer_ticks_per_s / a bare confluent-kafka produce loop's"),
    "consumer_ticks_per_s": ("consumer", "cryptolab pipeline ticks/s into 1m/5m/15m candles, PostgreSQL + Redis sinks"),
    "quix_ticks_per_s": ("consumer", "Quix Streams ticks/s computing the same candles"),
    "consumer_vs_quix": ("consumer", "consumer_ticks_per_s / quix_ticks_per_s"),
    "consumer_vs_bare": ("consumer", "consumer_ticks_per_s / a bare consume + JSON-decode loop's"),
    "latency_event_to_publish_ms_p50": ("latency", "live feed: tick event time -> candle received from Redis pub/sub, median (ms)"),
    "latency_event_to_publish_ms_p99": ("latency", "the same, 99th percentile (ms)"),
    "latency_window_end_to_publish_ms_p99": ("latency", "window end -> final candle received, 99th percentile (ms)"),
    "history_1000_ms_p50": ("history", "Store.history of 1,000 candles into a DataFrame, median (ms)"),
    "history_vs_raw": ("history", "history_1000 median / the raw driver's fetch of the same rows"),
    "latest_ms_p99": ("latest", "latest() from Redis, 99th percentile (ms)"),
    "latest_vs_raw": ("latest", "latest() median / a raw redis-py GET's"),
    "scoring_cpu_overhead": ("scoring", "CPU scoring adds to a consumer at 100,000 ticks/s over 1,000 symbols (fraction)"),
    "batch_ticks_per_s": ("batch", "candles_from_ticks ticks/s (1m/5m/15m)"),
    "batch_vs_polars": ("batch", "batch_ticks_per_s / a polars group-by's computing the same candles"),
    "consumer_rss_mb": ("memory", "peak RSS of a consumer (scoring on) with memory_symbols x 3 intervals (MiB)"),
}

#: Targets from the performance issue: key -> (comparison, bound).
TARGETS: Final[dict[str, tuple[str, float]]] = {
    "consumer_vs_quix": (">=", 10.0),
    "consumer_vs_bare": (">=", 0.5),
    "producer_vs_bare": (">=", 0.7),
    "history_1000_ms_p50": ("<=", 3.0),
    "latency_window_end_to_publish_ms_p99": ("<=", 50.0),
    "latest_vs_raw": ("<=", 1.3),
    "batch_vs_polars": (">=", 0.5),
    "consumer_rss_mb": ("<=", 300.0),
}

_START_MS: Final = 1_700_000_040_000  # a whole minute (2023-11-14 22:14 UTC)
_INTERVALS: Final = "1m,5m,15m"
_REDIS_DB: Final = 14  # the suite's own logical database (tests use 15)
_ROOT: Final = Path(__file__).resolve().parents[1]

Progress = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    """Sizes of the suite (the defaults are the issue's; :meth:`quick_config` is tiny).

    Parameters
    ----------
    ticks, symbols
        The consumer benchmark's pre-filled topic.
    consumer_repeat
        Alternating runs of cryptolab and the bare loops (the best of each is kept; Quix
        runs once: it takes minutes).
    producer_ticks, producer_repeat
        Ticks per producer run, and alternating runs of each side (the best is kept).
    latency_seconds, latency_rate, latency_warmup_s
        The live feed: measured seconds, ticks/s, and seconds discarded at the start.
    latency_lateness_ms, latency_linger_ms
        Allowed lateness of the live consumer (1 s: the production 60 s scaled like the
        windows, 1m -> 1s) and the feed producer's ``linger.ms`` (a live setting).
    latency_scoring
        Also measure with anomaly scoring on (the keys are without, like the consumer's).
    store_repeat
        Timed calls per side for history (x5 for latest).
    scoring_ticks, scoring_repeat
        Ticks of the scoring benchmark's market, and repeats.
    batch_ticks, batch_repeat
        Ticks for candles_from_ticks vs polars, and repeats (best kept).
    memory_symbols, memory_ticks, memory_minutes
        The memory benchmark's topic (an hour of event time: the detectors of every
        series have warmed up, as in a long-running consumer).
    quix
        Run Quix Streams (the slowest part: about 5,000 ticks/s).
    partitions
        Partitions of the suite's topics.
    settle_max_s
        Before each section, wait up to this long for the machine to be quiet
        (:func:`settle`); a quick run waits at most 3 s (its figures are a smoke test).
    """

    ticks: int = 1_000_000
    symbols: int = 50
    consumer_repeat: int = 3
    producer_ticks: int = 1_000_000
    producer_repeat: int = 2
    latency_seconds: float = 20.0
    latency_rate: float = 2_000.0
    latency_warmup_s: float = 3.0
    latency_lateness_ms: int = 1_000
    latency_linger_ms: int = 5
    latency_scoring: bool = True
    store_repeat: int = 500
    scoring_ticks: int = 300_000
    scoring_repeat: int = 2
    batch_ticks: int = 10_000_000
    batch_repeat: int = 2
    memory_symbols: int = 1_000
    memory_ticks: int = 300_000
    memory_minutes: float = 60.0
    quix: bool = True
    partitions: int = 3
    settle_max_s: float = 30.0

    @classmethod
    def quick_config(cls, **overrides: Any) -> BenchConfig:
        """A tiny run (about a minute with services) for notebooks and smoke tests.

        Examples
        --------
        >>> BenchConfig.quick_config(ticks=5_000).ticks
        5000
        """
        base: dict[str, Any] = dict(
            ticks=20_000, symbols=10, consumer_repeat=1, producer_ticks=20_000, producer_repeat=1, latency_seconds=4.0,
            latency_rate=500.0, latency_warmup_s=1.5, store_repeat=30, scoring_ticks=20_000,
            scoring_repeat=1, batch_ticks=200_000, batch_repeat=1, memory_symbols=100,
            memory_ticks=10_000, memory_minutes=3.0, settle_max_s=3.0,
        )
        base.update(overrides)
        return cls(**base)


# --------------------------------------------------------------------------- results


def check_targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target key: its value, the target and whether it holds (``None``: not measured).

    Examples
    --------
    >>> check_targets({"consumer_vs_quix": 12.5})["consumer_vs_quix"]
    {'value': 12.5, 'target': '>= 10', 'ok': True}
    >>> check_targets({})["consumer_rss_mb"]["ok"] is None
    True
    """
    out: dict[str, dict[str, Any]] = {}
    for key, (op, bound) in TARGETS.items():
        value = result.get(key)
        ok: bool | None = None
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            ok = value >= bound if op == ">=" else value <= bound
        out[key] = {"value": value, "target": f"{op} {bound:g}", "ok": ok}
    return out


def write_json(result: dict[str, Any], path: str | Path) -> Path:
    """Write a suite result as indented JSON (creating the folder); return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n")
    return out


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), nd)


def _ratio(a: float | None, b: float | None) -> float | None:
    return _r(a / b) if a is not None and b else None


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else None


# --------------------------------------------------------------------------- machine


def machine_info() -> dict[str, Any]:
    """The machine the figures come from (CPU, memory, load)."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    with contextlib.suppress(ImportError):
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    return info


def versions(settings: Settings | None = None) -> dict[str, Any]:
    """Versions of cryptolab, its peers and drivers, and of the servers when reachable."""
    from importlib import metadata

    out: dict[str, Any] = {}
    for dist in ("cryptolab", "confluent-kafka", "quixstreams", "polars", "pandas", "numpy", "pyarrow",
                 "sqlalchemy", "psycopg", "redis", "hiredis", "orjson", "msgspec", "river"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    with contextlib.suppress(Exception):
        import confluent_kafka

        out["librdkafka"] = confluent_kafka.libversion()[0]
    if settings is not None and settings.store_url and settings.store_url.startswith("postgresql"):
        with contextlib.suppress(Exception):
            import psycopg

            with psycopg.connect(_pg_conninfo(settings.store_url), connect_timeout=5) as conn:
                row = conn.execute("SHOW server_version").fetchone()
                out["postgresql_server"] = row[0] if row else None
    if settings is not None and settings.redis_url:
        with contextlib.suppress(Exception):
            import redis

            client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
            out["redis_server"] = client.info("server").get("redis_version")
            client.close()
    if settings is not None and settings.kafka_bootstrap:
        out["kafka_bootstrap"] = settings.kafka_bootstrap
    return out


# --------------------------------------------------------------------------- services


def _pg_conninfo(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _redis_db_url(url: str, db: int) -> str:
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "db"] + [("db", str(db))]
        return urlunsplit(parts._replace(query=urlencode(query)))
    return urlunsplit(parts._replace(path=f"/{db}"))


class _Services:
    """Fresh databases, a dedicated Redis database and topics for one suite run; cleaned up after."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.kafka = settings.kafka_bootstrap
        self.pg = settings.store_url if settings.store_url and settings.store_url.startswith("postgresql") else None
        self.redis = _redis_db_url(settings.redis_url, _REDIS_DB) if settings.redis_url else None
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
        with psycopg.connect(_pg_conninfo(self.pg), autocommit=True) as conn:
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
        if self.redis:
            import redis

            client = redis.Redis.from_url(self.redis, socket_timeout=10)
            try:
                client.flushdb()
            finally:
                client.close()

    def close(self) -> None:
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
                with psycopg.connect(_pg_conninfo(self.pg), autocommit=True) as conn:
                    for name in self._databases:
                        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            except Exception:  # cleanup only
                log.warning("could not drop the benchmark databases %s", self._databases, exc_info=True)
        with contextlib.suppress(Exception):
            self.flush_redis()


def _settings_for(svc: _Services, **overrides: Any) -> Settings:
    base: dict[str, Any] = {"kafka_bootstrap": svc.kafka}
    base.update(overrides)
    return Settings.from_env({}, **base)


def _fill_topic(settings: Settings, topic: str, *, ticks: int, symbols: int, minutes: float | None = None,
                seed: int = 1) -> dict[str, Any]:
    """Produce ``ticks`` synthetic ticks (event time from 2023-11-14 22:14 UTC) to ``topic``."""
    from cryptolab.producer import TickProducer
    from cryptolab.sources.synthetic import SyntheticMarket

    rate = ticks / (minutes * 60) if minutes else 139.0
    market = SyntheticMarket(symbols=symbols, seed=seed, start_ms=_START_MS, duration_ms=None,
                             ticks_per_second=rate)
    t0 = time.perf_counter()
    with TickProducer(settings, topic=topic, create_topic=False) as producer:
        sent = producer.send_wire(market.iter_wire(), limit=ticks)
        producer.flush(300)
        failed = producer.stats.failed
    return {"ticks": sent, "failed": failed, "seconds": _r(time.perf_counter() - t0),
            "event_minutes": _r(ticks / rate / 60, 1)}


# --------------------------------------------------------------------------- workers


def _worker(kind: str, params: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    """Run one measurement in a fresh Python process; return its JSON result."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOLAB_")}
    env["PYTHONUNBUFFERED"] = "1"
    cmd = [sys.executable, "-m", "cryptolab.bench", "_worker", kind, json.dumps(params)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        raise RuntimeError(f"{kind} worker failed (exit {proc.returncode}):\n" + "\n".join(tail))
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _cpu_busy(seconds: float) -> float | None:
    """Share of the machine's CPU time that was busy over ``seconds`` (Linux ``/proc/stat``)."""

    def read() -> tuple[int, int] | None:
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields), idle

    a = read()
    time.sleep(seconds)
    b = read()
    if a is None or b is None or b[0] == a[0]:
        return None
    return 1.0 - (b[1] - a[1]) / (b[0] - a[0])


def settle(max_wait: float = 30.0, busy_below: float = 0.15, window: float = 0.5) -> float:
    """Wait until the machine is quiet (what a section leaves behind, such as PostgreSQL's
    checkpoint and autovacuum after the consumer runs, must not land in the next one);
    return the seconds waited (at most ``max_wait``).

    Examples
    --------
    >>> 0.0 <= settle(max_wait=0.0) < 5
    True
    """
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < max_wait:
        busy = _cpu_busy(window)
        if busy is None or busy < busy_below:
            break
    return round(time.perf_counter() - t0, 1)


def _rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def _peak_rss_mb() -> float | None:
    """This process's peak RSS (``VmHWM``; getrusage's would include the parent's before exec)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def _work_pipeline(p: dict[str, Any]) -> dict[str, Any]:
    """The cryptolab consumer on a pre-filled topic, until its end is committed."""
    from cryptolab.cache import RedisCache
    from cryptolab.pipeline import CandlePipeline
    from cryptolab.store import Store

    settings = Settings.from_env({}, kafka_bootstrap=p["kafka"], topic=p["topic"], store_url=p["store"],
                                 redis_url=p["redis"], intervals=p["intervals"])
    store = Store(p["store"])
    store.init()
    cache = RedisCache(p["redis"])
    pipe = CandlePipeline(settings, store=store, cache=cache, group=p["group"],
                          scorer=True if p["scoring"] else None)
    rss_ready = _rss_mb()
    first: list[float] = []
    process = pipe._process

    def timed(msgs: list[Any]) -> None:
        if not first:
            first.append(time.perf_counter())
        process(msgs)

    pipe._process = timed  # type: ignore[method-assign]
    cpu0 = time.process_time()
    stats = pipe.run(stop_at_end=True)
    t_end = time.perf_counter()
    cpu = time.process_time() - cpu0
    seconds = t_end - first[0] if first else float("nan")
    out: dict[str, Any] = {
        "ticks": stats.ticks, "seconds": seconds, "ticks_per_s": stats.ticks / seconds if first else None,
        "cpu_seconds": cpu, "cpu_us_per_tick": cpu / stats.ticks * 1e6 if stats.ticks else None,
        "stats": stats.to_dict(), "rss_ready_mb": rss_ready, "rss_peak_mb": _peak_rss_mb(),
        "open_windows_end": pipe.aggregator.open_windows(),
    }
    if p.get("candles_out"):
        rows = [[c.symbol, c.interval, c.window_start, c.open, c.high, c.low, c.close, c.volume]
                for c in store.candles()]
        Path(p["candles_out"]).write_bytes(orjson.dumps(rows))
    store.close()
    cache.close()
    return out


def _work_bare(p: dict[str, Any]) -> dict[str, Any]:
    """The ceiling: consume(batch) and decode each value with orjson; nothing else."""
    from confluent_kafka import Consumer

    from cryptolab.kafka import consumer_config

    settings = Settings.from_env({}, kafka_bootstrap=p["kafka"])
    consumer = Consumer(consumer_config(settings, p["group"]))
    consumer.subscribe([p["topic"]])
    loads: Callable[[bytes], Any] = orjson.loads
    if p.get("decoder") == "msgspec":
        import msgspec

        loads = msgspec.json.Decoder().decode
    n = p["ticks"]
    got = 0
    t0 = None
    cpu0 = 0.0
    deadline = time.monotonic() + p["timeout"]
    while got < n and time.monotonic() < deadline:
        msgs = consumer.consume(p["batch_size"], 0.2)
        if not msgs:
            continue
        if t0 is None:
            t0 = time.perf_counter()
            cpu0 = time.process_time()
        for m in msgs:
            if m.error() is None:
                loads(m.value())
                got += 1
    seconds = time.perf_counter() - t0 if t0 is not None else float("nan")
    cpu = time.process_time() - cpu0
    consumer.close()
    return {"ticks": got, "seconds": seconds, "ticks_per_s": got / seconds if t0 else None,
            "cpu_seconds": cpu, "cpu_us_per_tick": cpu / got * 1e6 if got else None,
            "decoder": p.get("decoder", "orjson")}


def _work_quix(p: dict[str, Any]) -> dict[str, Any]:
    """Quix Streams computing the same candles: tumbling windows per interval, final() results."""
    import shutil

    from quixstreams import Application
    from quixstreams.dataframe.windows.aggregations import Earliest, Latest, Max, Min, Sum

    state_dir = tempfile.mkdtemp(prefix="cryptolab-bench-quix-")
    try:
        app = Application(
            broker_address=p["kafka"], consumer_group=p["group"], auto_offset_reset="earliest",
            state_dir=state_dir, loglevel="WARNING", use_changelog_topics=False,
            consumer_extra_config=p["consumer"],
        )
        topic = app.topic(p["topic"], value_deserializer="json")  # windows use the message timestamp
        sdf = app.dataframe(topic)
        n = p["ticks"]
        clock: dict[str, Any] = {"seen": 0, "t0": None, "t1": None, "cpu0": 0.0, "cpu": 0.0}

        def count(_value: Any) -> None:
            if clock["t0"] is None:
                clock["t0"] = time.perf_counter()
                clock["cpu0"] = time.process_time()
            clock["seen"] += 1
            if clock["seen"] >= n:
                clock["t1"] = time.perf_counter()
                clock["cpu"] = time.process_time() - clock["cpu0"]
                app.stop()

        sdf = sdf.update(count)
        rows: list[list[Any]] = []
        for name in p["intervals"].split(","):
            window = sdf.tumbling_window(duration_ms=parse_interval(name), grace_ms=p["grace_ms"])
            agg = window.agg(open=Earliest("price"), high=Max("price"), low=Min("price"),
                             close=Latest("price"), volume=Sum("size")).final()

            def collect(value: Any, key: Any, _ts: int, _headers: Any, name: str = name) -> None:
                sym = key.decode() if isinstance(key, bytes) else str(key)
                rows.append([sym, name, value["start"], value["open"], value["high"], value["low"],
                             value["close"], value["volume"]])

            agg.update(collect, metadata=True)
        app.run(timeout=p["timeout"])
        if p.get("candles_out"):
            Path(p["candles_out"]).write_bytes(orjson.dumps(rows))
        seconds = clock["t1"] - clock["t0"] if clock["t1"] is not None else float("nan")
        return {"ticks": clock["seen"], "seconds": seconds,
                "ticks_per_s": clock["seen"] / seconds if clock["t1"] is not None else None,
                "cpu_seconds": clock["cpu"], "candles_final": len(rows),
                "config": "changelog topics off (its fastest setting), grace = out_of_orderness"}
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


def _work_live(p: dict[str, Any]) -> dict[str, Any]:
    """The pipeline on a live topic for a fixed time (the latency benchmark's consumer)."""
    from cryptolab.cache import RedisCache
    from cryptolab.pipeline import CandlePipeline
    from cryptolab.store import Store

    settings = Settings.from_env({}, kafka_bootstrap=p["kafka"], topic=p["topic"], store_url=p["store"],
                                 redis_url=p["redis"], intervals=p["intervals"], out_of_orderness_ms=0,
                                 allowed_lateness_ms=p.get("lateness", 60_000))
    store = Store(p["store"])
    store.init()
    pipe = CandlePipeline(settings, store=store, cache=RedisCache(p["redis"]), group=p["group"],
                          scorer=True if p["scoring"] else None)
    stats = pipe.run(timeout=p["seconds"])
    store.close()
    return {"stats": stats.to_dict()}




def _worker_main(argv: Sequence[str]) -> int:
    kind, params = argv[0], json.loads(argv[1])
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    workers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
        "pipeline": _work_pipeline, "bare": _work_bare, "quix": _work_quix, "live": _work_live, "feed": _work_feed,
    }
    result = workers[kind](params)
    sys.stdout.write(json.dumps(result, default=float) + "\n")
    sys.stdout.flush()
    return 0


# --------------------------------------------------------------------------- benchmarks/ modules


def _bench_module(name: str) -> ModuleType:
    """Load ``benchmarks/<name>.py`` of the source checkout (raises FileNotFoundError)."""
    path = _ROOT / "benchmarks" / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: this section runs from a source checkout")
    spec = importlib.util.spec_from_file_location(f"cryptolab_benchmarks_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- sections


def bench_producer(svc: _Services, cfg: BenchConfig, progress: Progress) -> dict[str, Any]:
    """TickProducer vs a bare produce loop (``benchmarks/bench_producer.py``)."""
    mod = _bench_module("bench_producer")
    settings = _settings_for(svc)
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "producer": []}
    for i in range(cfg.producer_repeat):
        for name, fn in (("bare", mod.run_bare), ("producer", mod.run_producer)):
            r = fn(settings, cfg.producer_ticks, cfg.symbols, 0)
            runs[name].append(r)
            progress(f"producer run {i + 1} {name}: {r['ticks_per_s']:,.0f} ticks/s")
    with contextlib.suppress(Exception):  # their topics
        from confluent_kafka.admin import AdminClient

        topics = [r["topic"] for rs in runs.values() for r in rs]
        topics += [t + ".dlq" for t in topics]
        for fut in AdminClient({"bootstrap.servers": svc.kafka}).delete_topics(topics).values():
            with contextlib.suppress(Exception):
                fut.result()
    best = {k: max(v, key=lambda r: r["ticks_per_s"]) for k, v in runs.items()}
    p, b = best["producer"]["ticks_per_s"], best["bare"]["ticks_per_s"]
    return {
        "producer_ticks_per_s": round(p), "producer_vs_bare": _ratio(p, b),
        "details": {"bare_ticks_per_s": round(b), "ticks": cfg.producer_ticks, "symbols": cfg.symbols,
                    "repeat": cfg.producer_repeat, "source": "benchmarks/bench_producer.py",
                    "how": "TickProducer.send_wire(SyntheticMarket.iter_wire()) vs Producer.produce of the "
                           "same pre-encoded payloads; same producer config; both include the final flush",
                    "runs": {k: [{"ticks_per_s": round(r["ticks_per_s"]), "seconds": _r(r["seconds"])}
                                 for r in v] for k, v in runs.items()}},
    }


def _compare_candles(ours: list[list[Any]], theirs: list[list[Any]]) -> dict[str, Any]:
    mine = {(r[0], r[1], r[2]): tuple(r[3:]) for r in ours}
    compared = mismatched = missing = 0
    examples: list[Any] = []
    for r in theirs:
        key = (r[0], r[1], r[2])
        got = mine.get(key)
        if got is None:
            missing += 1
            continue
        compared += 1
        if got != tuple(r[3:]):
            mismatched += 1
            if len(examples) < 3:
                examples.append({"key": list(key), "cryptolab": list(got), "quix": r[3:]})
    # Quix's last window of each series stays open (nothing after it closes it): cryptolab
    # closes it at the end of the topic.
    series = {(r[0], r[1]) for r in ours}
    return {"compared": compared, "mismatched": mismatched, "missing_in_cryptolab": missing,
            "cryptolab_candles": len(ours), "quix_candles": len(theirs),
            "cryptolab_only": len(ours) - compared, "series": len(series),
            "match": compared > 0 and mismatched == 0 and missing == 0 and len(ours) - compared <= len(series),
            "examples": examples}


def bench_consumer(svc: _Services, cfg: BenchConfig, progress: Progress) -> dict[str, Any]:
    """cryptolab vs Quix Streams vs a bare consume loop on one pre-filled topic."""
    settings = _settings_for(svc)
    topic = svc.topic("consumer", cfg.partitions)
    fill = _fill_topic(settings, topic, ticks=cfg.ticks, symbols=cfg.symbols)
    progress(f"consumer: topic {topic} filled with {fill['ticks']:,} ticks ({fill['seconds']} s)")
    n = fill["ticks"]
    timeout = 120 + n / 2_000
    tmp = Path(tempfile.mkdtemp(prefix="cryptolab-bench-"))
    common = {"kafka": svc.kafka, "topic": topic, "ticks": n, "intervals": _INTERVALS}
    details: dict[str, Any] = {"ticks": n, "symbols": cfg.symbols, "intervals": _INTERVALS,
                               "partitions": cfg.partitions, "fill": fill}
    try:
        # alternating runs of each side, the best kept: a shared machine's noise hits both
        bares: list[dict[str, Any]] = []
        runs: list[dict[str, Any]] = []
        for i in range(cfg.consumer_repeat):
            for decoder in ("orjson", "msgspec"):
                b = _worker("bare", {**common, "group": f"bare-{decoder}-{i}-{svc.run_id}", "batch_size": 20_000,
                                     "timeout": timeout, "decoder": decoder}, timeout=timeout + 60)
                bares.append(b)
                progress(f"consumer: bare consume + {decoder} decode {b['ticks_per_s']:,.0f} ticks/s")
            svc.flush_redis()
            run = _worker("pipeline", {**common, "group": f"cryptolab-{i}-{svc.run_id}", "store": svc.database(),
                                       "redis": svc.redis, "scoring": False,
                                       "candles_out": str(tmp / f"cryptolab-{i}.json")}, timeout=timeout + 60)
            runs.append(run)
            progress(f"consumer: cryptolab {run['ticks_per_s']:,.0f} ticks/s")
        bare = max(bares, key=lambda r: r["ticks_per_s"])  # the ceiling: the faster decoder
        best = max(range(len(runs)), key=lambda i: runs[i]["ticks_per_s"])
        ours = runs[best]
        (tmp / f"cryptolab-{best}.json").rename(tmp / "cryptolab.json")
        svc.notes["consumer_cpu_us_per_tick"] = min(r["cpu_us_per_tick"] for r in runs)
        details["bare"] = bare
        details["bare_runs"] = bares
        details["cryptolab"] = ours
        details["cryptolab_runs"] = [{k: r[k] for k in ("ticks_per_s", "seconds", "cpu_us_per_tick")} for r in runs]
        # CPU per tick (all threads, best run of each): steadier than wall time on a shared machine
        details["consumer_vs_bare_by_cpu"] = _ratio(min(b["cpu_us_per_tick"] for b in bares),
                                                    min(r["cpu_us_per_tick"] for r in runs))
        result: dict[str, Any] = {
            "consumer_ticks_per_s": round(ours["ticks_per_s"]),
            "consumer_vs_bare": _ratio(ours["ticks_per_s"], bare["ticks_per_s"]),
            "quix_ticks_per_s": None, "consumer_vs_quix": None,
        }
        checks: dict[str, Any] = {"consumer_all_ticks": all(r["ticks"] == n for r in [*runs, *bares])}
        if cfg.quix:
            quix_timeout = 300 + n / 1_000
            from cryptolab.kafka import consumer_config

            fetch = {k: v for k, v in consumer_config(settings).items()
                     if k.startswith(("fetch.", "max.partition.fetch", "queued."))}
            quix = _worker("quix", {**common, "group": f"quix-{svc.run_id}", "grace_ms": settings.out_of_orderness_ms,
                                    "consumer": fetch, "timeout": quix_timeout,
                                    "candles_out": str(tmp / "quix.json")}, timeout=quix_timeout + 120)
            progress(f"consumer: quix streams {quix['ticks_per_s']:,.0f} ticks/s")
            details["quix"] = quix
            cmp = _compare_candles(orjson.loads((tmp / "cryptolab.json").read_bytes()),
                                   orjson.loads((tmp / "quix.json").read_bytes()))
            details["candles_vs_quix"] = cmp
            checks["consumer_candles_equal_quix"] = cmp["match"]
            checks["consumer_all_ticks"] = checks["consumer_all_ticks"] and quix["ticks"] == n
            result["quix_ticks_per_s"] = round(quix["ticks_per_s"])
            result["consumer_vs_quix"] = _ratio(ours["ticks_per_s"], quix["ticks_per_s"])
        details["how"] = ("each side in its own process, clock from its first message to the last one "
                          "processed (cryptolab: to the last commit); cryptolab with scoring off, like Quix; "
                          "bare: consume(20,000) and decode each value to Python objects with orjson and "
                          "with msgspec, the faster one kept as the ceiling")
        result["details"] = details
        result["checks"] = checks
        return result
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def _work_feed(p: dict[str, Any]) -> dict[str, Any]:
    """A live feed: ticks stamped with the wall clock when sent, ``rate`` a second, paced."""
    from cryptolab.models import Tick
    from cryptolab.producer import TickProducer
    from cryptolab.sources.synthetic import synthetic_symbols

    settings = Settings.from_env({}, kafka_bootstrap=p["kafka"])
    symbols = synthetic_symbols(p["symbols"])
    rng = np.random.default_rng(5)
    prices = {s: 100.0 * (1 + i) for i, s in enumerate(symbols)}
    step = 0.005
    per_step = max(1, round(p["rate"] * step))
    sent = 0
    with TickProducer(settings, topic=p["topic"], create_topic=False, linger_ms=p["linger_ms"]) as producer:
        t_end = time.monotonic() + p["seconds"]
        nxt = time.monotonic()
        i = 0
        while time.monotonic() < t_end:
            batch = []
            for move in rng.normal(0.0, 1e-4, per_step).tolist():
                sym = symbols[i % len(symbols)]
                i += 1
                prices[sym] = round(prices[sym] * math.exp(move), 4)
                batch.append(Tick(symbol=sym, ts_ms=int(time.time() * 1000), price=prices[sym], size=0.5,
                                  source="bench"))
            producer.send_many(batch)
            producer.poll(0)
            sent += len(batch)
            nxt += step
            delay = nxt - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    return {"ticks_sent": sent}


def _spawn(kind: str, params: dict[str, Any]) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOLAB_")}
    return subprocess.Popen([sys.executable, "-m", "cryptolab.bench", "_worker", kind, json.dumps(params)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _collect(proc: subprocess.Popen[str], what: str, timeout: float = 60) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{what} failed:\n" + "\n".join(err.strip().splitlines()[-15:]))
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _latency_run(svc: _Services, cfg: BenchConfig, *, scoring: bool) -> dict[str, Any]:
    """One live run: feed (own process) -> pipeline (own process) -> Redis subscriber (here)."""
    from cryptolab.cache import RedisCache

    topic = svc.topic("latency" + ("s" if scoring else ""), cfg.partitions)
    intervals = "1s,5s,15s"
    svc.flush_redis()
    run_s = cfg.latency_warmup_s + cfg.latency_seconds
    cache = RedisCache(str(svc.redis))
    sub = cache.subscribe(["cryptolab:candles:*"])
    consumer = _spawn("live", {"kafka": svc.kafka, "topic": topic, "store": svc.database(), "redis": svc.redis,
                               "group": f"latency-{svc.run_id}", "intervals": intervals, "scoring": scoring,
                               "seconds": run_s + 8, "lateness": cfg.latency_lateness_ms})
    feed = _spawn("feed", {"kafka": svc.kafka, "topic": topic, "symbols": cfg.symbols, "rate": cfg.latency_rate,
                           "linger_ms": cfg.latency_linger_ms, "seconds": run_s})
    event_lat: list[float] = []
    end_lat: list[float] = []
    finals_seen: set[tuple[str, int]] = set()
    received = 0
    try:
        measure_from = time.time() * 1000 + cfg.latency_warmup_s * 1000
        deadline = time.monotonic() + run_s + 1
        loads = orjson.loads
        while time.monotonic() < deadline:
            got = sub.get(timeout=0.5)
            if got is None:
                continue
            recv = time.time() * 1000
            d = loads(got[1])
            received += 1
            if d["last_ts"] < measure_from:
                continue
            event_lat.append(recv - d["last_ts"])
            if d["final"] and d["revision"] == 0:
                key = (got[0], d["window_start"])
                if key not in finals_seen:
                    finals_seen.add(key)
                    end_lat.append(recv - d["window_end"])
    finally:
        sub.close()
        cache.close()
        fed = _collect(feed, "latency feed")
        stats = _collect(consumer, "latency consumer")["stats"]
    return {
        "event_to_publish_ms_p50": _r(_percentile(event_lat, 50), 2),
        "event_to_publish_ms_p99": _r(_percentile(event_lat, 99), 2),
        "event_to_publish_ms_max": _r(max(event_lat), 2) if event_lat else None,
        "window_end_to_publish_ms_p50": _r(_percentile(end_lat, 50), 2),
        "window_end_to_publish_ms_p99": _r(_percentile(end_lat, 99), 2),
        "window_end_to_publish_ms_max": _r(max(end_lat), 2) if end_lat else None,
        "updates_measured": len(event_lat), "window_closes_measured": len(end_lat),
        "messages_received": received, "ticks_sent": fed["ticks_sent"], "scoring": scoring,
        "pipeline": stats,
    }


def bench_latency(svc: _Services, cfg: BenchConfig, progress: Progress) -> dict[str, Any]:
    """Live paced feed -> pipeline -> Redis pub/sub, timed by a subscriber (scoring off, then on)."""
    off = _latency_run(svc, cfg, scoring=False)
    progress(f"latency: window end -> published p99 {off['window_end_to_publish_ms_p99']} ms "
             f"({off['window_closes_measured']:,} closes, {off['updates_measured']:,} updates)")
    details: dict[str, Any] = {
        **{k: v for k, v in off.items() if k not in ("event_to_publish_ms_p50", "event_to_publish_ms_p99",
                                                      "window_end_to_publish_ms_p99")},
        "rate_ticks_per_s": cfg.latency_rate, "symbols": cfg.symbols, "intervals": "1s,5s,15s",
        "out_of_orderness_ms": 0, "allowed_lateness_ms": cfg.latency_lateness_ms,
        "producer_linger_ms": cfg.latency_linger_ms, "seconds": cfg.latency_seconds,
        "warmup_s": cfg.latency_warmup_s,
        "how": "ticks stamped with the wall clock when sent by a paced feed process, the pipeline "
               "(default batch settings) in its own process, a pub/sub subscriber on cryptolab:candles:* timing each message on arrival: "
               "minus the candle's last tick time, and (first final of each window) minus its window end. "
               "Windows 1s/5s/15s with 1 s lateness: the 1m/5m/15m + 60 s setup 60x faster, so that "
               "thousands of windows close in a short run. Keys: scoring off (as in the consumer "
               "benchmark); with_scoring: the same with the default detectors.",
    }
    if cfg.latency_scoring:
        on = _latency_run(svc, cfg, scoring=True)
        progress(f"latency with scoring: window end -> published p99 {on['window_end_to_publish_ms_p99']} ms")
        details["with_scoring"] = on
    return {
        "latency_event_to_publish_ms_p50": off["event_to_publish_ms_p50"],
        "latency_event_to_publish_ms_p99": off["event_to_publish_ms_p99"],
        "latency_window_end_to_publish_ms_p99": off["window_end_to_publish_ms_p99"],
        "details": details,
    }


def bench_history(svc: _Services, cfg: BenchConfig, progress: Progress) -> dict[str, Any]:
    """Store.history vs the raw driver (``benchmarks/bench_store.py``)."""
    mod = _bench_module("bench_store")
    tmp = None
    if svc.pg:
        url = svc.database()
    else:
        tmp = tempfile.TemporaryDirectory()
        url = f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    try:
        out = mod.bench_history(url, cfg.store_repeat, max(5, cfg.store_repeat // 10))
    finally:
        if tmp is not None:
            tmp.cleanup()
    h = out["history_1000"]
    progress(f"history: 1,000 candles p50 {h['history']['p50_ms']:.3f} ms (raw {h['raw_fetch']['p50_ms']:.3f} ms)")
    return {"history_1000_ms_p50": h["history"]["p50_ms"], "history_vs_raw": h["history_vs_raw_p50"],
            "details": {**out, "source": "benchmarks/bench_store.py",
                        "history_vs_raw_is": "ratio of the medians, 1,000 candles"}}


def bench_latest(svc: _Services, cfg: BenchConfig, progress: Progress) -> dict[str, Any]:
    """latest() vs a raw redis-py GET (``benchmarks/bench_store.py``)."""
    mod = _bench_module("bench_store")
    out = mod.bench_latest(svc.redis, cfg.store_repeat * 5, max(5, cfg.store_repeat // 2))
    progress(f"latest: p99 {out['latest']['p99_ms']:.3f} ms (raw GET p99 {out['raw_get']['p99_ms']:.3f} ms)")
    return {"latest_ms_p99": out["latest"]["p99_ms"], "latest_vs_raw": out["latest_vs_raw_p50"],
            "details": {**out, "source": "benchmarks/bench_store.py", "latest_vs_raw_is": "ratio of the medians"}}


def bench_scoring(svc: _Services, cfg: BenchConfig, progress: Progress) -> dict[str, Any]:
    """Scoring overhead at 100,000 ticks/s (``benchmarks/bench_scoring.py``)."""
    mod = _bench_module("bench_scoring")
    with tempfile.TemporaryDirectory() as tmp:
        out_path = Path(tmp) / "scoring.json"
        argv = ["--ticks", str(cfg.scoring_ticks), "--repeat", str(cfg.scoring_repeat), "--json", str(out_path)]
        text = io.StringIO()
        old_argv = sys.argv
        sys.argv = ["bench_scoring.py", *argv]
        try:
            with contextlib.redirect_stdout(text):
                mod.main()
        finally:
            sys.argv = old_argv
        out = orjson.loads(out_path.read_bytes())
    # The CPU a consumer spends per tick: measured on the real consumer when the consumer
    # section ran (decode, validate, fold, commit to PostgreSQL, publish to Redis), else the
    # streaming aggregator alone (bench_scoring's own figure; batch is a far cheaper proxy).
    scenario = out["scenario"]
    per_tick = svc.notes.get("consumer_cpu_us_per_tick")
    if per_tick:
        overhead = scenario["candles_per_s"] * out["scoring_us_per_candle"] / (scenario["rate_ticks_per_s"] * per_tick)
        basis = f"the consumer's measured CPU per tick ({per_tick:.2f} us, consumer section)"
    else:
        overhead = out["scoring_cpu_overhead_vs_streaming"]
        basis = "the streaming aggregator's CPU per tick (the consumer section did not run)"
    progress(f"scoring: overhead {overhead:.2%} at 100,000 ticks/s over 1,000 symbols")
    return {"scoring_cpu_overhead": _r(overhead, 4),
            "details": {**out, "source": "benchmarks/bench_scoring.py", "scoring_cpu_overhead_basis": basis,
                        "scoring_cpu_overhead_vs_batch_proxy": out["scoring_cpu_overhead"]}}


def _batch_ticks(n: int, symbols: int, seed: int = 0) -> Any:
    """``n`` in-order ticks over ``symbols`` symbols (prices rounded to cents: many ties)."""
    import pandas as pd

    from cryptolab.sources.synthetic import synthetic_symbols

    rng = np.random.default_rng(seed)
    names = np.array(synthetic_symbols(symbols), dtype=object)
    codes = rng.integers(0, symbols, n)
    ts = _START_MS + np.sort(rng.integers(0, max(1, n), n))  # ~1,000 ticks/s of event time
    base = rng.uniform(10, 1_000, symbols)
    price = np.round(base[codes] * np.exp(rng.normal(0.0, 0.002, n)), 2)
    size = np.round(rng.exponential(0.5, n), 4)
    return pd.DataFrame({"symbol": names[codes], "ts_ms": ts, "price": price, "size": size})


def _polars_candles(frame: Any, intervals: str) -> Any:
    import polars as pl

    pl_col = pl.col
    parts = []
    for name in intervals.split(","):
        iv = parse_interval(name)
        parts.append(
            frame.lazy()
            .with_columns(window_start=pl_col("ts_ms") - pl_col("ts_ms") % iv)
            .group_by("symbol", "window_start")
            .agg(
                open=pl_col("price").first(), high=pl_col("price").max(), low=pl_col("price").min(),
                close=pl_col("price").last(), volume=pl_col("size").sum(),
                vwap=(pl_col("price") * pl_col("size")).sum() / pl_col("size").sum(),
                trades=pl.len(), first_ts=pl_col("ts_ms").min(), last_ts=pl_col("ts_ms").max(),
            )
            .with_columns(interval=pl.lit(name))
        )
    return pl.concat(pl.collect_all(parts))


def bench_batch(svc: _Services, cfg: BenchConfig, progress: Progress) -> dict[str, Any]:
    """candles_from_ticks vs a polars group-by computing the same candles."""
    import polars as pl

    from cryptolab.batch import _THREADS as batch_threads
    from cryptolab.batch import candles_from_ticks, with_ms_windows

    ticks = _batch_ticks(cfg.batch_ticks, cfg.symbols)
    frame = pl.from_pandas(ticks)
    n = len(ticks)

    def best(fn: Callable[[], Any]) -> tuple[float, Any]:
        out, best_s = None, float("inf")
        for _ in range(2):  # the first run of each pays the page faults of fresh memory
            gc.collect()
            t0 = time.perf_counter()
            out = fn()
            best_s = min(best_s, time.perf_counter() - t0)
        return best_s, out

    ours_s = theirs_s = float("inf")
    ours: Any = None
    theirs: Any = None
    for _ in range(cfg.batch_repeat):  # alternating, the best of each kept
        s, ours = best(lambda: candles_from_ticks(ticks, _INTERVALS))
        ours_s = min(ours_s, s)
        s, theirs = best(lambda: _polars_candles(frame, _INTERVALS))
        theirs_s = min(theirs_s, s)
    progress(f"batch: candles_from_ticks {n / ours_s:,.0f} ticks/s")
    progress(f"batch: polars {n / theirs_s:,.0f} ticks/s")
    mine = with_ms_windows(ours).set_index(["symbol", "interval", "window_start"]).sort_index()
    other = theirs.to_pandas().set_index(["symbol", "interval", "window_start"]).sort_index()
    same_keys = mine.index.equals(other.index)
    exact = ["open", "high", "low", "close", "trades", "first_ts", "last_ts"]
    equal_exact = same_keys and all(
        np.array_equal(mine[c].to_numpy(), other[c].to_numpy()) for c in exact
    )
    close = same_keys and bool(np.allclose(mine["volume"].to_numpy(), other["volume"].to_numpy(), rtol=1e-9, atol=0))
    return {
        "batch_ticks_per_s": round(n / ours_s), "batch_vs_polars": _r(theirs_s / ours_s),
        "details": {"ticks": n, "symbols": cfg.symbols, "intervals": _INTERVALS, "candles": len(mine),
                    "cryptolab_seconds": _r(ours_s), "polars_seconds": _r(theirs_s),
                    "polars_ticks_per_s": round(n / theirs_s), "polars_threads": pl.thread_pool_size(),
                    "cryptolab_threads": batch_threads,
                    "how": "the best of alternating runs (batch_repeat rounds of 2 runs each); cryptolab: "
                           "candles_from_ticks from a pandas DataFrame (its chunks fold in threads); "
                           "polars: a lazy group_by per interval collected together, from its own "
                           "DataFrame (its thread pool)",
                    "same_windows": same_keys, "ohlc_trades_equal": equal_exact,
                    "volume_close": close,
                    "note": "polars sums volume pairwise, cryptolab in arrival order (like the stream): "
                            "volumes agree to 1e-9, the rest exactly"},
        "checks": {"batch_candles_equal_polars": bool(equal_exact and close)},
    }


def _memory_run(svc: _Services, topic: str, ticks: int, *, scoring: bool) -> dict[str, Any]:
    """Consume ``topic`` to its end in a fresh process; sample its RSS meanwhile."""
    import psutil

    svc.flush_redis()
    params = {"kafka": svc.kafka, "topic": topic, "ticks": ticks, "intervals": _INTERVALS,
              "group": f"memory-{scoring}-{svc.run_id}", "store": svc.database(), "redis": svc.redis,
              "scoring": scoring}
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOLAB_")}
    proc = subprocess.Popen([sys.executable, "-m", "cryptolab.bench", "_worker", "pipeline", json.dumps(params)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = 0.0
    ps = psutil.Process(proc.pid)
    deadline = time.monotonic() + 600 + ticks / 100
    while proc.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, ps.memory_info().rss / 2**20)
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
    out, err = proc.communicate()
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError("memory consumer failed:\n" + "\n".join(err.strip().splitlines()[-15:]))
    res = json.loads(lines[-1])
    return {"rss_peak_mb": _r(max(peak, res["rss_peak_mb"] or 0.0), 1),
            "rss_after_start_mb": _r(res["rss_ready_mb"], 1), "rss_peak_sampled_mb": _r(peak, 1),
            "rss_peak_vmhwm_mb": _r(res["rss_peak_mb"], 1), "scoring": scoring, "pipeline": res["stats"]}


def bench_memory(svc: _Services, cfg: BenchConfig, progress: Progress) -> dict[str, Any]:
    """Peak RSS of a consumer process holding memory_symbols x 3 intervals (scoring on, then off)."""
    settings = _settings_for(svc)
    topic = svc.topic("memory", cfg.partitions)
    fill = _fill_topic(settings, topic, ticks=cfg.memory_ticks, symbols=cfg.memory_symbols,
                       minutes=cfg.memory_minutes, seed=3)
    progress(f"memory: topic filled with {fill['ticks']:,} ticks over {cfg.memory_symbols:,} symbols")
    on = _memory_run(svc, topic, fill["ticks"], scoring=True)
    progress(f"memory: peak RSS {on['rss_peak_mb']:,.0f} MiB (scoring on)")
    off = _memory_run(svc, topic, fill["ticks"], scoring=False)
    progress(f"memory: peak RSS {off['rss_peak_mb']:,.0f} MiB (scoring off)")
    return {"consumer_rss_mb": on["rss_peak_mb"],
            "details": {"symbols": cfg.memory_symbols, "intervals": _INTERVALS, "ticks": fill["ticks"],
                        "event_minutes": cfg.memory_minutes, "scoring_on": on, "scoring_off": off,
                        "how": "the consumer (CandlePipeline, PostgreSQL + Redis, default detectors) in its "
                               "own process on a pre-filled topic, RSS sampled every 50 ms and the "
                               "kernel's high-water mark (VmHWM); the key is with scoring on"}}


_SECTION_FUNCS: Final[dict[str, tuple[Callable[[_Services, BenchConfig, Progress], dict[str, Any]], tuple[str, ...]]]] = {
    "producer": (bench_producer, ("kafka",)),
    "consumer": (bench_consumer, ("kafka", "pg", "redis")),
    "latency": (bench_latency, ("kafka", "pg", "redis")),
    "history": (bench_history, ()),
    "latest": (bench_latest, ("redis",)),
    "scoring": (bench_scoring, ()),
    "batch": (bench_batch, ()),
    "memory": (bench_memory, ("kafka", "pg", "redis")),
}


def resolve_sections(only: Sequence[str] | str | None) -> list[str]:
    """Sections to run for ``--only`` (section names or result keys, comma-separated).

    Examples
    --------
    >>> resolve_sections("batch,consumer_vs_quix")
    ['consumer', 'batch']
    >>> resolve_sections(None) == list(SECTIONS)
    True
    """
    if only is None:
        return list(SECTIONS)
    names = [x.strip() for x in (only.split(",") if isinstance(only, str) else only) if x.strip()]
    wanted: set[str] = set()
    for name in names:
        if name in SECTIONS:
            wanted.add(name)
        elif name in KEYS:
            wanted.add(KEYS[name][0])
        else:
            known = ", ".join(SECTIONS)
            raise ValueError(f"unknown benchmark {name!r}: give sections ({known}) or result keys")
    return [s for s in SECTIONS if s in wanted]


def run_suite(
    settings: Settings | None = None,
    *,
    config: BenchConfig | None = None,
    only: Sequence[str] | str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the suite (or the sections in ``only``) and return the result document.

    Parameters
    ----------
    settings
        Where the services are (default: ``Settings.from_env()``). Sections whose
        services are not configured are skipped, with the reason under ``"skipped"``.
    config
        Sizes (default: the issue's, :class:`BenchConfig`).
    only
        Section names or result keys (see :data:`SECTIONS`, :data:`KEYS`).
    progress
        Called with a line of text as figures come in (the CLI prints them).

    Returns
    -------
    dict
        Every key of :data:`KEYS` (``None`` when not measured), and ``targets``,
        ``checks``, ``skipped``, ``details``, ``machine``, ``versions``, ``config``.
    """
    settings = settings if settings is not None else Settings.from_env()
    cfg = config or BenchConfig()
    say: Progress = progress or (lambda line: log.info("%s", line))
    sections = resolve_sections(only)
    t0 = time.perf_counter()
    result: dict[str, Any] = dict.fromkeys(KEYS)
    result["machine"] = machine_info()
    details: dict[str, Any] = {}
    checks: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    svc = _Services(settings)
    try:
        for name in sections:
            fn, needs = _SECTION_FUNCS[name]
            why = svc.why_not(*needs)
            if why is not None:
                skipped[name] = why
                say(f"{name}: skipped ({why})")
                continue
            waited = settle(cfg.settle_max_s)
            say(f"{name}: running" + (f" (after {waited} s for the machine to settle)" if waited >= 1 else ""))
            started = time.perf_counter()
            try:
                out = fn(svc, cfg, say)
            except Exception as exc:  # a failed section is reported, the others still run
                log.exception("benchmark section %s failed", name)
                skipped[name] = f"failed: {type(exc).__name__}: {exc}"
                continue
            details[name] = {**out.pop("details", {}), "section_seconds": _r(time.perf_counter() - started, 1),
                             "settle_seconds": waited}
            checks.update(out.pop("checks", {}))
            result.update(out)
    finally:
        svc.close()
    result["targets"] = check_targets(result)
    result["checks"] = checks
    result["skipped"] = skipped
    result["details"] = details
    result["versions"] = versions(settings)
    result["config"] = {**dataclasses.asdict(cfg), "sections": sections,
                        "kafka": settings.kafka_bootstrap, "store": redact_url(settings.store_url),
                        "redis": redact_url(svc.redis)}
    result["machine"]["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    result["elapsed_s"] = round(time.perf_counter() - t0, 1)
    result["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return result


if __name__ == "__main__":  # pragma: no cover - worker processes of the suite
    if len(sys.argv) >= 4 and sys.argv[1] == "_worker":
        raise SystemExit(_worker_main(sys.argv[2:]))
    raise SystemExit("usage: cryptolab bench --json PATH (this module's own entry is for its workers)")
