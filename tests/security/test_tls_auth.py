"""TLS and authentication pass through to every client, from the environment or the URL.

* Kafka: any ``CRYPTOLAB_KAFKA_<OPTION>`` (``SECURITY_PROTOCOL``, ``SASL_*``,
  ``SSL_*``) reaches the producer, consumer and admin configs of
  :class:`~cryptolab.producer.TickProducer` and
  :class:`~cryptolab.pipeline.CandlePipeline` unchanged, including options
  cryptolab has its own defaults for.
* Redis: ``rediss://`` selects TLS, ``?ssl_*`` options pass through, and a
  password in the URL authenticates (checked against a real ``redis-server
  --requirepass`` started on a spare port).
* PostgreSQL: ``sslmode`` (any libpq parameter) in the URL reaches libpq: the
  test server has no TLS, so ``sslmode=require`` is refused by it, and
  ``sslmode=disable`` works.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import cryptolab.pipeline.consumer as consumer_module
import cryptolab.producer as producer_module
from cryptolab.cache import RedisCache
from cryptolab.config import Settings
from cryptolab.errors import CacheError, StoreError
from cryptolab.kafka import admin_config, consumer_config, producer_config
from cryptolab.models import Candle
from cryptolab.store import Store

KAFKA_ENV = {
    "CRYPTOLAB_KAFKA_BOOTSTRAP": "broker-1.example:9093,broker-2.example:9093",
    "CRYPTOLAB_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "CRYPTOLAB_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "CRYPTOLAB_KAFKA_SASL_USERNAME": "cryptolab",
    "CRYPTOLAB_KAFKA_SASL_PASSWORD": "sasl-pw",
    "CRYPTOLAB_KAFKA_SSL_CA_LOCATION": "/etc/ssl/certs/ca-certificates.crt",
    "CRYPTOLAB_KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM": "https",
    "CRYPTOLAB_KAFKA_SESSION_TIMEOUT_MS": "45000",  # one cryptolab sets a default for
    "CRYPTOLAB_KAFKA_COMPRESSION_TYPE": "zstd",  # another one
}
EXPECTED = {
    "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "cryptolab",
    "sasl.password": "sasl-pw", "ssl.ca.location": "/etc/ssl/certs/ca-certificates.crt",
    "ssl.endpoint.identification.algorithm": "https",
    "bootstrap.servers": "broker-1.example:9093,broker-2.example:9093",
}


def _has(conf: dict[str, Any], expected: dict[str, Any]) -> None:
    missing = {k: (conf.get(k), v) for k, v in expected.items() if conf.get(k) != v}
    assert not missing, missing


def test_kafka_security_options_reach_every_client_config() -> None:
    s = Settings.from_env(KAFKA_ENV)
    _has(producer_config(s), {**EXPECTED, "compression.type": "zstd"})
    _has(consumer_config(s, "g"), {**EXPECTED, "session.timeout.ms": "45000", "group.id": "g"})
    _has(admin_config(s), EXPECTED)


class _Captured(Exception):
    pass


def test_producer_and_pipeline_build_their_clients_with_those_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    s = Settings.from_env(KAFKA_ENV, data_dir=tmp_path)
    seen: dict[str, dict[str, Any]] = {}

    def capture(kind: str) -> Any:
        def make(conf: dict[str, Any]) -> Any:
            seen[kind] = dict(conf)
            raise _Captured(kind)
        return make

    monkeypatch.setattr(producer_module, "Producer", capture("tick producer"))
    with pytest.raises(_Captured):
        producer_module.TickProducer(s, create_topic=False)
    monkeypatch.setattr(consumer_module, "ensure_topics", lambda *a, **k: {})
    monkeypatch.setattr(consumer_module, "Consumer", capture("pipeline consumer"))
    store = Store(f"sqlite:///{(tmp_path / 's.db').as_posix()}")
    store.init()
    with pytest.raises(_Captured):
        consumer_module.CandlePipeline(s, store=store, scorer=None).run(timeout=1)
    _has(seen["tick producer"], EXPECTED)
    _has(seen["pipeline consumer"], {**EXPECTED, "session.timeout.ms": "45000"})


def test_rediss_url_selects_tls_and_passes_ssl_options() -> None:
    cache = RedisCache("rediss://:tls-pw@redis.example:6380/2?ssl_cert_reqs=required"
                       "&ssl_ca_certs=/etc/ssl/certs/ca-certificates.crt")
    pool = cache._client.connection_pool
    assert issubclass(pool.connection_class, redis.SSLConnection)
    kw = pool.connection_kwargs
    assert (kw["password"], kw["db"], kw["ssl_cert_reqs"], kw["ssl_ca_certs"]) == (
        "tls-pw", 2, "required", "/etc/ssl/certs/ca-certificates.crt")
    assert "tls-pw" not in repr(cache)
    plain = RedisCache("redis://:pw@localhost:6379/0")._client.connection_pool.connection_class
    assert not issubclass(plain, redis.SSLConnection)


# --------------------------------------------------------------------------- real Redis AUTH


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def redis_with_password(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    """A throw-away ``redis-server --requirepass`` on a spare port."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (scripts/services.sh installs it)")
    port, password = _free_port(), secrets.token_hex(12)
    workdir = tmp_path_factory.mktemp("redis-auth")
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--requirepass", password, "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=1).ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("redis-server --requirepass did not start")
                time.sleep(0.1)
        yield port, password
    finally:
        proc.terminate()
        proc.wait(10)


