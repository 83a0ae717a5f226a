"""Benchmark anomaly scoring against the aggregation of the ticks behind the candles.

Measures, in CPU time (``time.process_time``, best of ``--repeat``):

* aggregation per tick: :func:`cryptolab.batch.candles_from_ticks` (the vectorised
  proxy named by the issue; cheap per tick, so it makes the overhead look *larger*)
  and the streaming :class:`cryptolab.windows.CandleAggregator` the consumer runs;
* scoring per candle: :class:`cryptolab.anomaly.AnomalyScorer` with the default
  detectors (features + rule + zscore + hst + ensemble), and each detector alone.

From those it derives the CPU that scoring adds to a consumer at ``--rate`` ticks/s
(100,000 by default) spread over ``--rate-symbols`` symbols (1,000 by default), for
``--intervals``::

    candles/s = rate_symbols * sum(1 / interval_seconds)
    scoring_cpu_overhead = candles/s * cpu_per_candle / (rate * cpu_per_tick)

(aggregation is only part of a consumer's CPU, which also decodes, validates and
writes: the real overhead is lower still). It also reports the direct ratio on the
benchmark's own ticks, and the symbol count at which scoring would reach 10%.

Usage::

    python benchmarks/bench_scoring.py [--ticks 600000] [--symbols 20] [--hours 6]
        [--intervals 1m,5m,15m] [--rate 100000] [--rate-symbols 1000] [--repeat 3]
        [--json results/bench_scoring.json]

Not a test: it prints figures and writes JSON (key ``scoring_cpu_overhead``).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from cryptolab.anomaly import AnomalyScorer, default_detectors
from cryptolab.candles.batch import candles_from_ticks
from cryptolab.candles.frames import frame_to_candles
from cryptolab.candles.stream import CandleAggregator
from cryptolab.models import Candle, parse_interval, parse_intervals
from cryptolab.sources.synthetic import SyntheticMarket

REPO = Path(__file__).resolve().parents[1]


def best_cpu(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Smallest CPU time of ``repeat`` runs, and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t0)
    return best, out


def stream_aggregate(ticks: pd.DataFrame, intervals: tuple[str, ...], batch: int = 20_000) -> int:
    """The consumer's aggregation: CandleAggregator.add per tick, drain per batch."""
    agg = CandleAggregator(intervals=intervals)
    sym = ticks["symbol"].tolist()
    ts = ticks["ts_ms"].tolist()
    price = ticks["price"].tolist()
    size = ticks["size"].tolist()
    finals = 0
    add = agg.add
    for start in range(0, len(sym), batch):
        for i in range(start, min(start + batch, len(sym))):
            add(sym[i], ts[i], price[i], size[i])
        finals += len(agg.drain().first_finals)
    agg.close_all()
    return finals + len(agg.drain().first_finals)


