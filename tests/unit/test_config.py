"""Settings: environment parsing, precedence, unknown variables, Kafka pass-through, secrets."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from cryptolab.config import ENV_VARS, Settings, redact, redact_url
from cryptolab.errors import ConfigError
from cryptolab.kafka import consumer_config, producer_config

FULL_ENV = {
    "CRYPTOLAB_KAFKA_BOOTSTRAP": "broker-1:9092,broker-2:9092",
    "CRYPTOLAB_STORE_URL": "postgresql+psycopg://app@db:5432/market",
    "CRYPTOLAB_REDIS_URL": "redis://cache:6379/2",
    "CRYPTOLAB_TOPIC": "trades",
    "CRYPTOLAB_PARTITIONS": "12",
    "CRYPTOLAB_REPLICATION": "3",
    "CRYPTOLAB_GROUP": "candles-eu",
    "CRYPTOLAB_INTERVALS": "15m, 1m,60s,1h",
    "CRYPTOLAB_OUT_OF_ORDERNESS": "250ms",
    "CRYPTOLAB_ALLOWED_LATENESS": "5m",
    "CRYPTOLAB_IDLE_TIMEOUT": "2m",
    "CRYPTOLAB_MAX_CLOCK_SKEW": "10m",
    "CRYPTOLAB_END_WAIT": "5m",
    "CRYPTOLAB_GAP_FILL": "yes",
    "CRYPTOLAB_COINGECKO_URL": "https://pro-api.coingecko.com/api/v3",
    "CRYPTOLAB_COINGECKO_API_KEY": "CG-secret-key",
    "CRYPTOLAB_COINGECKO_PLAN": "PRO",
    "CRYPTOLAB_DATA_DIR": "/var/lib/cryptolab",
    "CRYPTOLAB_LOG_LEVEL": "debug",
    "CRYPTOLAB_NOTEBOOKS_DIR": "/srv/notebooks",
    "CRYPTOLAB_PIPELINES_DIR": "/srv/pipelines",
    "CRYPTOLAB_WEBHOOK_URLS": "https://hooks.example/a, http://127.0.0.1:8080/b",
    "CRYPTOLAB_WEBHOOK_SECRET": "whsec-1",
    "CRYPTOLAB_WEBHOOK_FORMAT": "Slack",
    "CRYPTOLAB_WEBHOOK_ATTEMPTS": "3",
    "CRYPTOLAB_WEBHOOK_BACKOFF": "500ms",
    "CRYPTOLAB_WEBHOOK_TIMEOUT": "2s",
    "CRYPTOLAB_RULES_RELOAD": "1m",
}


def test_every_variable_is_parsed_to_its_type() -> None:
    s = Settings.from_env(FULL_ENV)
    assert s.kafka_bootstrap == "broker-1:9092,broker-2:9092"
    assert not s.embedded_kafka
    assert s.store_url == "postgresql+psycopg://app@db:5432/market"
    assert s.resolved_store_url() == s.store_url
    assert s.redis_url == "redis://cache:6379/2"
    assert (s.topic, s.partitions, s.replication, s.group) == ("trades", 12, 3, "candles-eu")
    assert s.intervals == ("1m", "15m", "1h")  # canonical, deduplicated, sorted by length
    assert (s.out_of_orderness_ms, s.allowed_lateness_ms, s.idle_timeout_ms) == (
        250,
        300_000,
        120_000,
    )
    assert s.max_clock_skew_ms == 600_000
    assert s.end_wait_ms == 300_000
    assert s.gap_fill is True
    assert s.coingecko_url == "https://pro-api.coingecko.com/api/v3"
    assert s.coingecko_api_key == "CG-secret-key"
    assert s.coingecko_plan == "pro"
    assert s.data_dir == Path("/var/lib/cryptolab")
    assert s.log_level == "DEBUG"
    assert (s.notebooks_dir, s.pipelines_dir) == (Path("/srv/notebooks"), Path("/srv/pipelines"))
    assert s.kafka_options == {}
    assert s.webhook_urls == ("https://hooks.example/a", "http://127.0.0.1:8080/b")
    assert (s.webhook_secret, s.webhook_format, s.webhook_attempts) == ("whsec-1", "slack", 3)
    assert (s.webhook_backoff_ms, s.webhook_timeout_ms, s.rules_reload_ms) == (500, 2_000, 60_000)


def test_webhook_settings_reject_bad_values_and_hide_credentials() -> None:
    for env in ({"CRYPTOLAB_WEBHOOK_URLS": "ftp://x/y"}, {"CRYPTOLAB_WEBHOOK_FORMAT": "teams"},
                {"CRYPTOLAB_WEBHOOK_ATTEMPTS": "0"}, {"CRYPTOLAB_WEBHOOK_BACKOFF": "soon"}):
        with pytest.raises(ConfigError):
            Settings.from_env(env)
    s = Settings.from_env({"CRYPTOLAB_WEBHOOK_URLS": "https://hooks.slack.com/services/T1/B2/tok3n",
                           "CRYPTOLAB_WEBHOOK_SECRET": "whsec-1"})
    assert "tok3n" not in repr(s) and "whsec-1" not in repr(s)
    assert s.redacted()["webhook_urls"] == ("https://hooks.slack.com/***",)


def test_every_documented_variable_is_read() -> None:
    """Each ENV_VARS entry changes the attribute it names (no variable is silently unused)."""
    base = Settings.from_env({})
    changed = Settings.from_env(FULL_ENV)
    assert set(FULL_ENV) == set(ENV_VARS)
    for name, var in ENV_VARS.items():
        attr = var.attr if hasattr(base, var.attr) else f"{var.attr}_ms"
        assert getattr(changed, attr) != getattr(base, attr), name


@pytest.mark.parametrize("name", sorted(ENV_VARS))
def test_documented_defaults_match_the_code(name: str) -> None:
    var = ENV_VARS[name]
    assert var.help, f"{name} needs a help text for the README"
    if var.default:
        assert Settings.from_env({name: var.default}) == Settings.from_env({})


def test_embedded_defaults() -> None:
    s = Settings.from_env({})
    assert s.embedded_kafka and s.kafka_bootstrap is None
    assert s.store_url is None and s.redis_url is None
    assert s.resolved_store_url() == "sqlite:///.cryptolab/cryptolab.db"
    assert s.topic == "ticks" and s.partitions == 3 and s.replication == 1
    assert s.intervals == ("1m", "5m", "15m")
    assert (s.out_of_orderness_ms, s.allowed_lateness_ms, s.idle_timeout_ms) == (
        1_000,
        60_000,
        30_000,
    )
    assert s.gap_fill is False and s.coingecko_plan == "demo" and s.log_level == "WARNING"
    assert Settings.from_env({}, data_dir="/tmp/x").resolved_store_url() == (
        "sqlite:////tmp/x/cryptolab.db"
    )


def test_tests_run_without_cryptolab_variables() -> None:
    """tests/conftest.py removed the developer's CRYPTOLAB_* variables: from_env() is hermetic."""
    assert not [n for n in os.environ if n.startswith("CRYPTOLAB_")]
    assert Settings.from_env() == Settings.from_env({})


