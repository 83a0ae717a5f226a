"""The producer's and its source's metrics, read from their own counters when scraped.

:class:`ProducerCollector` reads a :class:`~cryptolab.producer.ProducerStats` and a
:class:`~cryptolab.sources.SourceStats` (the same live objects the producer and the
source count in) at scrape time: sending a tick costs nothing more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:  # pragma: no cover
    from prometheus_client import Metric

    from cryptolab.producer import ProducerStats
    from cryptolab.sources import SourceStats

__all__ = ["CIRCUIT_STATES", "ProducerCollector"]

#: The states of a source's circuit breaker, each a sample of ``cryptolab_producer_circuit_state``.
CIRCUIT_STATES: tuple[str, ...] = ("closed", "open", "half_open")


class ProducerCollector(Collector):
    """Prometheus collector of a producer's counters and, optionally, its source's.

    Parameters
    ----------
    producer
        The producer's live counters (``TickProducer.stats``, read once: the object stays
        the same; ``delivered`` and ``in_flight`` are as the producer last refreshed them).
    source
        The source's live counters (``source.stats``), or ``None``.

    Either may be a function returning them (``None`` while there are none).

    Labels: ``field`` on rejections (the field that failed validation), ``kind`` on source
    failures (``http_429``, ``timeout``, ``disconnect``...), ``state`` on the circuit gauge.

    Examples
    --------
    >>> from cryptolab.metrics import registry
    >>> from cryptolab.producer import ProducerStats
    >>> from cryptolab.sources import SourceStats
    >>> stats, source = ProducerStats(produced=10, rejected=1), SourceStats(circuit="open")
    >>> stats.rejected_by_field["price"] += 1
    >>> source.failures["http_429"] += 3
    >>> reg = registry(ProducerCollector(stats, source), process=False)
    >>> reg.get_sample_value("cryptolab_producer_ticks_produced_total")
    10.0
    >>> reg.get_sample_value("cryptolab_producer_ticks_rejected_total", {"field": "price"})
    1.0
    >>> reg.get_sample_value("cryptolab_producer_source_failures_total", {"kind": "http_429"})
    3.0
    >>> reg.get_sample_value("cryptolab_producer_circuit_state", {"state": "open"})
    1.0
    """

    def __init__(self, producer: ProducerStats | Callable[[], ProducerStats | None],
                 source: SourceStats | Callable[[], SourceStats | None] | None = None) -> None:
        self.producer = producer
        self.source = source

    def collect(self) -> Iterator[Metric]:
        """The samples, read now."""
        src = self.source() if callable(self.source) else self.source
        if src is not None:
            yield from self._source(src)
        st = self.producer() if callable(self.producer) else self.producer
        if st is None:
            return
        for name, doc, value in (
            ("cryptolab_producer_ticks_produced", "Ticks handed to Kafka", st.produced),
            ("cryptolab_producer_ticks_delivered", "Ticks the broker acknowledged", st.delivered),
            ("cryptolab_producer_delivery_failures",
             "Ticks whose delivery failed for good (after librdkafka's retries)", st.failed),
            ("cryptolab_producer_dead_letter_failures",
             "Dead-letter records whose own delivery failed", st.dlq_failed),
            ("cryptolab_producer_retries", "Messages librdkafka transmitted again", st.retries),
            ("cryptolab_producer_queue_full", "Times the local queue was full and a send waited",
             st.queue_full),
        ):
            yield CounterMetricFamily(name, doc, value=float(value))
        yield GaugeMetricFamily("cryptolab_producer_in_flight_messages",
                                "Messages enqueued and not acknowledged yet", value=float(st.in_flight))
        rejected = CounterMetricFamily(
            "cryptolab_producer_ticks_rejected",
            "Records rejected by validation and sent to the dead letters, by field", labels=["field"])
        for field, n in sorted(st.rejected_by_field.copy().items()):
            rejected.add_metric([field], float(n))
        yield rejected

    @staticmethod
    def _source(src: SourceStats) -> Iterator[Metric]:
        yield CounterMetricFamily("cryptolab_producer_source_ticks",
                                  "Ticks the source yielded", value=float(src.ticks))
        yield CounterMetricFamily("cryptolab_producer_source_reconnects",
                                  "Times the source reconnected", value=float(src.reconnects))
        failures = CounterMetricFamily("cryptolab_producer_source_failures",
                                       "Source failures, by kind", labels=["kind"])
        for kind, n in sorted(src.failures.copy().items()):
            failures.add_metric([kind], float(n))
        yield failures
        circuit = GaugeMetricFamily(
            "cryptolab_producer_circuit_state",
            "The source's circuit breaker: 1 for its current state, 0 for the others",
            labels=["state"])
        for state in CIRCUIT_STATES:
            circuit.add_metric([state], 1.0 if src.circuit == state else 0.0)
        yield circuit
