"""The consumer's metrics, read from the pipeline's own counters when scraped.

Nothing is counted twice: :class:`ConsumerCollector` turns
:class:`~cryptolab.pipeline.PipelineStats`, the commit times and the partitions' lag into
Prometheus samples at scrape time, so the consumer's per-tick path pays nothing for them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:  # pragma: no cover
    from prometheus_client import Metric

    from cryptolab.pipeline import CandlePipeline

__all__ = ["COUNTERS", "ConsumerCollector"]

#: ``PipelineStats`` attribute -> (metric name without ``_total``, help).
COUNTERS: dict[str, tuple[str, str]] = {
    "ticks": ("cryptolab_consumer_ticks_consumed", "Ticks decoded and folded into windows"),
    "candles_final": ("cryptolab_consumer_candles_final", "Closed candles committed to the store"),
    "candle_updates": ("cryptolab_consumer_candle_updates",
                       "Open-candle updates published (not stored)"),
    "alerts": ("cryptolab_consumer_alerts", "New alerts committed to the store"),
    "dead_letters": ("cryptolab_consumer_dead_letters",
                     "Records that are not ticks, sent to <topic>.dlq"),
    "late_ticks": ("cryptolab_consumer_late_ticks",
                   "Ticks later than the allowed lateness, kept in late_ticks and <topic>.late"),
    "commits": ("cryptolab_consumer_commits", "Batches committed (results and progress in one "
                "transaction)"),
    "fenced": ("cryptolab_consumer_fenced_commits",
               "Commits refused by the fence (another member had moved the offsets)"),
    "store_retries": ("cryptolab_consumer_store_retries", "Store calls retried after a failure"),
    "cache_failures": ("cryptolab_consumer_cache_failures", "Cache publications that failed"),
    "rebalances": ("cryptolab_consumer_rebalances", "Partition assignments received"),
}


class ConsumerCollector(Collector):
    """Prometheus collector of one :class:`~cryptolab.pipeline.CandlePipeline`.

    ``pipeline`` may be a function returning the pipeline (``None`` while there is none, as in
    a live session that has not started it yet). Register it in a registry of its own (:func:`cryptolab.metrics.registry`); every scrape
    reads the pipeline's counters as they are then. Labels: ``group``, ``topic`` and
    ``partition`` on the per-partition gauges; none on the rest.

    Examples
    --------
    >>> from cryptolab.metrics import registry
    >>> from cryptolab.pipeline import CandlePipeline
    >>> from cryptolab.store import Store
    >>> from cryptolab.cache import MemoryCache
    >>> pipe = CandlePipeline(store=Store("sqlite://"), cache=MemoryCache(), scorer=None)
    >>> pipe.stats.ticks, pipe.stats.dead_letters = 1_000, 2
    >>> reg = registry(ConsumerCollector(pipe), process=False)
    >>> reg.get_sample_value("cryptolab_consumer_ticks_consumed_total")
    1000.0
    >>> reg.get_sample_value("cryptolab_consumer_dead_letters_total")
    2.0
    >>> reg.get_sample_value("cryptolab_consumer_commit_latency_seconds_count")
    0.0
    """

    def __init__(self, pipeline: CandlePipeline | Callable[[], CandlePipeline | None]) -> None:
        #: the pipeline, or a function returning it (``None`` while there is none: no samples)
        self.pipeline = pipeline

    def collect(self) -> Iterator[Metric]:
        """The samples, read now."""
        pipe = self.pipeline() if callable(self.pipeline) else self.pipeline
        if pipe is None:
            return
        stats = pipe.stats
        for attr, (name, doc) in COUNTERS.items():
            yield CounterMetricFamily(name, doc, value=float(getattr(stats, attr)))
        yield from self._commits(pipe)
        owned = GaugeMetricFamily("cryptolab_consumer_partitions_owned",
                                  "Partitions this member owns now", value=float(len(pipe.assignment)))
        yield owned
        labels = ["group", "topic", "partition"]
        lag = GaugeMetricFamily(
            "cryptolab_consumer_lag_messages",
            "Messages behind the end of the partition's log (as last fetched)", labels=labels)
        delay = GaugeMetricFamily(
            "cryptolab_consumer_watermark_delay_seconds",
            "Wall clock minus the partition's event-time watermark", labels=labels)
        now_ms = time.time() * 1000
        for p, (behind, watermark) in sorted(pipe.lag().items()):
            values = [pipe.group, pipe.topic, str(p)]
            if behind is not None:
                lag.add_metric(values, float(behind))
            if watermark is not None:
                delay.add_metric(values, max(0.0, (now_ms - int(watermark)) / 1000))
        yield lag
        yield delay

    @staticmethod
    def _commits(pipe: CandlePipeline) -> Iterator[Metric]:
        times = pipe.commit_times
        counts = list(times.counts)  # a copy: the commit thread may count one meanwhile
        cumulative, buckets = 0, []
        for bound, n in zip([*map(str, times.buckets), "+Inf"], counts, strict=True):
            cumulative += n
            buckets.append((bound, float(cumulative)))
        yield HistogramMetricFamily(
            "cryptolab_consumer_commit_latency_seconds",
            "Seconds a commit took to land in the store (retries included)",
            buckets=buckets, sum_value=float(times.sum))
        last = GaugeMetricFamily("cryptolab_consumer_last_commit_timestamp_seconds",
                                 "When the last commit landed (Unix time)")
        if times.last_ms is not None:
            last.add_metric([], times.last_ms / 1000)
        yield last
