"""``cryptolab consume``: run one member of the windowing consumer group."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from typing import Any

from cryptolab.cli._common import add_service_flags, settings_from_args
from cryptolab.cli._metrics import add_metrics_flags, serve_metrics
from cryptolab.errors import EndNotReachedError

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the ``consume`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "consume",
        help="build candles from the tick topic into the store and cache (one consumer-group member)",
        description=(
            "Consume ticks, build event-time candles and commit them exactly once to the store, "
            "with alerts and progress in the same transaction. Run more processes with the same "
            "--group to scale, up to the topic's partition count."
        ),
    )
    add_service_flags(p)
    p.add_argument("--group", help="consumer group (env CRYPTOLAB_GROUP; default cryptolab-candles)")
    p.add_argument("--intervals", help="candle intervals, e.g. 1m,5m,15m (env CRYPTOLAB_INTERVALS)")
    p.add_argument("--stop-at-end", action="store_true",
                   help="exit 0 once the group has consumed every partition up to the end offsets at "
                   "start and closed every window (whichever member did it); this member drains its own "
                   "partitions, then takes over or waits for those other members hold; exit 1 if it "
                   "ends otherwise (--end-wait, --timeout, a signal)")
    p.add_argument("--end-wait", metavar="DURATION",
                   help="--stop-at-end: how long to wait without progress for partitions held by other "
                   "members before exiting 1 (env CRYPTOLAB_END_WAIT; default 60s)")
    p.add_argument("--timeout", type=float, default=None, help="exit after this many seconds")
    p.add_argument("--no-score", action="store_true", help="do not run anomaly detectors")
    p.add_argument("--batch-size", type=int, default=20_000, help="messages per consume() call")
    p.add_argument("--instance-id", help="static group membership id (group.instance.id): a restarted "
                   "member with the same id takes its partitions back at once, without a rebalance")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    add_metrics_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the consumer until stopped (SIGINT/SIGTERM), --timeout or --stop-at-end.

    Exit 0, or 1 when --stop-at-end was asked for and the run ended before the whole topic was
    done (the message names the partitions).
    """
    from cryptolab.pipeline import CandlePipeline

    settings = settings_from_args(args, end_wait=args.end_wait)
    if settings.embedded_kafka:
        print(
            "cryptolab consume: no Kafka configured (--kafka or CRYPTOLAB_KAFKA_BOOTSTRAP); the embedded "
            "mock cluster lives in this process only, so there is nothing to consume. "
            "Use `cryptolab replay` or `cryptolab demo` for embedded runs.",
            file=sys.stderr,
        )
        return 2
    overrides = {"group.instance.id": args.instance_id} if args.instance_id else None
    pipeline = CandlePipeline(settings, scorer=None if args.no_score else True, batch_size=args.batch_size,
                              consumer_overrides=overrides)
    metrics = None
    if args.metrics_port is not None:
        from cryptolab.metrics.consumer import ConsumerCollector

        metrics = serve_metrics(args, ConsumerCollector(pipeline))

    def _stop(signum: int, _frame: object) -> None:
        pipeline.stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
    done = threading.Event()
    if not args.quiet and sys.stderr.isatty():
        def _progress() -> None:
            while not done.wait(1.0):
                st = pipeline.stats
                waiting = pipeline.waiting_for
                held = f"  waiting for partitions {', '.join(map(str, waiting))} held by other members" \
                    if waiting else ""
                print(f"\rticks {st.ticks:,}  candles {st.candles_final:,}  alerts {st.alerts}  "
                      f"dlq {st.dead_letters}  late {st.late_ticks}  partitions {pipeline.assignment}{held}   ",
                      end="", file=sys.stderr, flush=True)
        threading.Thread(target=_progress, daemon=True).start()
    t0 = time.monotonic()
    failed: EndNotReachedError | None = None
    try:
        stats = pipeline.run(stop_at_end=args.stop_at_end, timeout=args.timeout)
    except EndNotReachedError as exc:
        failed, stats = exc, pipeline.stats
    finally:
        done.set()
        if metrics is not None:
            metrics.close()
    if not args.quiet:
        print(file=sys.stderr)
        el = time.monotonic() - t0
        print(
            f"consumed {stats.ticks:,} ticks in {el:.1f}s ({stats.ticks_per_s:,.0f}/s): "
            f"{stats.candles_final:,} candles, {stats.alerts} alerts, {stats.dead_letters} dead letters, "
            f"{stats.late_ticks} too-late ticks, {stats.commits} commits, {stats.fenced} fenced",
        )
    if failed is not None:
        print(f"cryptolab consume: error: {failed}", file=sys.stderr)
        return 1
    return 0
