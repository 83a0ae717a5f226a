"""``cryptolab run``: the whole live job in one process (a :func:`cryptolab.live` session)."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from cryptolab.cli._common import add_composite_flag, add_service_flags, settings_from_args
from cryptolab.cli._metrics import add_metrics_flags, serve_metrics
from cryptolab.cli.produce import add_source_flags
from cryptolab.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from cryptolab.api.background import BackgroundApi
    from cryptolab.market.session import LiveSession

__all__ = ["register", "run", "source_options"]


def register(sub: Any) -> None:
    """Add the ``run`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "run",
        help="run a live market in one process: backfill, then source -> Kafka -> candles -> store",
        description=(
            "Brings the history first (synthetic: the last --backfill of the market at full speed; "
            "an exchange: its candles over REST; a replayed file is its own history), then runs "
            "source -> producer -> Kafka -> windowing consumer -> store and cache in this process, "
            "on the embedded defaults or the services given, with a live progress line. "
            "SIGINT/SIGTERM or --duration stops the source, drains, closes every open window and "
            "commits, then exits 0. With --dashboard the session's dashboard is served too, with --api "
            "its HTTP API (the routes of cryptolab serve, on the session's store and cache)."
        ),
    )
    p.add_argument("--source", required=True, metavar="SOURCE",
                   help="synthetic, replay (with --path, or replay:PATH), coingecko, or a ccxt exchange id "
                        "(binance, coinbase, kraken...)")
    add_service_flags(p)
    p.add_argument("--intervals", default="1m,5m,15m", help="candle intervals (default 1m,5m,15m)")
    p.add_argument("--backfill", default="6h",
                   help="history brought first, e.g. 30m, 6h, 1d; 0 = none (default 6h)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (wall clock)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    add_source_flags(p, produce=False)
    add_composite_flag(p)
    ex = p.add_argument_group("exchange (ccxt)")
    ex.add_argument("--api-url", metavar="URL",
                    help="replace the scheme, host and port of every REST endpoint of the exchange")
    ex.add_argument("--backfill-from", choices=["ohlcv", "trades"], default="ohlcv",
                    help="backfill the exchange's candles (ohlcv, default) or rebuild them from its trades")
    dash = p.add_argument_group("dashboard")
    dash.add_argument("--dashboard", action="store_true", help="serve this session's dashboard too")
    dash.add_argument("--port", type=int, default=5006, help="dashboard TCP port (default 5006; 0 = any free)")
    dash.add_argument("--address", default="127.0.0.1", help="dashboard interface (default 127.0.0.1)")
    add_metrics_flags(p.add_argument_group("metrics"))  # type: ignore[arg-type]
    api = p.add_argument_group("HTTP API")
    api.add_argument("--api", action="store_true",
                     help="serve this session's HTTP API too (REST + WebSocket, as cryptolab serve)")
    api.add_argument("--api-port", type=int, default=None, metavar="P",
                     help="API TCP port (default 8000; 0 = any free)")
    api.add_argument("--api-host", default=None, metavar="HOST", help="API interface (default 127.0.0.1)")
    p.set_defaults(func=run)


def source_options(args: argparse.Namespace) -> tuple[str, Any, dict[str, Any]]:
    """``(source, symbols, options)`` for :func:`cryptolab.live` from the flags of ``run``.

    Examples
    --------
    >>> from cryptolab.cli import build_parser
    >>> args = build_parser().parse_args(["run", "--source", "coingecko", "--coins", "bitcoin",
    ...                                   "--poll-interval", "1"])
    >>> source_options(args)
    ('coingecko', None, {'coins': 'bitcoin', 'vs_currency': 'usd', 'poll_interval': 1.0})
    >>> source_options(build_parser().parse_args(["run", "--source", "replay", "--path", "x.csv"]))[0]
    'replay:x.csv'
    """
    name: str = args.source.strip()
    opts: dict[str, Any]
    if name == "synthetic":
        opts = {"seed": args.seed, "ticks_per_second": args.tps, "speed": args.speed}
    elif name == "replay" or name.startswith("replay:"):
        if name == "replay":
            if args.path is None:
                raise ConfigError("--source replay needs --path FILE (or --source replay:FILE)")
            name = f"replay:{args.path}"
        opts = {"format": args.format, "symbol": args.symbol, "speed": args.speed, "ts_unit": args.ts_unit,
                "ts_column": args.ts_column, "interval": args.bar_interval, "errors": args.errors}
    elif name == "coingecko":
        opts = {"coins": args.coins, "vs_currency": args.vs_currency, "base_url": args.coingecko_url,
                "poll_interval": args.poll_interval, "calls_per_minute": args.calls_per_minute}
    else:
        opts = {"api_url": args.api_url, "ws_url": args.ws_url, "backfill_from": args.backfill_from}
    return name, args.symbols, {k: v for k, v in opts.items() if v is not None}


def _check(args: argparse.Namespace) -> None:
    if args.duration is not None and not args.duration > 0:
        raise ConfigError(f"--duration must be > 0, got {args.duration}")
    if not args.api and (args.api_port is not None or args.api_host is not None):
        raise ConfigError("--api-port and --api-host need --api")


def _api_socket(args: argparse.Namespace) -> socket.socket | None:
    """With --api, the API's socket, bound before anything starts (a port in use costs nothing)."""
    if not args.api:
        return None
    from cryptolab.api.background import listen

    return listen(args.api_host or "127.0.0.1", 8000 if args.api_port is None else args.api_port)


def _serve_api(session: LiveSession, sock: socket.socket) -> BackgroundApi:
    """The HTTP API of ``session`` (its store, its cache) served from a thread of this process."""
    from cryptolab.api import create_app
    from cryptolab.api.background import BackgroundApi

    api = BackgroundApi(create_app(session.settings, cache=session.cache), sock).start()
    print(f"cryptolab run: API {api.url}  (docs at /docs; {session.feed.name})", flush=True)
    return api


def run(args: argparse.Namespace) -> int:
    """Run the session until --duration, the end of a finite source, or SIGINT/SIGTERM."""
    from cryptolab.market.session import live

    _check(args)
    settings = settings_from_args(args)
    name, symbols, options = source_options(args)
    say = not args.quiet
    sock = _api_socket(args)
    stop, serving, starting = threading.Event(), threading.Event(), threading.Event()
    starting.set()
    _on_signals(stop, starting)  # before the backfill: a signal then stops the start, drained and committed
    if say:
        print(f"cryptolab run: {name}: backfilling {args.backfill}..." if args.backfill not in ("0", "") else
              f"cryptolab run: {name}: starting...", file=sys.stderr, flush=True)
    try:
        session = live(name, symbols, intervals=args.intervals, backfill=args.backfill, settings=settings,
                       composite=args.composite, **options)
    except KeyboardInterrupt:
        if sock is not None:
            sock.close()
        if say:
            print(f"cryptolab run: {name} stopped while starting; what was stored stays", file=sys.stderr,
                  flush=True)
        return 0
    except BaseException:
        if sock is not None:
            sock.close()
        raise
    starting.clear()  # from here a signal only sets ``stop``: the watcher ends, the session drains
    metrics = _serve_metrics(session, args)
    t0 = time.monotonic()
    watcher = threading.Thread(target=_watch, args=(session, args, stop, serving, t0),
                               name="cryptolab-run-progress", daemon=True)
    api = None
    try:
        if sock is not None:
            api = _serve_api(session, sock)
        watcher.start()
        if args.dashboard:
            _serve(session, args, serving)  # until SIGINT/SIGTERM (the watcher sends one at the end)
        else:
            watcher.join()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        if watcher.is_alive():
            watcher.join(5)
        if api is not None:
            api.stop()
        elif sock is not None:
            sock.close()
        try:
            stats = session.stop()
        finally:
            session.close()
            if metrics is not None:
                metrics.close()
    if say:
        print(f"cryptolab run: {name} stopped after {time.monotonic() - t0:.1f}s: {stats.line()}; "
              f"{stats.gaps} trade gaps recorded; "
              f"every open window closed and committed to {stats.store_url}", file=sys.stderr, flush=True)
    return 0


def _serve_metrics(session: LiveSession, args: argparse.Namespace) -> Any:
    """The session's producer, source and consumer metrics at ``--metrics-port``, or ``None``."""
    if args.metrics_port is None:
        return None
    from cryptolab.metrics import ConsumerCollector, ProducerCollector
    from cryptolab.sources import SourceStats

    def source() -> SourceStats | None:
        stats = getattr(session.feed.source, "stats", None)
        return stats if isinstance(stats, SourceStats) else None

    try:
        return serve_metrics(args, ProducerCollector(lambda: session.producer_stats, source),
                             ConsumerCollector(lambda: session.pipeline))
    except BaseException:
        session.stop()
        session.close()
        raise


def _on_signals(stop: threading.Event, starting: threading.Event) -> None:
    """SIGINT and SIGTERM set ``stop`` (from the main thread only); while ``starting`` is set
    they also raise :class:`KeyboardInterrupt`, which stops a backfill or a start under way
    (:func:`cryptolab.live` then stops the session it began, drained and committed)."""
    def _signal(signum: int, _frame: object) -> None:
        stop.set()
        if starting.is_set():
            raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _signal)
        signal.signal(signal.SIGTERM, _signal)


def _watch(session: LiveSession, args: argparse.Namespace, stop: threading.Event, serving: threading.Event,
           t0: float) -> None:
    """Show the progress line until ``stop``, --duration, the end of the source or an error;
    then, with a dashboard serving, stop it (SIGTERM to this process)."""
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(desc=f"run {session.feed.name}", unit=" ticks", unit_scale=True, file=sys.stderr,
                   mininterval=0.5, dynamic_ncols=True)
    shown = 0
    while not stop.wait(0.5):
        stats = session.stats
        if bar is not None:
            bar.update(stats.consumed - shown)
            shown = stats.consumed
            candles = " ".join(f"{k}:{v}" for k, v in stats.candles.items())
            post: dict[str, Any] = {"candles": candles or 0, "alerts": stats.alerts, "source": stats.source}
            circuit = stats.source_stats.get("circuit")
            if circuit not in (None, "closed"):
                post["circuit"] = circuit
            if stats.gaps:
                post["gaps"] = stats.gaps
            if stats.errors:
                post["errors"] = len(stats.errors)
            bar.set_postfix(post, refresh=False)
        done = args.duration is not None and time.monotonic() - t0 >= args.duration
        if done or session.source_ended or stats.errors:
            break
    if bar is not None:
        bar.close()
    if args.dashboard and not stop.is_set():
        while not (serving.wait(0.5) or stop.is_set()):  # its signal handlers are in place once it serves
            pass
        if not stop.is_set():
            os.kill(os.getpid(), signal.SIGTERM)  # serve_dashboard returns on it


def _serve(session: LiveSession, args: argparse.Namespace, serving: threading.Event) -> None:
    from cryptolab.viz.dashboard import DashboardConfig, serve_dashboard

    config = DashboardConfig(symbols=tuple(session.symbols), interval=session.intervals[0],
                             intervals=session.intervals)

    def discover(interval: str) -> list[str]:
        return session.symbols

    def ready(url: str) -> None:
        print(f"cryptolab run: dashboard {url}  ({session.feed.name}; Ctrl-C to stop)", flush=True)
        serving.set()

    serve_dashboard(session.cache, store=session.store, config=config, discover=discover, port=args.port,
                    address=args.address, on_ready=ready)
