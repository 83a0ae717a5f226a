"""``consumer``: cryptolab's pipeline vs Quix Streams vs a bare consume loop, on one pre-filled topic.

Each side runs in its own worker process; the clock starts at its first message. The candles
of cryptolab and Quix are compared bit for bit (OHLC and volume).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import orjson

from benchmarks.peers.quix import compare_candles
from benchmarks.results import ratio
from benchmarks.services import Services, fill_topic, settings_for
from benchmarks.spec import INTERVALS, BenchConfig, Progress
from benchmarks.workers import run_worker
from cryptolab.config import Settings

__all__ = ["run"]

_HOW = ("each side in its own process, clock from its first message to the last one "
        "processed (cryptolab: to the last commit); cryptolab with scoring off, like Quix; "
        "bare: consume(20,000) and decode each value to Python objects with orjson and "
        "with msgspec, the faster one kept as the ceiling")


def _alternate(svc: Services, cfg: BenchConfig, progress: Progress, common: dict[str, Any], tmp: Path,
               timeout: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Alternating runs of the bare loops (both decoders) and of cryptolab: a shared machine's
    noise hits both sides. Returns the bare runs and cryptolab's (candles in ``tmp``)."""
    bares: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    for i in range(cfg.consumer_repeat):
        for decoder in ("orjson", "msgspec"):
            b = run_worker("bare", {**common, "group": f"bare-{decoder}-{i}-{svc.run_id}", "batch_size": 20_000,
                                    "timeout": timeout, "decoder": decoder}, timeout=timeout + 60)
            bares.append(b)
            progress(f"consumer: bare consume + {decoder} decode {b['ticks_per_s']:,.0f} ticks/s")
        svc.flush_redis()
        run = run_worker("pipeline", {**common, "group": f"cryptolab-{i}-{svc.run_id}", "store": svc.database(),
                                      "redis": svc.redis, "scoring": False,
                                      "candles_out": str(tmp / f"cryptolab-{i}.json")}, timeout=timeout + 60)
        runs.append(run)
        progress(f"consumer: cryptolab {run['ticks_per_s']:,.0f} ticks/s")
    return bares, runs


def _quix(svc: Services, settings: Settings, progress: Progress, common: dict[str, Any],
          tmp: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Quix Streams on the same topic; its run and its candles compared with cryptolab's best."""
    from cryptolab.kafka import consumer_config

    n = common["ticks"]
    quix_timeout = 300 + n / 1_000
    fetch = {k: v for k, v in consumer_config(settings).items()
             if k.startswith(("fetch.", "max.partition.fetch", "queued."))}
    quix = run_worker("quix", {**common, "group": f"quix-{svc.run_id}", "grace_ms": settings.out_of_orderness_ms,
                               "consumer": fetch, "timeout": quix_timeout,
                               "candles_out": str(tmp / "quix.json")}, timeout=quix_timeout + 120)
    progress(f"consumer: quix streams {quix['ticks_per_s']:,.0f} ticks/s")
    cmp = compare_candles(orjson.loads((tmp / "cryptolab.json").read_bytes()),
                          orjson.loads((tmp / "quix.json").read_bytes()))
    return quix, cmp


def run(svc: Services, cfg: BenchConfig, progress: Progress) -> dict[str, Any]:
    """cryptolab vs Quix Streams vs a bare consume loop on one pre-filled topic."""
    settings = settings_for(svc)
    topic = svc.topic("consumer", cfg.partitions)
    fill = fill_topic(settings, topic, ticks=cfg.ticks, symbols=cfg.symbols)
    progress(f"consumer: topic {topic} filled with {fill['ticks']:,} ticks ({fill['seconds']} s)")
    n = fill["ticks"]
    tmp = Path(tempfile.mkdtemp(prefix="cryptolab-bench-"))
    common = {"kafka": svc.kafka, "topic": topic, "ticks": n, "intervals": INTERVALS}
    details: dict[str, Any] = {"ticks": n, "symbols": cfg.symbols, "intervals": INTERVALS,
                               "partitions": cfg.partitions, "fill": fill}
    try:
        bares, runs = _alternate(svc, cfg, progress, common, tmp, timeout=120 + n / 2_000)
        bare = max(bares, key=lambda r: r["ticks_per_s"])  # the ceiling: the faster decoder
        best = max(range(len(runs)), key=lambda i: runs[i]["ticks_per_s"])
        ours = runs[best]
        (tmp / f"cryptolab-{best}.json").rename(tmp / "cryptolab.json")
        svc.notes["consumer_cpu_us_per_tick"] = min(r["cpu_us_per_tick"] for r in runs)
        # the flink section reads the same topic and compares its candles with these
        svc.notes.update(consumer_topic=topic, consumer_ticks=n, consumer_ticks_per_s=ours["ticks_per_s"],
                         consumer_candles=orjson.loads((tmp / "cryptolab.json").read_bytes()))
        details["bare"] = bare
        details["bare_runs"] = bares
        details["cryptolab"] = ours
        details["cryptolab_runs"] = [{k: r[k] for k in ("ticks_per_s", "seconds", "cpu_us_per_tick")} for r in runs]
        # CPU per tick (all threads, best run of each): steadier than wall time on a shared machine
        details["consumer_vs_bare_by_cpu"] = ratio(min(b["cpu_us_per_tick"] for b in bares),
                                                   min(r["cpu_us_per_tick"] for r in runs))
        result: dict[str, Any] = {
            "consumer_ticks_per_s": round(ours["ticks_per_s"]),
            "consumer_vs_bare": ratio(ours["ticks_per_s"], bare["ticks_per_s"]),
            "quix_ticks_per_s": None, "consumer_vs_quix": None,
        }
        checks: dict[str, Any] = {"consumer_all_ticks": all(r["ticks"] == n for r in [*runs, *bares])}
        if cfg.quix:
            quix, cmp = _quix(svc, settings, progress, common, tmp)
            details["quix"] = quix
            details["candles_vs_quix"] = cmp
            checks["consumer_candles_equal_quix"] = cmp["match"]
            checks["consumer_all_ticks"] = checks["consumer_all_ticks"] and quix["ticks"] == n
            result["quix_ticks_per_s"] = round(quix["ticks_per_s"])
            result["consumer_vs_quix"] = ratio(ours["ticks_per_s"], quix["ticks_per_s"])
        details["how"] = _HOW
        result["details"] = details
        result["checks"] = checks
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
