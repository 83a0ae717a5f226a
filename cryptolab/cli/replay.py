"""``cryptolab replay``: a recorded file through producer, Kafka, consumer and store."""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from cryptolab.cli._common import add_service_flags, settings_from_args

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the ``replay`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "replay",
        help="run a recorded file through producer, Kafka, consumer and store, then exit",
        description=(
            "Replays a recorded file (trades CSV, headerless ts,price,amount, Binance klines, "
            "CoinGecko market_chart JSON, bar JSON, Parquet, wire-format JSON lines) through the "
            "producer, Kafka (embedded by default), the windowing consumer and the store, and "
            "exits once every tick is processed and committed."
        ),
    )
    p.add_argument("path", type=Path, help="the recorded file")
    p.add_argument("--format", default="auto",
                   help="csv, klines, bars, coingecko, parquet, jsonl or auto (default)")
    p.add_argument("--symbol", help="symbol of every tick when the file has none")
    p.add_argument("--ts-unit", choices=["s", "ms", "us", "ns", "iso"], help="unit of numeric timestamps")
    p.add_argument("--ts-column", help="name of the time column (overrides detection)")
    p.add_argument("--bar-interval", help="bar interval for bars/klines files, e.g. 4h (overrides detection)")
    p.add_argument("--speed", type=float, default=None,
                   help="pace by event time at this multiple of real time (default: as fast as possible)")
    p.add_argument("--errors", choices=["raise", "skip"], default="raise",
                   help="stop at the first malformed row (default) or skip and count it")
    add_service_flags(p)
    p.add_argument("--group", help="consumer group (default: a fresh one per replay on a real broker)")
    p.add_argument("--intervals", help="candle intervals (default 1m,5m,15m)")
    p.add_argument("--no-score", action="store_true", help="do not run anomaly detectors")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Replay the file and print a summary."""
    from cryptolab.pipeline import CandlePipeline
    from cryptolab.producer import TickProducer
    from cryptolab.sources.replay import Replay
    from cryptolab.store import Store

    settings = settings_from_args(args)
    if not args.topic:  # a topic and group of its own (brokers, even embedded, keep older runs)
        run_id = uuid.uuid4().hex[:8]
        settings = replace(settings, topic=f"replay.{run_id}", group=args.group or f"replay.{run_id}")
    source = Replay(args.path, format=args.format, symbol=args.symbol, speed=args.speed,
                    ts_unit=args.ts_unit, ts_column=args.ts_column, interval=args.bar_interval,
                    errors=args.errors)
    store = Store.from_settings(settings)
    store.init()
    pipeline = CandlePipeline(settings, store=store, scorer=None if args.no_score else True)
    t0 = time.monotonic()
    background: threading.Thread | None = None
    if args.speed is not None:
        # paced: candles appear while the file plays
        background = threading.Thread(target=pipeline.run, name="cryptolab-replay-consumer", daemon=True)
    with TickProducer(settings) as producer:
        if background is not None:
            background.start()
        ticks: Any = source
        if sys.stderr.isatty():
            from tqdm import tqdm

            ticks = tqdm(source.iter_ticks(on_reject=lambda r: producer.reject(r.raw, r.reason, r.field)),
                         desc=f"replay {args.path.name}", unit=" ticks", unit_scale=True)
        producer.send_many(ticks, validated=True)
        producer.flush()
        pstats = producer.stats
    if background is not None:
        pipeline.stop()
        background.join()
        pipeline._stop.clear()
    stats = pipeline.run(stop_at_end=True)
    el = time.monotonic() - t0
    counts: dict[str, int] = {}
    for c in store.candles():
        counts[c.interval] = counts.get(c.interval, 0) + 1
    print(f"replayed {args.path} ({source.format}): {pstats.delivered:,} ticks produced, "
          f"{pstats.rejected} rejected, {source.stats.skipped} skipped")
    print(f"consumed {stats.ticks:,} ticks in {el:.1f}s: "
          + ", ".join(f"{k} {counts[k]:,}" for k in settings.intervals if k in counts)
          + f" candles, {stats.alerts} alerts, {stats.dead_letters} dead letters, {stats.late_ticks} too-late ticks")
    print(f"store {store.url}")
    store.close()
    return 0