def test_empty_service_urls_mean_embedded() -> None:
    s = Settings.from_env(
        {"CRYPTOLAB_KAFKA_BOOTSTRAP": "", "CRYPTOLAB_STORE_URL": "", "CRYPTOLAB_REDIS_URL": ""}
    )
    assert s.embedded_kafka and s.store_url is None and s.redis_url is None


def test_other_variables_are_ignored() -> None:
    s = Settings.from_env({"PATH": "/bin", "KAFKA_BOOTSTRAP": "x:1", "cryptolab_topic": "lower"})
    assert s == Settings.from_env({})


# --------------------------------------------------------------------------- precedence


def test_overrides_beat_the_environment() -> None:
    env = {"CRYPTOLAB_TOPIC": "from-env", "CRYPTOLAB_PARTITIONS": "6"}
    s = Settings.from_env(env, topic="from-flag", partitions=9, intervals="5m")
    assert (s.topic, s.partitions, s.intervals) == ("from-flag", 9, ("5m",))


def test_none_overrides_fall_through_to_the_environment() -> None:
    """A CLI flag that was not given (None) must not hide the environment variable."""
    env = {"CRYPTOLAB_TOPIC": "from-env", "CRYPTOLAB_STORE_URL": "sqlite:///x.db"}
    s = Settings.from_env(env, topic=None, store_url=None, redis_url=None)
    assert (s.topic, s.store_url, s.redis_url) == ("from-env", "sqlite:///x.db", None)


