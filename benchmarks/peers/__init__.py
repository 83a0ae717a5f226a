"""The peers cryptolab is measured against, each in a module of its own.

- :mod:`~benchmarks.peers.quix`: Quix Streams computing the consumer's candles (a worker)
- :mod:`~benchmarks.peers.bare`: a bare confluent-kafka consume + decode loop, the ceiling (a worker)
- :mod:`~benchmarks.peers.polars`: a polars group-by computing ``candles_from_ticks``' candles
- :mod:`~benchmarks.peers.nautilus`: NautilusTrader's time bars beside the streaming aggregator;
  its worker script ``nautilus_bars.py`` runs in a virtualenv of its own
- :mod:`~benchmarks.peers.flink`: Apache Flink, a SQL job (:mod:`~benchmarks.peers.flink_job`, run in
  PyFlink's own virtualenv) computing the consumer's candles on its topic
- :mod:`~benchmarks.peers.venv`: the virtualenvs of peers whose pins clash with ours (created once, in the git-ignored cache)

The producer's peer, a bare confluent-kafka produce loop, is ``benchmarks/bench_producer.py``'s
``run_bare``. Only this folder imports the peers: never ``cryptolab``.
"""
