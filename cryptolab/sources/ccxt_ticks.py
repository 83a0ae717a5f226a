"""ccxt trade structures to validated ticks.

ccxt parses an exchange's trade (``trade["info"]``, as the exchange sent it) into a
unified structure: ``timestamp`` (the exchange's trade time, epoch ms), ``price`` and
``amount`` (floats parsed from the exchange's decimal strings with ``float()``, the
same double the hand-written parsers produce) and ``id`` (the exchange's trade id,
as text). :func:`ccxt_tick` turns one into a :class:`~cryptolab.models.Tick`,
validated; a trade that does not validate raises
:class:`~cryptolab.errors.ValidationError` naming the field.

Examples
--------
>>> trade = {"id": "42", "timestamp": 1_700_000_000_000, "price": 37000.1, "amount": 0.025,
...          "info": {"p": "37000.10", "q": "0.025"}}
>>> ccxt_tick(trade, "BINANCE:BTC-USDT", "binance")
Tick(symbol='BINANCE:BTC-USDT', ts_ms=1700000000000, price=37000.1, size=0.025, source='binance', trade_id='42')
>>> ccxt_tick(dict(trade, price=None), "BINANCE:BTC-USDT", "binance")
Traceback (most recent call last):
...
cryptolab.errors.ValidationError: invalid 'price': must be a number, got None
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from cryptolab.errors import ValidationError
from cryptolab.models.records import Tick
from cryptolab.models.wire import MAX_TEXT, MAX_TS_MS, MIN_TS_MS, validate_tick

__all__ = ["ccxt_tick", "trade_key"]


def _number(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(field, f"must be a number, got {str(value)[:40]}")
    v = float(value) if not isinstance(value, int) or abs(value) < 1e300 else math.inf
    if not math.isfinite(v):
        raise ValidationError(field, f"must be finite, got {str(value)[:40]}")
    return v


def _trade_id(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValidationError("trade_id", f"must be an integer or string, got {str(value)[:40]!r}")
    text = str(value)
    if not 0 < len(text) <= MAX_TEXT or not text.isprintable():
        raise ValidationError("trade_id", f"must be 1-{MAX_TEXT} printable characters")
    return text


def ccxt_tick(trade: Mapping[str, Any], symbol: str, source: str) -> Tick:
    """A validated tick for a ccxt trade structure (see the module docs).

    Raises
    ------
    ValidationError
        For a missing or invalid time, price, amount or id.
    """
    ts = trade.get("timestamp")
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise ValidationError("ts", f"must be integer epoch ms, got {str(ts)[:40]!r}")
    if not MIN_TS_MS <= ts < MAX_TS_MS:
        raise ValidationError("ts", f"{ts} is outside 2009-01-03..2100-01-01 (epoch ms)")
    return validate_tick(Tick(
        symbol=symbol, ts_ms=ts, price=_number(trade.get("price"), "price"),
        size=_number(trade.get("amount"), "size"), source=source,
        trade_id=_trade_id(trade.get("id")),
    ))


def trade_key(tick: Tick) -> str | tuple[int, float, float | None]:
    """What identifies a trade for duplicate dropping: its id, else time, price and size.

    Examples
    --------
    >>> trade_key(Tick(symbol="X-Y", ts_ms=1_700_000_000_000, price=1.0, trade_id="7"))
    '7'
    >>> trade_key(Tick(symbol="X-Y", ts_ms=1_700_000_000_000, price=1.0, size=2.0))
    (1700000000000, 1.0, 2.0)
    """
    if tick.trade_id is not None:
        return tick.trade_id
    return (tick.ts_ms, tick.price, tick.size)