def test_duration_overrides_accept_text_and_milliseconds() -> None:
    assert Settings.from_env({}, allowed_lateness="2m").allowed_lateness_ms == 120_000
    assert Settings.from_env({}, allowed_lateness_ms=1500).allowed_lateness_ms == 1500
    assert Settings.from_env({}, idle_timeout_ms="10s").idle_timeout_ms == 10_000


def test_unknown_override_is_an_error() -> None:
    with pytest.raises(ConfigError, match="topci"):
        Settings.from_env({}, topci="x")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("CRYPTOLAB_STOER_URL", "CRYPTOLAB_STORE_URL"),
        ("CRYPTOLAB_REDISURL", "CRYPTOLAB_REDIS_URL"),
        ("CRYPTOLAB_INTERVAL", "CRYPTOLAB_INTERVALS"),
        ("CRYPTOLAB_PARTITION", "CRYPTOLAB_PARTITIONS"),
        ("CRYPTOLAB_ALLOWED_LATENES", "CRYPTOLAB_ALLOWED_LATENESS"),
    ],
)
def test_misspelt_variable_is_an_error_with_a_suggestion(name: str, suggestion: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: "x"})
    assert str(info.value) == f"unknown setting {name} (did you mean {suggestion}?)"


def test_unknown_variable_without_a_close_match_is_still_an_error() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"CRYPTOLAB_ZZZZZZZZZZZZ": "1"})
    assert str(info.value) == "unknown setting CRYPTOLAB_ZZZZZZZZZZZZ"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CRYPTOLAB_PARTITIONS", "three"),
        ("CRYPTOLAB_PARTITIONS", "0"),
        ("CRYPTOLAB_REPLICATION", "-1"),
        ("CRYPTOLAB_GAP_FILL", "maybe"),
        ("CRYPTOLAB_INTERVALS", "7m"),
        ("CRYPTOLAB_INTERVALS", ","),
        ("CRYPTOLAB_OUT_OF_ORDERNESS", "5 parsecs"),
        ("CRYPTOLAB_ALLOWED_LATENESS", "-1s"),
        ("CRYPTOLAB_IDLE_TIMEOUT", "soon"),
        ("CRYPTOLAB_COINGECKO_PLAN", "free"),
        ("CRYPTOLAB_LOG_LEVEL", "LOUD"),
    ],
)
def test_malformed_values_are_config_errors(name: str, value: str) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env({name: value})


# --------------------------------------------------------------------------- Kafka options


def test_kafka_options_pass_through() -> None:
    env = {
        "CRYPTOLAB_KAFKA_BOOTSTRAP": "b:9092",
        "CRYPTOLAB_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "CRYPTOLAB_KAFKA_SASL_MECHANISMS": "PLAIN",
        "CRYPTOLAB_KAFKA_SASL_USERNAME": "svc",
        "CRYPTOLAB_KAFKA_SASL_PASSWORD": "hunter2",
    }
    s = Settings.from_env(env)
    assert s.kafka_bootstrap == "b:9092"  # a setting, not a librdkafka option
    assert s.kafka_options == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "PLAIN",
        "sasl.username": "svc",
        "sasl.password": "hunter2",
    }
    for conf in (producer_config(s), consumer_config(s)):
        assert conf["bootstrap.servers"] == "b:9092"
        assert conf["security.protocol"] == "SASL_SSL"
        assert conf["sasl.password"] == "hunter2"


