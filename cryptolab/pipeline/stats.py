"""The counters of a pipeline run."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["COMMIT_BUCKETS", "CommitTimes", "PipelineStats"]


@dataclass
class PipelineStats:
    """Counters of one :meth:`~cryptolab.pipeline.CandlePipeline.run` (also live on ``pipeline.stats``).

    Examples
    --------
    >>> stats = PipelineStats(ticks=500, elapsed_s=2.0)
    >>> stats.ticks_per_s, stats.to_dict()["ticks_per_s"]
    (250.0, 250.0)
    """

    ticks: int = 0
    dead_letters: int = 0
    late_ticks: int = 0
    candles_final: int = 0
    candle_updates: int = 0
    alerts: int = 0
    batches: int = 0
    commits: int = 0
    fenced: int = 0
    store_retries: int = 0
    cache_failures: int = 0
    rebalances: int = 0
    idle_closes: int = 0
    elapsed_s: float = 0.0

    @property
    def ticks_per_s(self) -> float:
        """Throughput over the run."""
        return self.ticks / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Counters as a plain dict (with ``ticks_per_s``)."""
        d = asdict(self)
        d["ticks_per_s"] = round(self.ticks_per_s, 1)
        return d


#: Upper bounds (seconds) of the commit-latency buckets (Prometheus' defaults, and 30 s).
COMMIT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0,
)


class CommitTimes:
    """How long the store's commits took: a fixed-bucket histogram, observed once per commit.

    Kept here, without any metrics library, so that the consumer depends on none;
    :mod:`cryptolab.metrics` reads it when scraped. ``counts[i]`` counts the commits of at
    most ``buckets[i]`` seconds and not of a smaller bound (the last one: more than all).

    Examples
    --------
    >>> times = CommitTimes(buckets=(0.1, 1.0))
    >>> for seconds in (0.05, 0.5, 3.0):
    ...     times.observe(seconds, now_ms=1_700_000_000_000)
    >>> times.counts, times.count, times.sum, times.last_ms
    ([1, 1, 1], 3, 3.55, 1700000000000)
    """

    __slots__ = ("buckets", "count", "counts", "last_ms", "sum")

    def __init__(self, buckets: tuple[float, ...] = COMMIT_BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.count = 0
        self.sum = 0.0
        #: wall clock (epoch ms) of the last commit that landed, or ``None`` before any
        self.last_ms: int | None = None

    def observe(self, seconds: float, *, now_ms: int) -> None:
        """Count one commit of ``seconds`` that landed at ``now_ms``."""
        self.counts[bisect_left(self.buckets, seconds)] += 1
        self.count += 1
        self.sum += seconds
        self.last_ms = now_ms
