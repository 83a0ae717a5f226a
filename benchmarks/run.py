"""``python -m benchmarks.run``: the performance suite against the peers, side by side in one run.

``make bench`` runs it against the local services with the repository's default output,
``benchmarks/results/latest.json``. It prints one line per figure as they come in (standard
error), then a table of the fixed keys with their targets, the correctness checks, and the
sections skipped.

Usage::

    scripts/services.sh up && eval "$(scripts/services.sh env)"
    python -m benchmarks.run [--json PATH] [--quick] [--only consumer,batch] [--no-quix]

Exit status 1 when a section was skipped or failed or a correctness check failed (targets
missed do not change it), 2 for an unknown ``--only`` name. Not a test: nothing asserts a speed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from benchmarks.spec import KEYS, BenchConfig
from benchmarks.suite import resolve_sections, run_suite, write_json
from cryptolab.config import Settings

__all__ = ["DEFAULT_JSON", "build_parser", "main"]

#: Where ``make bench`` (and a run without ``--json``) writes the figures.
DEFAULT_JSON: Final = Path(__file__).resolve().parent / "results" / "latest.json"


def build_parser() -> argparse.ArgumentParser:
    """The options of the suite's command line."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=(
            "Runs the benchmark suite against the real services (CRYPTOLAB_KAFKA_BOOTSTRAP, "
            "CRYPTOLAB_STORE_URL=postgresql+psycopg://..., CRYPTOLAB_REDIS_URL, or the flags) and "
            "writes one JSON document with fixed keys (see README, Performance). Sections whose "
            "services are missing are skipped and named. Uses fresh topics and databases (dropped "
            "afterwards) and Redis logical database 14 (flushed). Exit status 1 when a section was "
            "skipped or failed or a correctness check failed; targets missed do not change it."
        ),
    )
    p.add_argument("--kafka", dest="kafka_bootstrap", metavar="BOOTSTRAP",
                   help="Kafka bootstrap servers (env CRYPTOLAB_KAFKA_BOOTSTRAP)")
    p.add_argument("--store", dest="store_url", metavar="URL",
                   help="PostgreSQL SQLAlchemy URL (env CRYPTOLAB_STORE_URL)")
    p.add_argument("--redis", dest="redis_url", metavar="URL", help="Redis URL (env CRYPTOLAB_REDIS_URL)")
    p.add_argument("--json", dest="json_path", type=Path, default=DEFAULT_JSON, metavar="PATH",
                   help="write the results here (default: benchmarks/results/latest.json)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes (about a minute): for notebooks and smoke tests, not for figures")
    p.add_argument("--only", metavar="KEYS",
                   help="comma-separated sections (producer, consumer, latency, history, latest, "
                        "scoring, batch, memory, sparse, nautilus, flink, api) or result keys (e.g. consumer_vs_quix)")
    p.add_argument("--ticks", type=int, default=None, help="ticks in the consumer benchmark's topic (default 1,000,000)")
    p.add_argument("--symbols", type=int, default=None, help="symbols in it (default 50)")
    p.add_argument("--no-quix", action="store_true", help="skip Quix Streams (its run takes minutes)")
    p.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR (env CRYPTOLAB_LOG_LEVEL)")
    return p


def _config(args: argparse.Namespace) -> BenchConfig:
    """The sizes the options ask for."""
    overrides: dict[str, Any] = {}
    if args.ticks is not None:
        overrides["ticks"] = args.ticks
    if args.symbols is not None:
        overrides["symbols"] = args.symbols
    if args.no_quix:
        overrides["quix"] = False
    return BenchConfig.quick_config(**overrides) if args.quick else BenchConfig(**overrides)


def _summary(result: dict[str, Any]) -> None:
    """The fixed keys with their targets, the checks (standard output) and the skips (error)."""
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite, print a summary and write the JSON; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        sections = resolve_sections(args.only)
    except ValueError as exc:
        print(f"benchmarks: {exc}", file=sys.stderr)
        return 2
    level = args.log_level or os.environ.get("CRYPTOLAB_LOG_LEVEL") or "WARNING"
    logging.basicConfig(level=getattr(logging, str(level).upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    keys = ("kafka_bootstrap", "store_url", "redis_url")
    settings = Settings.from_env(**{k: getattr(args, k) for k in keys if getattr(args, k) is not None})

    def progress(line: str) -> None:
        print(f"bench: {line}", file=sys.stderr, flush=True)

    result = run_suite(settings, config=_config(args), only=sections, progress=progress)
    path = write_json(result, args.json_path)
    _summary(result)
    print(f"wrote {path} in {result['elapsed_s']:.0f} s", file=sys.stderr)
    failed_checks = [k for k, ok in result["checks"].items() if not ok]
    return 1 if result["skipped"] or failed_checks else 0


if __name__ == "__main__":
    raise SystemExit(main())
