"""TickProducer and ``cryptolab produce`` against the real Kafka broker.

Delivered equals produced, per-partition offsets count exactly N, and nothing is
duplicated after broker-side retries: a proxy in front of the broker swallows Produce
acknowledgements after the broker appended the batch, so the producer retries them.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from fakes.kafka_proxy import KafkaProxy

from cryptolab.config import Settings
from cryptolab.errors import KafkaServiceError
from cryptolab.kafka import consumer_config, end_offsets, ensure_topics
from cryptolab.models import Tick, decode_tick, encode_tick
from cryptolab.producer import TickProducer
from cryptolab.sources.synthetic import SyntheticMarket

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def settings(bootstrap: str, topic: str, **kw) -> Settings:
    return Settings.from_env({}, kafka_bootstrap=bootstrap, topic=topic, **kw)


def offsets_total(s: Settings, topic: str, timeout: float = 30.0) -> dict[int, int]:
    c = Consumer(consumer_config(s, group=f"count-{topic}"))
    try:
        return {p: hi - lo for p, (lo, hi) in end_offsets(c, topic, timeout=timeout).items()}
    finally:
        c.close()


def consume(s: Settings, topic: str, n: int, timeout: float = 60.0) -> list:
    c = Consumer(consumer_config(s, group=f"read-{topic}", **{"isolation.level": "read_uncommitted"}))
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    out: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < n and time.monotonic() < deadline:
            out.extend(m for m in c.consume(20_000, timeout=0.5) if m.error() is None)
        # anything beyond n would be a duplicate: read a little longer to see it
        out.extend(m for m in c.consume(20_000, timeout=1.0) if m.error() is None)
    finally:
        c.close()
    return out


def check_exactly(s: Settings, topic: str, ticks: list[Tick]) -> None:
    n = len(ticks)
    assert sum(offsets_total(s, topic).values()) == n
    msgs = consume(s, topic, n)
    assert len(msgs) == n
    got = [decode_tick(m.value()) for m in msgs]
    ids = Counter((t.symbol, t.trade_id) for t in got)
    assert len(ids) == n and max(ids.values()) == 1  # no duplicates
    assert Counter(encode_tick(t) for t in got) == Counter(encode_tick(t) for t in ticks)
    part_of: dict[bytes, set[int]] = {}
    for m in msgs:
        assert m.key() == decode_tick(m.value()).symbol.encode()
        assert m.timestamp() == (TIMESTAMP_CREATE_TIME, decode_tick(m.value()).ts_ms)
        part_of.setdefault(m.key(), set()).add(m.partition())
    assert all(len(p) == 1 for p in part_of.values())
    # per symbol, the partition keeps the source order
    for sym in {t.symbol for t in ticks}:
        assert [t.trade_id for t in got if t.symbol == sym] == [t.trade_id for t in ticks if t.symbol == sym]


def test_topic_is_created_with_the_configured_partitions(kafka_bootstrap, unique_topic):
    s = settings(kafka_bootstrap, unique_topic, partitions=5)
    TickProducer(s).close()
    md = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10)
    assert len(md.topics[unique_topic].partitions) == 5
    assert len(md.topics[unique_topic + ".dlq"].partitions) == 1


def test_delivered_equals_produced_and_offsets_count_exactly_n(kafka_bootstrap, unique_topic):
    s = settings(kafka_bootstrap, unique_topic)
    market = SyntheticMarket(symbols=6, seed=31, duration_ms=3_600_000, ticks_per_second=15)
    ticks = list(market.iter_ticks())
    with TickProducer(s) as producer:
        n = producer.send_many(market)
    assert n == len(ticks) > 50_000
    st = producer.stats
    assert (st.produced, st.delivered, st.failed, st.in_flight) == (n, n, 0, 0)
    assert len(offsets_total(s, unique_topic)) == 3
    check_exactly(s, unique_topic, ticks)


def test_no_duplicates_after_broker_side_retries(kafka_bootstrap, unique_topic):
    real = settings(kafka_bootstrap, unique_topic)
    ensure_topics(real, {unique_topic: 3, unique_topic + ".dlq": 1})
    ticks = list(itertools.islice(SyntheticMarket(symbols=5, seed=32, duration_ms=None).iter_ticks(), 120_000))
    with KafkaProxy(kafka_bootstrap, drop_produce_responses={2, 5, 9, 14}) as proxy:
        via_proxy = settings(proxy.bootstrap, unique_topic)
        with TickProducer(via_proxy, create_topic=False, linger_ms=5,
                          config={"batch.num.messages": 2_000}) as producer:
            for i in range(0, len(ticks), 10_000):
                producer.send_many(ticks[i:i + 10_000], validated=True)
                producer.poll(0.05)
    assert proxy.dropped == 4  # four acknowledgements lost after the broker appended
    assert proxy.connections > 2  # the producer reconnected and retried
    st = producer.stats
    assert (st.produced, st.delivered, st.failed) == (len(ticks), len(ticks), 0)
    check_exactly(real, unique_topic, ticks)


def test_bad_ticks_reach_the_dead_letter_topic(kafka_bootstrap, unique_topic):
    s = settings(kafka_bootstrap, unique_topic)
    good = Tick(symbol="BTC-USD", ts_ms=1_700_000_000_000, price=1.0, size=1.0, trade_id="1")
    with TickProducer(s) as producer:
        producer.send_many([good, {"symbol": "BTC-USD", "ts_ms": 1_700_000_000_000, "price": float("nan")},
                            {"symbol": "x y", "ts_ms": 1_700_000_000_000, "price": 1.0}])
        producer.reject(b"<html>oops</html>", "not JSON", "record")
    assert producer.stats.rejected == 3 and producer.stats.delivered == 1
    dead = consume(s, unique_topic + ".dlq", 3)
    fields = sorted(dict(m.headers())["field"] for m in dead)
    assert fields == [b"price", b"record", b"symbol"]
    assert all(dict(m.headers())["stage"] == b"produce" for m in dead)


def _cli(*args: str, **kw) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOLAB_")}
    return subprocess.Popen([sys.executable, "-m", "cryptolab", "produce", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _summary(stderr: str) -> tuple[int, int, int]:
    m = re.search(r"produced ([\d,]+)\s+delivered ([\d,]+)\s+failed ([\d,]+)", stderr)
    assert m, stderr
    produced, delivered, failed = (int(g.replace(",", "")) for g in m.groups())
    return produced, delivered, failed


def test_cli_sigterm_flushes_everything_in_flight(kafka_bootstrap, unique_topic):
    proc = _cli("--source", "synthetic", "--span", "0", "--rate", "5000", "--kafka", kafka_bootstrap,
                "--topic", unique_topic, "--quiet")
    s = settings(kafka_bootstrap, unique_topic)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until ticks are flowing
        try:
            if sum(offsets_total(s, unique_topic, timeout=2).values()) > 1000:
                break
        except KafkaServiceError:  # the producer has not created the topic yet
            pass
        time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    produced, delivered, failed = _summary(err)
    assert produced == delivered > 1000 and failed == 0
    assert "stopped by signal" in err
    assert sum(offsets_total(s, unique_topic).values()) == produced


def test_cli_same_seed_same_ticks_to_kafka_and_jsonl(kafka_bootstrap, unique_topic, tmp_path):
    args = ["--source", "synthetic", "--seed", "5", "--symbols", "3", "--ticks", "8000", "--quiet"]
    k = _cli(*args, "--kafka", kafka_bootstrap, "--topic", unique_topic)
    j = _cli(*args, "--to", f"jsonl:{tmp_path / 'ticks.jsonl'}")
    _, kerr = k.communicate(timeout=120)
    _, jerr = j.communicate(timeout=120)
    assert k.returncode == 0 and j.returncode == 0, (kerr, jerr)
    lines = (tmp_path / "ticks.jsonl").read_bytes().splitlines()
    assert len(lines) == 8000
    values = [m.value() for m in consume(settings(kafka_bootstrap, unique_topic), unique_topic, 8000)]
    assert Counter(values) == Counter(lines)
