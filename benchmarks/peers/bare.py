"""The consumer's ceiling: a bare confluent-kafka ``consume(batch)`` + JSON decode loop (a worker)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from cryptolab.config import Settings

__all__ = ["work_bare"]


def work_bare(p: dict[str, Any]) -> dict[str, Any]:
    """The ceiling: consume(batch) and decode each value with orjson (or msgspec); nothing else."""
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
