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

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AlertOut",
    "AlertsOut",
    "CandleOut",
    "CandlesOut",
    "DeliveriesOut",
    "DeliveryOut",
    "DependencyOut",
    "ErrorOut",
    "HealthOut",
    "RuleEnabledIn",
    "RuleIn",
    "RuleOut",
    "RuleParamsIn",
    "RulesOut",
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

    error: str = Field(description="bad_request, unauthorized, not_found, method_not_allowed, conflict, "
                       "rate_limited, unavailable")
    message: str
    field: str | None = None


# The user alert rules (cryptolab.models.rules.Rule's JSON). The input models say in the schema
# what a rule may be and refuse what is not JSON-typed right (no coercion: ``"5"`` is not 5);
# the Rule model then checks the rest (which parameters a kind takes), naming the field.

_Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
_Candles = Annotated[int, Field(ge=1, le=1_000)]
#: Latest ``created`` accepted: 2100-01-01 (epoch ms).
_MAX_CREATED = 4_102_444_800_000


class RuleParamsIn(BaseModel):
    """A rule's parameters: ``level`` (crossings), ``pct`` [``candles``, ``direction``] (move),
    ``factor`` [``lookback``] (volume spike); only those of its kind."""

    model_config = ConfigDict(extra="forbid", strict=True)

    level: _Positive | None = Field(None, description="cross_above, cross_below: the price level")
    pct: _Positive | None = Field(None, description="move: more than this many percent")
    candles: _Candles | None = Field(None, description="move: over this many candles (default 1)")
    direction: Literal["up", "down", "any"] | None = Field(None, description="move: which way (default any)")
    factor: _Positive | None = Field(None, description="volume_spike: times the recent mean volume")
    lookback: _Candles | None = Field(None, description="volume_spike: previous candles averaged (default 20)")


class RuleIn(BaseModel):
    """A new user alert rule (``Rule.from_dict``'s JSON; ``id`` and ``created`` may be left out)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    kind: Literal["cross_above", "cross_below", "move", "volume_spike"]
    params: RuleParamsIn
    id: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$",
                           description="letters, digits, _ . - (default: random)")
    symbol: str = Field("*", pattern=r"^(\*|[A-Z0-9][A-Z0-9._/:-]{0,31})$",
                        description="a symbol, or * for every symbol")
    interval: str = Field("1m", pattern=r"^[0-9]{1,9}(ms|s|m|h|d|w)$", description="candle interval")
    enabled: bool = True
    created: int | None = Field(None, ge=0, le=_MAX_CREATED, description="epoch ms (default: now)")
    severity: Literal["LOW", "MEDIUM", "HIGH"] = "MEDIUM"
    webhook: str | None = Field(None, max_length=2_000, pattern=r"^https?://",
                                description="also POST its alerts to this http(s) URL")
    webhook_format: Literal["json", "slack", "discord"] = "json"


class RuleOut(BaseModel):
    """A stored rule (its ``webhook`` shown as ``scheme://host/***``: the path may be a credential)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    kind: str
    params: dict[str, float | int | str]
    symbol: str
    interval: str
    enabled: bool
    created: int = Field(description="epoch ms")
    severity: str
    webhook: str | None
    webhook_format: str
    detector: str = Field(description="the detector of its alerts: rule:<id>")
    description: str


class RulesOut(BaseModel):
    """The rules, by creation time then id."""

    model_config = ConfigDict(extra="forbid")

    count: int
    rules: list[RuleOut]


class RuleEnabledIn(BaseModel):
    """Enable or disable a rule."""

    model_config = ConfigDict(extra="forbid", strict=True)

    enabled: bool


class DeliveryOut(BaseModel):
    """One webhook delivery of one rule alert (its ``url`` shown as ``scheme://host/***``)."""

    model_config = ConfigDict(extra="forbid")

    id: int
    alert_id: str = Field(description="the alert's idempotency key")
    symbol: str
    interval: str
    window_start: int
    detector: str
    url: str
    format: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_ms: int
    last_status: int | None
    last_error: str | None
    created_ms: int
    delivered_ms: int | None


class DeliveriesOut(BaseModel):
    """Webhook deliveries, oldest first, and how many there are per status in all."""

    model_config = ConfigDict(extra="forbid")

    count: int
    counts: dict[str, int]
    deliveries: list[DeliveryOut]
