"""Duplicate records injected into the topic, plus a crash that makes Kafka redeliver.

What "no duplicate" means in cryptolab (README, Guarantees):

* **Record level, guaranteed.** Every Kafka record (topic, partition, offset)
  changes the candles exactly once, whatever happens to the consumer: a record
  delivered again after a crash, a rebalance or a seek is recognised by its
  offset (the stored progress) and skipped. Producer retries cannot create
  duplicates either: producers are idempotent (``enable.idempotence``).
* **Trade level, not de-duplicated.** The same trade written twice by a
  producer (two records with the same bytes and ``trade_id``) is two records:
  it is counted twice, by the stream and by the batch reference alike.
  De-duplication by trade id belongs at the source (the exchange websocket
  sources drop the trade ids they have just seen on reconnect).

This test injects exact duplicates (2 % of the ticks, each written right after
its original), kills the consumer with SIGKILL mid-stream so that Kafka
redelivers what it had fetched but not committed, and checks that the candles
equal the batch reference computed over the records as they are in the topic,
and an uninterrupted run over the same topic: every injected duplicate is
counted exactly once more, every redelivered record not at all.
"""

from __future__ import annotations

import signal
from dataclasses import replace
from pathlib import Path

import pytest
from harness import (
    BAD_VALUES,
    ConsumerProcess,
    FaultFigures,
    FaultRun,
    alert_rows,
    assert_same_results,
    candles_frame,
    committed,
    compare,
    consumers,
    finish,
    new_topic,
    produce,
    records_in_topic,
    wait_progress,
)

from cryptolab.batch import candles_from_ticks
from cryptolab.pipeline import CandlePipeline
from cryptolab.store import Store

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

#: One tick in DUP_EVERY is written twice.
DUP_EVERY = 50


def test_duplicate_records_count_once_each_and_redelivery_never(
    fault_run: FaultRun, pg_url: str, log_dir: Path, tmp_path: Path
) -> None:
    stream = fault_run.stream
    records, rows, dups = [], [], 0
    tick_i = 0
    for rec in stream.records:
        records.append(rec)
        if rec[1] in BAD_VALUES:
            continue  # a bad record (dead-lettered); the ticks are the rest, in order
        rows.append(tick_i)
        if tick_i % DUP_EVERY == DUP_EVERY // 2:
            records.append(rec)  # the very same bytes, key and timestamp, once more
            rows.append(tick_i)
            dups += 1
        tick_i += 1
    assert tick_i == len(stream.ticks)
    with_dups = stream.ticks.iloc[rows].reset_index(drop=True)
    reference = candles_from_ticks(with_dups, "1m,5m,15m")

    s = new_topic(fault_run.for_store(pg_url), prefix="faults_dups")
    produce(s, s.topic, records)
    assert records_in_topic(s) == len(records)

    # the uninterrupted run over the same records
    unint_store = Store(f"sqlite:///{(tmp_path / 'uninterrupted.db').as_posix()}")
    unint_store.init()
    stats = CandlePipeline(replace(s, store_url=unint_store.url), store=unint_store,
                           group="uninterrupted").run(stop_at_end=True)
    assert stats.ticks == len(with_dups)
    uninterrupted = candles_frame(unint_store)
    uninterrupted_alerts = alert_rows(unint_store)

    store = Store(pg_url)
    store.init()
    group = "duplicates"
    fig = FaultFigures(fault="duplicate records injected (+ SIGKILL redelivery)",
                       test="test_duplicate_records_count_once_each_and_redelivery_never",
                       ticks=len(with_dups))
    with consumers() as procs:
        c = ConsumerProcess(s, group, log_dir=log_dir, batch_size=500)
        procs.append(c)
        assert wait_progress(store, group, s.topic, len(records) * 0.4, c.proc), c.output[-3000:]
        c.signal(signal.SIGKILL)
        c.wait(30)
        at_kill = committed(store, group, s.topic)
        fig.injected = dups + 1
    finish(s, group, log_dir=log_dir)
    fig.add(assert_same_results(store, reference, uninterrupted, uninterrupted_alerts))
    # against the de-duplicated stream, exactly the injected duplicates are extra trades
    dedup = compare(candles_frame(store), stream.reference)
    one_minute = reference[reference["interval"] == "1m"]
    assert int(one_minute["trades"].sum()) == len(with_dups) == len(stream.ticks) + dups
    assert dedup.trades_extra == dups * 3 and dedup.trades_missing == 0  # once per interval
    fig.extra.update(duplicate_records_injected=dups, killed_at_offset=at_kill,
                     extra_trades_vs_deduplicated_reference=dedup.trades_extra,
                     note="record-level exactly-once; identical trades written twice count twice")
    fig.record()
