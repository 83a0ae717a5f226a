"""``cryptolab backfill``: an exchange's history over REST (ccxt) into the store, as final candles."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cryptolab.cli._common import settings_from_args

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the ``backfill`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "backfill",
        help="fetch an exchange's candles (or trades) over REST into the store",
        description=(
            "Fetch an exchange's history through ccxt and store it as final candles of "
            "VENUE:BASE-QUOTE symbols: its candles (--from ohlcv), or its trades rebuilt by "
            "cryptolab's aggregator into every interval (--from trades). Paginated, rate limits "
            "and Retry-After honoured, only whole windows; running it twice changes nothing."
        ),
    )
    p.add_argument("--exchange", required=True, metavar="EX", help="a ccxt exchange id: binance, kraken, ...")
    p.add_argument("--symbol", dest="symbols", action="append", required=True, metavar="BASE/QUOTE",
                   help="a market, e.g. BTC/USDT (repeat for more)")
    p.add_argument("--interval", metavar="I",
                   help="candle interval(s), e.g. 1m or 1m,5m,15m (default: 1m for ohlcv; "
                        "CRYPTOLAB_INTERVALS for trades)")
    p.add_argument("--since", required=True, metavar="ISO",
                   help="start: ISO-8601 (2024-01-01T00:00Z), epoch ms, or a duration before now (6h, 2d)")
    p.add_argument("--until", metavar="ISO", help="end (same forms; default: now)")
    p.add_argument("--from", dest="kind", choices=("ohlcv", "trades"), default="ohlcv",
                   help="the exchange's candles (default) or its trades")
    p.add_argument("--api-url", metavar="URL",
                   help="replace the scheme, host and port of every REST endpoint (stand-ins, proxies, mirrors)")
    p.add_argument("--store", dest="store_url", metavar="URL",
                   help="SQLAlchemy URL (env CRYPTOLAB_STORE_URL; default: embedded SQLite)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Backfill; print the summary; return the exit code."""
    from cryptolab.market.backfill import backfill

    settings = settings_from_args(args)
    report = backfill(
        args.exchange, args.symbols, since=args.since, until=args.until, kind=args.kind,
        intervals=args.interval, api_url=args.api_url, progress=not args.quiet, settings=settings,
    )
    print(report.summary())
    sys.stdout.flush()
    return 0
