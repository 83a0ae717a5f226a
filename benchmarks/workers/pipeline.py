"""cryptolab's consumer in a worker process: on a pre-filled topic to its end, or live for a while."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import orjson

from cryptolab.config import Settings

__all__ = ["peak_rss_mb", "rss_mb", "work_live", "work_pipeline"]


def rss_mb() -> float:
    """This process's resident memory now (MiB)."""
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def peak_rss_mb() -> float | None:
    """This process's peak RSS (``VmHWM``; getrusage's would include the parent's before exec)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def work_pipeline(p: dict[str, Any]) -> dict[str, Any]:
    """The cryptolab consumer on a pre-filled topic, until its end is committed.

    The clock starts when the first batch arrives (the pipeline's ``on_batch``) and stops
    when :meth:`~cryptolab.pipeline.CandlePipeline.run` returns, its last commit landed.
    """
    from cryptolab.cache import RedisCache
    from cryptolab.pipeline import CandlePipeline
    from cryptolab.store import Store

    settings = Settings.from_env({}, kafka_bootstrap=p["kafka"], topic=p["topic"], store_url=p["store"],
                                 redis_url=p["redis"], intervals=p["intervals"])
    store = Store(p["store"])
    store.init()
    cache = RedisCache(p["redis"])
    first: list[float] = []
    wall: list[float] = []  # the same instants on the wall clock: comparable between processes

    def start_clock(_n: int) -> None:
        if not first:
            first.append(time.perf_counter())
            wall.append(time.time())

    pipe = CandlePipeline(settings, store=store, cache=cache, group=p["group"],
                          scorer=True if p["scoring"] else None, on_batch=start_clock)
    rss_ready = rss_mb()
    cpu0 = time.process_time()
    stats = pipe.run(stop_at_end=True)
    t_end = time.perf_counter()
    wall.append(time.time())
    cpu = time.process_time() - cpu0
    seconds = t_end - first[0] if first else float("nan")
    out: dict[str, Any] = {
        "ticks": stats.ticks, "seconds": seconds, "ticks_per_s": stats.ticks / seconds if first else None,
        "cpu_seconds": cpu, "cpu_us_per_tick": cpu / stats.ticks * 1e6 if stats.ticks else None,
        "stats": stats.to_dict(), "rss_ready_mb": rss_ready, "rss_peak_mb": peak_rss_mb(),
        "open_windows_end": pipe.aggregator.open_windows(),
        "wall_first": wall[0] if first else None, "wall_end": wall[-1],
    }
    if p.get("candles_out"):
        rows = [[c.symbol, c.interval, c.window_start, c.open, c.high, c.low, c.close, c.volume]
                for c in store.candles()]
        Path(p["candles_out"]).write_bytes(orjson.dumps(rows))
    store.close()
    cache.close()
    return out


def work_live(p: dict[str, Any]) -> dict[str, Any]:
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
