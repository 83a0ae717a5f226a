"""Property tests of the wire format: every valid record round-trips, every bad one is rejected
with a :class:`~cryptolab.errors.WireError` naming the offending field."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from cryptolab.errors import ValidationError, WireError
from cryptolab.models import (
    MAX_PRICE,
    MAX_RECORD_BYTES,
    MAX_TS_MS,
    MIN_TS_MS,
    SYMBOL_RE,
    WIRE_VERSION,
    Alert,
    Candle,
    Tick,
    decode_alert,
    decode_candle,
    decode_tick,
    encode_alert,
    encode_candle,
    encode_tick,
    validate_tick,
)

# --------------------------------------------------------------------------- strategies

symbols = st.from_regex(SYMBOL_RE, fullmatch=True)
timestamps = st.integers(min_value=MIN_TS_MS, max_value=MAX_TS_MS - 1)
prices = st.floats(
    min_value=0.0, max_value=MAX_PRICE, exclude_min=True, exclude_max=True, allow_nan=False
)
sizes = st.none() | st.floats(
    min_value=0.0, max_value=MAX_PRICE, exclude_max=True, allow_nan=False
)
short_text = st.text(max_size=64)
finite = st.floats(allow_nan=False, allow_infinity=False)

ticks = st.builds(
    Tick,
    symbol=symbols,
    ts_ms=timestamps,
    price=prices,
    size=sizes,
    source=short_text,
    trade_id=st.none() | short_text,
)

candles = st.builds(
    Candle,
    symbol=symbols,
    interval=st.sampled_from(["1s", "1m", "5m", "15m", "1h", "4h", "1d"]),
    window_start=timestamps,
    window_end=timestamps,
    open=prices,
    high=prices,
    low=prices,
    close=prices,
    volume=st.floats(min_value=0.0, max_value=MAX_PRICE, allow_nan=False),
    vwap=st.none() | prices,
    trades=st.integers(min_value=0, max_value=2**53),
    first_ts=timestamps,
    last_ts=timestamps,
    high_ts=timestamps,
    low_ts=timestamps,
    revision=st.integers(min_value=0, max_value=10_000),
    final=st.booleans(),
    gap=st.booleans(),
)

alerts = st.builds(
    Alert,
    symbol=symbols,
    interval=st.sampled_from(["1m", "5m", "15m"]),
    window_start=timestamps,
    detector=st.sampled_from(["rule", "hst", "zscore"]) | st.text(min_size=1, max_size=32),
    severity=st.sampled_from(["LOW", "MEDIUM", "HIGH"]),
    score=finite,
    ts_ms=timestamps,
    features=st.dictionaries(st.text(max_size=16), finite, max_size=8),
)


def wire(tick: Tick) -> dict[str, Any]:
    """The wire dictionary of a valid tick, to be broken by a test."""
    d: dict[str, Any] = orjson.loads(encode_tick(tick))
    return d


def rejected_field(record: dict[str, Any] | bytes) -> str:
    """Decode ``record`` (a dict is JSON-encoded first); return the field named by WireError."""
    data = record if isinstance(record, bytes) else orjson.dumps(record)
    with pytest.raises(WireError) as info:
        decode_tick(data)
    assert info.value.reason, "a rejection must say why"
    return info.value.field


# --------------------------------------------------------------------------- round trips


@given(ticks)
def test_tick_round_trip(tick: Tick) -> None:
    data = encode_tick(tick)
    assert len(data) <= MAX_RECORD_BYTES
    assert decode_tick(data) == tick
    assert decode_tick(data.decode()) == tick  # str input too
    assert decode_tick(bytearray(data)) == tick


@given(ticks)
def test_encoded_tick_is_versioned_json_without_unset_fields(tick: Tick) -> None:
    d = wire(tick)
    assert d["v"] == WIRE_VERSION
    assert ("size" in d) == (tick.size is not None)
    assert ("trade_id" in d) == (tick.trade_id is not None)
    assert ("source" in d) == bool(tick.source)


@given(candles)
def test_candle_round_trip(candle: Candle) -> None:
    assert decode_candle(encode_candle(candle)) == candle


@given(alerts)
def test_alert_round_trip(alert: Alert) -> None:
    assert decode_alert(encode_alert(alert)) == alert


@given(ticks, st.sampled_from(["size", "source", "trade_id"]))
def test_optional_fields_may_be_null(tick: Tick, key: str) -> None:
    d = wire(tick)
    d[key] = None
    decoded = decode_tick(orjson.dumps(d))
    expected = {"size": None, "source": "", "trade_id": None}[key]
    assert getattr(decoded, key) == expected


def test_integral_float_timestamp_and_integer_trade_id_are_normalised() -> None:
    d = {"v": 1, "symbol": "BTC-USD", "ts": 1.7e12, "price": 1, "trade_id": 42}
    tick = decode_tick(orjson.dumps(d))
    assert tick.ts_ms == 1_700_000_000_000 and isinstance(tick.ts_ms, int)
    assert tick.trade_id == "42"
    assert isinstance(tick.price, float)


# --------------------------------------------------------------------------- rejections


@given(st.binary(max_size=256))
@example(b"")
@example(b"\xff\xfe")
@example(b'{"v":1,')
@example(b'{"v":1,"symbol":"BTC-USD","ts":1700000000000,"price":NaN}')
@example(b'{"v":1,"symbol":"BTC-USD","ts":1700000000000,"price":Infinity}')
@example(b'{"v":1,"symbol":"BTC-USD","ts":1700000000000,"price":1e400}')
def test_bytes_that_are_not_a_json_object_are_rejected_as_a_record(data: bytes) -> None:
    try:
        assume(not isinstance(orjson.loads(data), dict))
    except orjson.JSONDecodeError:
        pass
    assert rejected_field(data) == "record"


@pytest.mark.parametrize("doc", [b"[]", b"1", b'"BTC-USD"', b"null", b"true"])
def test_json_that_is_not_an_object_is_rejected(doc: bytes) -> None:
    assert rejected_field(doc) == "record"


def test_tombstone_is_rejected() -> None:
    with pytest.raises(WireError) as info:
        decode_tick(None)
    assert info.value.field == "record"


@given(ticks, st.integers(min_value=1, max_value=3 * MAX_RECORD_BYTES))
def test_oversize_records_are_rejected_before_parsing(tick: Tick, pad: int) -> None:
    data = encode_tick(tick)
    # Still a valid tick as JSON (padded with whitespace), only too large.
    oversize = data[:-1] + b" " * (MAX_RECORD_BYTES - len(data) + pad) + b"}"
    assert orjson.loads(oversize) == orjson.loads(data)
    assert len(oversize) > MAX_RECORD_BYTES
    assert rejected_field(oversize) == "record"


@given(ticks, st.sampled_from(["v", "symbol", "ts", "price"]))
def test_missing_required_field_is_named(tick: Tick, key: str) -> None:
    d = wire(tick)
    del d[key]
    assert rejected_field(d) == key


@given(ticks, st.text(min_size=1, max_size=20))
def test_unknown_field_is_named(tick: Tick, key: str) -> None:
    assume(key not in {"v", "symbol", "ts", "price", "size", "source", "trade_id"})
    d = wire(tick)
    d[key] = 1
    assert rejected_field(d) == key


@given(
    ticks,
    st.one_of(
        st.integers(min_value=-(2**63), max_value=2**64 - 1),
        st.text(max_size=5),
        st.booleans(),
        st.none(),
        finite,
    ),
)
@example(Tick(symbol="X", ts_ms=MIN_TS_MS, price=1.0), 2)
@example(Tick(symbol="X", ts_ms=MIN_TS_MS, price=1.0), 0)
@example(Tick(symbol="X", ts_ms=MIN_TS_MS, price=1.0), True)
@example(Tick(symbol="X", ts_ms=MIN_TS_MS, price=1.0), "1")
def test_wrong_version_is_rejected(tick: Tick, version: object) -> None:
    assume(not (type(version) in (int, float) and version == WIRE_VERSION))
    d = wire(tick)
    d["v"] = version
    assert rejected_field(d) == "v"


WRONG_TYPES: dict[str, list[object]] = {
    "symbol": [1, 1.5, True, None, ["BTC-USD"], {"s": "BTC-USD"}],
    "ts": ["1700000000000", 1.7e12 + 0.5, True, None, [1_700_000_000_000], {}],
    "price": ["1.0", True, None, [1.0], {"p": 1}],
    "size": ["1.0", True, [1.0], {}],
    "source": [1, 1.5, True, ["x"], {}],
    "trade_id": [1.5, True, ["1"], {}],
}


@pytest.mark.parametrize(
    ("key", "value"), [(k, v) for k, vs in WRONG_TYPES.items() for v in vs], ids=repr
)
def test_wrong_type_is_named(key: str, value: object) -> None:
    d = wire(Tick(symbol="BTC-USD", ts_ms=1_700_000_000_000, price=1.0, size=1.0))
    d[key] = value
    assert rejected_field(d) == key


@given(
    ticks,
    st.one_of(
        st.floats(max_value=0.0),
        st.floats(min_value=MAX_PRICE),
        st.integers(min_value=-(2**63), max_value=0),
        st.integers(min_value=int(MAX_PRICE), max_value=2**63 - 1),
    ),
)
@example(Tick(symbol="X", ts_ms=MIN_TS_MS, price=1.0), 0)
@example(Tick(symbol="X", ts_ms=MIN_TS_MS, price=1.0), -0.0)
@example(Tick(symbol="X", ts_ms=MIN_TS_MS, price=1.0), -1)
@example(Tick(symbol="X", ts_ms=MIN_TS_MS, price=1.0), MAX_PRICE)
def test_non_positive_or_huge_price_is_rejected(tick: Tick, price: float) -> None:
    assume(not math.isnan(price) and not math.isinf(price))  # JSON cannot carry them
    d = wire(tick)
    d["price"] = price
    assert rejected_field(d) == "price"


@given(ticks, st.one_of(st.floats(max_value=0.0, exclude_max=True), st.floats(min_value=MAX_PRICE)))
def test_negative_or_huge_size_is_rejected(tick: Tick, size: float) -> None:
    assume(math.isfinite(size))
    d = wire(tick)
    d["size"] = size
    assert rejected_field(d) == "size"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_price_is_rejected_in_python_and_on_the_wire(bad: float) -> None:
    tick = Tick(symbol="BTC-USD", ts_ms=1_700_000_000_000, price=bad)
    with pytest.raises(ValidationError) as info:
        validate_tick(tick)
    assert info.value.field == "price"
    # orjson writes a non-finite float as null: the decoder must still refuse it.
    assert rejected_field(encode_tick(tick)) == "price"


@given(
    ticks,
    st.integers(min_value=-(10**300), max_value=10**300).filter(
        lambda t: not MIN_TS_MS <= t < MAX_TS_MS
    ),
)
@example(Tick(symbol="X", ts_ms=MIN_TS_MS, price=1.0), MIN_TS_MS - 1)
@example(Tick(symbol="X", ts_ms=MIN_TS_MS, price=1.0), MAX_TS_MS)
@example(Tick(symbol="X", ts_ms=MIN_TS_MS, price=1.0), 1_700_000_000)  # seconds, not ms
@example(Tick(symbol="X", ts_ms=MIN_TS_MS, price=1.0), 1_700_000_000_000_000)  # microseconds
@example(Tick(symbol="X", ts_ms=MIN_TS_MS, price=1.0), 2**64)  # beyond int64
def test_timestamp_out_of_range_is_rejected(tick: Tick, ts: int) -> None:
    d = wire(tick)
    d["ts"] = 0
    # Written by hand: orjson cannot encode integers beyond 64 bits, but may receive them.
    data = orjson.dumps(d).replace(b'"ts":0', b'"ts":' + str(ts).encode(), 1)
    assert rejected_field(data) == "ts"


BAD_SYMBOLS = [
    "",
    "btc-usd",
    "-BTC",
    ".BTC",
    "BTC USD",
    "BTC\n",
    "BTC\x00",
    "\tBTC",
    "BTC€",
    "ＢＴＣ",  # fullwidth letters
    "BİTCOIN",  # dotted capital I
    "BTC\u200b",  # zero-width space
    "BTC'; DROP TABLE candles;--",
    "BTC\" OR \"1\"=\"1",
    "A" * 33,
]


@pytest.mark.parametrize("symbol", BAD_SYMBOLS, ids=repr)
def test_bad_symbols_are_rejected(symbol: str) -> None:
    d = wire(Tick(symbol="BTC-USD", ts_ms=1_700_000_000_000, price=1.0))
    d["symbol"] = symbol
    assert rejected_field(d) == "symbol"


@given(ticks, st.text(max_size=40))
def test_any_text_outside_the_symbol_grammar_is_rejected(tick: Tick, symbol: str) -> None:
    assume(SYMBOL_RE.fullmatch(symbol) is None)
    d = wire(tick)
    d["symbol"] = symbol
    assert rejected_field(d) == "symbol"


@given(ticks, st.sampled_from(["source", "trade_id"]), st.text(min_size=65, max_size=200))
def test_overlong_strings_are_rejected(tick: Tick, key: str, value: str) -> None:
    d = wire(tick)
    d[key] = value
    data = orjson.dumps(d)
    assume(len(data) <= MAX_RECORD_BYTES)
    assert rejected_field(data) == key


@given(ticks)
def test_first_bad_field_wins_in_a_fixed_order(tick: Tick) -> None:
    """With several bad fields, the version is checked first, then unknown keys, then values."""
    d = wire(tick)
    d.update({"v": 2, "extra": 1, "price": -1})
    assert rejected_field(d) == "v"
    d["v"] = 1
    assert rejected_field(d) == "extra"
    del d["extra"]
    assert rejected_field(d) == "price"


# --------------------------------------------------------------------------- candles, alerts


@given(candles, st.sampled_from(["symbol", "interval", "window_start", "open", "close", "vwap"]))
def test_candle_missing_field_is_named(candle: Candle, key: str) -> None:
    d = orjson.loads(encode_candle(candle))
    del d[key]
    with pytest.raises(WireError) as info:
        decode_candle(orjson.dumps(d))
    assert info.value.field == key


@given(candles)
def test_candle_defaults_apply_when_flags_are_absent(candle: Candle) -> None:
    d = orjson.loads(encode_candle(candle))
    for key in ("revision", "final", "gap"):
        del d[key]
    decoded = decode_candle(orjson.dumps(d))
    assert (decoded.revision, decoded.final, decoded.gap) == (0, False, False)


@pytest.mark.parametrize("decode", [decode_candle, decode_alert])
@pytest.mark.parametrize("doc", [b"not json", b"[1, 2]", b"42", b'"x"'])
def test_candle_and_alert_reject_non_objects(decode: Any, doc: bytes) -> None:
    with pytest.raises(WireError) as info:
        decode(doc)
    assert info.value.field == "record"


@given(alerts, st.sampled_from(["symbol", "detector", "severity", "score", "ts_ms"]))
def test_alert_missing_field_is_rejected(alert: Alert, key: str) -> None:
    d = orjson.loads(encode_alert(alert))
    del d[key]
    with pytest.raises(WireError) as info:
        decode_alert(orjson.dumps(d))
    assert key in info.value.reason


def test_make_candle_is_the_keyword_constructor():
    import inspect

    from cryptolab.models.records import CANDLE_FIELDS, make_candle

    assert tuple(inspect.signature(make_candle).parameters) == CANDLE_FIELDS
    values = ("ETH-USD", "5m", 300_000, 600_000, 1.0, 2.0, 0.5, 1.5, 3.0, None, 3, 301_000, 599_000,
              400_000, 500_000, 2, True, True)
    fast, slow = make_candle(*values), Candle(**dict(zip(CANDLE_FIELDS, values, strict=True)))
    assert fast == slow and type(fast) is Candle
    assert [getattr(fast, f) for f in CANDLE_FIELDS] == list(values)
    assert fast.to_dict() == slow.to_dict()
