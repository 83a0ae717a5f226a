"""Settings: one object fed by ``CRYPTOLAB_*`` environment variables and CLI flags.

Precedence: explicit keyword (or CLI flag) > environment variable > default.
Where a service URL is absent, the embedded default is used: librdkafka's
in-process mock cluster for Kafka, SQLite for the store and an in-process cache
for Redis.

Unknown ``CRYPTOLAB_*`` variables are an error (a misspelt variable must not be
silently ignored), except ``CRYPTOLAB_KAFKA_<OPTION>``, which passes any
librdkafka option through: ``CRYPTOLAB_KAFKA_SECURITY_PROTOCOL=SASL_SSL``
becomes ``security.protocol=SASL_SSL``.

Secrets (passwords in URLs, SASL passwords, API keys) never appear in reprs
or logs: see :func:`redact_url` and :meth:`Settings.redacted`.

Examples
--------
>>> s = Settings.from_env({"CRYPTOLAB_STORE_URL": "postgresql+psycopg://app:s3cret@db/x",
...                        "CRYPTOLAB_KAFKA_SASL_PASSWORD": "hunter2"})
>>> s.store_url
'postgresql+psycopg://app:s3cret@db/x'
>>> "s3cret" in repr(s) or "hunter2" in repr(s)
False
>>> s.kafka_options
{'sasl.password': 'hunter2'}
>>> Settings.from_env({"CRYPTOLAB_STOER_URL": "sqlite://"})
Traceback (most recent call last):
...
cryptolab.errors.ConfigError: unknown setting CRYPTOLAB_STOER_URL (did you mean CRYPTOLAB_STORE_URL?)
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from cryptolab.errors import ConfigError, ValidationError
from cryptolab.models import parse_duration, parse_intervals

__all__ = ["ENV_VARS", "Settings", "redact", "redact_url", "redact_webhook"]

_SECRET_WORDS: Final = ("password", "secret", "key", "token", "credential")


def redact_url(url: str | None) -> str | None:
    """Hide the password in a URL.

    Examples
    --------
    >>> redact_url("postgresql+psycopg://app:s3cret@db:5432/x?sslmode=require")
    'postgresql+psycopg://app:***@db:5432/x?sslmode=require'
    >>> redact_url("redis://:pw@localhost:6379/0")
    'redis://:***@localhost:6379/0'
    >>> redact_url("sqlite:///tmp/x.db")
    'sqlite:///tmp/x.db'
    """
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


def redact_webhook(url: str) -> str:
    """A webhook URL with only its scheme and host shown (Slack's and Discord's paths are credentials).

    Examples
    --------
    >>> redact_webhook("https://hooks.slack.com/services/T000/B000/XXXX")
    'https://hooks.slack.com/***'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    return f"{parts.scheme}://{parts.hostname or ''}{'' if parts.port is None else f':{parts.port}'}/***"


def redact(key: str, value: Any) -> Any:
    """Redact ``value`` when ``key`` names a secret, or when it is a URL with a password.

    Examples
    --------
    >>> redact("sasl.password", "hunter2"), redact("security.protocol", "SASL_SSL")
    ('***', 'SASL_SSL')
    """
    if any(w in key.lower() for w in _SECRET_WORDS) and value:
        return "***"
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value


@dataclass(frozen=True)
class _Var:
    attr: str
    help: str
    default: str


