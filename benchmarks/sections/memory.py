"""``memory``: peak RSS of a consumer process holding ``memory_symbols`` symbols x 3 intervals."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from benchmarks.results import rnd
from benchmarks.services import Services, fill_topic, settings_for
from benchmarks.spec import INTERVALS, BenchConfig, Progress
from benchmarks.workers import spawn, worker_result

__all__ = ["run"]

_HOW = ("the consumer (CandlePipeline, PostgreSQL + Redis, default detectors) in its "
        "own process on a pre-filled topic, RSS sampled every 50 ms and the "
        "kernel's high-water mark (VmHWM); the key is with scoring on")


def _memory_run(svc: Services, topic: str, ticks: int, *, scoring: bool) -> dict[str, Any]:
    """Consume ``topic`` to its end in a fresh process; sample its RSS meanwhile."""
    import psutil

    svc.flush_redis()
    params = {"kafka": svc.kafka, "topic": topic, "ticks": ticks, "intervals": INTERVALS,
              "group": f"memory-{scoring}-{svc.run_id}", "store": svc.database(), "redis": svc.redis,
              "scoring": scoring}
    proc = spawn("pipeline", params)
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
    res = worker_result("memory consumer", proc.returncode, out, err)
    return {"rss_peak_mb": rnd(max(peak, res["rss_peak_mb"] or 0.0), 1),
            "rss_after_start_mb": rnd(res["rss_ready_mb"], 1), "rss_peak_sampled_mb": rnd(peak, 1),
            "rss_peak_vmhwm_mb": rnd(res["rss_peak_mb"], 1), "scoring": scoring, "pipeline": res["stats"]}


def run(svc: Services, cfg: BenchConfig, progress: Progress) -> dict[str, Any]:
    """Peak RSS of a consumer process holding memory_symbols x 3 intervals (scoring on, then off)."""
    settings = settings_for(svc)
    topic = svc.topic("memory", cfg.partitions)
    fill = fill_topic(settings, topic, ticks=cfg.memory_ticks, symbols=cfg.memory_symbols,
                      minutes=cfg.memory_minutes, seed=3)
    progress(f"memory: topic filled with {fill['ticks']:,} ticks over {cfg.memory_symbols:,} symbols")
    on = _memory_run(svc, topic, fill["ticks"], scoring=True)
    progress(f"memory: peak RSS {on['rss_peak_mb']:,.0f} MiB (scoring on)")
    off = _memory_run(svc, topic, fill["ticks"], scoring=False)
    progress(f"memory: peak RSS {off['rss_peak_mb']:,.0f} MiB (scoring off)")
    return {"consumer_rss_mb": on["rss_peak_mb"],
            "details": {"symbols": cfg.memory_symbols, "intervals": INTERVALS, "ticks": fill["ticks"],
                        "event_minutes": cfg.memory_minutes, "scoring_on": on, "scoring_off": off,
                        "how": _HOW}}
