"""User alert rules: what a rule says, validated and serialisable (pure, no I/O).

A :class:`Rule` is one condition a user writes, beside the anomaly detectors, on the closed
candles of a symbol (or every symbol, ``"*"``) and one interval. Four kinds
(:data:`RULE_KINDS`), each with its parameters (:data:`RULE_PARAMS`):

``cross_above`` / ``cross_below``, ``level``
    The close crosses the level: the previous candle closed strictly below it (above it, for
    ``cross_below``) and this one closes at or above it (at or below it).
``move``, ``pct`` [, ``candles`` = 1, ``direction`` = ``"any"``]
    The price moved by more than ``pct`` percent over the last ``candles`` candles: from the
    open of the first of them to this candle's close (``candles=1``: within this candle).
    ``direction`` ``"up"``, ``"down"`` or ``"any"``.
``volume_spike``, ``factor`` [, ``lookback`` = 20]
    The volume is more than ``factor`` times its recent level: the mean volume of the
    ``lookback`` previous candles (the rule is silent until there are that many, and when
    their mean is 0).

"Candles" are the stream's final candles, gap-fill candles excluded. How rules are evaluated
is :mod:`cryptolab.anomaly.rules`; where they are kept, :meth:`cryptolab.store.Store.rules`.

Examples
--------
>>> r = Rule(id="btc-40k", kind="cross_above", params={"level": 40_000}, symbol="BTC-USD",
...          interval="1m", created=1_700_000_000_000)
>>> r.detector, r.params, r.lookback
('rule:btc-40k', {'level': 40000.0}, 1)
>>> Rule.from_dict(r.to_dict()) == r
True
>>> Rule(kind="move", params={"pct": -1}).id
Traceback (most recent call last):
...
cryptolab.errors.ValidationError: invalid 'pct': must be a number > 0, got -1
"""

from __future__ import annotations

import math
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from cryptolab.errors import ValidationError
from cryptolab.models.time import interval_name, parse_interval
from cryptolab.models.wire import validate_symbol

__all__ = [
    "DETECTOR_PREFIX",
    "RULE_ID_RE",
    "RULE_KINDS",
    "RULE_PARAMS",
    "WEBHOOK_FORMATS",
    "Rule",
    "RuleKind",
    "WebhookFormat",
    "rule_id_of",
]

RuleKind = Literal["cross_above", "cross_below", "move", "volume_spike"]
WebhookFormat = Literal["json", "slack", "discord"]

#: The kinds of rule.
RULE_KINDS: Final[tuple[str, ...]] = ("cross_above", "cross_below", "move", "volume_spike")
#: Per kind: its parameters, each with its default (``None``: required).
RULE_PARAMS: Final[dict[str, dict[str, Any]]] = {
    "cross_above": {"level": None},
    "cross_below": {"level": None},
    "move": {"pct": None, "candles": 1, "direction": "any"},
    "volume_spike": {"factor": None, "lookback": 20},
}
#: Bodies a webhook can be sent: cryptolab's JSON, or a Slack or Discord message.
WEBHOOK_FORMATS: Final[tuple[str, ...]] = ("json", "slack", "discord")
#: A rule id: letters, digits, ``_``, ``.``, ``-``; 1 to 40 characters.
RULE_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
#: The ``detector`` of a rule's alerts is this prefix and the rule's id.
DETECTOR_PREFIX: Final = "rule:"
#: Most candles a rule may look back over (``candles``, ``lookback``).
MAX_LOOKBACK: Final = 1_000
_SEVERITIES: Final = ("LOW", "MEDIUM", "HIGH")
_MAX_URL: Final = 2_000


def rule_id_of(detector: str) -> str | None:
    """The rule id of an alert's ``detector``, or ``None`` for a detector's alert.

    Examples
    --------
    >>> rule_id_of("rule:btc-40k"), rule_id_of("zscore")
    ('btc-40k', None)
    """
    return detector[len(DETECTOR_PREFIX):] if detector.startswith(DETECTOR_PREFIX) else None


