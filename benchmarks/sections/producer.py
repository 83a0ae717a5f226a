"""``producer``: TickProducer vs a bare confluent-kafka produce loop (``benchmarks/bench_producer.py``)."""

from __future__ import annotations

import contextlib
from typing import Any

from benchmarks import bench_producer
from benchmarks.results import ratio, rnd
from benchmarks.services import Services, settings_for
from benchmarks.spec import BenchConfig, Progress

__all__ = ["run"]


def _delete_topics(kafka: str | None, runs: dict[str, list[dict[str, Any]]]) -> None:
    """Delete the topics (and their ``.dlq``) the runs produced to (failures ignored)."""
    with contextlib.suppress(Exception):
        from confluent_kafka.admin import AdminClient

        topics = [r["topic"] for rs in runs.values() for r in rs]
        topics += [t + ".dlq" for t in topics]
        for fut in AdminClient({"bootstrap.servers": kafka}).delete_topics(topics).values():
            with contextlib.suppress(Exception):
                fut.result()


def run(svc: Services, cfg: BenchConfig, progress: Progress) -> dict[str, Any]:
    """TickProducer vs a bare produce loop, alternating runs, the best of each kept."""
    settings = settings_for(svc)
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "producer": []}
    for i in range(cfg.producer_repeat):
        for name, fn in (("bare", bench_producer.run_bare), ("producer", bench_producer.run_producer)):
            r = fn(settings, cfg.producer_ticks, cfg.symbols, 0)
            runs[name].append(r)
            progress(f"producer run {i + 1} {name}: {r['ticks_per_s']:,.0f} ticks/s")
    _delete_topics(svc.kafka, runs)
    best = {k: max(v, key=lambda r: r["ticks_per_s"]) for k, v in runs.items()}
    p, b = best["producer"]["ticks_per_s"], best["bare"]["ticks_per_s"]
    return {
        "producer_ticks_per_s": round(p), "producer_vs_bare": ratio(p, b),
        "details": {"bare_ticks_per_s": round(b), "ticks": cfg.producer_ticks, "symbols": cfg.symbols,
                    "repeat": cfg.producer_repeat, "source": "benchmarks/bench_producer.py",
                    "how": "TickProducer.send_wire(SyntheticMarket.iter_wire()) vs Producer.produce of the "
                           "same pre-encoded payloads; same producer config; both include the final flush",
                    "runs": {k: [{"ticks_per_s": round(r["ticks_per_s"]), "seconds": rnd(r["seconds"])}
                                 for r in v] for k, v in runs.items()}},
    }
