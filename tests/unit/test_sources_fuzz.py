"""Property-based fuzzing of every source parser with hostile input.

Whatever comes in -- malformed JSON, wrong types, NaN, inf, zero and negative prices,
enormous numbers, unicode and control characters, SQL-looking symbols, far past and
future timestamps -- a parser returns a valid tick, skips a non-trade record, or
rejects with a field and a reason. It never crashes and never lets a corrupted tick
through.
"""

from __future__ import annotations

import csv
import io
import json
import math

import orjson
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cryptolab.errors import ValidationError
from cryptolab.models import (
    MAX_PRICE,
    MAX_TS_MS,
    MIN_TS_MS,
    SYMBOL_RE,
    Tick,
    decode_tick,
    encode_tick,
    validate_tick,
)
from cryptolab.producer import JsonlSink
from cryptolab.sources import Rejected
from cryptolab.sources.coingecko import parse_simple_price
from cryptolab.sources.exchanges import parse_binance_frame, parse_coinbase_frame
from cryptolab.sources.replay import Replay

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])

hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from([
        "", " ", "NaN", "nan", "inf", "-inf", "Infinity", "1e400", "-0", "0", "0.0", "-1", "1e-400",
        "9" * 400, "BTC'; DROP TABLE candles;--", "\x00", "\u202eUSD-BTC", "ＢＴＣ-USD", "1,5", "0x10",
        "１２３", "<html>", "{}", "[]", "null", "true", "2024-13-45T25:61:00Z", "1970-01-01T00:00:00Z",
    ]),
)
hostile_number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from([0, -1, 0.0, -0.0, 1e308, 5e-324, 10**400, MAX_PRICE, MAX_PRICE * 0.999]),
)
hostile_value = st.one_of(hostile_number, hostile_text, st.none(), st.booleans(),
                          st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
timestamps_s = st.one_of(
    st.integers(min_value=1_300_000_000, max_value=2_000_000_000),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.sampled_from([0, -1, 1_230_940_799, 4_102_444_800, 10**30]),
)


def check_tick(t: Tick) -> None:
    """A tick that got through must be fully valid."""
    assert validate_tick(t) is t
    assert SYMBOL_RE.fullmatch(t.symbol)
    assert math.isfinite(t.price) and 0 < t.price < MAX_PRICE
    assert t.size is None or (math.isfinite(t.size) and t.size >= 0)
    assert MIN_TS_MS <= t.ts_ms < MAX_TS_MS
    assert decode_tick(encode_tick(t)) == t


# --------------------------------------------------------------------------- CoinGecko


@FUZZ
@given(st.binary(max_size=300))
def test_coingecko_any_bytes(body):
    try:
        ticks, rejects, unknown = parse_simple_price(body, {"bitcoin": "BTC-USD"}, "usd")
    except ValidationError as exc:
        assert exc.field == "body" and exc.reason.split(":")[0] in ("html_body", "malformed_json", "bad_shape")
        return
    for t in ticks:
        check_tick(t)
    assert len(ticks) + len(rejects) + len(unknown) == 1


@FUZZ
@given(price=hostile_value, vol=hostile_value, updated=st.one_of(timestamps_s, hostile_value),
       extra=st.dictionaries(st.text(max_size=8), hostile_value, max_size=3))
def test_coingecko_hostile_quotes(price, vol, updated, extra):
    quote = {**extra, "usd": price, "usd_24h_vol": vol, "last_updated_at": updated}
    try:
        body = orjson.dumps({"bitcoin": quote})
    except (TypeError, orjson.JSONEncodeError):
        body = json.dumps({"bitcoin": quote}, default=str).encode()
    ticks, rejects, unknown = parse_simple_price(body, {"bitcoin": "BTC-USD"}, "usd")
    assert not unknown and len(ticks) + len(rejects) == 1
    for t in ticks:
        check_tick(t)
        assert t.price == float(price) and t.ts_ms == int(updated * 1000)
    for r in rejects:
        assert r.field and r.reason and r.source == "coingecko"


# --------------------------------------------------------------------------- websockets


@FUZZ
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_ws_frames_any_text(frame):
    for parse in (parse_binance_frame, parse_coinbase_frame):
        try:
            t = parse(frame)
        except ValidationError as exc:
            assert exc.field and exc.reason
            continue
        if t is not None:
            check_tick(t)


@FUZZ
@given(p=hostile_value, q=hostile_value, ts=st.one_of(st.integers(min_value=-(10**20), max_value=10**20), hostile_value),
       sym=hostile_value, tid=hostile_value, event=st.sampled_from(["trade", "aggTrade"]),
       combined=st.booleans())
def test_binance_hostile_trade_frames(p, q, ts, sym, tid, event, combined):
    data = {"e": event, "E": 1, "s": sym, "p": p, "q": q, "T": ts, "t": tid, "a": tid, "m": True}
    msg = {"stream": "x@trade", "data": data} if combined else data
    frame = json.dumps(msg, default=str)
    try:
        t = parse_binance_frame(frame)
    except ValidationError as exc:
        assert exc.field in ("symbol", "price", "size", "ts", "trade_id", "record", "data")
        return
    assert t is not None
    check_tick(t)
    assert t.price == float(p) and t.size == float(q) and t.ts_ms == ts


@FUZZ
@given(price=hostile_value, size=hostile_value, time=st.one_of(hostile_text, st.datetimes().map(lambda d: d.isoformat() + "Z")),
       product=hostile_value, tid=hostile_value)
def test_coinbase_hostile_match_frames(price, size, time, product, tid):
    frame = json.dumps({"type": "match", "trade_id": tid, "product_id": product, "price": price,
                        "size": size, "time": time, "side": "buy"}, default=str)
    try:
        t = parse_coinbase_frame(frame)
    except ValidationError as exc:
        assert exc.field and exc.reason
        return
    assert t is not None
    check_tick(t)


# --------------------------------------------------------------------------- CSV rows


csv_cell = st.one_of(hostile_text, hostile_number.map(str), timestamps_s.map(str))


@FUZZ
@given(rows=st.lists(st.tuples(csv_cell, csv_cell, csv_cell, csv_cell), min_size=1, max_size=15))
def test_csv_rows(tmp_path_factory, rows):
    good_first = ("1700000000", "100.5", "1", "BTC-USD")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["ts", "price", "size", "symbol"])
    w.writerow(good_first)
    for r in rows:
        w.writerow(r)
    path = tmp_path_factory.mktemp("fuzz") / "rows.csv"
    path.write_text(buf.getvalue(), encoding="utf-8")
    rejected: list[Rejected] = []
    r = Replay(path, errors="skip", ts_unit="s")
    ticks = list(r.iter_ticks(on_reject=rejected.append))
    for t in ticks:
        check_tick(t)
    assert ticks[0] == Tick(symbol="BTC-USD", ts_ms=1_700_000_000_000, price=100.5, size=1.0, source="replay")
    data_rows = list(csv.reader(io.StringIO(buf.getvalue(), newline="")))[1:]
    non_blank = [row for row in data_rows if row and not (len(row) == 1 and not row[0].strip())]
    assert len(ticks) + len(rejected) == len(non_blank)
    assert all(rej.where.startswith(str(path) + ":") and rej.reason for rej in rejected)
    # nothing corrupted: each tick carries exactly the values of one of the rows
    for t in ticks:
        assert any(row_matches(t, row) for row in non_blank), t


