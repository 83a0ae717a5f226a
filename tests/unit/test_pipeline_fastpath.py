"""The consumer's bulk fast path accepts a record only when the one-by-one path would,
with the same values: anything else makes the batch go one by one (which names bad
records in the dead-letter queue)."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptolab.errors import ValidationError
from cryptolab.models import tick_from_dict
from cryptolab.pipeline import _decode_wire, _runs, _struct_columns, _valid_columns

GOOD = {"v": 1, "symbol": "BTC-USD", "ts": 1_700_000_000_000, "price": 37_000.5, "size": 0.25,
        "source": "synthetic", "trade_id": "42"}
CODES = {"BTC-USD": 0, "ETH-USD": 1}

values = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10), st.integers(1_230_940_800_000, 4_102_444_800_010),
    st.floats(allow_nan=False, allow_infinity=False), st.just(-0.0), st.just(1e12), st.just(1.0),
    st.text(max_size=3), st.sampled_from(["BTC-USD", "ETH-USD", "btc", "X" * 65, "ok"]),
    st.just([]), st.just({}),
)
fields = st.sampled_from([*GOOD, "extra"])


@st.composite
def records(draw):
    rec = dict(GOOD)
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["set", "drop"]))
        name = draw(fields)
        if action == "set":
            rec[name] = draw(values)
        else:
            rec.pop(name, None)
    return rec


def _one_by_one(rec):
    """What the per-record path keeps: (symbol, ts, price, size, source, trade_id) or None."""
    try:
        t = tick_from_dict(rec)
    except ValidationError:
        return None
    return (t.symbol, t.ts_ms, t.price, t.size, t.source or "", t.trade_id)


@pytest.mark.skipif(_decode_wire is None, reason="msgspec is not installed")
@given(rec=records())
@settings(max_examples=2_000, deadline=None)
def test_bulk_decoder_never_accepts_what_one_by_one_rejects(rec):
    raw = orjson.dumps(rec)
    try:
        struct = _decode_wire(raw)
    except Exception:
        return  # rejected in bulk: the batch goes one by one, which decides
    codes, names = dict(CODES), list(CODES)
    columns = _struct_columns([struct], codes, names)
    if columns is None:
        return  # a malformed symbol: one by one, which names it
    assert names[columns[0][0]] == struct.symbol
    got = (struct.symbol, struct.ts, struct.price, struct.size, struct.source or "", struct.trade_id)
    assert _one_by_one(rec) == got
    assert repr(got) == repr(_one_by_one(rec))  # same types too (-0.0, ints vs floats)


@given(batch=st.lists(records(), min_size=1, max_size=5))
@settings(max_examples=1_000, deadline=None)
def test_orjson_bulk_checks_never_accept_what_one_by_one_rejects(batch):
    try:
        codes, names = dict(CODES), list(CODES)
        columns = _valid_columns([orjson.loads(orjson.dumps(r)) for r in batch], codes, names)
    except (KeyError, TypeError):
        return  # the caller takes an exception as "one by one"
    if columns is None:
        return
    for i, rec in enumerate(batch):
        kept = _one_by_one(rec)
        assert kept is not None
        assert repr((columns[1][i], columns[2][i], columns[3][i])) == repr(kept[1:4])
        assert codes[kept[0]] == columns[0][i] and names[columns[0][i]] == kept[0]


@pytest.mark.skipif(_decode_wire is None, reason="msgspec is not installed")
def test_duplicate_keys_and_new_symbols():
    dup = b'{"v":1,"symbol":"BTC-USD","ts":1700000000000,"price":1.0,"price":2.0}'
    assert _decode_wire(dup).price == orjson.loads(dup)["price"] == 2.0  # the last one, as orjson
    codes, names = dict(CODES), list(CODES)
    new = _decode_wire(orjson.dumps({**GOOD, "symbol": "SOL-USD"}))
    assert _struct_columns([new], codes, names)[0] == [2]  # a new well-formed symbol gets the next code
    assert names == ["BTC-USD", "ETH-USD", "SOL-USD"] and codes["SOL-USD"] == 2
    bad = _decode_wire(orjson.dumps({**GOOD, "symbol": "sol usd"}))
    assert _struct_columns([new, bad], codes, names) is None  # a malformed one: one by one, which names it
    assert names == ["BTC-USD", "ETH-USD", "SOL-USD"]  # and nothing learned


def test_runs_split_at_partition_changes():
    assert _runs([3]) == [(0, 1)]
    assert _runs([1, 1, 2, 2, 2, 1]) == [(0, 2), (2, 5), (5, 6)]
