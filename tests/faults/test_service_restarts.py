"""PostgreSQL, Redis and the Kafka broker stopped and restarted under a running consumer.

Each test runs a real ``cryptolab consume`` process over the shared fault
stream, stops one service with ``scripts/services.sh stop NAME`` once about a
quarter of the stream is committed, starts it again a few seconds later, and
then checks the invariant of the suite (:func:`harness.assert_same_results`):
candles equal the batch reference and the uninterrupted run, alerts equal the
uninterrupted run's, nothing lost and nothing counted twice. The recovery time
(fault cleared -> first commit beyond the progress at the fault) must stay
under 30 s; the figures go to ``test-artifacts/faults.json``.

These tests stop shared services, so they carry ``restarts_services``, which
tests/conftest.py runs after every other test.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from harness import (
    RECOVERY_LIMIT_S,
    ConsumerProcess,
    FaultFigures,
    FaultRun,
    LiveFeed,
    ServiceControl,
    assert_same_results,
    candles_frame,
    committed,
    consumers,
    end_offsets,
    finish,
    new_topic,
    records_in_topic,
    time_to_progress_all,
    unavailable,
    wait_progress,
    wait_until,
)

from cryptolab.batch import with_ms_windows
from cryptolab.cache import RedisCache
from cryptolab.store import Store

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults,
              pytest.mark.restarts_services]

#: Seconds a service stays down (on top of the time it takes to stop and to start).
HOLD_S = 3.0
#: Partitions of every fault topic.
PARTITIONS = (0, 1, 2)
#: Seconds the live feed takes to produce the whole stream.
FEED_S = 25.0


def _controllable(services: ServiceControl, name: str, url: str) -> None:
    why = services.check(name, url)
    if why is not None:
        unavailable(f"cannot restart {name}: {why}")


def test_postgres_stopped_and_restarted_mid_stream(
    fault_run: FaultRun, pg_url: str, services_control: ServiceControl, log_dir: Path
) -> None:
    _controllable(services_control, "postgres", pg_url)
    s = fault_run.for_store(pg_url)
    n = fault_run.stream.n
    store = Store(pg_url)
    store.init()
    group = "pg-restart"
    fig = FaultFigures(fault="postgresql stopped and restarted", test="test_postgres_stopped_and_restarted_mid_stream",
                       ticks=len(fault_run.stream.ticks))
    with consumers() as procs:
        c = ConsumerProcess(s, group, log_dir=log_dir, batch_size=200)
        procs.append(c)
        assert wait_progress(store, group, s.topic, n * 0.25, c.proc), c.output[-3000:]
        fig.extra["stop_s"] = round(services_control.stop("postgres"), 2)
        fig.injected += 1
        at_fault = committed(store, group, s.topic)  # -1: unreadable while down
        time.sleep(HOLD_S)
        assert c.alive(), f"the consumer died while PostgreSQL was down:\n{c.output[-3000:]}"
        fig.extra["start_s"] = round(services_control.start("postgres"), 2)
        before = max(at_fault, _committed_when_up(store, group, s.topic))
        rec = time_to_progress_all(store, group, s.topic, partitions=PARTITIONS, ends=end_offsets(s))
        assert rec is not None, f"no commit within {3 * RECOVERY_LIMIT_S}s of PostgreSQL returning"
        fig.recovery_s.append(rec)
        assert c.wait(300) == 0, c.output[-3000:]
    assert "store unavailable" in c.output, "the consumer should have retried the same commit"
    summary = c.summary()
    assert summary is not None and summary["ticks"] >= 1 and summary["dead"] >= 0, c.output[-2000:]
    fig.add(assert_same_results(store, fault_run.reference, fault_run.uninterrupted,
                                fault_run.uninterrupted_alerts))
    fig.extra["fault_at_offsets"] = before
    fig.record()
    assert rec <= RECOVERY_LIMIT_S, f"recovered in {rec}s"


def _committed_when_up(store: Store, group: str, topic: str) -> int:
    assert wait_until(lambda: committed(store, group, topic) >= 0, 30), "store unreadable"
    return committed(store, group, topic)


def test_redis_stopped_and_restarted_sql_goes_on_and_cache_catches_up(
    fault_run: FaultRun, pg_url: str, redis_url: str, services_control: ServiceControl, log_dir: Path
) -> None:
    _controllable(services_control, "redis", redis_url)
    s = new_topic(fault_run.for_store(pg_url, redis_url=redis_url), prefix="faults_redis")
    n = fault_run.stream.n
    store = Store(pg_url)
    store.init()
    cache = RedisCache(redis_url, socket_timeout=2.0)
    group = "redis-restart"
    fig = FaultFigures(fault="redis stopped and restarted",
                       test="test_redis_stopped_and_restarted_sql_goes_on_and_cache_catches_up",
                       ticks=len(fault_run.stream.ticks))
    with consumers() as procs:
        c = ConsumerProcess(s, group, log_dir=log_dir, batch_size=500, stop_at_end=False, redis=True)
        procs.append(c)
        feed = LiveFeed(s, fault_run.stream.records, seconds=FEED_S).start()
        assert wait_progress(store, group, s.topic, n * 0.2, c.proc), c.output[-3000:]
        assert cache.latest("BTC-USD", "1m") is not None, "the consumer publishes to Redis"
        services_control.stop("redis")
        fig.injected += 1
        # Every window that becomes final from here on can only reach Redis by the replay.
        last_final_before = {(x.symbol, x.interval): x.window_start for x in store.candles()}
        during_from = committed(store, group, s.topic)
        time.sleep(HOLD_S)
        during_to = committed(store, group, s.topic)
        assert during_to > during_from, "the SQL path must go on while Redis is down"
        assert c.alive(), c.output[-3000:]
        services_control.start("redis")  # an empty Redis: this test server keeps nothing on disk
        t0 = time.monotonic()
        assert wait_until(lambda: cache.ping() and cache.latest("BTC-USD", "1m") is not None,
                          3 * RECOVERY_LIMIT_S, interval=0.05), "Redis was never brought up to date"
        rec = round(time.monotonic() - t0, 2)
        fig.recovery_s.append(rec)
        assert feed.join() == n
        assert wait_progress(store, group, s.topic, n, c.proc, timeout=300), c.output[-3000:]
        assert c.stop(60) == 0, c.output[-3000:]
    assert "cache unavailable" in c.output, c.output[-3000:]
    # the recent sets hold every window that became final after Redis went down, as stored
    missing, checked = [], 0
    for (symbol, interval), before in last_final_before.items():
        recent = {x.window_start: x for x in cache.recent(symbol, interval, 1000)}
        for x in store.candles(symbol, interval):
            if x.window_start > before:
                checked += 1
                if recent.get(x.window_start) != x:
                    missing.append(x.key)
    assert checked > 0 and not missing, f"{len(missing)} of {checked} final candles missing: {missing[:5]}"
    finish(s, group, log_dir=log_dir, redis=True)
    fig.add(assert_same_results(store, fault_run.reference, fault_run.uninterrupted,
                                fault_run.uninterrupted_alerts))
    # latest() is the store's last final candle of every series
    frame = candles_frame(store)
    last = with_ms_windows(frame.sort_values("window_start").groupby(["symbol", "interval"]).tail(1))
    wrong = []
    for row in last.itertuples():
        got = cache.latest(row.symbol, row.interval)
        if got is None or (got.window_start, got.close, got.trades, got.final) != (
                row.window_start, row.close, row.trades, True):
            wrong.append((row.symbol, row.interval, row.window_start, got))
    assert not wrong, wrong[:5]
    cache.close()
    fig.extra.update(offsets_committed_while_down=during_to - during_from, replayed_finals_checked=checked,
                     series_checked=len(last))
    fig.record()
    assert rec <= RECOVERY_LIMIT_S, f"recovered in {rec}s"


def test_kafka_broker_stopped_and_restarted_while_producing_and_consuming(
    fault_run: FaultRun, pg_url: str, services_control: ServiceControl, log_dir: Path
) -> None:
    _controllable(services_control, "kafka", fault_run.settings.kafka_bootstrap or "")
    s = new_topic(fault_run.for_store(pg_url), prefix="faults_kafka")
    n = fault_run.stream.n
    store = Store(pg_url)
    store.init()
    group = "kafka-restart"
    fig = FaultFigures(fault="kafka broker stopped and restarted",
                       test="test_kafka_broker_stopped_and_restarted_while_producing_and_consuming",
                       ticks=len(fault_run.stream.ticks))
    with consumers() as procs:
        c = ConsumerProcess(s, group, log_dir=log_dir, batch_size=500, stop_at_end=False)
        procs.append(c)
        feed = LiveFeed(s, fault_run.stream.records, seconds=FEED_S).start()
        assert wait_progress(store, group, s.topic, n * 0.25, c.proc), c.output[-3000:]
        fig.extra["stop_s"] = round(services_control.stop("kafka"), 2)
        fig.injected += 1
        time.sleep(HOLD_S)
        assert c.alive(), f"the consumer died while Kafka was down:\n{c.output[-3000:]}"
        fig.extra["start_s"] = round(services_control.start("kafka"), 2)
        rec = time_to_progress_all(store, group, s.topic, partitions=PARTITIONS)
        assert rec is not None, f"no commit within {3 * RECOVERY_LIMIT_S}s of Kafka returning"
        fig.recovery_s.append(rec)
        assert feed.join() == n
        assert wait_progress(store, group, s.topic, n, c.proc, timeout=300), c.output[-3000:]
        assert c.stop(60) == 0, c.output[-3000:]
    # the idempotent producer wrote every record exactly once across the broker restart
    fig.extra["records_in_topic"] = records_in_topic(s)
    assert fig.extra["records_in_topic"] == n
    finish(s, group, log_dir=log_dir)
    fig.add(assert_same_results(store, fault_run.reference, fault_run.uninterrupted,
                                fault_run.uninterrupted_alerts))
    fig.record()
    assert rec <= RECOVERY_LIMIT_S, f"recovered in {rec}s"
