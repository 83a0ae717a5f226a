"""Kafka round trip with cryptolab's client configuration, on a real broker and on the embedded
mock cluster: explicit topic creation, keyed idempotent produce, per-key partition affinity,
consumer-group commits, and a new group member resuming exactly at the committed offsets."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from dataclasses import dataclass

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from cryptolab.config import Settings
from cryptolab.kafka import (
    EmbeddedKafka,
    bootstrap_servers,
    consumer_config,
    ensure_topics,
    producer_config,
)
from cryptolab.models import Tick, decode_tick, encode_tick

SYMBOLS = ["BTC-USD", "ETH-USD", "SOL-USD", "XRP-USD", "ADA-USD", "DOGE-USD", "LTC-USD"]
PER_SYMBOL = 40
#: Upper bound for any wait below (a bound, not a timing assertion).
DEADLINE_S = 90.0


@dataclass(frozen=True)
class Backend:
    settings: Settings
    partitions: int  # what the topic ends up with


@pytest.fixture(
    params=[
        pytest.param("real", marks=pytest.mark.integration),
        pytest.param("embedded"),
    ]
)
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "real":
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        return Backend(Settings.from_env({}, kafka_bootstrap=bootstrap), partitions=3)
    # The mock cluster auto-creates topics with its fixed default of 4 partitions.
    EmbeddedKafka.bootstrap()
    return Backend(Settings.from_env({}), partitions=4)


def produce_all(settings: Settings, topic: str) -> dict[tuple[str, int], int]:
    """Produce PER_SYMBOL ticks for each symbol, keyed by symbol; return {(symbol, seq): partition}."""
    delivered: dict[tuple[str, int], int] = {}
    errors: list[str] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(str(err))
            return
        tick = decode_tick(msg.value())
        delivered[(tick.symbol, int(tick.trade_id or -1))] = msg.partition()

    conf = producer_config(settings)
    assert conf["enable.idempotence"] is True and conf["acks"] == "all"
    producer = Producer(conf)
    t0 = 1_700_000_000_000
    for seq in range(PER_SYMBOL):  # interleave symbols, as a live feed would
        for i, symbol in enumerate(SYMBOLS):
            tick = Tick(
                symbol=symbol,
                ts_ms=t0 + seq * 1000 + i,
                price=100.0 + seq,
                size=1.0,
                source="test",
                trade_id=str(seq),
            )
            producer.produce(
                topic,
                key=symbol.encode(),
                value=encode_tick(tick),
                timestamp=tick.ts_ms,
                on_delivery=on_delivery,
            )
        producer.poll(0)
    remaining = producer.flush(DEADLINE_S)
    assert remaining == 0, f"{remaining} messages not delivered within {DEADLINE_S}s"
    assert not errors, errors
    return delivered


def consume(
    consumer: Consumer, *, stop_after: int | None, topic: str
) -> list[tuple[Message, Tick]]:
    """Poll until ``stop_after`` records were read, or (None) until every assigned partition
    is read up to its high watermark."""
    out: list[tuple[Message, Tick]] = []
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if stop_after is not None and len(out) >= stop_after:
            return out
        msg = consumer.poll(0.2)
        if msg is None:
            if stop_after is None and at_end(consumer, topic):
                return out
            continue
        if msg.error() is not None:
            if msg.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise AssertionError(f"consumer error: {msg.error()}")
        out.append((msg, decode_tick(msg.value())))
    raise AssertionError(f"consumer did not finish within {DEADLINE_S}s (read {len(out)})")


def at_end(consumer: Consumer, topic: str) -> bool:
    assignment = consumer.assignment()
    if not assignment:
        return False
    for tp in assignment:
        low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
        position = consumer.position([TopicPartition(topic, tp.partition)])[0].offset
        if position < 0:  # nothing fetched yet (OFFSET_INVALID): start = committed, else earliest
            committed = consumer.committed([TopicPartition(topic, tp.partition)], timeout=10)
            position = committed[0].offset if committed[0].offset >= 0 else low
        if position < high:
            return False
    return True


def test_keyed_round_trip_and_resume_from_committed_offsets(
    backend: Backend, unique_topic: str
) -> None:
    settings = backend.settings
    topic = unique_topic

    # 1. The topic is created explicitly with the partition count asked for.
    created = ensure_topics(settings, {topic: 3})
    assert created == {topic: backend.partitions}
    admin = AdminClient({"bootstrap.servers": bootstrap_servers(settings)})
    md = admin.list_topics(topic, timeout=30)
    assert len(md.topics[topic].partitions) == backend.partitions
    assert ensure_topics(settings, {topic: 3}) == created  # idempotent

    # 2. Idempotent keyed produce: every record of one key lands on one partition.
    delivered = produce_all(settings, topic)
    total = len(SYMBOLS) * PER_SYMBOL
    assert len(delivered) == total
    partition_of: dict[str, set[int]] = defaultdict(set)
    for (symbol, _), partition in delivered.items():
        partition_of[symbol].add(partition)
    assert all(len(p) == 1 for p in partition_of.values()), partition_of
    assert len({next(iter(p)) for p in partition_of.values()}) > 1, "keys should spread"

    # 3. A group member reads part of the topic and commits exactly what it processed.
    group = f"g_{uuid.uuid4().hex}"
    first = Consumer(consumer_config(settings, group))
    first.subscribe([topic])
    half = total // 2
    read_first = consume(first, stop_after=half, topic=topic)
    assert len(read_first) == half
    next_offset: dict[int, int] = {}
    for msg, _ in read_first:
        next_offset[msg.partition()] = max(next_offset.get(msg.partition(), 0), msg.offset() + 1)
    commits = [TopicPartition(topic, p, o) for p, o in sorted(next_offset.items())]
    result = first.commit(offsets=commits, asynchronous=False)
    assert result is not None and all(tp.error is None for tp in result)
    first.close()

    # 4. A NEW member of the same group resumes exactly there: nothing re-read, nothing skipped.
    second = Consumer(consumer_config(settings, group))
    try:
        committed = second.committed(
            [TopicPartition(topic, p) for p in range(backend.partitions)], timeout=30
        )
        assert {tp.partition: tp.offset for tp in committed if tp.offset >= 0} == next_offset
        second.subscribe([topic])
        read_second = consume(second, stop_after=None, topic=topic)
    finally:
        second.close()

    first_ids = [(t.symbol, t.trade_id) for _, t in read_first]
    second_ids = [(t.symbol, t.trade_id) for _, t in read_second]
    assert len(set(first_ids)) == len(first_ids), "first member read duplicates"
    assert len(set(second_ids)) == len(second_ids), "second member re-read records"
    assert not set(first_ids) & set(second_ids), "records read by both members"
    everything = {(s, str(seq)) for s, seq in delivered}
    assert set(first_ids) | set(second_ids) == everything, "records skipped"
    for msg, _ in read_second:
        assert msg.offset() >= next_offset.get(msg.partition(), 0)

    # 5. Per-key order is preserved end to end.
    by_symbol: dict[str, list[int]] = defaultdict(list)
    for _, tick in read_first + read_second:
        by_symbol[tick.symbol].append(int(tick.trade_id or -1))
    # Within each member the sequence rises; the second member continues where the first stopped.
    for symbol, seqs in by_symbol.items():
        assert seqs == sorted(seqs), symbol
        assert seqs == list(range(PER_SYMBOL)), symbol
