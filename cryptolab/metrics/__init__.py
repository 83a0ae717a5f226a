"""Prometheus metrics of the producer, the consumer and the HTTP API (``cryptolab[metrics]``).

Collectors read the counters the pipeline keeps anyway, when scraped: no metric is
incremented per tick. Each process object gets a registry of its own (:func:`registry`),
never prometheus_client's global one, so two pipelines in one process (or tests) never
mix their numbers. ``cryptolab consume --metrics-port P`` serves them over HTTP
(:class:`MetricsServer`); README "Metrics" lists every name, label and meaning.

Modules: :mod:`~cryptolab.metrics.consumer` (:class:`ConsumerCollector`),
:mod:`~cryptolab.metrics.producer` (:class:`ProducerCollector`),
:mod:`~cryptolab.metrics.api` (:class:`ApiMetrics`, :class:`MetricsMiddleware`),
:mod:`~cryptolab.metrics.exposition` (:func:`registry`, :class:`MetricsServer`).

Needs prometheus-client (``pip install 'cryptolab[metrics]'``; the ``api`` extra has it too).

Examples
--------
>>> from cryptolab.producer import ProducerStats
>>> from prometheus_client import generate_latest
>>> text = generate_latest(registry(ProducerCollector(ProducerStats(produced=3)), process=False))
>>> b"cryptolab_producer_ticks_produced_total 3.0" in text
True
"""

from __future__ import annotations

from cryptolab.metrics.api import ApiMetrics, MetricsMiddleware
from cryptolab.metrics.consumer import ConsumerCollector
from cryptolab.metrics.exposition import MetricsServer, registry
from cryptolab.metrics.producer import ProducerCollector

__all__ = ["ApiMetrics", "ConsumerCollector", "MetricsMiddleware", "MetricsServer",
           "ProducerCollector", "registry"]
