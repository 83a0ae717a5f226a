"""``flink``: cryptolab's consumer vs Apache Flink (a SQL job, the seed's engine), on the consumer's topic.

Flink reads the consumer section's pre-filled topic with a bounded Kafka source and computes
the same 1m/5m/15m candles in event-time tumbling windows (:mod:`benchmarks.peers.flink_job`),
at parallelism 1 (``flink_ticks_per_s``, ``consumer_vs_flink``), then at parallelism 2 beside
two cryptolab consumer processes in one group (``flink_p2_ticks_per_s``,
``consumer_2proc_ticks_per_s``, ``consumer_2proc_vs_flink_p2``). Its candles are compared
with cryptolab's (``checks.consumer_candles_equal_flink``, see
:func:`~benchmarks.peers.flink.compare_flink_candles`).

Flink's clock: each job runs ``flink_repeat`` times in one JVM (the best kept, as the
consumer's best run is), then once on none of the topic; the key is the ticks over the job's
time less that empty job's (its start-up and shutdown), from submitting the query to its last
candle. The times with start-up, and with the JVM's, are in the details. Run alone
(``--only flink``), the section fills its own topic and runs cryptolab's consumer once.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.peers.flink import FlinkSetup, compare_flink_candles, run_flink, setup
from benchmarks.results import ratio, rnd
from benchmarks.services import Services, fill_topic, settings_for
from benchmarks.spec import INTERVALS, BenchConfig, Progress
from benchmarks.workers import collect, run_worker, spawn

__all__ = ["flink_figures", "run"]

_HOW = ("Flink SQL job (PyFlink, local mini-cluster, default settings) on the consumer's pre-filled "
        "topic: bounded Kafka source (earliest -> latest offsets at start), JSON format, watermark = "
        "event time - out_of_orderness, a TUMBLE window aggregate per interval (FIRST_VALUE, MAX, MIN, "
        "LAST_VALUE, SUM, COUNT), rows collected back to Python. flink_ticks_per_s: ticks / (best job "
        "time - the same job's time on an empty range: start-up and shutdown excluded, like cryptolab's "
        "clock, which starts at its first message); with_startup: the job time as is; with_jvm: the "
        "first (cold) job plus the JVM's start. 2 processes: two cryptolab consumers in one group, "
        "clock from the first message either gets to the later one's end")


def _whole(x: float | None) -> int | None:
    """``x`` rounded to a whole number (``None`` stays ``None``)."""
    return None if x is None else round(x)


def flink_figures(flink: dict[str, Any]) -> dict[str, Any]:
    """A Flink worker's clocks as ticks/s: without start-up (the key), with it, and with the JVM's.

    Without start-up: the best job's time less the empty job's; when that leaves nothing (a
    tiny topic), the best job's time as is (``startup_subtracted`` false).

    Examples
    --------
    >>> out = {"jvm_start_s": 3.0, "empty": {"job_s": 2.0},
    ...        "runs": [{"ticks": 100, "job_s": 12.0}, {"ticks": 100, "job_s": 7.0}]}
    >>> f = flink_figures(out)
    >>> f["ticks_per_s"], f["with_startup_ticks_per_s"], f["with_jvm_ticks_per_s"]
    (20.0, 14.286, 6.667)
    >>> flink_figures({**out, "empty": {"job_s": 8.0}})["startup_subtracted"]
    False
    """
    best = min(flink["runs"], key=lambda r: r["job_s"])
    n = best["ticks"]
    processing = best["job_s"] - flink["empty"]["job_s"]
    subtracted = processing > 0  # (a tiny topic, --quick, may take no longer than the empty job)
    if not subtracted:
        processing = best["job_s"]
    first = flink["runs"][0]
    return {"ticks": n, "ticks_per_s": rnd(n / processing), "startup_subtracted": subtracted,
            "seconds": rnd(processing), "startup_s": rnd(flink["empty"]["job_s"]),
            "with_startup_ticks_per_s": rnd(n / best["job_s"]),
            "with_jvm_ticks_per_s": rnd(first["ticks"] / (first["job_s"] + flink["jvm_start_s"])),
            "jvm_start_s": rnd(flink["jvm_start_s"]), "runs": flink["runs"], "empty": flink["empty"]}


def _consumer(svc: Services, cfg: BenchConfig, progress: Progress, tmp: Path) -> tuple[str, int, float, list[Any]]:
    """The consumer section's topic, ticks/s and candles, or (run alone) a topic filled and one
    cryptolab run on it."""
    notes = svc.notes
    if "consumer_candles" in notes:
        return notes["consumer_topic"], notes["consumer_ticks"], notes["consumer_ticks_per_s"], notes["consumer_candles"]
    topic = svc.topic("flink", cfg.partitions)
    fill = fill_topic(settings_for(svc), topic, ticks=cfg.ticks, symbols=cfg.symbols)
    progress(f"flink: topic {topic} filled with {fill['ticks']:,} ticks ({fill['seconds']} s)")
    n = fill["ticks"]
    run = run_worker("pipeline", {"kafka": svc.kafka, "topic": topic, "ticks": n, "intervals": INTERVALS,
                                  "group": f"cryptolab-flink-{svc.run_id}", "store": svc.database(),
                                  "redis": svc.redis, "scoring": False,
                                  "candles_out": str(tmp / "cryptolab.json")}, timeout=180 + n / 2_000)
    progress(f"flink: cryptolab {run['ticks_per_s']:,.0f} ticks/s")
    return topic, n, run["ticks_per_s"], orjson.loads((tmp / "cryptolab.json").read_bytes())


def _pair(svc: Services, topic: str, n: int, progress: Progress) -> dict[str, Any]:
    """Two cryptolab consumer processes in one group on the topic: ticks/s of the pair."""
    common = {"kafka": svc.kafka, "topic": topic, "ticks": n, "intervals": INTERVALS, "store": svc.database(),
              "redis": svc.redis, "scoring": False, "group": f"cryptolab-pair-{svc.run_id}"}
    svc.flush_redis()
    procs = [spawn("pipeline", common) for _ in range(2)]
    runs = [collect(p, "pipeline worker", timeout=180 + n / 2_000) for p in procs]
    seconds = max(r["wall_end"] for r in runs) - min(r["wall_first"] for r in runs if r["wall_first"])
    ticks = sum(r["ticks"] for r in runs)
    progress(f"flink: 2 cryptolab processes {ticks / seconds:,.0f} ticks/s")
    return {"ticks": ticks, "seconds": rnd(seconds), "ticks_per_s": rnd(ticks / seconds),
            "per_process": [{k: r[k] for k in ("ticks", "ticks_per_s", "cpu_us_per_tick")} for r in runs]}


def _flink(fs: FlinkSetup, svc: Services, cfg: BenchConfig, topic: str, parallelism: int,
           out: Path) -> dict[str, Any]:
    """The Flink job at ``parallelism`` (its candles to ``out``): its figures."""
    params = {"kafka": svc.kafka, "topic": topic, "intervals": INTERVALS, "parallelism": parallelism,
              "out_of_orderness_ms": settings_for(svc).out_of_orderness_ms, "repeat": cfg.flink_repeat,
              "group": f"flink-p{parallelism}-{svc.run_id}", "candles_out": str(out)}
    return run_flink(fs, params, timeout=300 + cfg.flink_repeat * (60 + cfg.ticks / 5_000))


def run(svc: Services, cfg: BenchConfig, progress: Progress) -> dict[str, Any]:
    """cryptolab's consumer vs a Flink SQL job, at parallelism 1 and 2."""
    t0 = time.perf_counter()
    fs = setup()  # PeerUnavailable: the suite skips the section with the reason
    details: dict[str, Any] = {"setup_s": rnd(time.perf_counter() - t0, 1), "java": fs.java,
                               "connector_jar": fs.jar.name, "python": str(fs.python)}
    tmp = Path(tempfile.mkdtemp(prefix="cryptolab-bench-flink-"))
    try:
        topic, n, ours_tps, ours = _consumer(svc, cfg, progress, tmp)
        details.update(ticks=n, topic_partitions=cfg.partitions, intervals=INTERVALS, consumer_ticks_per_s=ours_tps)
        p1 = _flink(fs, svc, cfg, topic, 1, tmp / "flink-p1.json")
        details["p1"] = flink_figures(p1)
        details["pyflink"] = p1.get("pyflink")
        progress(f"flink: parallelism 1 {details['p1']['ticks_per_s'] or 0:,.0f} ticks/s "
                 f"({details['p1']['with_startup_ticks_per_s']:,.0f} with its start-up)")
        cmp1 = compare_flink_candles(ours, orjson.loads((tmp / "flink-p1.json").read_bytes()))
        p2 = _flink(fs, svc, cfg, topic, 2, tmp / "flink-p2.json")
        details["p2"] = flink_figures(p2)
        progress(f"flink: parallelism 2 {details['p2']['ticks_per_s'] or 0:,.0f} ticks/s")
        cmp2 = compare_flink_candles(ours, orjson.loads((tmp / "flink-p2.json").read_bytes()))
        details["consumer_2proc"] = pair = _pair(svc, topic, n, progress)
        details["candles_vs_flink"] = cmp1
        details["candles_vs_flink_p2"] = cmp2
        details["how"] = _HOW
        return {
            "flink_ticks_per_s": _whole(details["p1"]["ticks_per_s"]),
            "consumer_vs_flink": ratio(ours_tps, details["p1"]["ticks_per_s"]),
            "flink_p2_ticks_per_s": _whole(details["p2"]["ticks_per_s"]),
            "consumer_2proc_ticks_per_s": _whole(pair["ticks_per_s"]),
            "consumer_2proc_vs_flink_p2": ratio(pair["ticks_per_s"], details["p2"]["ticks_per_s"]),
            "details": details,
            "checks": {"consumer_candles_equal_flink": cmp1["match"] and cmp2["match"],
                       "flink_all_ticks": details["p1"]["ticks"] == details["p2"]["ticks"] == pair["ticks"] == n},
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