#: Every environment variable cryptolab reads, with its default (README lists them all).
ENV_VARS: Final[dict[str, _Var]] = {
    "CRYPTOLAB_KAFKA_BOOTSTRAP": _Var(
        "kafka_bootstrap", "Kafka bootstrap servers; unset = embedded mock cluster", ""
    ),
    "CRYPTOLAB_STORE_URL": _Var(
        "store_url", "SQLAlchemy URL of the store; unset = SQLite in the data dir", ""
    ),
    "CRYPTOLAB_REDIS_URL": _Var("redis_url", "Redis URL; unset = in-process cache", ""),
    "CRYPTOLAB_TOPIC": _Var("topic", "Tick topic", "ticks"),
    "CRYPTOLAB_PARTITIONS": _Var("partitions", "Partitions when creating topics", "3"),
    "CRYPTOLAB_REPLICATION": _Var("replication", "Replication factor when creating topics", "1"),
    "CRYPTOLAB_GROUP": _Var("group", "Consumer group id", "cryptolab-candles"),
    "CRYPTOLAB_INTERVALS": _Var("intervals", "Candle intervals", "1m,5m,15m"),
    "CRYPTOLAB_OUT_OF_ORDERNESS": _Var(
        "out_of_orderness", "Bounded out-of-orderness subtracted from the watermark", "1s"
    ),
    "CRYPTOLAB_ALLOWED_LATENESS": _Var(
        "allowed_lateness", "How late a tick may be and still revise its closed candle", "1m"
    ),
    "CRYPTOLAB_IDLE_TIMEOUT": _Var(
        "idle_timeout", "Wall-clock silence after which a partition's open windows close", "30s"
    ),
    "CRYPTOLAB_MAX_CLOCK_SKEW": _Var(
        "max_clock_skew",
        "How far ahead of the wall clock a tick's event time may be (0s = no bound)",
        "1d",
    ),
    "CRYPTOLAB_END_WAIT": _Var(
        "end_wait",
        "stop-at-end: how long to wait without progress for partitions held by other members",
        "60s",
    ),
    "CRYPTOLAB_GAP_FILL": _Var("gap_fill", "Emit flat gap-fill candles for empty intervals", "false"),
    "CRYPTOLAB_COINGECKO_URL": _Var(
        "coingecko_url", "CoinGecko API base URL", "https://api.coingecko.com/api/v3"
    ),
    "CRYPTOLAB_COINGECKO_API_KEY": _Var("coingecko_api_key", "CoinGecko API key (secret)", ""),
    "CRYPTOLAB_COINGECKO_PLAN": _Var(
        "coingecko_plan", "CoinGecko key kind: demo or pro (selects the header)", "demo"
    ),
    "CRYPTOLAB_DATA_DIR": _Var(
        "data_dir", "Where embedded databases, reports and outputs go", ".cryptolab"
    ),
    "CRYPTOLAB_LOG_LEVEL": _Var("log_level", "Logging level of the CLI (--log-level overrides)", "WARNING"),
    "CRYPTOLAB_WEBHOOK_URLS": _Var(
        "webhook_urls", "Comma-separated URLs every rule alert is POSTed to (besides a rule's own webhook)", ""
    ),
    "CRYPTOLAB_WEBHOOK_SECRET": _Var(
        "webhook_secret", "HMAC-SHA256 key of the X-Cryptolab-Signature header (secret); unset = unsigned", ""
    ),
    "CRYPTOLAB_WEBHOOK_FORMAT": _Var(
        "webhook_format", "Body sent to CRYPTOLAB_WEBHOOK_URLS: json, slack or discord", "json"
    ),
    "CRYPTOLAB_WEBHOOK_ATTEMPTS": _Var(
        "webhook_attempts", "POSTs of one delivery before it is marked failed", "8"
    ),
    "CRYPTOLAB_WEBHOOK_BACKOFF": _Var(
        "webhook_backoff", "Wait before the first retry of a webhook; doubled each retry, up to 1h", "2s"
    ),
    "CRYPTOLAB_WEBHOOK_TIMEOUT": _Var("webhook_timeout", "Timeout of one webhook POST", "10s"),
    "CRYPTOLAB_RULES_RELOAD": _Var(
        "rules_reload", "How often a consumer reads the rules table again (0s = at start only)", "5s"
    ),
    "CRYPTOLAB_NOTEBOOKS_DIR": _Var(
        "notebooks_dir",
        "Notebooks folder searched after ./notebooks, before the copy shipped with cryptolab",
        "",
    ),
    "CRYPTOLAB_PIPELINES_DIR": _Var(
        "pipelines_dir",
        "Pipelines folder used when there is no ./pipelines, before the copy shipped with cryptolab",
        "",
    ),
}

