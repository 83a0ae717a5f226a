"""``cryptolab export candles|alerts``: write stored candles or alerts to CSV."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cryptolab.cli._common import open_existing_store, settings_from_args

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the ``export`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "export",
        help="write stored candles or alerts to a CSV file",
        description=(
            "Export candles (symbol, interval, window_start, window_end, open, high, low, close, "
            "volume, vwap, trades, revision, final) or alerts (symbol, interval, window_start, "
            "detector, severity, score) to CSV, times in ISO-8601 UTC. --start/--end bound "
            "window_start to [start, end)."
        ),
    )
    p.add_argument("what", choices=("candles", "alerts"), help="what to export")
    p.add_argument("--store", dest="store_url", metavar="URL",
                   help="SQLAlchemy URL (env CRYPTOLAB_STORE_URL; default: embedded SQLite in the data dir)")
    p.add_argument("--symbol", help="only this symbol, e.g. BTC-USD")
    p.add_argument("--interval", help="only this interval, e.g. 1m")
    p.add_argument("--start", help="window_start >= this (ISO-8601, e.g. 2024-01-01T00:00Z, or epoch ms)")
    p.add_argument("--end", help="window_start < this (ISO-8601 or epoch ms)")
    p.add_argument("--out", required=True, metavar="FILE.csv",
                   help="output file (written atomically), or - for standard output; a name holding "
                        "{symbol} and/or {interval} writes one file per series, e.g. "
                        "'out/{symbol}_{interval}.csv' (':' in a symbol is written '~', '/' '+')")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export; print the row count to standard error; return the exit code."""
    settings = settings_from_args(args)
    if "{" in args.out:
        with open_existing_store(settings) as store:
            files = store.export_series(args.out, args.what, symbol=args.symbol, interval=args.interval,
                                        start=args.start, end=args.end, progress=True)
        print(f"wrote {sum(files.values()):,} {args.what} to {len(files)} file(s)", file=sys.stderr)
        return 0
    with open_existing_store(settings) as store:
        target: Any = sys.stdout if args.out == "-" else args.out
        kwargs = {"symbol": args.symbol, "interval": args.interval, "start": args.start, "end": args.end}
        if args.what == "candles":
            n = store.export_candles(target, **kwargs)
        else:
            n = store.export_alerts(target, **kwargs)
    where = "standard output" if args.out == "-" else args.out
    print(f"wrote {n:,} {args.what} to {where}", file=sys.stderr)
    return 0
