"""Redis-specific cache behaviour (the shared behaviour is in tests/contract/)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from cryptolab.cache import (
    ALERTS_CHANNEL,
    MemoryCache,
    RedisCache,
    latest,
    latest_key,
    recent_key,
)
from cryptolab.config import Settings
from cryptolab.models import Candle, encode_candle

pytestmark = pytest.mark.integration

T0 = 1_700_000_040_000


def candle(i: int = 0, *, interval: str = "1m", final: bool = False) -> Candle:
    step = {"1m": 60_000, "1h": 3_600_000}[interval]
    ws = T0 - T0 % step + i * step
    return Candle(symbol="BTC-USD", interval=interval, window_start=ws, window_end=ws + step,
                  open=1.0, high=2.0, low=0.5, close=1.5, volume=1.0, vwap=1.2, trades=1,
                  first_ts=ws, last_ts=ws, high_ts=ws, low_ts=ws, final=final)


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def cache(redis_url: str) -> Iterator[RedisCache]:
    c = RedisCache(redis_url)
    yield c
    c.close()


def test_key_layout_and_pttl(cache: RedisCache, raw: redis.Redis) -> None:
    c1, c2 = candle(0), candle(0, interval="1h", final=True)
    cache.publish([c1, c2])
    assert raw.get(latest_key("BTC-USD", "1m")) == encode_candle(c1)
    assert 85_000 < raw.pttl("cryptolab:latest:BTC-USD:1m") <= 90_000
    assert 5_300_000 < raw.pttl("cryptolab:latest:BTC-USD:1h") <= 5_400_000
    assert raw.zrange(recent_key("BTC-USD", "1h"), 0, -1, withscores=True) == [
        (encode_candle(c2), float(c2.window_start))]
    assert raw.exists(recent_key("BTC-USD", "1m")) == 0


def test_publish_survives_a_script_flush(cache: RedisCache, raw: redis.Redis) -> None:
    cache.publish([candle(0)])
    raw.script_flush()
    cache.publish([candle(1)])  # NOSCRIPT: reloaded and re-run
    assert cache.latest("BTC-USD", "1m") == candle(1)


def test_a_killed_connection_is_replaced(cache: RedisCache, raw: redis.Redis) -> None:
    cache.publish([candle(0)])
    client_id = cache._client.client_id()
    raw.client_kill_filter(_id=client_id)
    assert cache.latest("BTC-USD", "1m") == candle(0)  # retried once on a new connection


def test_alerts_recent_set_and_channel_names(cache: RedisCache, raw: redis.Redis) -> None:
    from cryptolab.models import Alert

    a = Alert(symbol="BTC-USD", interval="1m", window_start=T0, detector="rule", severity="HIGH",
              score=2.0, ts_ms=T0 + 60_000)
    p = raw.pubsub()
    p.subscribe(ALERTS_CHANNEL)
    assert p.get_message(timeout=5)["type"] == "subscribe"
    cache.publish_alerts([a])
    msg = p.get_message(timeout=5)
    assert msg is not None and msg["channel"] == b"cryptolab:alerts"
    assert raw.zcard("cryptolab:alerts:recent") == 1
    p.close()


PATTERNS = ["cryptolab:*", "cryptolab:candles:*:1m", "*BTC*", "cryptolab:finals:???-USD:1m",
            "cryptolab:candles:[AB]*", "cryptolab:candles:[^B]*", "cryptolab:candles:[A-C]TC*",
            r"cryptolab:x\*y", "cryptolab:candles:[BTC"]
CHANNELS = ["cryptolab:candles:BTC-USD:1m", "cryptolab:candles:ETH-USD:5m",
            "cryptolab:finals:BTC-USD:1m", "cryptolab:finals:DOGE-USD:1m", "cryptolab:x*y",
            "cryptolab:xay", "other:BTC"]


def test_glob_patterns_match_like_memory_cache(redis_url: str, raw: redis.Redis) -> None:
    name = f"parity-{uuid.uuid4().hex}"
    mem = MemoryCache(name)
    rc = RedisCache(redis_url)
    for pattern in PATTERNS:
        subs = [rc.subscribe([pattern]), mem.subscribe([pattern])]
        for channel in CHANNELS:
            raw.publish(channel, channel.encode())
            mem._bus.fan_out([(channel, channel.encode())])
        got = []
        for sub in subs:
            seen = set()
            while (m := sub.get(0.3)) is not None:
                seen.add(m[0])
            got.append(seen)
            sub.close()
        assert got[0] == got[1], pattern
    rc.close()


def test_auth_via_url(redis_url: str, raw: redis.Redis) -> None:
    user, password = f"cl_test_{secrets.token_hex(4)}", secrets.token_hex(12)
    raw.acl_setuser(user, enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"],
                    commands=["+@all"])
    try:
        parts = urlsplit(redis_url)
        host = parts.hostname or "localhost"
        netloc = f"{user}:{password}@{host}:{parts.port or 6379}"
        url = urlunsplit(parts._replace(netloc=netloc))
        c = RedisCache(url)
        assert password not in repr(c)
        c.publish([candle(0)])
        assert c.latest("BTC-USD", "1m") == candle(0)
        c.close()
        wrong = RedisCache(urlunsplit(parts._replace(netloc=f"{user}:nope@{host}:{parts.port or 6379}")))
        assert wrong.ping() is False
        wrong.close()
    finally:
        raw.acl_deluser(user)


def test_module_latest_reads_redis(redis_url: str, cache: RedisCache) -> None:
    cache.publish([candle(3)])
    assert latest("BTC-USD", "1m", redis_url=redis_url) == candle(3)
    assert latest("BTC-USD", "1m", settings=Settings.from_env({"CRYPTOLAB_REDIS_URL": redis_url})) == candle(3)


def test_latest_async_reads_what_latest_reads_on_each_event_loop(cache: RedisCache) -> None:
    import asyncio

    async def read() -> tuple[Candle | None, Candle | None]:
        try:
            return (await cache.latest_async("BTC-USD", "1m"),
                    await cache.latest_async("BTC-USD", "7m"))
        finally:
            await cache.aclose()

    cache.publish([candle(0), candle(1)])
    assert asyncio.run(read()) == (cache.latest("BTC-USD", "1m"), None) == (candle(1), None)
    cache.publish([candle(2)])
    assert asyncio.run(read())[0] == candle(2)  # a second loop gets a client of its own
