"""``cryptolab evaluate``: precision, recall and detection delay of the anomaly detectors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the ``evaluate`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "evaluate",
        help="compare anomaly detectors on a synthetic market with injected moves and on recorded data",
        description=(
            "Score candles with every detector and print precision, recall and detection delay "
            "side by side. Ground truth: the labelled spikes and crashes injected into a seeded "
            "synthetic market; for recorded files (--real), one-candle moves of at least "
            "--label-move (no labels exist there: read the alert rates)."
        ),
    )
    p.add_argument("--symbols", type=int, default=5, help="synthetic symbols (default 5)")
    p.add_argument("--hours", type=float, default=6.0, help="synthetic event-time hours (default 6)")
    p.add_argument("--seed", type=int, default=0, help="market and detector seed (default 0)")
    p.add_argument("--injections", type=int, default=20,
                   help="labelled spikes/crashes injected at random (default 20)")
    p.add_argument("--min-magnitude", type=float, default=0.03,
                   help="smallest injected move, 0.03 = 3%% (default 0.03)")
    p.add_argument("--max-magnitude", type=float, default=0.15,
                   help="largest injected move (default 0.15)")
    p.add_argument("--interval", default="1m",
                   help="candle interval for the synthetic market and trade files (default 1m)")
    p.add_argument("--ticks-per-second", type=float, default=20.0,
                   help="synthetic trades per second, all symbols (default 20)")
    p.add_argument("--detectors", default=None,
                   help="comma-separated detectors (default: rule,zscore,hst,ensemble)")
    p.add_argument("--tolerance", type=int, default=1,
                   help="candles after a synthetic label that still count as detecting it (default 1)")
    p.add_argument("--real", nargs="+", metavar="PATH", default=[],
                   help="recorded bars (.json) or trades (.csv) files, e.g. ../shared/data/bars/*.json")
    p.add_argument("--label-move", type=float, default=0.03,
                   help="in recorded files, label candles with |close-open|/open >= this (default 0.03)")
    p.add_argument("--no-synthetic", action="store_true", help="only evaluate the --real files")
    p.add_argument("--json", metavar="OUT", help="also write the tables as JSON to this file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the evaluations, print one table per data set; 0 on success."""
    import orjson
    from tqdm import tqdm

    from cryptolab.errors import ValidationError
    from cryptolab.evaluation import EvaluationResult, evaluate_real, evaluate_synthetic

    if args.hours <= 0:
        raise ValidationError("hours", f"must be > 0, got {args.hours}")
    if args.no_synthetic and not args.real:
        raise ValidationError("real", "--no-synthetic needs at least one --real file")
    jobs: list[tuple[str, Any]] = []
    if not args.no_synthetic:
        jobs.append(("synthetic", lambda: evaluate_synthetic(
            symbols=args.symbols, hours=args.hours, seed=args.seed, injections=args.injections,
            min_magnitude=args.min_magnitude, max_magnitude=args.max_magnitude,
            interval=args.interval, ticks_per_second=args.ticks_per_second,
            detectors=args.detectors, tolerance=args.tolerance)))
    for path in args.real:
        jobs.append((Path(path).name, lambda path=path: evaluate_real(
            path, interval=args.interval, label_move=args.label_move, detectors=args.detectors,
            seed=args.seed)))

    results: list[EvaluationResult] = []
    bar = tqdm(jobs, desc="evaluate", unit="dataset", file=sys.stderr, disable=len(jobs) < 2)
    for name, job in bar:
        bar.set_postfix_str(name)
        result = job()
        results.append(result)
        print(result)
        print()
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(orjson.dumps({"results": [r.to_dict() for r in results]},
                                     option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
        print(f"wrote {out}", file=sys.stderr)
    return 0