def _number(name: str, value: Any, *, integer: bool = False, minimum: float = 0.0) -> float | int:
    """``value`` as a finite number > ``minimum`` (an int >= 1 for ``integer``)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and integer:
        ok = float(value).is_integer() and 1 <= value <= MAX_LOOKBACK
        if not ok:
            raise ValidationError(name, f"must be a whole number from 1 to {MAX_LOOKBACK}, got {value!r}")
        return int(value)
    if not ok or not math.isfinite(value) or value <= minimum:
        raise ValidationError(name, f"must be a number > {minimum:g}, got {value!r}")
    return float(value)


def _params(kind: str, params: Any) -> dict[str, Any]:
    """The complete, checked parameters of a rule of ``kind`` (defaults filled in)."""
    if not isinstance(params, dict):
        raise ValidationError("params", f"must be a mapping, got {type(params).__name__}")
    spec = RULE_PARAMS[kind]
    unknown = sorted(set(params) - set(spec))
    if unknown:
        raise ValidationError("params", f"{kind} takes {', '.join(spec)}; unknown: {', '.join(map(str, unknown))}")
    out: dict[str, Any] = {}
    for name, default in spec.items():
        value = params.get(name, default)
        if value is None:
            raise ValidationError(name, f"required by a {kind} rule")
        if name == "direction":
            if value not in ("up", "down", "any"):
                raise ValidationError(name, f"must be up, down or any, got {value!r}")
            out[name] = value
        else:
            out[name] = _number(name, value, integer=name in ("candles", "lookback"))
    return out


def _new_id() -> str:
    return secrets.token_hex(6)


@dataclass(frozen=True, kw_only=True)
class Rule:
    """One user alert rule, checked when built.

    Parameters
    ----------
    kind
        One of :data:`RULE_KINDS`.
    params
        The kind's parameters (:data:`RULE_PARAMS`; defaults are filled in).
    symbol
        A symbol (:data:`~cryptolab.models.SYMBOL_RE`) or ``"*"`` for every symbol.
    interval
        A candle interval (``"1m"``...); stored in its canonical name.
    id
        Letters, digits, ``_.-`` (:data:`RULE_ID_RE`); a random one by default. An alert's
        ``detector`` is ``"rule:<id>"``: at most one alert per (rule, symbol, interval,
        window), so a rule removed and added again under the same id does not fire twice on
        a window.
    enabled
        Disabled rules are kept, not evaluated.
    created
        Epoch ms (now by default).
    severity
        ``LOW``, ``MEDIUM`` (default) or ``HIGH``: the severity of its alerts.
    webhook
        An ``http(s)://`` URL its alerts are also POSTed to (besides the configured
        ``CRYPTOLAB_WEBHOOK_URLS``).
    webhook_format
        The body sent to ``webhook``: ``json``, ``slack`` or ``discord`` (:data:`WEBHOOK_FORMATS`).

    Raises
    ------
    ValidationError
        Any field out of its domain (names the field).

    Examples
    --------
    >>> Rule(kind="move", params={"pct": 5, "candles": 3}, interval="60s", id="m5").to_dict()["params"]
    {'pct': 5.0, 'candles': 3, 'direction': 'any'}
    >>> Rule(kind="move", params={"pct": 5}, interval="60s").interval
    '1m'
    >>> Rule(kind="volume_spike", params={"factor": 3}, symbol="btc-usd")
    Traceback (most recent call last):
    ...
    cryptolab.errors.ValidationError: invalid 'symbol': 'btc-usd' is not 1-32 of A-Z 0-9 . _ / : - starting with a letter or digit
    """

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    symbol: str = "*"
    interval: str = "1m"
    id: str = field(default_factory=_new_id)
    enabled: bool = True
    created: int = field(default_factory=lambda: int(time.time() * 1000))
    severity: str = "MEDIUM"
    webhook: str | None = None
    webhook_format: str = "json"

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or RULE_ID_RE.fullmatch(self.id) is None:
            raise ValidationError("id", f"{self.id!r} is not 1-40 letters, digits, _ . - (starting with a letter or digit)")
        if self.kind not in RULE_KINDS:
            raise ValidationError("kind", f"{self.kind!r} is not one of {', '.join(RULE_KINDS)}")
        object.__setattr__(self, "params", _params(self.kind, self.params))
        if self.symbol != "*":
            validate_symbol(self.symbol)
        if not isinstance(self.interval, str):
            raise ValidationError("interval", f"must be a string like 1m, got {self.interval!r}")
        try:
            object.__setattr__(self, "interval", interval_name(parse_interval(self.interval)))
        except ValidationError as exc:
            raise ValidationError("interval", f"{self.interval!r}: {exc.reason}") from None
        if not isinstance(self.enabled, bool):
            raise ValidationError("enabled", f"must be true or false, got {self.enabled!r}")
        if isinstance(self.created, bool) or not isinstance(self.created, int) or self.created < 0:
            raise ValidationError("created", f"must be epoch ms >= 0, got {self.created!r}")
        if self.severity not in _SEVERITIES:
            raise ValidationError("severity", f"must be LOW, MEDIUM or HIGH, got {self.severity!r}")
        if self.webhook is not None and (
            not isinstance(self.webhook, str) or len(self.webhook) > _MAX_URL
            or re.fullmatch(r"https?://[^\s/?#]+[^\s]*", self.webhook) is None
        ):
            raise ValidationError("webhook", f"must be an http:// or https:// URL of at most {_MAX_URL} characters")
        if self.webhook_format not in WEBHOOK_FORMATS:
            raise ValidationError("webhook_format", f"must be json, slack or discord, got {self.webhook_format!r}")

    @property
    def detector(self) -> str:
        """The ``detector`` of this rule's alerts: ``"rule:<id>"``."""
        return DETECTOR_PREFIX + self.id

    @property
    def lookback(self) -> int:
        """How many previous candles of a stream the rule needs (0: the candle alone).

        Examples
        --------
        >>> [Rule(kind=k, params=p).lookback for k, p in [("cross_below", {"level": 1}),
        ...  ("move", {"pct": 1}), ("move", {"pct": 1, "candles": 4}), ("volume_spike", {"factor": 2})]]
        [1, 0, 3, 20]
        """
        if self.kind in ("cross_above", "cross_below"):
            return 1
        if self.kind == "move":
            return int(self.params["candles"]) - 1
        return int(self.params["lookback"])

    def matches(self, symbol: str, interval: str) -> bool:
        """Whether the rule applies to the candles of ``symbol`` and ``interval``."""
        return interval == self.interval and self.symbol in ("*", symbol)

    def describe(self) -> str:
        """The rule in words.

        Examples
        --------
        >>> Rule(kind="move", params={"pct": 2.5, "candles": 3, "direction": "down"}, symbol="ETH-USD",
        ...      interval="5m").describe()
        'ETH-USD 5m: down move of more than 2.5% over 3 candles'
        >>> Rule(kind="volume_spike", params={"factor": 4}).describe()
        '* 1m: volume above 4x the mean of the previous 20 candles'
        """
        p = self.params
        if self.kind in ("cross_above", "cross_below"):
            what = f"close crosses {self.kind.split('_')[1]} {p['level']:g}"
        elif self.kind == "move":
            way = "" if p["direction"] == "any" else f"{p['direction']} "
            span = "within one candle" if p["candles"] == 1 else f"over {p['candles']} candles"
            what = f"{way}move of more than {p['pct']:g}% {span}"
        else:
            what = f"volume above {p['factor']:g}x the mean of the previous {p['lookback']} candles"
        return f"{self.symbol} {self.interval}: {what}"

    def to_dict(self) -> dict[str, Any]:
        """The rule as JSON-ready data (what :meth:`from_dict` reads back)."""
        return {
            "id": self.id, "kind": self.kind, "params": dict(self.params), "symbol": self.symbol,
            "interval": self.interval, "enabled": self.enabled, "created": self.created,
            "severity": self.severity, "webhook": self.webhook, "webhook_format": self.webhook_format,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Rule:
        """A rule from :meth:`to_dict`'s data (``id`` and ``created`` may be left out).

        Raises
        ------
        ValidationError
            Unknown keys, or any field out of its domain.

        Examples
        --------
        >>> Rule.from_dict({"kind": "cross_below", "params": {"level": 3}, "colour": "red"})
        Traceback (most recent call last):
        ...
        cryptolab.errors.ValidationError: invalid 'rule': unknown field(s): colour
        """
        if not isinstance(data, dict):
            raise ValidationError("rule", f"must be a mapping, got {type(data).__name__}")
        known = {"id", "kind", "params", "symbol", "interval", "enabled", "created", "severity",
                 "webhook", "webhook_format"}
        unknown = sorted(set(map(str, data)) - known)
        if unknown:
            raise ValidationError("rule", f"unknown field(s): {', '.join(unknown)}")
        if "kind" not in data:
            raise ValidationError("kind", "required")
        return cls(**{k: v for k, v in data.items() if v is not None or k == "webhook"})