def score_all(candles: list[Candle], detectors: Any) -> int:
    scorer = AnomalyScorer(detectors=detectors)
    return len(scorer.score(candles))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ticks", type=int, default=600_000, help="ticks to generate (default 600,000)")
    ap.add_argument("--symbols", type=int, default=20, help="symbols in the generated market")
    ap.add_argument("--hours", type=float, default=6.0, help="event-time hours of the generated market")
    ap.add_argument("--intervals", default="1m,5m,15m")
    ap.add_argument("--rate", type=float, default=100_000.0, help="consumer ticks/s for the overhead")
    ap.add_argument("--rate-symbols", type=int, default=1_000, help="symbols sharing --rate")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="OUT", default=None)
    args = ap.parse_args(argv)

    intervals = parse_intervals(args.intervals)
    duration_ms = int(args.hours * 3_600_000)
    market = SyntheticMarket(symbols=args.symbols, seed=args.seed, duration_ms=duration_ms,
                             ticks_per_second=args.ticks / (duration_ms / 1000),
                             random_injections=args.symbols, min_magnitude=0.03)
    ticks = market.to_frame()[["symbol", "ts_ms", "price", "size"]]
    n_ticks = len(ticks)
    print(f"{n_ticks:,} ticks, {args.symbols} symbols, {args.hours:g} h, intervals {','.join(intervals)}")

    batch_cpu, frame = best_cpu(lambda: candles_from_ticks(ticks, intervals=intervals), args.repeat)
    stream_cpu, n_stream = best_cpu(lambda: stream_aggregate(ticks, intervals), max(1, args.repeat - 1))
    candles = sorted(frame_to_candles(frame), key=lambda c: (c.window_end, c.symbol, c.interval))
    n_candles = len(candles)
    if n_stream != n_candles:
        print(f"note: streaming produced {n_stream} first-final candles, batch {n_candles}")

    score_cpu, n_alerts = best_cpu(lambda: score_all(candles, default_detectors(seed=0)), args.repeat)
    per_detector = {}
    for det in default_detectors(seed=0):
        def score_one(det: Any = det) -> int:
            return score_all(candles, [det])

        cpu, _ = best_cpu(score_one, args.repeat)
        per_detector[det.name] = cpu / n_candles * 1e6
    feat_cpu, _ = best_cpu(lambda: score_all(candles, [default_detectors()[0]]), args.repeat)

    per_tick_batch = batch_cpu / n_ticks
    per_tick_stream = stream_cpu / n_ticks
    per_candle = score_cpu / n_candles
    candles_per_symbol_s = sum(1000.0 / parse_interval(i) for i in intervals)
    candles_s = args.rate_symbols * candles_per_symbol_s

    def overhead(per_tick: float, symbols: int = args.rate_symbols) -> float:
        return float(symbols * candles_per_symbol_s * per_candle / (args.rate * per_tick))

    def break_even(per_tick: float) -> float:
        return float(0.10 * args.rate * per_tick / (per_candle * candles_per_symbol_s))

    rows = [
        ("aggregation, batch proxy (us/tick)", per_tick_batch * 1e6),
        ("aggregation, streaming CandleAggregator (us/tick)", per_tick_stream * 1e6),
        ("scoring, all default detectors (us/candle)", per_candle * 1e6),
        *((f"  {name} alone, incl. features (us/candle)", us) for name, us in per_detector.items()),
        ("candles scored / alerts", f"{n_candles:,} / {n_alerts}"),
        ("direct ratio on these ticks vs batch", score_cpu / batch_cpu),
        ("direct ratio on these ticks vs streaming", score_cpu / stream_cpu),
        (f"candles/s at {args.rate:,.0f} ticks/s over {args.rate_symbols:,} symbols", candles_s),
        ("scoring_cpu_overhead vs batch proxy", overhead(per_tick_batch)),
        ("scoring_cpu_overhead vs streaming aggregator", overhead(per_tick_stream)),
        ("symbols at which scoring reaches 10% (batch proxy)", break_even(per_tick_batch)),
        ("symbols at which scoring reaches 10% (streaming)", break_even(per_tick_stream)),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        shown = f"{v:,.4f}" if isinstance(v, float) and v < 10 else (f"{v:,.1f}" if isinstance(v, float) else v)
        print(f"{k:<{width}}  {shown}")
    for s in (100, 1_000, 10_000):
        print(f"overhead at {args.rate:,.0f} ticks/s, {s:>6,} symbols: "
              f"{overhead(per_tick_batch, s):7.2%} (batch proxy), {overhead(per_tick_stream, s):7.2%} (streaming)")

    result = {
        "scoring_cpu_overhead": overhead(per_tick_batch),
        "scoring_cpu_overhead_vs_streaming": overhead(per_tick_stream),
        "scoring_us_per_candle": per_candle * 1e6,
        "scoring_us_per_candle_by_detector": per_detector,
        "features_and_rule_us_per_candle": feat_cpu / n_candles * 1e6,
        "aggregation_us_per_tick_batch": per_tick_batch * 1e6,
        "aggregation_us_per_tick_streaming": per_tick_stream * 1e6,
        "direct_ratio_vs_batch": score_cpu / batch_cpu,
        "direct_ratio_vs_streaming": score_cpu / stream_cpu,
        "break_even_symbols_batch": break_even(per_tick_batch),
        "break_even_symbols_streaming": break_even(per_tick_stream),
        "scenario": {"rate_ticks_per_s": args.rate, "rate_symbols": args.rate_symbols,
                     "intervals": list(intervals), "candles_per_s": candles_s},
        "bench": {"ticks": n_ticks, "candles": n_candles, "alerts": n_alerts,
                  "symbols": args.symbols, "hours": args.hours, "repeat": args.repeat},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
    }
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
