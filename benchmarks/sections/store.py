"""``history`` and ``latest``: the read paths of the sinks vs their raw drivers
(``benchmarks/bench_store.py``)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from benchmarks import bench_store
from benchmarks.services import Services
from benchmarks.spec import BenchConfig, Progress

__all__ = ["run_history", "run_latest"]


def run_history(svc: Services, cfg: BenchConfig, progress: Progress) -> dict[str, Any]:
    """Store.history vs the raw driver, on a fresh PostgreSQL database (else a SQLite file)."""
    tmp = None
    if svc.pg:
        url = svc.database()
    else:
        tmp = tempfile.TemporaryDirectory()
        url = f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    try:
        out = bench_store.bench_history(url, cfg.store_repeat, max(5, cfg.store_repeat // 10))
    finally:
        if tmp is not None:
            tmp.cleanup()
    h = out["history_1000"]
    progress(f"history: 1,000 candles p50 {h['history']['p50_ms']:.3f} ms (raw {h['raw_fetch']['p50_ms']:.3f} ms)")
    return {"history_1000_ms_p50": h["history"]["p50_ms"], "history_vs_raw": h["history_vs_raw_p50"],
            "details": {**out, "source": "benchmarks/bench_store.py",
                        "history_vs_raw_is": "ratio of the medians, 1,000 candles"}}


def run_latest(svc: Services, cfg: BenchConfig, progress: Progress) -> dict[str, Any]:
    """latest() vs a raw redis-py GET."""
    assert svc.redis is not None  # the suite runs this section only with Redis
    out = bench_store.bench_latest(svc.redis, cfg.store_repeat * 5, max(5, cfg.store_repeat // 2))
    progress(f"latest: p99 {out['latest']['p99_ms']:.3f} ms (raw GET p99 {out['raw_get']['p99_ms']:.3f} ms)")
    return {"latest_ms_p99": out["latest"]["p99_ms"], "latest_vs_raw": out["latest_vs_raw_p50"],
            "details": {**out, "source": "benchmarks/bench_store.py", "latest_vs_raw_is": "ratio of the medians"}}
