"""TickProducer on the embedded mock cluster, and JsonlSink: keys, timestamps, DLQ, counts."""

from __future__ import annotations

import io
import math
import uuid

import orjson
import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Consumer, TopicPartition

from cryptolab.config import Settings
from cryptolab.errors import KafkaServiceError
from cryptolab.kafka import consumer_config
from cryptolab.models import Tick, decode_tick, encode_tick
from cryptolab.producer import JsonlSink, ProducerStats, TickProducer, TickSink, coerce_tick
from cryptolab.sources import Rejected
from cryptolab.sources.synthetic import SyntheticMarket

EMBEDDED = Settings.from_env({})


def consume_all(settings: Settings, topic: str, expected: int, timeout: float = 30.0) -> list:
    """Read ``expected`` messages from every partition of ``topic`` (from the beginning)."""
    c = Consumer(consumer_config(settings, group=f"g-{uuid.uuid4().hex[:8]}",
                                 **{"isolation.level": "read_uncommitted"}))
    md = c.list_topics(topic, timeout=10)
    c.assign([TopicPartition(topic, p, 0) for p in md.topics[topic].partitions])
    out = []
    import time

    deadline = time.monotonic() + timeout
    while len(out) < expected and time.monotonic() < deadline:
        for m in c.consume(10_000, timeout=0.5):
            if m.error() is None:
                out.append(m)
    c.close()
    return out


@pytest.fixture
def topic() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


def tick(**kw) -> Tick:
    base = dict(symbol="BTC-USD", ts_ms=1_700_000_000_000, price=37000.5, size=0.25, source="test",
                trade_id="1")
    base.update(kw)
    return Tick(**base)


def test_key_is_symbol_timestamp_is_event_time_value_is_wire(topic):
    ticks = [tick(symbol=s, ts_ms=1_700_000_000_000 + i, trade_id=str(i))
             for i, s in enumerate(["BTC-USD", "ETH-USD", "SOL-USD"] * 20)]
    with TickProducer(EMBEDDED, topic=topic) as p:
        assert p.send_many(ticks) == 60
    assert p.stats.delivered == 60 and p.stats.failed == 0 and p.stats.in_flight == 0
    msgs = consume_all(EMBEDDED, topic, 60)
    assert len(msgs) == 60
    by_id = {decode_tick(m.value()).trade_id: m for m in msgs}
    for t in ticks:
        m = by_id[t.trade_id]
        assert m.key() == t.symbol.encode()
        assert m.timestamp() == (TIMESTAMP_CREATE_TIME, t.ts_ms)
        assert m.value() == encode_tick(t)
    # one symbol, one partition (ordering per symbol)
    parts: dict[bytes, set[int]] = {}
    for m in msgs:
        parts.setdefault(m.key(), set()).add(m.partition())
    assert all(len(v) == 1 for v in parts.values())


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (tick(price=float("nan")), "price"),
        (tick(price=float("inf")), "price"),
        (tick(price=0.0), "price"),
        (tick(price=-3.0), "price"),
        (tick(symbol="BTC'; DROP TABLE candles;--"), "symbol"),
        (tick(ts_ms=12), "ts"),
        ({"symbol": "BTC-USD", "price": 1.0}, "ts_ms"),
        ({"symbol": "BTC-USD", "ts_ms": 1_700_000_000_000}, "price"),
        ({"symbol": "BTC-USD", "ts_ms": 1_700_000_000_000, "price": "12"}, "price"),
        ({"symbol": "BTC-USD", "ts_ms": 1_700_000_000_000, "price": 1.0, "evil": 1}, "evil"),
    ],
)
def test_bad_ticks_go_to_the_dlq_with_a_reason(topic, bad, field):
    good = tick()
    with TickProducer(EMBEDDED, topic=topic) as p:
        assert p.send(bad) is False
        assert p.send(good) is True
    assert p.stats.rejected == 1 and p.stats.rejected_by_field == {field: 1}
    assert p.stats.produced == 1 and p.stats.delivered == 1
    dead = consume_all(EMBEDDED, topic + ".dlq", 1)
    assert len(dead) == 1
    headers = dict(dead[0].headers())
    assert headers["field"] == field.encode() and headers["stage"] == b"produce"
    assert headers["reason"]
    assert [decode_tick(m.value()) for m in consume_all(EMBEDDED, topic, 1)] == [good]


def test_rejected_records_from_a_source_reach_the_dlq_with_where(topic):
    rej = Rejected("1700000001,abc,1", "price", "not a number: 'abc'", source="replay", where="f.csv:3")
    with TickProducer(EMBEDDED, topic=topic) as p:
        assert p.send_many([tick(), rej, tick(trade_id="2")]) == 2
    dead = consume_all(EMBEDDED, topic + ".dlq", 1)
    h = dict(dead[0].headers())
    assert dead[0].value() == b"1700000001,abc,1"
    assert (h["field"], h["source"], h["where"]) == (b"price", b"replay", b"f.csv:3")
    assert p.stats.rejected == 1


def test_validated_mode_still_checks_non_tick_items(topic):
    items = [tick(), {"symbol": "X", "ts_ms": 1, "price": 1.0}, tick(trade_id="2")]
    with TickProducer(EMBEDDED, topic=topic) as p:
        assert p.send_many(items, validated=True) == 2
    assert p.stats.rejected == 1 and p.stats.delivered == 2


