"""The machine the figures come from: CPU, memory, load, versions; and waiting for it to be quiet."""

from __future__ import annotations

import contextlib
import os
import platform
import time
from pathlib import Path
from typing import Any

from benchmarks.services import pg_conninfo
from cryptolab.config import Settings

__all__ = ["cpu_busy", "machine_info", "settle", "versions"]

#: Distributions whose versions a result records: cryptolab, its peers and its drivers.
_DISTRIBUTIONS = ("cryptolab", "confluent-kafka", "quixstreams", "polars", "pandas", "numpy", "pyarrow",
                  "sqlalchemy", "psycopg", "redis", "hiredis", "orjson", "msgspec", "river")


def machine_info() -> dict[str, Any]:
    """The machine the figures come from (CPU, memory, load).

    Examples
    --------
    >>> info = machine_info()
    >>> info["cpus"] >= 1 and isinstance(info["python"], str)
    True
    """
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
    for dist in _DISTRIBUTIONS:
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

            with psycopg.connect(pg_conninfo(settings.store_url), connect_timeout=5) as conn:
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


def cpu_busy(seconds: float) -> float | None:
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
        busy = cpu_busy(window)
        if busy is None or busy < busy_below:
            break
    return round(time.perf_counter() - t0, 1)
