"""Hostile bytes through a real :class:`CandlePipeline` on the embedded mock cluster.

One pipeline runs in a background thread for the whole module; every
hypothesis example produces a burst of hostile and valid records to its tick
topic and checks, record by record, against the strict decoder
:func:`cryptolab.models.decode_tick`:

* a record the decoder rejects lands in ``<topic>.dlq`` (original bytes,
  ``reason``/``field``/``stage``/origin headers, the same field the decoder
  names), and nothing else does;
* a record the decoder accepts is counted as a tick, exactly once;
* the pipeline thread survives everything, and every candle it stores is a
  well-formed candle (no NaN, no inf, ``low <= open, close <= high``, aligned
  windows, symbols from the grammar).

The fast path of ``CandlePipeline._process`` (type checks instead of full
validation once a symbol is known) is exercised because valid ticks of the
same few symbols precede the hostile variants.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryptolab.cache import MemoryCache
from cryptolab.config import Settings
from cryptolab.errors import WireError
from cryptolab.kafka import bootstrap_servers, producer_config
from cryptolab.models import (
    MAX_PRICE,
    MAX_RECORD_BYTES,
    MAX_TS_MS,
    MIN_TS_MS,
    SYMBOL_RE,
    decode_tick,
    parse_interval,
)
from cryptolab.pipeline import CandlePipeline
from cryptolab.store import Store

SYMBOLS = ["BTC-USD", "ETH-USD"]
T0 = 1_700_000_040_000


# --------------------------------------------------------------------------- strategies

def _tok(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


#: JSON tokens that are not what a field expects, or not JSON at all.
hostile_tokens = st.one_of(
    st.sampled_from([
        "NaN", "Infinity", "-Infinity", "nan", "1e400", "-1e400", "1e308", "-0.0", "0", "0.0",
        "-1", "-1e-300", "5e-324", "1E+12", "1e12", "01", "+1", ".5", "1.", "0x10", "true", "false",
        "null", "[]", "{}", '""', '"1"', '"NaN"', '"1700000040000"', "[1700000040000]",
        "99999999999999999999999", "18446744073709551616", "-9223372036854775809",
        str(MIN_TS_MS - 1), str(MAX_TS_MS), str(MAX_TS_MS - 1), str(MIN_TS_MS), "1700000040000.5",
        _tok(MAX_PRICE), _tok(MAX_PRICE * 0.999), "truE", "nul", "\"\\ud800\"", "\"\\u0000\"",
    ]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(_tok),
    st.text(max_size=40).map(_tok),
    st.lists(st.integers(), max_size=3).map(_tok),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2).map(_tok),
)

#: Symbols a hostile producer might send.
hostile_symbols = st.one_of(
    st.sampled_from([
        "BTC'; DROP TABLE candles;--", "btc-usd", "BTC USD", "", " ", "BTC-USD\x00", "BTC-USD\n",
        "BTC\u200b-USD", "ＢＴＣ-USD", "BTC-USD" * 6, "-BTC", "../../etc/passwd", "%s%s%n",
        "${jndi:ldap://x}", "<script>", "BTC\u202e-USD", "\U0001f680", "BTC*", "cryptolab:*",
    ]),
    st.text(max_size=40),
)


@st.composite
def wire_records(draw: st.DrawFn) -> bytes | None:
    """One record: valid, a valid tick with one hostile field, or arbitrary bytes."""
    kind = draw(st.sampled_from(["valid", "field", "field", "symbol", "shape", "bytes", "big"]))
    fields: dict[str, str] = {
        "v": "1",
        "symbol": _tok(draw(st.sampled_from(SYMBOLS))),
        "ts": str(T0 + draw(st.integers(min_value=0, max_value=600_000))),
        "price": _tok(draw(st.floats(min_value=0.01, max_value=1e6))),
    }
    if draw(st.booleans()):
        fields["size"] = _tok(draw(st.floats(min_value=0.0, max_value=1e3)))
    if draw(st.booleans()):
        fields["source"] = _tok(draw(st.sampled_from(["synthetic", "binance", ""])))
    if draw(st.booleans()):
        fields["trade_id"] = _tok(draw(st.one_of(st.text(max_size=10), st.integers(0, 10**9))))
    if kind == "valid":
        pass
    elif kind == "field":
        key = draw(st.sampled_from(["v", "symbol", "ts", "price", "size", "source", "trade_id"]))
        fields[key] = draw(hostile_tokens)
    elif kind == "symbol":
        fields["symbol"] = _tok(draw(hostile_symbols))
    elif kind == "shape":
        how = draw(st.sampled_from(["drop", "extra", "dup", "long", "array", "nested"]))
        if how == "drop":
            del fields[draw(st.sampled_from(["v", "symbol", "ts", "price"]))]
        elif how == "extra":
            fields[draw(st.sampled_from(["x", "SYMBOL", "price ", "v2", ""]))] = "1"
        elif how == "dup":  # duplicate keys: the last one wins for every reader
            key = draw(st.sampled_from(["symbol", "ts", "price"]))
            body = ",".join(f"{_tok(k)}:{v}" for k, v in fields.items())
            return f"{{{body},{_tok(key)}:{draw(hostile_tokens)}}}".encode()
        elif how == "long":
            key = draw(st.sampled_from(["source", "trade_id"]))
            fields[key] = _tok("x" * draw(st.integers(min_value=60, max_value=3_000)))
        elif how == "array":
            return f"[{','.join(fields.values())}]".encode()
        else:
            return orjson.dumps({"tick": {k: orjson.loads(v) for k, v in fields.items() if v != "NaN"}})
    elif kind == "bytes":
        return draw(st.one_of(st.none(), st.binary(max_size=200)))
    else:  # enormous: just under, at and over the record limit, or far over it
        size = draw(st.sampled_from([MAX_RECORD_BYTES - 120, MAX_RECORD_BYTES + 1, 200_000]))
        fields["source"] = _tok("s" * size)
    body = ",".join(f"{_tok(k)}:{v}" for k, v in fields.items())
    return f"{{{body}}}".encode()


def _decoder_verdict(raw: bytes | None) -> WireError | None:
    """The strict decoder's verdict, plus the consumer's bound on event time (the default
    CRYPTOLAB_MAX_CLOCK_SKEW of one day ahead of the wall clock)."""
    try:
        tick = decode_tick(raw)
    except WireError as exc:
        return exc
    if tick.ts_ms > time.time() * 1000 + Settings().max_clock_skew_ms:
        return WireError("ts", "ahead of the wall clock")
    return None


# --------------------------------------------------------------------------- harness

@dataclass
class _Dead:
    value: bytes | None
    headers: dict[str, bytes]


class _LivePipeline:
    """A CandlePipeline consuming an embedded-mock topic in a background thread."""

    def __init__(self, data_dir: Path) -> None:
        self.topic = f"hostile_{uuid.uuid4().hex[:10]}"
        self.settings = Settings.from_env(
            {}, topic=self.topic, data_dir=data_dir, intervals="1m,5m", idle_timeout="0s"
        )
        self.store = Store(f"sqlite:///{(data_dir / 'hostile.db').as_posix()}")
        self.store.init()
        self.pipeline = CandlePipeline(
            self.settings, store=self.store, cache=MemoryCache(f"hostile-{self.topic}"), scorer=None,
            batch_size=500, batch_timeout=0.05,
        )
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="hostile-pipeline", daemon=True)
        self.producer = Producer(producer_config(self.settings, **{"linger.ms": 1}))
        self.dlq = Consumer({
            "bootstrap.servers": bootstrap_servers(self.settings), "group.id": f"dlq-{self.topic}",
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
        })
        self.dead: dict[int, list[_Dead]] = {}
        self.sent = 0

    def _run(self) -> None:
        try:
            self.pipeline.run()
        except BaseException as exc:  # pragma: no cover - reported by the test
            self.error = exc

    def start(self) -> None:
        # the topic and its DLQ exist before the pipeline subscribes (mock: auto-created, 4 partitions)
        for t in (self.topic, self.topic + ".dlq"):
            self.producer.list_topics(t, timeout=10)
        md = self.producer.list_topics(self.topic + ".dlq", timeout=10)
        self.dlq.assign([TopicPartition(self.topic + ".dlq", p, 0)
                         for p in md.topics[self.topic + ".dlq"].partitions])
        self.thread.start()

    def send(self, records: list[bytes | None]) -> tuple[int, int]:
        """Produce to partition 0; return the offset range [first, end) they got."""
        offsets: list[int] = []

        def on_delivery(err: Any, msg: Any) -> None:
            assert err is None, err
            offsets.append(msg.offset())

        for r in records:
            self.producer.produce(self.topic, value=r, partition=0, on_delivery=on_delivery)
        assert self.producer.flush(30) == 0
        assert len(offsets) == len(records)
        self.sent += len(records)
        return min(offsets), max(offsets) + 1

    def wait_committed(self, end: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.error is None, f"pipeline died: {self.error!r}"
            pr = self.store.load_progress(self.settings.group, self.topic, [0]).get(0)
            if pr is not None and pr.offset >= end:
                return
            time.sleep(0.02)
        raise AssertionError(f"partition 0 not committed up to {end} within {timeout}s")

    def collect_dead(self, wanted: set[int], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not wanted <= self.dead.keys() and time.monotonic() < deadline:
            for m in self.dlq.consume(500, 0.1):
                if m.error() is not None:
                    continue
                headers = {k: v for k, v in (m.headers() or [])}
                self.dead.setdefault(int(headers["offset"]), []).append(_Dead(m.value(), headers))

    def close(self) -> None:
        self.pipeline.stop()
        self.thread.join(30)
        self.dlq.close()
        self.store.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_LivePipeline]:
    lp = _LivePipeline(tmp_path_factory.mktemp("hostile"))
    lp.start()
    # warm up: the symbols become known, so later records take the fast path
    warm = [orjson.dumps({"v": 1, "symbol": s, "ts": T0, "price": 100.0, "size": 1.0}) for s in SYMBOLS]
    _, end = lp.send(warm)
    lp.wait_committed(end)
    yield lp
    lp.close()
    assert not lp.thread.is_alive()
    assert lp.error is None


# --------------------------------------------------------------------------- tests

@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(records=st.lists(wire_records(), min_size=1, max_size=40))
def test_every_record_is_a_tick_or_a_dead_letter_naming_the_decoders_field(
    live: _LivePipeline, records: list[bytes | None]
) -> None:
    ticks_before = live.pipeline.stats.ticks
    dead_before = live.pipeline.stats.dead_letters
    first, end = live.send(records)
    live.wait_committed(end)
    verdicts = {first + i: _decoder_verdict(r) for i, r in enumerate(records)}
    rejected = {o for o, v in verdicts.items() if v is not None}
    live.collect_dead(rejected)
    dead_here = {o: d for o, d in live.dead.items() if first <= o < end}

    assert dead_here.keys() == rejected
    for off, copies in dead_here.items():
        assert len(copies) == 1, f"offset {off} dead-lettered {len(copies)} times"
        dead = copies[0]
        verdict = verdicts[off]
        assert verdict is not None
        assert dead.value == records[off - first]
        assert dead.headers["stage"] == b"consume"
        assert dead.headers["topic"] == live.topic.encode()
        assert dead.headers["partition"] == b"0"
        assert dead.headers["reason"], "a dead letter must say why"
        assert dead.headers["field"].decode() == verdict.field, (records[off - first], dead.headers)
    assert live.pipeline.stats.ticks - ticks_before == len(records) - len(rejected)
    assert live.pipeline.stats.dead_letters - dead_before == len(rejected)
    assert live.thread.is_alive()


def test_stored_candles_are_well_formed_after_the_onslaught(live: _LivePipeline) -> None:
    # Only closed windows are stored. One valid tick per symbol an hour before the wall clock
    # moves the watermark past every window of the onslaught (whatever hypothesis drew), so
    # they all close and are committed with this tick's offset.
    ts = int(time.time() * 1000) - 3_600_000
    flush = [orjson.dumps({"v": 1, "symbol": s, "ts": ts, "price": 100.0, "size": 1.0}) for s in SYMBOLS]
    _, end = live.send(flush)
    live.wait_committed(end)
    candles = live.store.candles()
    assert candles, "the warm-up ticks' windows are closed by now"
    for c in candles:
        assert SYMBOL_RE.fullmatch(c.symbol), c
        iv = parse_interval(c.interval)
        assert c.window_start % iv == 0 and c.window_end == c.window_start + iv, c
        values = [c.open, c.high, c.low, c.close, c.volume]
        assert all(math.isfinite(v) for v in values), c
        assert 0 < c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high < MAX_PRICE, c
        assert c.volume >= 0 and c.trades >= 1, c
        assert c.vwap is None or (math.isfinite(c.vwap) and c.low <= c.vwap * (1 + 1e-9)
                                  and c.vwap <= c.high * (1 + 1e-9)), c
        assert c.window_start <= c.first_ts <= c.last_ts < c.window_end, c
    assert live.error is None and live.thread.is_alive()


@pytest.mark.parametrize("skew", ["1d", "0s"])
def test_a_tick_from_the_far_future_is_a_dead_letter_not_the_watermark(tmp_path: Path, skew: str) -> None:
    """A tick stamped 2099 passes the wire checks (MIN_TS_MS <= ts < MAX_TS_MS). Were it folded, it
    would become its partition's watermark and every later real tick would be too late. The
    consumer dead-letters event times more than CRYPTOLAB_MAX_CLOCK_SKEW ahead of the wall clock;
    ``0s`` lifts the bound (data stamped ahead of the clock on purpose), with that consequence."""
    topic = f"future_{uuid.uuid4().hex[:10]}"
    s = Settings.from_env({}, topic=topic, data_dir=tmp_path, intervals="1m", idle_timeout="0s",
                          max_clock_skew=skew)
    far = orjson.dumps({"v": 1, "symbol": "BTC-USD", "ts": MAX_TS_MS - 1, "price": 100.0, "size": 1.0})
    records = [orjson.dumps({"v": 1, "symbol": "BTC-USD", "ts": T0, "price": 100.0, "size": 1.0}), far]
    records += [orjson.dumps({"v": 1, "symbol": "BTC-USD", "ts": T0 + i * 1_000, "price": 100.0 + i,
                              "size": 1.0}) for i in range(1, 600)]
    producer = Producer(producer_config(s))
    for r in records:
        producer.produce(topic, value=r, partition=0)
    assert producer.flush(30) == 0
    store = Store(f"sqlite:///{(tmp_path / 'future.db').as_posix()}")
    store.init()
    stats = CandlePipeline(s, store=store, cache=MemoryCache(f"future-{topic}"), scorer=None,
                           batch_size=100, batch_timeout=0.05).run(stop_at_end=True)
    if skew == "0s":
        assert stats.dead_letters == 0 and stats.late_ticks == 599  # the far tick became the watermark
        return
    assert stats.dead_letters == 1 and stats.late_ticks == 0 and stats.ticks == 600
    candles = [c for c in store.candles() if c.window_start < T0 + 600_000]
    assert [c.window_start for c in candles] == [T0 + m * 60_000 for m in range(10)]
    assert sum(c.trades for c in candles) == 600 and all(c.final for c in candles)
    dlq = Consumer({"bootstrap.servers": bootstrap_servers(s), "group.id": f"dlq-{topic}",
                    "auto.offset.reset": "earliest", "enable.auto.commit": False})
    dlq.subscribe([topic + ".dlq"])
    dead = []
    deadline = time.monotonic() + 20
    while not dead and time.monotonic() < deadline:
        dead = [m for m in dlq.consume(10, 0.5) if m.error() is None]
    dlq.close()
    assert [m.value() for m in dead] == [far]
    headers = dict(dead[0].headers() or [])
    assert headers["field"] == b"ts" and headers["offset"] == b"1"
    reason = headers["reason"].decode()
    assert "2099-12-31T23:59:59.999Z" in reason and "ahead of the wall clock" in reason, reason
    assert "CRYPTOLAB_MAX_CLOCK_SKEW=1d" in reason, reason
