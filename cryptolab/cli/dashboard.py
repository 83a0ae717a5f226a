"""``cryptolab dashboard``: the live candle chart as a standalone web page (Bokeh server)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from cryptolab.cli._common import add_service_flags, settings_from_args

__all__ = ["register", "run"]

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    """Add the ``dashboard`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "dashboard",
        help="serve the live dashboard (candles, price cards, alerts) in the browser",
        description=(
            "Serves a live dashboard with Bokeh: a candlestick chart with MA20/MA50, volume and "
            "anomaly markers, a price card per symbol, the recent alerts, and symbol/interval "
            "pickers. It follows the cache (Redis, or the in-process cache of --demo) and "
            "backfills from the store. Stop with Ctrl-C."
        ),
    )
    add_service_flags(p, kafka=False)
    p.add_argument("--symbols", default=None,
                   help="comma-separated symbols (default: every symbol of the interval in the store)")
    p.add_argument("--interval", default="1m", help="candle interval shown first (default 1m)")
    p.add_argument("--port", type=int, default=5006, help="TCP port (default 5006; 0 = any free port)")
    p.add_argument("--address", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="HOST:PORT",
                   help="extra websocket origin to allow (e.g. behind a proxy); repeatable")
    p.add_argument("--demo", action="store_true",
                   help="run a synthetic market through the embedded pipeline in this process")
    p.add_argument("--demo-symbols", type=int, default=5, help="symbols of the --demo market (default 5)")
    p.add_argument("--speed", type=float, default=60.0,
                   help="--demo simulated seconds per second (default 60: a 1m candle a second)")
    p.add_argument("--show", action="store_true", help="open a browser tab")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    from cryptolab.cache import open_cache
    from cryptolab.models import parse_interval, validate_symbol
    from cryptolab.store import Store
    from cryptolab.viz.dashboard import DashboardConfig, serve_dashboard

    parse_interval(args.interval)
    symbols = tuple(validate_symbol(s.strip()) for s in (args.symbols or "").split(",") if s.strip())
    settings = settings_from_args(args)
    live = None
    if args.demo:
        from cryptolab.demo import LiveDemo
        from cryptolab.sources.synthetic import synthetic_symbols

        live = LiveDemo(symbols=args.demo_symbols, speed=args.speed, settings=settings).start()
        settings = live.settings
        symbols = symbols or tuple(synthetic_symbols(args.demo_symbols))
    elif not settings.redis_url:
        print("cryptolab dashboard: no Redis configured (--redis / CRYPTOLAB_REDIS_URL): showing "
              "the store's history without live updates; use --demo for a live market",
              file=sys.stderr, flush=True)
    store = Store.from_settings(settings)
    store.init()
    feed = open_cache(settings)

    def discover(interval: str) -> list[str]:
        try:
            return [s["symbol"] for s in store.info().get("series", []) if s["interval"] == interval]
        except Exception as exc:  # the page keeps working; the picker fills in later
            log.warning("cannot list symbols: %s", exc)
            return []

    config = DashboardConfig(symbols=symbols, interval=args.interval,
                             intervals=tuple(dict.fromkeys([*settings.intervals, args.interval])))

    def ready(url: str) -> None:
        mode = "demo market" if live else f"cache {type(feed).__name__}"
        print(f"cryptolab dashboard: {url}  ({mode}; Ctrl-C to stop)", flush=True)

    try:
        serve_dashboard(feed, store=store, config=config, discover=discover, port=args.port,
                        address=args.address, allow_origins=args.allow_origin, on_ready=ready,
                        show=args.show)
    finally:
        if live is not None:
            live.stop()
        store.close()
        print("cryptolab dashboard: stopped", file=sys.stderr, flush=True)
    return 0
