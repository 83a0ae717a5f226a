"""Benchmark: synthetic source -> TickProducer -> Kafka, against a bare confluent-kafka loop.

Both runs go to the same broker in the same process, one after the other, with the same
producer configuration (:func:`cryptolab.kafka.producer_config`: idempotent, acks=all,
lz4, linger) and the same payloads, each into a fresh 3-partition topic; each time
includes the final flush (every message acknowledged).

* ``producer``: ``TickProducer.send_wire(SyntheticMarket(...).iter_wire(), limit=N)`` --
  generating the ticks, encoding them to wire JSON in bulk and producing them, which is
  what ``send_many(market)`` and ``cryptolab produce --source synthetic`` do.
* ``producer_validated_objects``: ``send_many`` over :class:`Tick` objects, each validated
  and encoded on its own (the path for arbitrary iterables), for comparison.
* ``bare``: a plain ``Producer.produce(topic, value, key, timestamp=ts)`` loop over the
  payloads, pre-encoded before the clock starts, polling every 1,000 messages.
  ``bare_positional`` is the same loop passing the timestamp positionally, as
  TickProducer does (keyword parsing costs about a third of the call).

Also reported: the synthetic source alone (Tick objects, and pre-encoded wire batches)
and the wire encoding of Tick objects alone (ticks/s), to show where the time goes.

Usage::

    python benchmarks/bench_producer.py --kafka 127.0.0.1:19092 --ticks 1000000 \\
        --json benchmarks/results/producer.json

Writes JSON with ``producer_ticks_per_s``, ``bare_ticks_per_s``, ``producer_vs_bare`` and
the details. Not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from cryptolab.config import Settings
from cryptolab.kafka import ensure_topics, producer_config
from cryptolab.models import encode_tick
from cryptolab.producer import TickProducer
from cryptolab.sources.synthetic import SyntheticMarket


def market(symbols: int, seed: int) -> SyntheticMarket:
    return SyntheticMarket(symbols=symbols, seed=seed, duration_ms=None, ticks_per_second=1_000.0)


def fresh_topic(settings: Settings, prefix: str) -> str:
    topic = f"bench.{prefix}.{uuid.uuid4().hex[:8]}"
    ensure_topics(settings, {topic: 3, topic + ".dlq": 1})
    return topic


def run_producer(settings: Settings, n: int, symbols: int, seed: int, *, objects: bool = False) -> dict[str, Any]:
    topic = fresh_topic(settings, "producer")
    producer = TickProducer(settings, topic=topic, create_topic=False)
    t0 = time.perf_counter()
    if objects:  # Tick objects, validated one by one (the path for arbitrary iterables)
        sent = producer.send_many(itertools.islice(market(symbols, seed).iter_ticks(), n))
    else:  # what send_many(market) and `cryptolab produce --source synthetic` do
        sent = producer.send_wire(market(symbols, seed).iter_wire(), limit=n)
    t_sent = time.perf_counter()
    producer.close(120)
    t1 = time.perf_counter()
    st = producer.stats
    return {"topic": topic, "ticks": sent, "seconds": t1 - t0, "enqueue_seconds": t_sent - t0,
            "delivered": st.delivered, "failed": st.failed, "retries": st.retries,
            "queue_full": st.queue_full, "ticks_per_s": sent / (t1 - t0)}


def run_bare(settings: Settings, n: int, symbols: int, seed: int, *, positional: bool = False) -> dict[str, Any]:
    topic = fresh_topic(settings, "bare")
    payloads = [(t.symbol.encode(), encode_tick(t), t.ts_ms)
                for t in itertools.islice(market(symbols, seed).iter_ticks(), n)]
    errors = 0

    def on_delivery(err: Any, msg: Any) -> None:
        nonlocal errors
        errors += 1

    p = Producer(producer_config(settings, **{"delivery.report.only.error": True,
                                              "on_delivery": on_delivery}))
    produce = p.produce
    poll = p.poll
    t0 = time.perf_counter()
    if positional:  # the same call with positional arguments, as TickProducer makes it
        for i, (key, value, ts) in enumerate(payloads):
            try:
                produce(topic, value, key, -1, None, None, ts)
            except BufferError:
                poll(0.05)
                produce(topic, value, key, -1, None, None, ts)
            if i % 1000 == 0:
                poll(0)
    else:
        for i, (key, value, ts) in enumerate(payloads):
            try:
                produce(topic, value, key, timestamp=ts)
            except BufferError:
                poll(0.05)
                produce(topic, value, key, timestamp=ts)
            if i % 1000 == 0:
                poll(0)
    t_sent = time.perf_counter()
    left = p.flush(120)
    t1 = time.perf_counter()
    return {"topic": topic, "ticks": len(payloads), "seconds": t1 - t0, "enqueue_seconds": t_sent - t0,
            "failed": errors + left, "ticks_per_s": len(payloads) / (t1 - t0)}


def run_source_only(n: int, symbols: int, seed: int) -> float:
    t0 = time.perf_counter()
    for _ in itertools.islice(market(symbols, seed).iter_ticks(), n):
        pass
    return n / (time.perf_counter() - t0)


def run_wire_only(n: int, symbols: int, seed: int) -> float:
    t0 = time.perf_counter()
    got = 0
    for batch in market(symbols, seed).iter_wire():
        got += len(batch.values)
        if got >= n:
            break
    return got / (time.perf_counter() - t0)


def run_encode_only(n: int, symbols: int, seed: int) -> float:
    ticks = list(itertools.islice(market(symbols, seed).iter_ticks(), n))
    t0 = time.perf_counter()
    for t in ticks:
        encode_tick(t)
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kafka", default=os.environ.get("CRYPTOLAB_KAFKA_BOOTSTRAP", "127.0.0.1:19092"),
                    help="bootstrap servers of a real broker (default: $CRYPTOLAB_KAFKA_BOOTSTRAP or 127.0.0.1:19092)")
    ap.add_argument("--ticks", type=int, default=1_000_000, help="ticks per run (default 1,000,000)")
    ap.add_argument("--symbols", type=int, default=5, help="synthetic symbols (default 5)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="alternating runs of each; the best is kept")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)

    settings = Settings.from_env({}, kafka_bootstrap=args.kafka)
    producer_runs: list[dict[str, Any]] = []
    bare_runs: list[dict[str, Any]] = []
    for i in range(args.repeat):
        for name, fn, runs in (("bare", run_bare, bare_runs), ("producer", run_producer, producer_runs)):
            r = fn(settings, args.ticks, args.symbols, args.seed)
            runs.append(r)
            print(f"run {i + 1} {name:8s}: {r['ticks']:,} ticks in {r['seconds']:.2f}s = "
                  f"{r['ticks_per_s']:,.0f} ticks/s (failed {r['failed']})", file=sys.stderr)
    objects_run = run_producer(settings, args.ticks, args.symbols, args.seed, objects=True)
    positional_run = run_bare(settings, args.ticks, args.symbols, args.seed, positional=True)
    print(f"bare, positional arguments: {positional_run['ticks_per_s']:,.0f} ticks/s", file=sys.stderr)
    print(f"tick objects, validated: {objects_run['ticks_per_s']:,.0f} ticks/s", file=sys.stderr)
    best_p = max(producer_runs, key=lambda r: r["ticks_per_s"])
    best_b = max(bare_runs, key=lambda r: r["ticks_per_s"])
    source_only = run_source_only(args.ticks, args.symbols, args.seed)
    encode_only = run_encode_only(min(args.ticks, 500_000), args.symbols, args.seed)
    wire_only = run_wire_only(args.ticks, args.symbols, args.seed)
    result = {
        "producer_ticks_per_s": round(best_p["ticks_per_s"]),
        "bare_ticks_per_s": round(best_b["ticks_per_s"]),
        "producer_vs_bare": round(best_p["ticks_per_s"] / best_b["ticks_per_s"], 3),
        "producer_validated_objects_ticks_per_s": round(objects_run["ticks_per_s"]),
        "bare_positional_ticks_per_s": round(positional_run["ticks_per_s"]),
        "source_only_ticks_per_s": round(source_only),
        "encode_only_ticks_per_s": round(encode_only),
        "source_wire_only_ticks_per_s": round(wire_only),
        "ticks": args.ticks,
        "symbols": args.symbols,
        "repeat": args.repeat,
        "producer_runs": producer_runs,
        "bare_runs": bare_runs,
        "kafka": args.kafka,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg_1m": os.getloadavg()[0],
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(json.dumps({k: v for k, v in result.items() if not k.endswith("_runs")}, indent=2))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
