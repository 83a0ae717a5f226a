"""The API's JSON shapes as pydantic models: what ``/openapi.json`` promises and responses keep.

The candle and alert objects are the README's candle and alert JSON (the cache's payloads,
times in epoch ms, ``"v": 1``); the routes write them with the wire encoders, and these
models describe them for the schema and the docs.

Examples
--------
>>> CandleOut.model_validate({"symbol": "BTC-USD", "interval": "1m",
...     "window_start": 1_700_000_040_000, "window_end": 1_700_000_100_000, "open": 1.0,
...     "high": 1.0, "low": 1.0, "close": 1.0, "volume": 0.0, "vwap": None, "trades": 1,
...     "first_ts": 1, "last_ts": 1, "high_ts": 1, "low_ts": 1, "revision": 0, "final": True,
...     "gap": False, "v": 1}).final
True
>>> sorted(ErrorOut.model_fields)
['error', 'field', 'message']
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AlertOut",
    "AlertsOut",
    "CandleOut",
    "CandlesOut",
    "DependencyOut",
    "ErrorOut",
    "HealthOut",
    "SeriesOut",
    "StreamOut",
    "SymbolsOut",
]


class CandleOut(BaseModel):
    """One OHLCV candle (the README's candle JSON; times in epoch ms)."""

    model_config = ConfigDict(extra="forbid")

    symbol: str
    interval: str
    window_start: int
    window_end: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float | None
    trades: int
    first_ts: int
    last_ts: int
    high_ts: int
    low_ts: int
    revision: int
    final: bool
    gap: bool
    v: int = Field(description="wire format version")


class CandlesOut(BaseModel):
    """Candles of one series, ascending by ``window_start``."""

    model_config = ConfigDict(extra="forbid")

    symbol: str
    interval: str
    count: int
    candles: list[CandleOut]


class AlertOut(BaseModel):
    """One alert (the README's alert JSON; times in epoch ms)."""

    model_config = ConfigDict(extra="forbid")

    symbol: str
    interval: str
    window_start: int
    detector: str
    severity: str
    score: float
    ts_ms: int
    features: dict[str, float | int | bool | str | None]
    v: int = Field(description="wire format version")


class AlertsOut(BaseModel):
    """Alerts, ascending by ``(window_start, symbol, interval, detector)``."""

    model_config = ConfigDict(extra="forbid")

    count: int
    alerts: list[AlertOut]


class SeriesOut(BaseModel):
    """One (symbol, interval) series in the store."""

    model_config = ConfigDict(extra="forbid")

    symbol: str
    interval: str
    first: int = Field(description="window_start of the first candle (epoch ms)")
    last: int = Field(description="window_start of the last candle (epoch ms)")
    count: int


class SymbolsOut(BaseModel):
    """Every series in the store."""

    model_config = ConfigDict(extra="forbid")

    series: list[SeriesOut]


class DependencyOut(BaseModel):
    """The state of one backing service."""

    model_config = ConfigDict(extra="forbid")

    ok: bool
    backend: str
    detail: str | None = None


class StreamOut(BaseModel):
    """The process's one cache subscription and its WebSocket clients."""

    model_config = ConfigDict(extra="forbid")

    subscribed: bool
    clients: int
    dropped_slow: int


class HealthOut(BaseModel):
    """``GET /health``: each dependency's state (503 when the store is down)."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["ok", "degraded", "down"]
    store: DependencyOut
    cache: DependencyOut
    stream: StreamOut


class ErrorOut(BaseModel):
    """Every error answer: a code, a sentence, and the offending field when there is one."""

    model_config = ConfigDict(extra="forbid")

    error: str = Field(description="bad_request, unauthorized, not_found, method_not_allowed, "
                       "rate_limited, unavailable")
    message: str
    field: str | None = None
