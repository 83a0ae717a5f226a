"""``cryptolab status``: the pipeline's health on one screen (services, lag, last commit, DLQ)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cryptolab.cli._common import add_service_flags, settings_from_args
from cryptolab.errors import ConfigError

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the ``status`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "status",
        help="the pipeline's health: services, consumer lag per partition, last commit, dead letters",
        description=(
            "Ask Kafka, the store and the cache how the pipeline is doing: whether each answers, "
            "each partition's end offset, the group's committed offset in the store and the lag "
            "between them, when the group last committed, and how many records the dead-letter "
            "topic holds. Exit 0 when every service answers, 1 when one is down (named on "
            "standard error)."
        ),
    )
    add_service_flags(p)
    p.add_argument("--group", help="consumer group (env CRYPTOLAB_GROUP; default cryptolab-candles)")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S",
                   help="seconds to wait for Kafka's answers (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the health report; exit 1 when a service is down."""
    from cryptolab.status import health_report

    if not args.timeout > 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, not {args.timeout:g}")
    report = health_report(settings_from_args(args), timeout=args.timeout)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.text())
    if not report.ok:
        print(f"cryptolab status: down: {', '.join(report.down)}", file=sys.stderr)
        return 1
    return 0
