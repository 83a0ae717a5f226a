"""``cryptolab demo``: the main job on embedded defaults, with a summary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the ``demo`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="run a seeded synthetic market end to end (no services needed) and summarise it",
        description=(
            "Plays a seeded synthetic market (with a +10% spike injected on purpose and a few "
            "malformed records) at full speed through producer, Kafka, windowing consumer, store "
            "and cache. Uses the embedded defaults unless CRYPTOLAB_* service variables are set. "
            "Writes the default store that every command reads (forgetting the previous demo's "
            "data there first, so runs are reproducible)."
        ),
    )
    p.add_argument("--symbols", type=int, default=5, help="number of symbols (default 5)")
    p.add_argument("--hours", type=float, default=2.0, help="simulated hours (default 2)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument("--rate", type=float, default=25.0, help="simulated ticks per second across symbols")
    p.add_argument("--out", type=Path, default=None,
                   help="folder of the CSVs, labels and report (default .cryptolab/demo)")
    p.add_argument("--no-report", action="store_true", help="skip rendering the HTML market report")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo and print its summary."""
    from cryptolab.config import Settings
    from cryptolab.demo import run_demo

    settings = Settings.from_env()
    where = "embedded (in-process Kafka, SQLite, in-process cache)" if settings.embedded_kafka else "configured services"
    print(f"cryptolab demo: {args.symbols} symbols x {args.hours:g} simulated hours, seed {args.seed}, on {where}",
          file=sys.stderr)
    result = run_demo(settings=settings, symbols=args.symbols, hours=args.hours, seed=args.seed,
                      ticks_per_second=args.rate, report=not args.no_report, progress=sys.stderr.isatty(),
                      out_dir=args.out)
    print(result.summary())
    return 0
