"""``latency``: a live, paced feed -> the pipeline -> Redis pub/sub, timed by a subscriber.

The feed and the pipeline run in worker processes of their own; the subscriber here times
each candle message on arrival: minus the candle's last tick time (event -> published),
and, for the first final version of each window, minus its window end.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from benchmarks.results import percentile, rnd
from benchmarks.services import Services
from benchmarks.spec import BenchConfig, Progress
from benchmarks.workers import collect, spawn

__all__ = ["run"]

#: The live run's windows: the 1m/5m/15m setup 60x faster, so that many close in a short run.
_INTERVALS = "1s,5s,15s"

_HOW = ("ticks stamped with the wall clock when sent by a paced feed process, the pipeline "
        "(default batch settings) in its own process, a pub/sub subscriber on cryptolab:candles:* timing each message on arrival: "
        "minus the candle's last tick time, and (first final of each window) minus its window end. "
        "Windows 1s/5s/15s with 1 s lateness: the 1m/5m/15m + 60 s setup 60x faster, so that "
        "thousands of windows close in a short run. Keys: scoring off (as in the consumer "
        "benchmark); with_scoring: the same with the default detectors.")


def _listen(sub: Any, until: float, measure_from: float) -> tuple[list[float], list[float], int]:
    """Time the candle messages of ``sub`` until the monotonic time ``until``: event -> published
    latencies, window end -> first final latencies (ms) and the number of messages received."""
    event_lat: list[float] = []
    end_lat: list[float] = []
    finals_seen: set[tuple[str, int]] = set()
    received = 0
    loads = orjson.loads
    while time.monotonic() < until:
        got = sub.get(timeout=0.5)
        if got is None:
            continue
        recv = time.time() * 1000
        received += 1
        try:
            d = loads(got[1])
            last_ts = d["last_ts"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            # Pub/sub channels are shared by every client of the Redis server, whatever its
            # logical database: another program's message on these channels is not ours to time.
            continue
        if last_ts < measure_from:  # warm-up, or another program's candle
            continue
        event_lat.append(recv - last_ts)
        if d["final"] and d["revision"] == 0:
            key = (got[0], d["window_start"])
            if key not in finals_seen:
                finals_seen.add(key)
                end_lat.append(recv - d["window_end"])
    return event_lat, end_lat, received


def _latency_run(svc: Services, cfg: BenchConfig, *, scoring: bool) -> dict[str, Any]:
    """One live run: feed (own process) -> pipeline (own process) -> Redis subscriber (here)."""
    from cryptolab.cache import RedisCache

    topic = svc.topic("latency" + ("s" if scoring else ""), cfg.partitions)
    svc.flush_redis()
    run_s = cfg.latency_warmup_s + cfg.latency_seconds
    cache = RedisCache(str(svc.redis))
    sub = cache.subscribe(["cryptolab:candles:*"])
    consumer = spawn("live", {"kafka": svc.kafka, "topic": topic, "store": svc.database(), "redis": svc.redis,
                              "group": f"latency-{svc.run_id}", "intervals": _INTERVALS, "scoring": scoring,
                              "seconds": run_s + 8, "lateness": cfg.latency_lateness_ms})
    feed = spawn("feed", {"kafka": svc.kafka, "topic": topic, "symbols": cfg.symbols, "rate": cfg.latency_rate,
                          "linger_ms": cfg.latency_linger_ms, "seconds": run_s})
    try:
        measure_from = time.time() * 1000 + cfg.latency_warmup_s * 1000
        event_lat, end_lat, received = _listen(sub, time.monotonic() + run_s + 1, measure_from)
    finally:
        sub.close()
        cache.close()
        fed = collect(feed, "latency feed")
        stats = collect(consumer, "latency consumer")["stats"]
    return {
        "event_to_publish_ms_p50": rnd(percentile(event_lat, 50), 2),
        "event_to_publish_ms_p99": rnd(percentile(event_lat, 99), 2),
        "event_to_publish_ms_max": rnd(max(event_lat), 2) if event_lat else None,
        "window_end_to_publish_ms_p50": rnd(percentile(end_lat, 50), 2),
        "window_end_to_publish_ms_p99": rnd(percentile(end_lat, 99), 2),
        "window_end_to_publish_ms_max": rnd(max(end_lat), 2) if end_lat else None,
        "updates_measured": len(event_lat), "window_closes_measured": len(end_lat),
        "messages_received": received, "ticks_sent": fed["ticks_sent"], "scoring": scoring,
        "pipeline": stats,
    }


def run(svc: Services, cfg: BenchConfig, progress: Progress) -> dict[str, Any]:
    """Live paced feed -> pipeline -> Redis pub/sub, timed by a subscriber (scoring off, then on)."""
    off = _latency_run(svc, cfg, scoring=False)
    progress(f"latency: window end -> published p99 {off['window_end_to_publish_ms_p99']} ms "
             f"({off['window_closes_measured']:,} closes, {off['updates_measured']:,} updates)")
    details: dict[str, Any] = {
        **{k: v for k, v in off.items() if k not in ("event_to_publish_ms_p50", "event_to_publish_ms_p99",
                                                      "window_end_to_publish_ms_p99")},
        "rate_ticks_per_s": cfg.latency_rate, "symbols": cfg.symbols, "intervals": _INTERVALS,
        "out_of_orderness_ms": 0, "allowed_lateness_ms": cfg.latency_lateness_ms,
        "producer_linger_ms": cfg.latency_linger_ms, "seconds": cfg.latency_seconds,
        "warmup_s": cfg.latency_warmup_s, "how": _HOW,
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