_KAFKA_OPTION_PREFIX: Final = "CRYPTOLAB_KAFKA_"
_BOOL_TRUE: Final = {"1", "true", "yes", "on"}
_BOOL_FALSE: Final = {"0", "false", "no", "off", ""}


def _kafka_option_name(var: str) -> str:
    return var[len(_KAFKA_OPTION_PREFIX) :].lower().replace("_", ".")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """All of cryptolab's configuration.

    Build it with :meth:`from_env` (environment + overrides), then pass it
    around; every adapter takes its URL from here.
    """

    kafka_bootstrap: str | None = None
    kafka_options: dict[str, str] = field(default_factory=dict)
    store_url: str | None = None
    redis_url: str | None = None
    topic: str = "ticks"
    partitions: int = 3
    replication: int = 1
    group: str = "cryptolab-candles"
    intervals: tuple[str, ...] = ("1m", "5m", "15m")
    out_of_orderness_ms: int = 1_000
    allowed_lateness_ms: int = 60_000
    idle_timeout_ms: int = 30_000
    max_clock_skew_ms: int = 86_400_000
    end_wait_ms: int = 60_000
    gap_fill: bool = False
    coingecko_url: str = "https://api.coingecko.com/api/v3"
    coingecko_api_key: str | None = None
    coingecko_plan: str = "demo"
    data_dir: Path = Path(".cryptolab")
    log_level: str = "WARNING"
    notebooks_dir: Path | None = None
    pipelines_dir: Path | None = None
    webhook_urls: tuple[str, ...] = ()
    webhook_secret: str | None = None
    webhook_format: str = "json"
    webhook_attempts: int = 8
    webhook_backoff_ms: int = 2_000
    webhook_timeout_ms: int = 10_000
    rules_reload_ms: int = 5_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``CRYPTOLAB_*`` variables, then apply ``overrides``.

        Overrides whose value is ``None`` are ignored, so CLI flags that were not
        given fall through to the environment.

        Raises
        ------
        ConfigError
            For an unknown ``CRYPTOLAB_*`` variable, or a malformed value.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        kafka_options: dict[str, str] = {}
        for name, raw in env.items():
            if not name.startswith("CRYPTOLAB_"):
                continue
            var = ENV_VARS.get(name)
            if var is not None:
                values[var.attr] = raw
            elif name.startswith(_KAFKA_OPTION_PREFIX):
                kafka_options[_kafka_option_name(name)] = raw
            else:
                close = difflib.get_close_matches(name, ENV_VARS, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ConfigError(f"unknown setting {name}{hint}")
        extra_opts = overrides.pop("kafka_options", None) or {}
        kafka_options.update(extra_opts)
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in dataclasses.fields(cls)} | {
            "out_of_orderness",
            "allowed_lateness",
            "idle_timeout",
            "max_clock_skew",
            "end_wait",
            *_DURATIONS,
        }
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        try:
            return cls(kafka_options=kafka_options, **_coerce(values))
        except ValidationError as exc:
            raise ConfigError(str(exc)) from None

    @property
    def embedded_kafka(self) -> bool:
        """True when no Kafka bootstrap is configured (the in-process mock cluster is used)."""
        return not self.kafka_bootstrap

    def resolved_store_url(self) -> str:
        """The store URL, or the embedded SQLite file in :attr:`data_dir`."""
        if self.store_url:
            return self.store_url
        return f"sqlite:///{(self.data_dir / 'cryptolab.db').as_posix()}"

    def redacted(self) -> dict[str, Any]:
        """All settings as a dict, with secrets replaced by ``***`` (safe to log or print)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "kafka_options":
                value = {k: redact(k, v) for k, v in value.items()}
            elif f.name == "webhook_urls":  # a chat webhook's path is its credential
                value = tuple(redact_webhook(u) for u in value)
            elif isinstance(value, Path):
                value = str(value)
            out[f.name] = redact(f.name, value)
        return out

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.redacted().items())
        return f"Settings({inner})"

    __str__ = __repr__


def _to_bool(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _BOOL_TRUE:
        return True
    if text in _BOOL_FALSE:
        return False
    raise ConfigError(f"{name}: expected true/false, got {raw!r}")


def _to_int(name: str, raw: Any, minimum: int) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name}: must be >= {minimum}, got {value}")
    return value


#: Duration settings of the rules and webhooks (``<name>`` in text, ``<name>_ms`` as a number).
_DURATIONS: Final = ("webhook_backoff", "webhook_timeout", "rules_reload")


def _webhook_urls(raw: Any) -> tuple[str, ...]:
    """``CRYPTOLAB_WEBHOOK_URLS``: comma-separated http(s) URLs."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    urls = tuple(str(u).strip() for u in items if str(u).strip())
    for u in urls:
        if not re.fullmatch(r"https?://[^\s/?#]+\S*", u):
            raise ConfigError(f"webhook_urls: {redact_url(u)!r} is not an http:// or https:// URL")
    return urls


