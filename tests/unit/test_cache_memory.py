"""Cache behaviour that needs no server: MemoryCache specifics, globs, factories, unreachable Redis."""

from __future__ import annotations

import fnmatch
import threading
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

import cryptolab
from cryptolab.cache import (
    MemoryCache,
    RedisCache,
    glob_to_regex,
    open_cache,
    updates_channel,
)
from cryptolab.cache import memory as memory_mod
from cryptolab.config import Settings
from cryptolab.errors import CacheError
from cryptolab.models import Candle

T0 = 1_700_000_040_000


def candle(i: int = 0, *, symbol: str = "BTC-USD", final: bool = False) -> Candle:
    ws = T0 + i * 60_000
    return Candle(symbol=symbol, interval="1m", window_start=ws, window_end=ws + 60_000,
                  open=1.0, high=1.0, low=1.0, close=1.0, volume=1.0, vwap=1.0, trades=1,
                  first_ts=ws, last_ts=ws, high_ts=ws, low_ts=ws, final=final)


@pytest.fixture
def name() -> str:
    return f"unit-{uuid.uuid4().hex}"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_latest_expires_after_its_ttl(name: str) -> None:
    clock = Clock()
    cache = MemoryCache(name, clock=clock)
    cache.publish([candle(5)])
    clock.now = 89.999
    assert cache.latest("BTC-USD", "1m") == candle(5)
    assert cache.ttl_ms("BTC-USD", "1m") == 1
    clock.now = 90.0
    assert cache.latest("BTC-USD", "1m") is None
    assert cache.ttl_ms("BTC-USD", "1m") is None
    cache.publish([candle(1)])  # the expired newer window no longer blocks an older one
    assert cache.latest("BTC-USD", "1m") == candle(1)
    cache.clear()


def test_same_name_shares_data_and_bus(name: str) -> None:
    a, b = MemoryCache(name), MemoryCache(name)
    other = MemoryCache(f"{name}-other")
    sub = b.subscribe([updates_channel("BTC-USD", "1m")])
    a.publish([candle(0)])
    assert b.latest("BTC-USD", "1m") == candle(0)
    assert other.latest("BTC-USD", "1m") is None
    assert sub.get(1.0) is not None
    a.clear()
    assert b.latest("BTC-USD", "1m") is None
    b.close()
    assert sub.get(0.0) is None


def test_default_cache_is_what_cryptolab_latest_reads() -> None:
    cache = open_cache(Settings.from_env({}))
    assert isinstance(cache, MemoryCache) and cache.name == "default"
    c = candle(0, symbol="LATEST-TEST")
    cache.publish([c])
    assert cryptolab.latest("LATEST-TEST", "1m", settings=Settings.from_env({})) == c
    assert cryptolab.latest("LATEST-TEST", "1m") == c  # env without CRYPTOLAB_REDIS_URL


def test_get_waits_for_a_message_from_another_thread(name: str) -> None:
    cache = MemoryCache(name)
    sub = cache.subscribe(["cryptolab:finals:*"])
    timer = threading.Timer(0.05, cache.publish, args=([candle(0, final=True)],))
    timer.start()
    msg = sub.get(30.0)
    timer.join()
    assert msg is not None and msg[0] == "cryptolab:finals:BTC-USD:1m"
    sub.close()


def test_close_wakes_a_waiting_get(name: str) -> None:
    cache = MemoryCache(name)
    sub = cache.subscribe(["x"])
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(sub.get(60.0)))
    t.start()
    sub.close()
    t.join(30)
    assert not t.is_alive() and result == [None]


def test_slow_subscriber_drops_the_oldest(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory_mod, "MEMORY_QUEUE_CAP", 3)
    cache = MemoryCache(name)
    sub = cache.subscribe([updates_channel("BTC-USD", "1m")])
    cache.publish([candle(i) for i in range(5)])
    got = [sub.get() for _ in range(4)]
    assert [g is not None for g in got] == [True, True, True, False]
    assert sub.dropped == 2  # type: ignore[attr-defined]
    sub.close()


def test_concurrent_publishers_keep_the_newest(name: str) -> None:
    cache = MemoryCache(name, recent_cap=1000)

    def work(k: int) -> None:
        for i in range(k, 400, 4):
            cache.publish([candle(i, final=True)])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.latest("BTC-USD", "1m") == candle(399, final=True)
    assert [c.window_start for c in cache.recent("BTC-USD", "1m", n=1000)] == [
        T0 + i * 60_000 for i in range(400)]
    cache.clear()


def test_bad_arguments(name: str) -> None:
    with pytest.raises(ValueError, match="recent_cap"):
        MemoryCache(name, recent_cap=0)
    with pytest.raises(ValueError, match="pattern"):
        MemoryCache(name).subscribe([])
    assert MemoryCache(name).recent("BTC-USD", "1m", n=0) == []


# --------------------------------------------------------------------------- globs

_GLOB_ALPHABET = "ab:-*?"


@given(st.text(alphabet=_GLOB_ALPHABET, max_size=8), st.text(alphabet="ab:-", max_size=8))
def test_glob_agrees_with_fnmatch_on_star_and_question_mark(pattern: str, channel: str) -> None:
    assert bool(glob_to_regex(pattern).fullmatch(channel)) == fnmatch.fnmatchcase(channel, pattern)


@pytest.mark.parametrize(
    ("pattern", "channel", "matches"),
    [
        ("cryptolab:candles:*:1m", "cryptolab:candles:BTC-USD:1m", True),
        ("cryptolab:candles:*:1m", "cryptolab:candles:BTC-USD:5m", False),
        ("cryptolab:*", "cryptolab:a\nb", True),
        ("h[ae]llo", "hallo", True),
        ("h[^e]llo", "hello", False),
        ("h[a-c]llo", "hbllo", True),
        ("h[c-a]llo", "hbllo", True),
        (r"h\[a\]llo", "h[a]llo", True),
        ("h[a", "h[a", True),
    ],
)
def test_glob_classes_and_escapes(pattern: str, channel: str, matches: bool) -> None:
    assert bool(glob_to_regex(pattern).fullmatch(channel)) is matches


# --------------------------------------------------------------------------- unreachable Redis


@pytest.mark.timeout(30)
def test_unreachable_redis_raises_cache_error() -> None:
    cache = RedisCache("redis://:hunter2@127.0.0.1:1/0", socket_timeout=0.5)
    assert repr(cache) == "RedisCache('redis://:***@127.0.0.1:1/0')"
    calls = [
        lambda: cache.latest("BTC-USD", "1m"),
        lambda: cache.publish([candle(0)]),
        lambda: cache.publish_alerts([]) or cache.recent_alerts(),
        lambda: cache.recent("BTC-USD", "1m"),
        lambda: cache.ttl_ms("BTC-USD", "1m"),
        lambda: cache.subscribe(["cryptolab:*"]),
    ]
    for call in calls:
        with pytest.raises(CacheError) as info:
            call()
        assert "hunter2" not in str(info.value)
        assert "127.0.0.1:1" in str(info.value)
    assert cache.ping() is False
    cache.close()


def test_invalid_redis_url() -> None:
    with pytest.raises(CacheError, match="invalid Redis URL"):
        RedisCache("http://example.com")
    with pytest.raises(ValueError, match="recent_cap"):
        RedisCache("redis://localhost", recent_cap=0)
