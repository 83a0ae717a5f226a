"""Checking what a request names: symbols, intervals, times, and no unknown query parameter.

Every check raises :class:`~cryptolab.errors.ValidationError` naming the parameter, which the
API answers as 422 (:mod:`cryptolab.api.errors`). The rules are the wire format's
(:func:`~cryptolab.models.validate_symbol`, the interval parser, the timestamp range), so the
API accepts exactly what the pipeline can have written.

Examples
--------
>>> symbol_param("BINANCE:BTC-USDT"), interval_param("60s"), time_param("2023-11-14T22:14:00Z", "start")
('BINANCE:BTC-USDT', '1m', 1700000040000)
>>> interval_param("7x")
Traceback (most recent call last):
...
cryptolab.errors.ValidationError: invalid 'interval': '7x' is not like 1m, 5m, 1h, 1d (dividing a day evenly, or whole days)
>>> symbols_param("BTC-USD,ETH-USD")
('BTC-USD', 'ETH-USD')
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import Path, Query
from starlette.requests import HTTPConnection

from cryptolab.errors import ValidationError
from cryptolab.models import interval_name, parse_interval, validate_symbol
from cryptolab.models.time import parse_ts

__all__ = [
    "DetectorQuery",
    "IntervalPath",
    "IntervalQuery",
    "MAX_LIMIT",
    "MAX_SYMBOLS",
    "allowed_query",
    "detector_param",
    "interval_param",
    "no_unknown_query",
    "SymbolPath",
    "SymbolQuery",
    "reject_unknown_query",
    "symbol_param",
    "symbols_param",
    "time_param",
]

#: The most candles or alerts one request may ask for (``limit``).
MAX_LIMIT: Final = 10_000
#: The most symbols one WebSocket may follow.
MAX_SYMBOLS: Final = 100
_MAX_TEXT: Final = 64

# What the schema says of the parameters (documentation only: the checks below give the
# clearer errors, naming the parameter and the rule).
_SYMBOL_SCHEMA: Final[dict[str, Any]] = {
    "pattern": "^[A-Z0-9][A-Z0-9._/:-]{0,31}$", "maxLength": 32, "examples": ["BTC-USD"]}
_INTERVAL_SCHEMA: Final[dict[str, Any]] = {
    "pattern": "^[0-9]{1,9}(ms|s|m|h|d|w)$", "maxLength": 16, "examples": ["1m"]}
_DETECTOR_SCHEMA: Final[dict[str, Any]] = {"pattern": "^[A-Za-z0-9_.:-]{1,64}$",
                                           "examples": ["zscore", "rule:btc-40k"]}
_SYMBOL_TEXT: Final = "symbol, e.g. BTC-USD or BINANCE:BTC-USDT (':' may be sent as %3A)"
_INTERVAL_TEXT: Final = "candle interval, e.g. 1m, 5m, 1h (dividing a day evenly, or whole days)"

#: A path parameter holding a symbol.
SymbolPath = Annotated[str, Path(description=_SYMBOL_TEXT, json_schema_extra=_SYMBOL_SCHEMA)]
#: A path parameter holding an interval.
IntervalPath = Annotated[str, Path(description=_INTERVAL_TEXT, json_schema_extra=_INTERVAL_SCHEMA)]
#: An optional query parameter holding a symbol.
SymbolQuery = Annotated[str | None, Query(description="only this " + _SYMBOL_TEXT,
                                          json_schema_extra=_SYMBOL_SCHEMA)]
#: An optional query parameter holding an interval.
IntervalQuery = Annotated[str | None, Query(description="only this " + _INTERVAL_TEXT,
                                            json_schema_extra=_INTERVAL_SCHEMA)]
#: An optional query parameter holding a detector name.
DetectorQuery = Annotated[str | None, Query(description="only this detector (zscore, hst..., rule:<id>)",
                                            json_schema_extra=_DETECTOR_SCHEMA)]


def _shown(text: str) -> str:
    return repr(text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "...")


def symbol_param(text: str, name: str = "symbol") -> str:
    """A symbol of the wire format (``BTC-USD``, ``BINANCE:BTC-USDT``), else ValidationError.

    Examples
    --------
    >>> symbol_param("BTC';DROP TABLE candles;--")
    Traceback (most recent call last):
    ...
    cryptolab.errors.ValidationError: invalid 'symbol': "BTC';DROP TABLE candles;--" is not 1-32 of A-Z 0-9 . _ / : - starting with a letter or digit
    """
    if len(text) > _MAX_TEXT:
        raise ValidationError(name, f"{_shown(text)} is longer than 32 characters")
    try:
        return validate_symbol(text)
    except ValidationError as exc:
        raise ValidationError(name, exc.reason) from None


def symbols_param(text: str, name: str = "symbols") -> tuple[str, ...]:
    """Comma-separated symbols, at least one and at most :data:`MAX_SYMBOLS`, duplicates folded."""
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items:
        raise ValidationError(name, "at least one symbol is required")
    if len(items) > MAX_SYMBOLS:
        raise ValidationError(name, f"at most {MAX_SYMBOLS} symbols, got {len(items)}")
    return tuple(dict.fromkeys(symbol_param(s, name) for s in items))


def interval_param(text: str, name: str = "interval") -> str:
    """The canonical name of a candle interval (``60s`` -> ``1m``), else ValidationError."""
    if len(text) > 16:
        raise ValidationError(name, f"{_shown(text)} is not an interval")
    try:
        return interval_name(parse_interval(text))
    except ValidationError:
        raise ValidationError(
            name, f"{text!r} is not like 1m, 5m, 1h, 1d (dividing a day evenly, or whole days)"
        ) from None


def time_param(text: str | None, name: str) -> int | None:
    """Epoch ms from ISO-8601 text or epoch-ms digits, within 2009-01-03..2100-01-01."""
    if text is None:
        return None
    if len(text) > _MAX_TEXT:
        raise ValidationError(name, f"{_shown(text)} is not an ISO-8601 time or epoch ms")
    try:
        return parse_ts(text, "ms")
    except ValidationError as exc:
        raise ValidationError(name, f"{exc.reason} (ISO-8601 or epoch ms)") from None


def detector_param(text: str | None, name: str = "detector") -> str | None:
    """A detector name: 1-64 of a-z, 0-9, ``_ . : -`` (a rule's alerts: ``rule:<id>``).

    Examples
    --------
    >>> detector_param("rule:btc-40k"), detector_param("zscore")
    ('rule:btc-40k', 'zscore')
    """
    if text is None:
        return None
    if not (0 < len(text) <= _MAX_TEXT) or not all(c.isascii() and (c.isalnum() or c in "_.:-")
                                                   for c in text):
        raise ValidationError(name, f"{_shown(text)} is not a detector name (a-z 0-9 _ . : -)")
    return text


_ALLOWED: dict[int, frozenset[str]] = {}


def _query_names(dependant: Any) -> set[str]:
    names = {f.alias for f in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def allowed_query(route: Any) -> frozenset[str]:
    """The query parameters a FastAPI route declares (its dependencies' included)."""
    key = id(route)
    names = _ALLOWED.get(key)
    if names is None:
        names = _ALLOWED[key] = frozenset(_query_names(route.dependant))
    return names


def reject_unknown_query(conn: HTTPConnection) -> None:
    """Dependency: a query parameter the route does not declare is a ValidationError naming it."""
    route = conn.scope.get("route")
    if route is None:
        return
    allowed = allowed_query(route)
    for key in conn.query_params:
        if key not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise ValidationError(key[:_MAX_TEXT], f"unknown query parameter (this route takes: {known})")


async def no_unknown_query(conn: HTTPConnection) -> None:
    """:func:`reject_unknown_query` as a route dependency, run on the event loop (FastAPI runs a
    sync dependency in the thread pool: a hop per request)."""
    reject_unknown_query(conn)
