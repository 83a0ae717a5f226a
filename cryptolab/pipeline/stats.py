"""The counters of a pipeline run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["PipelineStats"]


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
