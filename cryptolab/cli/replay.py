"""``cryptolab replay``: a recorded file through producer, Kafka, consumer and store."""

from __future__ import annotations

import argparse
import itertools
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptolab.cli._common import add_service_flags, settings_from_args
from cryptolab.errors import ValidationError

if TYPE_CHECKING:  # pragma: no cover
    from cryptolab.config import Settings
    from cryptolab.models import Tick
    from cryptolab.producer import TickProducer
    from cryptolab.sources import Rejected
    from cryptolab.sources.replay import Replay

__all__ = ["bar_intervals", "register", "run"]


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
    p.add_argument("--intervals", help="candle intervals (default 1m,5m,15m; of a bar file, only "
                   "multiples of its bar interval, else the bar interval itself)")
    p.add_argument("--no-score", action="store_true", help="do not run anomaly detectors")
    p.set_defaults(func=run)


def bar_intervals(intervals: Sequence[str], bar_ms: int | None, *, explicit: bool = False) -> tuple[str, ...]:
    """The candle intervals for a file of ``bar_ms`` bars: the multiples of it among ``intervals``.

    A bar becomes four ticks inside it, so a finer candle (or one that is not a whole
    number of bars) would cut bars apart. When none of the intervals is a multiple, the
    bar interval itself. ``bar_ms=None`` (trades, quotes) keeps every interval.

    Raises
    ------
    ValidationError
        ``explicit`` (asked for with ``--intervals``) and one of them is not a multiple.

    Examples
    --------
    >>> bar_intervals(("1m", "5m", "15m"), 300_000), bar_intervals(("1m", "5m", "15m"), 4 * 3_600_000)
    (('5m', '15m'), ('4h',))
    >>> bar_intervals(("1m", "5m"), None)
    ('1m', '5m')
    >>> bar_intervals(("1m", "15m"), 300_000, explicit=True)
    Traceback (most recent call last):
    ...
    cryptolab.errors.ValidationError: invalid 'intervals': 1m is not a multiple of the file's 5m bars
    """
    from cryptolab.models import interval_name, parse_interval

    if bar_ms is None:
        return tuple(intervals)
    keep = tuple(i for i in intervals if parse_interval(i) % bar_ms == 0)
    bar = interval_name(bar_ms)
    if explicit and len(keep) < len(intervals):
        bad = ", ".join(i for i in intervals if i not in keep)
        raise ValidationError("intervals", f"{bad} is not a multiple of the file's {bar} bars")
    if not keep:
        parse_interval(bar)  # a candle interval itself (it divides a day, or is whole days)
        keep = (bar,)
    return keep


class _DeadLetters:
    """A source's rejects: held until the producer exists, then sent to the dead-letter topic."""

    def __init__(self) -> None:
        self.held: list[Rejected] = []
        self.producer: TickProducer | None = None

    def __call__(self, rejected: Rejected) -> None:
        if self.producer is None:
            self.held.append(rejected)
        else:
            self.producer.dead_letter(rejected)

    def attach(self, producer: TickProducer) -> None:
        self.producer = producer
        for rejected in self.held:
            producer.dead_letter(rejected)
        self.held = []


def run(args: argparse.Namespace) -> int:
    """Replay the file and print this run's figures; exit 1 when the file holds no ticks."""
    from cryptolab.models import interval_name
    from cryptolab.sources.replay import Replay

    settings = settings_from_args(args)
    if not args.topic:  # a topic and group of its own (brokers, even embedded, keep older runs)
        run_id = uuid.uuid4().hex[:8]
        settings = replace(settings, topic=f"replay.{run_id}", group=args.group or f"replay.{run_id}")
    source = Replay(args.path, format=args.format, symbol=args.symbol, speed=args.speed,
                    ts_unit=args.ts_unit, ts_column=args.ts_column, interval=args.bar_interval,
                    errors=args.errors)
    bar_ms = source.bar_interval()
    intervals = bar_intervals(settings.intervals, bar_ms, explicit=args.intervals is not None)
    if intervals != settings.intervals:
        print(f"cryptolab replay: {interval_name(bar_ms or 0)} bars: candles at {', '.join(intervals)} "
              "only (multiples of the bar interval)", file=sys.stderr)
        settings = replace(settings, intervals=intervals)
    # the first tick is read before anything is created: a bad first row or an empty file costs nothing
    dead = _DeadLetters()
    ticks = source.iter_ticks(on_reject=dead)
    first = next(ticks, None)
    if first is None and not dead.held:
        print(f"cryptolab replay: nothing replayed: {args.path} holds no ticks", file=sys.stderr)
        return 1
    return _replay(args, settings, source, itertools.chain([] if first is None else [first], ticks), dead)


def _replay(args: argparse.Namespace, settings: Settings, source: Replay, ticks: Iterator[Tick],
            dead: _DeadLetters) -> int:
    from cryptolab.pipeline import CandlePipeline
    from cryptolab.producer import TickProducer
    from cryptolab.store import Store
    from cryptolab.tally import RunTally

    store = Store.from_settings(settings)
    store.init()
    tally = RunTally()
    pipeline = CandlePipeline(settings, store=store, scorer=None if args.no_score else True,
                              on_commit=tally.on_commit)
    t0 = time.monotonic()
    background: threading.Thread | None = None
    if args.speed is not None:
        # paced: candles appear while the file plays
        background = threading.Thread(target=pipeline.run, name="cryptolab-replay-consumer", daemon=True)
    with TickProducer(settings) as producer:
        dead.attach(producer)
        if background is not None:
            background.start()
        if sys.stderr.isatty():
            from tqdm import tqdm

            ticks = tqdm(ticks, desc=f"replay {args.path.name}", unit=" ticks", unit_scale=True)
        producer.send_many(ticks, validated=True)
        producer.flush()
        pstats = producer.stats
    if background is not None:
        pipeline.stop()
        background.join()
        pipeline._stop.clear()
    stats = pipeline.run(stop_at_end=True)
    el = time.monotonic() - t0
    counts = tally.candles(settings.intervals)
    print(f"replayed {args.path} ({source.format}): {pstats.delivered:,} ticks produced, "
          f"{pstats.rejected} rejected, {source.stats.skipped} skipped")
    print(f"consumed {stats.ticks:,} ticks in {el:.1f}s: "
          + (", ".join(f"{k} {n:,}" for k, n in counts.items()) or "no")
          + f" candles, {stats.alerts} alerts, {stats.dead_letters} dead letters, {stats.late_ticks} too-late ticks")
    print(f"store {store.url}")
    store.close()
    if pstats.delivered == 0:
        print(f"cryptolab replay: nothing replayed: every record of {args.path} was rejected",
              file=sys.stderr)
        return 1
    return 0
