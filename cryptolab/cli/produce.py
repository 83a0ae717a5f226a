"""``cryptolab produce``: publish ticks from a source to Kafka (or to JSON lines)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from cryptolab.cli._common import add_composite_flag, with_composites
from cryptolab.errors import ConfigError

__all__ = ["register", "run"]

_SOURCES = ("synthetic", "replay", "coingecko", "binance", "coinbase")
_EMBEDDED_NOTE = (
    "no Kafka configured (--kafka or CRYPTOLAB_KAFKA_BOOTSTRAP): ticks go to the embedded "
    "in-process mock cluster, which disappears when this command exits -- a smoke test only"
)


def register(sub: Any) -> None:
    """Add the ``produce`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "produce",
        help="publish ticks from a market-data source to Kafka (or JSON lines)",
        description=(
            "Read ticks from a source and publish them to the tick topic (idempotent producer, "
            "key = symbol, message timestamp = event time), or write them as JSON lines with "
            "--to jsonl:PATH. Bad records go to <topic>.dlq (or PATH.dlq.jsonl) with a reason. "
            "Stops at --ticks, --duration, the end of a finite source, or SIGINT/SIGTERM, "
            "and flushes everything in flight first. Without --kafka or "
            "CRYPTOLAB_KAFKA_BOOTSTRAP the embedded mock cluster is used, which lives only as "
            "long as this process: useful as a smoke test only."
        ),
    )
    p.add_argument("--source", required=True, choices=_SOURCES, help="where ticks come from")
    out = p.add_argument_group("output")
    out.add_argument("--kafka", dest="kafka_bootstrap", metavar="BOOTSTRAP",
                     help="Kafka bootstrap servers (env CRYPTOLAB_KAFKA_BOOTSTRAP; default: embedded)")
    out.add_argument("--topic", help="tick topic (env CRYPTOLAB_TOPIC; default: ticks)")
    out.add_argument("--partitions", type=int, help="partitions when creating the topic "
                     "(env CRYPTOLAB_PARTITIONS; default 3)")
    out.add_argument("--replication", type=int, help="replication factor when creating the topic "
                     "(env CRYPTOLAB_REPLICATION; default 1)")
    out.add_argument("--to", default="kafka", metavar="kafka|jsonl:PATH",
                     help="kafka (default), or jsonl:PATH to write wire-format JSON lines "
                          "(jsonl:- for standard output)")
    lim = p.add_argument_group("limits")
    lim.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (wall clock)")
    lim.add_argument("--ticks", type=int, metavar="N", help="stop after N ticks")
    lim.add_argument("--rate", type=float, metavar="R", help="send at most R ticks per second")
    lim.add_argument("--quiet", action="store_true", help="no progress bar")
    add_composite_flag(p)

    add_source_flags(p)
    p.set_defaults(func=run)


def add_source_flags(p: argparse.ArgumentParser, *, produce: bool = True) -> None:
    """Add the source option groups (synthetic, replay, coingecko, binance / coinbase).

    ``produce=False`` (``cryptolab run``) leaves out what a live session decides itself
    (the synthetic market's span, start and labels: its start is the backfill's).
    """
    syn = p.add_argument_group("synthetic")
    syn.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    syn.add_argument("--symbols", help="synthetic: a count (default 5) or a comma list; "
                     "binance: pairs (default BTC-USDT); coinbase: products (default BTC-USD)")
    syn.add_argument("--tps", type=float, default=20.0,
                     help="synthetic trades per second of event time, all symbols (default 20)")
    if produce:
        syn.add_argument("--span", default="2h",
                         help="synthetic event-time length, e.g. 30m, 2h, 1d; 0 = endless (default 2h)")
        syn.add_argument("--start-ms", type=int, default=1_700_000_000_000,
                         help="synthetic start time, epoch ms (default 1700000000000)")
        syn.add_argument("--random-injections", type=int, default=0, metavar="N",
                         help="inject N labelled spikes/crashes at random minutes")
        syn.add_argument("--labels", nargs="?", const="auto", metavar="PATH",
                         help="write the ground-truth labels as JSON (default path: next to --to jsonl "
                              "data as NAME.labels.json, else DATA_DIR/synthetic.labels.json)")

    rep = p.add_argument_group("replay")
    rep.add_argument("--path", type=Path, help="the recorded file")
    rep.add_argument("--format", default="auto",
                     help="csv, klines, bars, coingecko, parquet, jsonl or auto (default)")
    rep.add_argument("--speed", type=float, default=None,
                     help="pace by event time at this multiple of real time (default: as fast as possible)"
                     + ("" if produce else "; synthetic: simulated seconds per second after the backfill "
                        "(default 1)"))
    rep.add_argument("--symbol", help="symbol of every tick when the file has none")
    rep.add_argument("--ts-unit", choices=["s", "ms", "us", "ns", "iso"], help="unit of numeric timestamps")
    rep.add_argument("--ts-column", help="name of the time column (overrides detection)")
    rep.add_argument("--bar-interval", help="bar interval for bars/klines, e.g. 4h (overrides detection)")
    rep.add_argument("--errors", choices=["raise", "skip"], default="raise",
                     help="stop at the first malformed row (default) or skip it; either way it "
                          "goes to the dead letters")

    cg = p.add_argument_group("coingecko")
    cg.add_argument("--coins", default="bitcoin,ethereum",
                    help="CoinGecko ids, optionally id=SYMBOL (default bitcoin,ethereum)")
    cg.add_argument("--vs-currency", default="usd", help="quote currency (default usd)")
    cg.add_argument("--coingecko-url", help="API base URL (env CRYPTOLAB_COINGECKO_URL)")
    cg.add_argument("--poll-interval", type=float, default=30.0, metavar="SECONDS",
                    help="seconds between calls (default 30)")
    cg.add_argument("--calls-per-minute", type=int, help="client-side call budget (default by plan)")

    ws = p.add_argument_group("binance / coinbase")
    ws.add_argument("--ws-url", help="websocket URL (default: the exchange's public endpoint)")
    ws.add_argument("--streams", default="trade", help="binance: trade and/or aggTrade (default trade)")


def _settings(args: argparse.Namespace) -> Any:
    from cryptolab.config import Settings

    overrides = {
        "kafka_bootstrap": args.kafka_bootstrap,
        "topic": args.topic,
        "partitions": args.partitions,
        "replication": args.replication,
        "coingecko_url": args.coingecko_url,
    }
    return Settings.from_env(**{k: v for k, v in overrides.items() if v is not None})


def _source(args: argparse.Namespace, settings: Any) -> Any:
    from cryptolab.models import parse_duration

    name = args.source
    if name == "synthetic":
        from cryptolab.sources.synthetic import SyntheticMarket

        symbols: Any = 5
        if args.symbols:
            symbols = int(args.symbols) if args.symbols.strip().isdigit() else [
                s.strip().upper() for s in args.symbols.split(",") if s.strip()]
        text = str(args.span).strip().lower()
        span = 0 if text in ("0", "inf", "none", "endless") else parse_duration(text)
        return SyntheticMarket(symbols=symbols, seed=args.seed, start_ms=args.start_ms,
                               duration_ms=span or None, ticks_per_second=args.tps,
                               random_injections=args.random_injections)
    if name == "replay":
        from cryptolab.sources.replay import Replay

        if args.path is None:
            raise ConfigError("--source replay needs --path FILE")
        return Replay(args.path, format=args.format, symbol=args.symbol, speed=args.speed,
                      ts_unit=args.ts_unit, ts_column=args.ts_column, interval=args.bar_interval,
                      errors=args.errors)
    if name == "coingecko":
        from cryptolab.sources.coingecko import CoinGeckoPoller

        return CoinGeckoPoller(args.coins, vs_currency=args.vs_currency, settings=settings,
                               poll_interval=args.poll_interval,
                               calls_per_minute=args.calls_per_minute, duration=args.duration)
    from cryptolab.sources.exchanges import BinanceTrades, CoinbaseMatches

    opts: dict[str, Any] = {"duration": args.duration}
    if args.ws_url:
        opts["url"] = args.ws_url
    if name == "binance":
        return BinanceTrades(args.symbols or "BTC-USDT", streams=args.streams, **opts)
    return CoinbaseMatches(args.symbols or "BTC-USD", **opts)


def _sink(args: argparse.Namespace, settings: Any) -> Any:
    target: str = args.to
    if target == "kafka":
        from cryptolab.producer import TickProducer

        return TickProducer(settings)
    if target.startswith("jsonl:") and len(target) > len("jsonl:"):
        from cryptolab.producer import JsonlSink

        return JsonlSink(target[len("jsonl:"):])
    raise ConfigError(f"--to must be kafka or jsonl:PATH, got {target!r}")


def _check_limits(args: argparse.Namespace) -> None:
    """``--ticks``, ``--duration`` and ``--rate`` must be positive when given."""
    for flag in ("ticks", "duration", "rate"):
        value = getattr(args, flag)
        if value is not None and value <= 0:
            raise ConfigError(f"--{flag} must be > 0, got {value}")


def _write_labels(args: argparse.Namespace, source: Any, settings: Any) -> Path | None:
    """Write the synthetic market's ground-truth labels where ``--labels`` says; the path, if any."""
    if args.labels is None:
        return None
    if args.source != "synthetic":
        raise ConfigError("--labels is only for --source synthetic")
    if args.labels != "auto":
        written: Path = source.write_labels(args.labels)
    elif args.to.startswith("jsonl:") and args.to != "jsonl:-":
        written = source.write_labels(args.to[len("jsonl:"):])
    else:
        written = source.write_labels(settings.data_dir / "synthetic.labels.json")
    return written


def _stop_on_signals(source: Any) -> threading.Event:
    """An event SIGINT and SIGTERM set (they also stop the source, when it can be stopped);
    signal handlers are installed from the main thread only."""
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stop.set()
        stopper = getattr(source, "stop", None)
        if stopper is not None:
            stopper()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
    return stop


def _progress_bar(args: argparse.Namespace) -> Any:
    """A tqdm bar on stderr, or ``None`` with ``--quiet``."""
    if args.quiet:
        return None
    from tqdm import tqdm

    return tqdm(total=args.ticks, desc=f"produce {args.source}", unit=" ticks", unit_scale=True,
                file=sys.stderr, mininterval=0.5, dynamic_ncols=True)


def run(args: argparse.Namespace) -> int:
    """Produce until the source ends, a limit is reached, or SIGINT/SIGTERM."""
    _check_limits(args)
    settings = _settings(args)
    source = with_composites(_source(args, settings), args)
    to_kafka = args.to == "kafka"
    if to_kafka and settings.embedded_kafka:
        print(f"cryptolab produce: note: {_EMBEDDED_NOTE}", file=sys.stderr)
    labels_written = _write_labels(args, source, settings)
    sink = _sink(args, settings)
    stop = _stop_on_signals(source)
    bar = _progress_bar(args)
    live = args.source in ("coingecko", "binance", "coinbase") or args.speed is not None
    t0 = time.monotonic()
    counted = 0

    def progress() -> None:
        nonlocal counted
        if bar is None:
            return
        st = sink.stats
        src_stats = getattr(source, "stats", None)
        post: dict[str, Any] = {"rejected": st.rejected}
        post["retries"] = st.retries + (src_stats.retries if src_stats is not None else 0)
        if src_stats is not None and args.source == "coingecko":
            post["circuit"] = src_stats.circuit
        if src_stats is not None and args.source in ("binance", "coinbase"):
            post["reconnects"] = src_stats.reconnects
        bar.update(n - counted)
        counted = n
        bar.set_postfix(post, refresh=False)

    n = 0

    def limited(ticks: Iterator[Any]) -> Iterator[Any]:
        nonlocal n
        check_every = 1 if live or args.rate else 2048
        last_progress = 0.0
        for t in ticks:
            yield t
            n += 1
            if n % check_every:
                continue
            now = time.monotonic()
            if args.rate:
                ahead = t0 + n / args.rate - now
                if ahead > 0.002:
                    stop.wait(ahead)
                    now = time.monotonic()
            if now - last_progress >= 0.5:
                last_progress = now
                progress()
            if stop.is_set() or (args.ticks is not None and n >= args.ticks) or (
                args.duration is not None and now - t0 >= args.duration
            ):
                return

    def limited_batches(batches: Iterator[Any]) -> Iterator[Any]:
        nonlocal n
        for batch in batches:
            yield batch
            n += len(batch.values)
            progress()
            if stop.is_set() or (args.duration is not None and time.monotonic() - t0 >= args.duration):
                return

    code = 0
    interrupted = False
    try:
        if hasattr(source, "iter_wire") and not args.rate:
            # pre-encoded fast path (valid by construction), same bytes as the tick path
            sink.send_wire(limited_batches(source.iter_wire()), limit=args.ticks)
        else:
            ticks = source.iter_ticks(on_reject=sink.dead_letter)
            if args.ticks is not None:
                ticks = islice(ticks, args.ticks)
            sink.send_many(limited(ticks), validated=getattr(source, "validated", False))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        try:
            sink.close()
        finally:
            progress()
            if bar is not None:
                bar.close()
            close = getattr(source, "close", None)
            if close is not None:
                close()
    elapsed = time.monotonic() - t0
    st = sink.stats
    lines = _summary(args, settings, st, source, elapsed, labels_written)
    if stop.is_set() or interrupted:
        lines.append("  stopped by signal; everything in flight was flushed first")
    print("\n".join(lines), file=sys.stderr)
    if st.failed or st.in_flight:
        code = 1
    return code


def _summary(
    args: argparse.Namespace, settings: Any, st: Any, source: Any, elapsed: float,
    labels_written: Path | None,
) -> list[str]:
    """The lines of the final summary: what was produced where, failures, labels, notes."""
    to_kafka = args.to == "kafka"
    rate = st.produced / elapsed if elapsed > 0 else 0.0
    where = f"{settings.topic} (dlq {settings.topic}.dlq)" if to_kafka else args.to[len("jsonl:"):]
    lines = [
        f"cryptolab produce: {args.source} -> {where}",
        f"  produced {st.produced:,}  delivered {st.delivered:,}  failed {st.failed:,}  "
        f"rejected {st.rejected:,}  in {elapsed:.1f}s ({rate:,.0f} ticks/s)",
    ]
    if st.rejected_by_field:
        lines.append("  rejected by field: " + ", ".join(f"{k} {v}" for k, v in st.rejected_by_field.items()))
    if to_kafka:
        lines.append(f"  producer retries {st.retries}  queue-full waits {st.queue_full}")
    src_stats = getattr(source, "stats", None)
    if src_stats is not None and (src_stats.failures or src_stats.reconnects or src_stats.skipped):
        fails = ", ".join(f"{k} {v}" for k, v in sorted(src_stats.failures.items())) or "none"
        lines.append(f"  source failures: {fails}; reconnects {src_stats.reconnects}; "
                     f"skipped {src_stats.skipped}; circuit {src_stats.circuit}")
    if labels_written is not None:
        lines.append(f"  labels: {labels_written}")
    if to_kafka and settings.embedded_kafka:
        lines.append(f"  note: {_EMBEDDED_NOTE}")
    return lines
