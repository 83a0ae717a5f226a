"""``cryptolab report``: render the market report notebook of a store to HTML."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cryptolab.cli._common import add_service_flags, settings_from_args

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the ``report`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "report",
        help="render the market report (candles, returns, volatility, anomalies) to HTML",
        description=(
            "Executes notebooks/reports/market_report.ipynb with papermill on the store and "
            "writes market_report.ipynb and a self-contained market_report.html. Arguments are "
            "checked before a kernel starts; a failed run keeps the previous report and writes "
            "market_report.failed.html."
        ),
    )
    add_service_flags(p, kafka=False)
    p.add_argument("--symbols", default=None,
                   help='comma-separated symbols or a JSON list, e.g. BTC,ETH (default: all)')
    p.add_argument("--interval", default="1m", help="candle interval (default 1m)")
    p.add_argument("--start", default=None, help="ISO-8601 UTC start (default: 6h before end)")
    p.add_argument("--end", default=None, help="ISO-8601 UTC end (default: after the newest candle)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default <data dir>/reports/adhoc)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Render and print the HTML path."""
    from cryptolab.reports.market import render_report, report_parameters
    from cryptolab.reports.notebooks import NotebookRunError

    # bad arguments fail here, in one line (exit 2), before any kernel, folder or store
    checked = report_parameters(symbols=args.symbols, interval=args.interval, start=args.start,
                                end=args.end)
    settings = settings_from_args(args)
    out = args.out or settings.data_dir / "reports" / "adhoc"
    if not settings.store_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        html = render_report(settings.resolved_store_url(), out, **checked)
    except NotebookRunError as exc:
        print(f"cryptolab report: failed in cell {exc.cell}: {exc.ename}: {exc.evalue}",
              file=sys.stderr)
        if exc.html:
            print(f"cryptolab report: see {exc.html}", file=sys.stderr)
        return 1
    print(html)
    return 0