def _coerce_rules(key: str, raw: Any) -> Any:
    """The value of a rules or webhooks setting."""
    if key in _DURATIONS:
        return parse_duration(raw)
    if key.endswith("_ms"):
        return parse_duration(raw) if isinstance(raw, str) else _to_int(key, raw, 0)
    if key == "webhook_urls":
        return _webhook_urls(raw)
    if key == "webhook_attempts":
        return _to_int(key, raw, 1)
    if key == "webhook_format":
        fmt = str(raw).lower()
        if fmt not in ("json", "slack", "discord"):
            raise ConfigError(f"webhook_format: expected json, slack or discord, got {raw!r}")
        return fmt
    return str(raw) or None  # webhook_secret


def _coerce(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, raw in values.items():
        if key.startswith(("webhook_", "rules_")):
            out[f"{key}_ms" if key in _DURATIONS else key] = _coerce_rules(key, raw)
        elif key in ("out_of_orderness", "allowed_lateness", "idle_timeout", "max_clock_skew", "end_wait"):
            out[f"{key}_ms"] = parse_duration(raw)
        elif key in ("out_of_orderness_ms", "allowed_lateness_ms", "idle_timeout_ms", "max_clock_skew_ms",
                     "end_wait_ms"):
            out[key] = parse_duration(raw) if isinstance(raw, str) else _to_int(key, raw, 0)
        elif key in ("partitions", "replication"):
            out[key] = _to_int(key, raw, 1)
        elif key == "gap_fill":
            out[key] = _to_bool(key, raw)
        elif key == "intervals":
            out[key] = parse_intervals(raw)
        elif key == "data_dir":
            out[key] = Path(raw)
        elif key in ("notebooks_dir", "pipelines_dir"):
            out[key] = Path(raw) if str(raw) else None
        elif key == "coingecko_plan":
            plan = str(raw).lower()
            if plan not in ("demo", "pro"):
                raise ConfigError(f"coingecko_plan: expected demo or pro, got {raw!r}")
            out[key] = plan
        elif key == "log_level":
            level = str(raw).upper()
            if not re.fullmatch(r"DEBUG|INFO|WARNING|ERROR|CRITICAL", level):
                raise ConfigError(f"log_level: unknown level {raw!r}")
            out[key] = level
        elif key in ("kafka_bootstrap", "store_url", "redis_url", "coingecko_api_key"):
            out[key] = str(raw) or None
        else:
            out[key] = raw
    return out