def test_source_send_many_counts_and_is_identical_to_jsonl(topic, tmp_path):
    market = SyntheticMarket(symbols=3, seed=17, duration_ms=120_000)
    with TickProducer(EMBEDDED, topic=topic) as p:
        n = p.send_many(market)
    assert n == p.stats.produced == p.stats.delivered == len(market.to_frame())
    with JsonlSink(tmp_path / "t.jsonl") as sink:
        sink.send_many(SyntheticMarket(symbols=3, seed=17, duration_ms=120_000))
    lines = (tmp_path / "t.jsonl").read_bytes().splitlines()
    values = [m.value() for m in consume_all(EMBEDDED, topic, n)]
    assert sorted(values) == sorted(lines) and len(lines) == n


def test_failed_deliveries_are_counted_not_raised():
    s = Settings.from_env({}, kafka_bootstrap="127.0.0.1:9")  # nothing listens there
    p = TickProducer(s, topic="nowhere", create_topic=False, config={"message.timeout.ms": 300})
    assert p.send_many([tick(trade_id=str(i)) for i in range(5)]) == 5
    assert p.flush(10) == 0
    assert p.stats.failed == 5 and p.stats.delivered == 0
    assert sum(p.stats.errors.values()) >= 5
    p.close()


def test_close_flushes_and_then_refuses(topic):
    p = TickProducer(EMBEDDED, topic=topic)
    p.send(tick())
    p.close()
    assert p.stats.delivered == 1 and p.stats.in_flight == 0
    with pytest.raises(KafkaServiceError):
        p.send(tick())
    p.close()  # idempotent


def test_client_overrides_are_applied(topic):
    p = TickProducer(EMBEDDED, topic=topic, linger_ms=1, config={"batch.num.messages": 10})
    assert p.send(tick())
    p.close()
    assert p.stats.delivered == 1


def test_jsonl_sink_writes_wire_lines_and_dead_letters(tmp_path):
    path = tmp_path / "out" / "ticks.jsonl"
    with JsonlSink(path) as sink:
        assert isinstance(sink, TickSink)
        sink.send(tick())
        sink.send({"symbol": "BTC-USD", "ts_ms": 1_700_000_000_000, "price": math.nan})
        sink.reject(b"\xff\xfe garbage", "not valid JSON", "record")
    assert path.read_bytes() == encode_tick(tick()) + b"\n"
    dead = [orjson.loads(line) for line in (tmp_path / "out" / "ticks.jsonl.dlq.jsonl").read_bytes().splitlines()]
    assert [(d["field"], d["stage"]) for d in dead] == [("price", "produce"), ("record", "produce")]
    assert dead[1]["raw"] == "\\xff\\xfe garbage"
    assert sink.stats.produced == 1 and sink.stats.rejected == 2


def test_jsonl_sink_to_a_stream_without_dead_letter_file():
    buf = io.BytesIO()
    sink = JsonlSink(buf)
    sink.send_many([tick(), tick(price=-1.0), tick(trade_id="2")])
    sink.flush()
    assert buf.getvalue().count(b"\n") == 2
    assert sink.stats.rejected == 1


def test_coerce_tick_accepts_ints_and_ts_alias():
    t = coerce_tick({"symbol": "ETH-USD", "ts": 1_700_000_000_000, "price": 2, "size": 3})
    assert (t.price, t.size, t.ts_ms) == (2.0, 3.0, 1_700_000_000_000)


def test_stats_as_dict():
    s = ProducerStats(produced=3)
    s.rejected_by_field["price"] += 1
    assert s.as_dict()["produced"] == 3 and s.as_dict()["rejected_by_field"] == {"price": 1}


def test_wire_fast_path_keys_timestamps_and_bytes(topic):
    market = SyntheticMarket(symbols=4, seed=23, duration_ms=90_000)
    ticks = list(market.iter_ticks())
    with TickProducer(EMBEDDED, topic=topic) as p:
        n = p.send_wire(market.iter_wire(), limit=1000)
    assert n == 1000 and p.stats.delivered == 1000
    msgs = consume_all(EMBEDDED, topic, 1000)
    want = {encode_tick(t): t for t in ticks[:1000]}
    assert len(msgs) == 1000
    for m in msgs:
        t = want[m.value()]
        assert m.key() == t.symbol.encode() and m.timestamp() == (TIMESTAMP_CREATE_TIME, t.ts_ms)


def test_send_many_of_a_market_uses_the_wire_path_with_identical_bytes(tmp_path):
    market = SyntheticMarket(symbols=3, seed=29, duration_ms=60_000)
    with JsonlSink(tmp_path / "fast.jsonl") as fast:
        fast.send_many(market)  # iter_wire
    with JsonlSink(tmp_path / "slow.jsonl") as slow:
        slow.send_many(market.iter_ticks())  # Tick objects, validated
    assert (tmp_path / "fast.jsonl").read_bytes() == (tmp_path / "slow.jsonl").read_bytes()
    assert fast.stats.produced == slow.stats.produced == len(market.to_frame())
