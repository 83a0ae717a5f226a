"""``scoring``: the CPU anomaly scoring adds to a consumer at 100,000 ticks/s over 1,000 symbols
(``benchmarks/bench_scoring.py``)."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path
from typing import Any

import orjson

from benchmarks import bench_scoring
from benchmarks.results import rnd
from benchmarks.services import Services
from benchmarks.spec import BenchConfig, Progress

__all__ = ["run"]


def run(svc: Services, cfg: BenchConfig, progress: Progress) -> dict[str, Any]:
    """Scoring overhead at 100,000 ticks/s, per tick of the consumer measured by the consumer
    section when it ran (``svc.notes``), else of the streaming aggregator."""
    with tempfile.TemporaryDirectory() as tmp:
        out_path = Path(tmp) / "scoring.json"
        argv = ["--ticks", str(cfg.scoring_ticks), "--repeat", str(cfg.scoring_repeat), "--json", str(out_path)]
        with contextlib.redirect_stdout(io.StringIO()):
            bench_scoring.main(argv)
        out = orjson.loads(out_path.read_bytes())
    # The CPU a consumer spends per tick: measured on the real consumer when the consumer
    # section ran (decode, validate, fold, commit to PostgreSQL, publish to Redis), else the
    # streaming aggregator alone (bench_scoring's own figure; batch is a far cheaper proxy).
    scenario = out["scenario"]
    per_tick = svc.notes.get("consumer_cpu_us_per_tick")
    if per_tick:
        overhead = scenario["candles_per_s"] * out["scoring_us_per_candle"] / (scenario["rate_ticks_per_s"] * per_tick)
        basis = f"the consumer's measured CPU per tick ({per_tick:.2f} us, consumer section)"
    else:
        overhead = out["scoring_cpu_overhead_vs_streaming"]
        basis = "the streaming aggregator's CPU per tick (the consumer section did not run)"
    progress(f"scoring: overhead {overhead:.2%} at 100,000 ticks/s over 1,000 symbols")
    return {"scoring_cpu_overhead": rnd(overhead, 4),
            "details": {**out, "source": "benchmarks/bench_scoring.py", "scoring_cpu_overhead_basis": basis,
                        "scoring_cpu_overhead_vs_batch_proxy": out["scoring_cpu_overhead"]}}