def _candle() -> Candle:
    t0 = 1_700_000_040_000
    return Candle(symbol="BTC-USD", interval="1m", window_start=t0, window_end=t0 + 60_000, open=1.0,
                  high=2.0, low=0.5, close=1.5, volume=3.0, vwap=1.2, trades=3, first_ts=t0,
                  last_ts=t0 + 1, high_ts=t0, low_ts=t0, final=True)


def test_redis_password_in_the_url_authenticates(redis_with_password: tuple[int, str]) -> None:
    port, password = redis_with_password
    cache = RedisCache(f"redis://:{password}@127.0.0.1:{port}/3")
    cache.publish([_candle()])
    assert cache.latest("BTC-USD", "1m") == _candle()
    assert password not in repr(cache)
    cache.close()


@pytest.mark.parametrize("auth", ["", ":wrong-password@"])
def test_redis_without_the_right_password_is_a_clear_error_that_hides_it(
    redis_with_password: tuple[int, str], auth: str
) -> None:
    port, _ = redis_with_password
    cache = RedisCache(f"redis://{auth}127.0.0.1:{port}/3", socket_timeout=2)
    with pytest.raises(CacheError) as info:
        cache.publish([_candle()])
    text = str(info.value)
    assert "Authentication" in text or "NOAUTH" in text or "invalid" in text.lower(), text
    assert "wrong-password" not in text
    assert cache.ping() is False


def test_redis_auth_through_settings_and_open_cache(redis_with_password: tuple[int, str]) -> None:
    from cryptolab.cache import open_cache

    port, password = redis_with_password
    s = Settings.from_env({"CRYPTOLAB_REDIS_URL": f"redis://default:{password}@127.0.0.1:{port}/4"})
    cache = open_cache(s)
    assert cache.ping() is True
    assert password not in repr(cache) + repr(s)
    cache.close()


# --------------------------------------------------------------------------- PostgreSQL sslmode


@pytest.mark.integration
def test_postgres_sslmode_in_the_url_reaches_libpq(pg_url: str) -> None:
    sep = "&" if "?" in pg_url else "?"
    with pytest.raises(StoreError) as info:
        Store(f"{pg_url}{sep}sslmode=require").init()
    assert "SSL" in str(info.value), str(info.value)  # the (TLS-less) test server refused it
    store = Store(f"{pg_url}{sep}sslmode=disable&application_name=cl-security")
    store.init()
    assert "sslmode=disable" in store.url
    with store._read() as conn:
        name = conn.exec_driver_sql("SELECT current_setting('application_name')").scalar()
    assert name == "cl-security"  # URL parameters reach the server session
    store.close()
