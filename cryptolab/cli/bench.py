"""``cryptolab bench``: the performance suite against the peers, side by side in one run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cryptolab.cli._common import add_service_flags, settings_from_args

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the ``bench`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "bench",
        help="run the performance suite (producer, consumer vs Quix Streams, latency, store, "
             "cache, scoring, batch vs polars, memory) and write the figures as JSON",
        description=(
            "Runs the benchmark suite against the real services (CRYPTOLAB_KAFKA_BOOTSTRAP, "
            "CRYPTOLAB_STORE_URL=postgresql+psycopg://..., CRYPTOLAB_REDIS_URL, or the flags) and "
            "writes one JSON document with fixed keys (see README, Performance). Sections whose "
            "services are missing are skipped and named. Uses fresh topics and databases (dropped "
            "afterwards) and Redis logical database 14 (flushed). Exit status 1 when a section was "
            "skipped or failed or a correctness check failed; targets missed do not change it."
        ),
    )
    add_service_flags(p)
    p.add_argument("--json", dest="json_path", type=Path, required=True, metavar="PATH",
                   help="write the results here (e.g. benchmarks/results/latest.json)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes (about a minute): for notebooks and smoke tests, not for figures")
    p.add_argument("--only", metavar="KEYS",
                   help="comma-separated sections (producer, consumer, latency, history, latest, "
                        "scoring, batch, memory) or result keys (e.g. consumer_vs_quix)")
    p.add_argument("--ticks", type=int, default=None, help="ticks in the consumer benchmark's topic (default 1,000,000)")
    p.add_argument("--symbols", type=int, default=None, help="symbols in it (default 50)")
    p.add_argument("--no-quix", action="store_true", help="skip Quix Streams (its run takes minutes)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the suite, print a summary and write the JSON."""
    from cryptolab.bench import KEYS, BenchConfig, resolve_sections, run_suite, write_json

    try:
        sections = resolve_sections(args.only)
    except ValueError as exc:
        print(f"cryptolab bench: {exc}", file=sys.stderr)
        return 2
    overrides: dict[str, Any] = {}
    if args.ticks is not None:
        overrides["ticks"] = args.ticks
    if args.symbols is not None:
        overrides["symbols"] = args.symbols
    if args.no_quix:
        overrides["quix"] = False
    config = BenchConfig.quick_config(**overrides) if args.quick else BenchConfig(**overrides)
    settings = settings_from_args(args)

    def progress(line: str) -> None:
        print(f"bench: {line}", file=sys.stderr, flush=True)

    result = run_suite(settings, config=config, only=sections, progress=progress)
    path = write_json(result, args.json_path)
    width = max(len(k) for k in KEYS)
    print(f"{'key':<{width}}  {'value':>14}  target")
    for key in KEYS:
        value = result.get(key)
        target = result["targets"].get(key)
        shown = "-" if value is None else (f"{value:,.3f}" if isinstance(value, float) else f"{value:,}")
        mark = ""
        if target is not None:
            mark = f"{target['target']:<8} " + {True: "ok", False: "MISSED", None: "-"}[target["ok"]]
        print(f"{key:<{width}}  {shown:>14}  {mark}")
    for name, ok in result["checks"].items():
        print(f"check {name}: {'ok' if ok else 'FAILED'}")
    for name, why in result["skipped"].items():
        print(f"skipped {name}: {why}", file=sys.stderr)
    print(f"wrote {path} in {result['elapsed_s']:.0f} s", file=sys.stderr)
    failed_checks = [k for k, ok in result["checks"].items() if not ok]
    return 1 if result["skipped"] or failed_checks else 0
