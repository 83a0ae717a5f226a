"""Real exchange frames, damaged: truncated, bit-flipped, with hostile values and duplicate keys.

``tests/unit/test_sources_fuzz.py`` fuzzes every source parser with generated
input. This module starts from the *real* trade frames recorded from Binance
and Coinbase (``../shared/data/ws``) and damages them the way a flaky network,
a buggy proxy or a hostile peer would. Whatever the damage, a parser returns
``None`` (not a trade), a fully valid tick, or raises ``ValidationError``
naming a field and a reason: never another exception, never a corrupted tick.
Undamaged frames, and frames damaged only in fields the parser does not read,
give exactly the tick of the original frame.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
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
from cryptolab.sources.exchanges import parse_binance_frame, parse_coinbase_frame

Parser = Callable[[str | bytes], Tick | None]

CAPTURES = {
    "binance": ("ws/binance_futures_stream_capture.txt", '"aggTrade"', parse_binance_frame,
                ["p", "q", "T", "s", "a", "e"], ["m", "M", "f", "l", "E"]),
    "coinbase": ("ws/coinbase_ws_feed_capture.txt", '"type":"match"', parse_coinbase_frame,
                 ["price", "size", "time", "product_id", "trade_id", "type"],
                 ["maker_order_id", "taker_order_id", "sequence", "side"]),
}

HOSTILE = [
    "NaN", "Infinity", "-Infinity", "1e400", "-1", "0", "0.0", "-0.0", "1e308", "null", "true", "[]", "{}",
    '""', '"NaN"', '"1e400"', '"-1"', '"0"', '"0.00000000"', '"1,5"', '"0x10"', '"١٢٣"', '"9' + "9" * 400 + '"',
    '"BTC\'; DROP TABLE candles;--"', '"btc-usd"', '"\\u0000"', '"\\ud800"', '"2021-13-45T25:61:00Z"',
    '"1970-01-01T00:00:00Z"', '"2999-01-01T00:00:00Z"', "99999999999999999999999", "-9223372036854775809",
    str(MAX_TS_MS), str(MIN_TS_MS - 1), '"' + "x" * 5000 + '"',
]

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _frames(shared_data: Path, name: str) -> list[str]:
    rel, marker = CAPTURES[name][0], CAPTURES[name][1]
    frames = []
    for line in (shared_data / rel).read_text(encoding="utf-8").splitlines():
        if marker in line and ": {" in line:
            frames.append(line[line.index(": {") + 2:])
    assert len(frames) >= 50, f"expected recorded trade frames in {rel}"
    return frames


@pytest.fixture(scope="module")
def frames(shared_data: Path) -> dict[str, list[str]]:
    return {name: _frames(shared_data, name) for name in CAPTURES}


def _check(t: Tick) -> None:
    assert validate_tick(t) is t
    assert SYMBOL_RE.fullmatch(t.symbol)
    assert math.isfinite(t.price) and 0 < t.price < MAX_PRICE
    assert t.size is None or (math.isfinite(t.size) and t.size >= 0)
    assert MIN_TS_MS <= t.ts_ms < MAX_TS_MS
    assert decode_tick(encode_tick(t)) == t


def _outcome(parse: Parser, frame: str | bytes) -> Tick | None | ValidationError:
    try:
        t = parse(frame)
    except ValidationError as exc:
        assert exc.field and exc.reason, exc
        return exc
    if t is not None:
        _check(t)
    return t


def _set(frame: str, key: str, token: str) -> str:
    """The frame with ``key`` (anywhere in it) set to the raw JSON ``token``."""
    doc = json.loads(frame)
    target = doc["data"] if "data" in doc and isinstance(doc["data"], dict) else doc
    placeholder = "\x00PLACEHOLDER\x00"
    target[key] = placeholder
    return json.dumps(doc).replace(json.dumps(placeholder), token)


def test_every_recorded_trade_frame_parses_to_a_valid_tick(frames: dict[str, list[str]]) -> None:
    for name, fs in frames.items():
        parse = CAPTURES[name][2]
        ticks = [_outcome(parse, f) for f in fs]
        bad = [(f[:120], t) for f, t in zip(fs, ticks, strict=True) if not isinstance(t, Tick)]
        assert not bad, (name, bad[:3])


@FUZZ
@given(data=st.data(), name=st.sampled_from(sorted(CAPTURES)))
def test_truncated_or_bit_flipped_frames(frames: dict[str, list[str]], data: st.DataObject, name: str) -> None:
    frame = data.draw(st.sampled_from(frames[name])).encode()
    how = data.draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
    i = data.draw(st.integers(min_value=0, max_value=len(frame) - 1))
    if how == "truncate":
        damaged = frame[:i]
    elif how == "flip":
        damaged = frame[:i] + bytes([frame[i] ^ data.draw(st.integers(1, 255))]) + frame[i + 1:]
    elif how == "insert":
        damaged = frame[:i] + data.draw(st.sampled_from([b"\x00", b"\xef\xbb\xbf", b"\xff", b",", b'"', b"}",
                                                         b"\\", b"\n", b" " * 1000])) + frame[i:]
    else:
        damaged = frame[:i] + frame[i + 1:]
    _outcome(CAPTURES[name][2], damaged)


@FUZZ
@given(data=st.data(), name=st.sampled_from(sorted(CAPTURES)), token=st.sampled_from(HOSTILE))
def test_hostile_values_in_the_fields_the_parser_reads(
    frames: dict[str, list[str]], data: st.DataObject, name: str, token: str
) -> None:
    _, _, parse, read, _ = CAPTURES[name]
    frame = data.draw(st.sampled_from(frames[name]))
    key = data.draw(st.sampled_from(read))
    _outcome(parse, _set(frame, key, token))
    # a duplicate key: every JSON reader here keeps the last one
    dup = frame[:-1] + f',"{key}":{token}}}' if "data" not in json.loads(frame) else (
        frame[:-2] + f',"{key}":{token}}}}}')
    _outcome(parse, dup)


@FUZZ
@given(data=st.data(), name=st.sampled_from(sorted(CAPTURES)), token=st.sampled_from(HOSTILE))
def test_damage_to_fields_the_parser_ignores_changes_nothing(
    frames: dict[str, list[str]], data: st.DataObject, name: str, token: str
) -> None:
    _, _, parse, _, ignored = CAPTURES[name]
    frame = data.draw(st.sampled_from(frames[name]))
    key = data.draw(st.sampled_from(ignored))
    outcome = _outcome(parse, _set(frame, key, token))
    try:
        orjson.loads(token)
    except orjson.JSONDecodeError:  # the frame is no longer JSON: rejected as a whole
        assert isinstance(outcome, ValidationError) and outcome.field == "record", outcome
    else:
        assert outcome == parse(frame)