def row_matches(t: Tick, row: list[str]) -> bool:
    try:
        size = None if not row[2].strip() else float(row[2])
        return (t.symbol == row[3].strip().upper() and t.price == float(row[1]) and t.size == size
                and t.ts_ms == math.floor(float(row[0]) * 1000 + 1e-6))
    except (ValueError, IndexError, OverflowError):
        return False


# --------------------------------------------------------------------------- bar JSON


bar_strategy = st.fixed_dictionaries(
    {"endTime": st.one_of(st.integers(min_value=1_600_000_000_000, max_value=1_700_000_000_000), hostile_value),
     "openPrice": hostile_value, "highPrice": hostile_value, "lowPrice": hostile_value,
     "closePrice": hostile_value, "volume": hostile_value},
)
sane_bar = st.builds(
    lambda end, o, c, lo, hi, v: {"endTime": end * 60_000 - 1, "openPrice": o, "closePrice": c,
                                  "lowPrice": min(o, c) * lo, "highPrice": max(o, c) * hi, "volume": v},
    st.integers(min_value=28_000_000, max_value=29_000_000),
    st.floats(min_value=0.01, max_value=1e6), st.floats(min_value=0.01, max_value=1e6),
    st.floats(min_value=0.5, max_value=1.0), st.floats(min_value=1.0, max_value=2.0),
    st.floats(min_value=0, max_value=1e9),
)


@FUZZ
@given(bars=st.lists(st.one_of(bar_strategy, sane_bar, hostile_value), min_size=1, max_size=10))
def test_bar_json(tmp_path_factory, bars):
    path = tmp_path_factory.mktemp("fuzz") / "bars.json"
    path.write_text(json.dumps({"name": "BTC/USD_PT1M@Fuzz", "ohlc": bars}, default=str))
    rejected: list[Rejected] = []
    ticks = list(Replay(path, errors="skip").iter_ticks(on_reject=rejected.append))
    for t in ticks:
        check_tick(t)
    assert len(ticks) % 4 == 0
    assert len(ticks) // 4 + len(rejected) == len(bars)
    for i in range(0, len(ticks), 4):
        o, a, b, c = ticks[i:i + 4]
        assert o.ts_ms < a.ts_ms < b.ts_ms < c.ts_ms and (c.ts_ms + 1 - o.ts_ms) == 60_000
        assert min(a.price, b.price) <= min(o.price, c.price) and max(a.price, b.price) >= max(o.price, c.price)


# --------------------------------------------------------------------------- the producer edge


@FUZZ
@given(record=st.dictionaries(st.sampled_from(["symbol", "ts_ms", "ts", "price", "size", "source", "trade_id", "x"]),
                              hostile_value, max_size=7))
def test_sink_edge_never_raises(record):
    buf = io.BytesIO()
    sink = JsonlSink(buf)
    ok = sink.send(record)
    sink.flush()
    assert ok == (sink.stats.produced == 1)
    assert sink.stats.produced + sink.stats.rejected == 1
    if ok:
        check_tick(decode_tick(buf.getvalue().rstrip(b"\n")))
    else:
        assume(True)
