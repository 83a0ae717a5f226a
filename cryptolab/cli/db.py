"""``cryptolab db init|info``: create the store's schema, or describe what it holds."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cryptolab.cli._common import GET_DATA, settings_from_args, sqlite_file
from cryptolab.models.venues import split_venue

__all__ = ["register", "run"]


def _store_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", dest="store_url", metavar="URL",
                   help="SQLAlchemy URL (env CRYPTOLAB_STORE_URL; default: embedded SQLite in the data dir)")


def register(sub: Any) -> None:
    """Add the ``db`` subcommand (``init`` and ``info``)."""
    p: argparse.ArgumentParser = sub.add_parser(
        "db",
        help="create the store's tables (init) or show what the store holds (info)",
        description=(
            "init: create or upgrade the schema (idempotent; on PostgreSQL, candles becomes a "
            "TimescaleDB hypertable when the extension is available). info: backend, schema "
            "version, row counts, venues (symbols and candles per venue; venue-less symbols as "
            "'(no venue)'), candle series and consumer progress."
        ),
    )
    actions = p.add_subparsers(dest="db_action", required=True, metavar="ACTION")
    p_init = actions.add_parser("init", help="create or upgrade the schema (safe to run again)")
    _store_flag(p_init)
    p_info = actions.add_parser("info", help="backend, schema version, row counts, series, progress")
    _store_flag(p_info)
    p_info.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``db init`` or ``db info``; return the exit code."""
    from cryptolab.store import Store

    settings = settings_from_args(args)
    if args.db_action == "init":
        with Store.from_settings(settings) as store:
            store.init()
            print(f"initialised {store.url}: schema v{store.schema_version()}, "
                  f"dialect {store.dialect}, TimescaleDB hypertable: {'yes' if store.timescale else 'no'}")
        return 0
    url = settings.resolved_store_url()
    store = Store(url)  # a malformed URL is a one-line error, before anything is created
    path = sqlite_file(url)
    if path is not None and not path.exists():
        store.close()
        print(f"cryptolab db info: no database at {path} (`cryptolab demo` or `cryptolab replay "
              "FILE` writes one there; `cryptolab db init` creates an empty one)", file=sys.stderr)
        return 1
    with store:
        info = store.info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0 if info["schema_version"] is not None else 1
    _print_info(info)
    return 0 if info["schema_version"] is not None else 1


def _print_info(info: dict[str, Any]) -> None:
    print(f"store       {info['url']}")
    print(f"dialect     {info['dialect']} (TimescaleDB hypertable: {'yes' if info['timescale'] else 'no'})")
    if info["schema_version"] is None:
        print(f"schema      not initialised (`cryptolab db init` creates the tables; {GET_DATA})")
        return
    print(f"schema      v{info['schema_version']}")
    print(f"rows        candles {info['candles']:,}  alerts {info['alerts']:,}  "
          f"late ticks {info['late_ticks']:,}  trade gaps {info.get('trade_gaps', 0):,}")
    _print_venues(info.get("venues", []))
    print(f"series      {len(info['series'])}")
    width = max([16, *(len(s["symbol"]) for s in info["series"])])
    for s in info["series"]:
        print(f"  {s['symbol']:<{width}} {s['interval']:<5} {s['candles']:>10,} candles  "
              f"{s['first']} .. {s['last']}")
    print(f"progress    {len(info['progress'])} partition(s)")
    for p in info["progress"]:
        print(f"  group {p['group']} topic {p['topic']} partition {p['partition']}: "
              f"next offset {p['offset']:,}, watermark {p['watermark'] or '-'}, "
              f"updated {p['updated_at']}")


def _print_venues(venues: list[dict[str, Any]]) -> None:
    """One line per venue (``VENUE:BASE-QUOTE`` symbols); the venue-less symbols last."""
    named = sum(1 for v in venues if v["venue"] is not None)
    print(f"venues      {named}" + (" (and venue-less symbols)" if named < len(venues) else ""))
    for v in venues:
        pairs = [split_venue(s)[1] for s in v["symbols"]]
        print(f"  {v['venue'] or '(no venue)':<16} {len(v['symbols']):>3} symbol(s) {v['series']:>4} series "
              f"{v['candles']:>10,} candles  {', '.join(pairs)}")