def test_kafka_option_overrides_merge_with_the_environment() -> None:
    env = {"CRYPTOLAB_KAFKA_BOOTSTRAP": "b:9092", "CRYPTOLAB_KAFKA_CLIENT_ID": "from-env"}
    s = Settings.from_env(env, kafka_options={"client.id": "from-flag", "acks": "1"})
    assert s.kafka_options == {"client.id": "from-flag", "acks": "1"}


# --------------------------------------------------------------------------- secrets

SECRETS = {
    "CRYPTOLAB_STORE_URL": "postgresql+psycopg://app:pg-s3cret@db:5432/market",
    "CRYPTOLAB_REDIS_URL": "redis://:redis-s3cret@cache:6379/0",
    "CRYPTOLAB_COINGECKO_API_KEY": "CG-api-s3cret",
    "CRYPTOLAB_KAFKA_BOOTSTRAP": "b:9092",
    "CRYPTOLAB_KAFKA_SASL_PASSWORD": "sasl-s3cret",
    "CRYPTOLAB_KAFKA_SSL_KEY_PASSWORD": "key-s3cret",
    "CRYPTOLAB_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET": "oauth-s3cret",
}


def test_secrets_never_appear_in_repr_str_or_redacted() -> None:
    s = Settings.from_env(SECRETS)
    shown = [repr(s), str(s), repr(s.redacted()), f"{s}", f"{s!r}"]
    for text in shown:
        assert "s3cret" not in text, text
    red = s.redacted()
    assert red["store_url"] == "postgresql+psycopg://app:***@db:5432/market"
    assert red["redis_url"] == "redis://:***@cache:6379/0"
    assert red["coingecko_api_key"] == "***"
    assert red["kafka_options"]["sasl.password"] == "***"
    assert red["kafka_options"]["ssl.key.password"] == "***"
    assert red["kafka_options"]["sasl.oauthbearer.client.secret"] == "***"
    assert red["kafka_bootstrap"] == "b:9092"  # not a secret: still shown


def test_secrets_are_still_usable() -> None:
    s = Settings.from_env(SECRETS)
    assert s.store_url == SECRETS["CRYPTOLAB_STORE_URL"]
    assert s.coingecko_api_key == "CG-api-s3cret"
    assert s.kafka_options["sasl.password"] == "sasl-s3cret"


def test_redacted_covers_every_field_and_is_plain_data() -> None:
    red = Settings.from_env(FULL_ENV).redacted()
    assert set(red) == {f.name for f in dataclasses.fields(Settings)}
    assert red["data_dir"] == "/var/lib/cryptolab"
    assert red["coingecko_api_key"] == "***"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h:5432/db", "postgresql://u@h:5432/db"),
        ("rediss://default:tok@h:6380/1?ssl_cert_reqs=none", "rediss://default:***@h:6380/1?ssl_cert_reqs=none"),
        ("sqlite:///tmp/x.db", "sqlite:///tmp/x.db"),
        ("", ""),
        (None, None),
    ],
)
def test_redact_url(url: str | None, expected: str | None) -> None:
    assert redact_url(url) == expected


def test_redact_hides_secret_keys_and_url_passwords() -> None:
    assert redact("api_key", "abc") == "***"
    assert redact("TOKEN", "abc") == "***"
    assert redact("api_key", "") == ""  # nothing to hide
    assert redact("url", "http://u:pw@h/") == "http://u:***@h/"
    assert redact("topic", "ticks") == "ticks"


def test_settings_are_immutable() -> None:
    s = Settings.from_env({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.topic = "other"  # type: ignore[misc]
