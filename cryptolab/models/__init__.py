"""Data model and wire format: ticks, candles and alerts (pure, no I/O).

Times are integers in epoch milliseconds, UTC, everywhere inside cryptolab.

- :mod:`cryptolab.models.records`: :class:`Tick`, :class:`Candle`, :class:`Alert`.
- :mod:`cryptolab.models.wire`: the wire rule (versioned JSON, strict validation; every
  decoder and source takes its limits from it).
- :mod:`cryptolab.models.time`: durations, candle intervals and the timestamp parser.

Examples
--------
>>> t = Tick(symbol="BTC-USD", ts_ms=1_700_000_000_000, price=37000.5, size=0.25,
...          source="synthetic", trade_id="42")
>>> decode_tick(encode_tick(t)) == t
True
>>> parse_interval("15m"), interval_name(900_000)
(900000, '15m')

Names not in ``__all__`` (``TICK_KEYS``, ``MAX_TEXT``, ``CANDLE_FIELDS``...) are importable
from here too, as they were before the split.
"""

from __future__ import annotations

from cryptolab.models.records import ALERT_FIELDS as ALERT_FIELDS
from cryptolab.models.records import CANDLE_FIELDS as CANDLE_FIELDS
from cryptolab.models.records import Alert, Candle, Tick
from cryptolab.models.time import (
    _DURATION_RE as _DURATION_RE,
)
from cryptolab.models.time import (
    _UNITS as _UNITS,
)
from cryptolab.models.time import (
    interval_name,
    iso_utc,
    parse_duration,
    parse_interval,
    parse_intervals,
)
from cryptolab.models.wire import (
    _CANDLE_VERSION_TAIL as _CANDLE_VERSION_TAIL,
)
from cryptolab.models.wire import (
    _TICK_KEYS as _TICK_KEYS,
)
from cryptolab.models.wire import (
    MAX_PRICE,
    MAX_RECORD_BYTES,
    MAX_SIZE,
    MAX_TS_MS,
    MIN_TS_MS,
    SYMBOL_RE,
    WIRE_VERSION,
    decode_alert,
    decode_candle,
    decode_tick,
    encode_alert,
    encode_candle,
    encode_tick,
    tick_from_dict,
    validate_symbol,
    validate_tick,
)
from cryptolab.models.wire import (
    MAX_TEXT as MAX_TEXT,
)
from cryptolab.models.wire import (
    TICK_KEYS as TICK_KEYS,
)
from cryptolab.models.wire import (
    _check_price as _check_price,
)
from cryptolab.models.wire import (
    _check_ts as _check_ts,
)
from cryptolab.models.wire import (
    _load_object as _load_object,
)

__all__ = [
    "MAX_PRICE",
    "MAX_RECORD_BYTES",
    "MAX_SIZE",
    "MAX_TS_MS",
    "MIN_TS_MS",
    "SYMBOL_RE",
    "WIRE_VERSION",
    "Alert",
    "Candle",
    "Tick",
    "decode_alert",
    "decode_candle",
    "decode_tick",
    "encode_alert",
    "encode_candle",
    "encode_tick",
    "interval_name",
    "iso_utc",
    "parse_duration",
    "parse_interval",
    "parse_intervals",
    "validate_symbol",
    "tick_from_dict",
    "validate_tick",
]

