"""cryptolab's performance suite: cryptolab side by side with its peers, in one run.

It lives in the source checkout, outside the installed package: ``make bench`` (``python -m
benchmarks.run --json PATH``) measures, against the real Kafka, PostgreSQL and Redis named by
``CRYPTOLAB_KAFKA_BOOTSTRAP``, ``CRYPTOLAB_STORE_URL`` and ``CRYPTOLAB_REDIS_URL``:

``producer``
    Ticks/s from the synthetic source through :class:`~cryptolab.producer.TickProducer`,
    vs a bare confluent-kafka ``produce`` loop with the same payloads (``bench_producer.py``).
``consumer``
    A topic pre-filled with ``ticks`` ticks over ``symbols`` symbols, consumed into
    1m/5m/15m candles by the cryptolab pipeline (sinks on: PostgreSQL + Redis), by
    Quix Streams (tumbling windows with ``Earliest``, ``Max``, ``Min``, ``Latest`` and
    ``Sum``), and by a bare ``consume(batch)`` + JSON-decode loop that builds nothing
    (the ceiling). Each runs in its own process; the clock starts at its first message.
    The candles of cryptolab and Quix are compared (OHLC and volume, bit for bit).
``latency``
    A live, paced feed (event time = wall-clock time at send) through the pipeline
    (windows 1s/5s/15s so that many close during the run); a Redis subscriber
    measures tick event time -> candle published, and window end -> final candle published.
``history``, ``latest``
    ``Store.history`` of 100 and 1,000 candles into a DataFrame vs the raw driver's
    fetch, and ``latest()`` from Redis vs a raw redis-py ``GET`` (``bench_store.py``).
``scoring``
    CPU that anomaly scoring adds to a consumer at 100,000 ticks/s over 1,000 symbols
    (``bench_scoring.py``).
``batch``
    :func:`~cryptolab.batch.candles_from_ticks` on ``batch_ticks`` ticks vs a polars
    group-by computing the same candles (checked equal).
``memory``
    Peak RSS of a consumer process (scoring on) holding ``memory_symbols`` symbols x 3 intervals.

Nothing here is a test: no figure is asserted; ``checks`` are correctness checks.

Modules, from the command line down:

- :mod:`~benchmarks.run`: the command line (``make bench``); :mod:`~benchmarks.suite`: runs
  the sections in order and builds the result document
- :mod:`~benchmarks.spec`: sections, result keys, targets, sizes (:class:`~benchmarks.spec.BenchConfig`);
  :mod:`~benchmarks.results`: targets checked, JSON written
- :mod:`~benchmarks.sections`: one module per section
- :mod:`~benchmarks.peers`: one module per peer (Quix Streams, polars, the bare loops)
- :mod:`~benchmarks.workers`: the processes measured runs happen in (``python -m benchmarks.workers``)
- :mod:`~benchmarks.services`: fresh topics and databases per run; :mod:`~benchmarks.machine`:
  the machine, versions, and waiting for it to be quiet
- ``bench_producer.py``, ``bench_store.py``, ``bench_scoring.py``, ``bench_chart.py``: section
  benchmarks that also run on their own (``python benchmarks/bench_store.py --help``)
"""
