"""The cache contract: one test body per behaviour, run against MemoryCache and RedisCache."""

from __future__ import annotations

from typing import Any

import pytest

from cryptolab.cache import (
    ALERTS_CHANNEL,
    Cache,
    MemoryCache,
    Subscription,
    finals_channel,
    latest_key,
    recent_key,
    updates_channel,
)
from cryptolab.models import (
    Alert,
    Candle,
    decode_alert,
    decode_candle,
    encode_candle,
    parse_interval,
)

T0 = 1_700_000_040_000
MIN = 60_000


def candle(
    i: int = 0,
    *,
    symbol: str = "BTC-USD",
    interval: str = "1m",
    revision: int = 0,
    final: bool = False,
    close: float = 100.5,
) -> Candle:
    step = parse_interval(interval)
    ws = T0 - T0 % step + i * step
    return Candle(
        symbol=symbol, interval=interval, window_start=ws, window_end=ws + step, open=100.0,
        high=101.0, low=99.0, close=close, volume=2.0, vwap=100.1, trades=2, first_ts=ws,
        last_ts=ws + 1, high_ts=ws, low_ts=ws + 1, revision=revision, final=final,
    )


def alert(i: int, *, ts: int | None = None) -> Alert:
    return Alert(symbol="BTC-USD", interval="1m", window_start=T0 + i * MIN, detector="rule",
                 severity="HIGH", score=float(i), ts_ms=T0 + (i + 1) * MIN if ts is None else ts,
                 features={"ret": 0.01 * i})


def drain(sub: Subscription, timeout: float = 2.0) -> list[tuple[str, bytes]]:
    """Everything delivered: wait up to ``timeout`` for the first message, then take what is queued."""
    out: list[tuple[str, bytes]] = []
    msg = sub.get(timeout)
    while msg is not None:
        out.append(msg)
        msg = sub.get(0.2)
    return out


def test_latest_round_trip(cache: Cache) -> None:
    assert cache.latest("BTC-USD", "1m") is None
    c = candle(0)
    cache.publish([c, candle(0, symbol="ETH-USD", close=7.0)])
    assert cache.latest("BTC-USD", "1m") == c
    assert cache.latest("ETH-USD", "1m") == candle(0, symbol="ETH-USD", close=7.0)
    assert cache.latest("BTC-USD", "5m") is None


def test_latest_is_monotonic(cache: Cache) -> None:
    newer = candle(5, close=1.0)
    cache.publish([newer])
    cache.publish([candle(4, final=True, revision=3)])  # older window: ignored
    assert cache.latest("BTC-USD", "1m") == newer
    update = candle(5, close=2.0)  # same window, same (revision, final): an open-candle update
    cache.publish([update])
    assert cache.latest("BTC-USD", "1m") == update
    final = candle(5, final=True, close=3.0)
    cache.publish([final, candle(5, final=False, close=4.0)])  # final then a stale open update
    assert cache.latest("BTC-USD", "1m") == final
    revised = candle(5, final=True, revision=2, close=5.0)
    cache.publish([revised, candle(5, final=True, revision=1, close=6.0)])
    assert cache.latest("BTC-USD", "1m") == revised
    cache.publish([revised])  # idempotent re-publish
    assert cache.latest("BTC-USD", "1m") == revised
    nxt = candle(6)
    cache.publish([nxt])
    assert cache.latest("BTC-USD", "1m") == nxt


@pytest.mark.parametrize("interval", ["1m", "5m", "1h"])
def test_latest_ttl_is_one_and_a_half_intervals(cache: Cache, interval: str) -> None:
    cache.publish([candle(0, interval=interval)])
    ttl = cache.ttl_ms("BTC-USD", interval)
    full = parse_interval(interval) * 3 // 2
    assert ttl is not None
    assert full - 10_000 < ttl <= full
    assert cache.ttl_ms("BTC-USD", "15m") is None


def test_updates_and_finals_are_delivered(cache: Cache) -> None:
    updates = cache.subscribe([updates_channel("BTC-USD", "*")])
    finals = cache.subscribe([finals_channel("*", "1m")])
    everything = cache.subscribe(["cryptolab:*"])
    open_c, final_c = candle(0, close=1.0), candle(0, final=True, close=2.0)
    other = candle(1, symbol="ETH-USD", final=True)
    cache.publish([open_c, final_c, other])

    got = drain(updates)
    assert [ch for ch, _ in got] == [updates_channel("BTC-USD", "1m")] * 2
    assert [decode_candle(p) for _, p in got] == [open_c, final_c]

    got = drain(finals)
    assert [(ch, decode_candle(p)) for ch, p in got] == [
        (finals_channel("BTC-USD", "1m"), final_c), (finals_channel("ETH-USD", "1m"), other)]
    assert len(drain(everything)) == 5  # 3 updates + 2 finals
    for sub in (updates, finals, everything):
        sub.close()
        assert sub.get(0.0) is None


def test_stale_updates_are_still_delivered(cache: Cache) -> None:
    # a late revision of an older window must reach live charts even though latest keeps the newer window
    sub = cache.subscribe([updates_channel("BTC-USD", "1m")])
    cache.publish([candle(3)])
    old_revision = candle(1, final=True, revision=1)
    cache.publish([old_revision])
    got = [decode_candle(p) for _, p in drain(sub)]
    assert got == [candle(3), old_revision]
    assert cache.latest("BTC-USD", "1m") == candle(3)
    sub.close()


def test_get_with_zero_timeout_does_not_block(cache: Cache) -> None:
    sub = cache.subscribe(["cryptolab:nothing:*"])
    assert sub.get() is None
    assert sub.get(0.0) is None
    sub.close()


def test_recent_finals_capped_without_duplicates(cache_backend: Any) -> None:
    cache = cache_backend.make(recent_cap=5)
    finals = [candle(i, final=True) for i in range(8)]
    cache.publish(finals[:6])
    cache.publish(finals[4:])  # re-publish two windows: no duplicates
    cache.publish([candle(8, final=False)])  # open candles are not recent finals
    got = cache.recent("BTC-USD", "1m")
    assert got == finals[3:]
    assert cache.recent("BTC-USD", "1m", n=2) == finals[6:]
    revised = candle(7, final=True, revision=1, close=9.0)
    cache.publish([revised, candle(7, final=True, revision=0, close=10.0)])  # revision replaces, older revision ignored
    assert cache.recent("BTC-USD", "1m") == [*finals[3:7], revised]
    assert cache.recent("BTC-USD", "5m") == []


def test_alerts_published_and_kept(cache_backend: Any) -> None:
    cache = cache_backend.make(recent_cap=3)
    sub = cache.subscribe([ALERTS_CHANNEL])
    alerts = [alert(i) for i in range(5)]
    cache.publish_alerts(alerts[:2])
    cache.publish_alerts(alerts[1:])  # alerts[1] again: kept once
    got = drain(sub)
    assert {ch for ch, _ in got} == {ALERTS_CHANNEL}
    assert [decode_alert(p) for _, p in got] == alerts[:2] + alerts[1:]
    assert cache.recent_alerts() == alerts[2:]
    assert cache.recent_alerts(n=1) == alerts[4:]
    sub.close()


@pytest.mark.parametrize("symbol", ["BTC'; DROP TABLE candles;--", 'A"B\\C', "SPA CE:x*?[y]"])
def test_hostile_symbols_round_trip(cache: Cache, symbol: str) -> None:
    sub = cache.subscribe(["cryptolab:finals:*"])
    c = candle(0, symbol=symbol, final=True)
    cache.publish([c])
    assert cache.latest(symbol, "1m") == c
    assert cache.recent(symbol, "1m") == [c]
    assert drain(sub) == [(finals_channel(symbol, "1m"), encode_candle(c))]
    sub.close()


def test_large_batch_keeps_the_newest_per_series(cache: Cache) -> None:
    batch = [candle(i, symbol=f"S{i % 10}", final=True) for i in range(2000)]
    cache.publish(batch)
    for k in range(10):
        assert cache.latest(f"S{k}", "1m") == batch[1990 + k]
    assert len(cache.recent("S3", "1m", n=1000)) == 200


def test_two_clients_share_data(cache_backend: Any) -> None:
    a = cache_backend.make()
    b = cache_backend.make()
    sub = b.subscribe([updates_channel("BTC-USD", "1m")])
    a.publish([candle(0)])
    assert b.latest("BTC-USD", "1m") == candle(0)
    assert len(drain(sub)) == 1
    sub.close()


def test_ping_and_names(cache: Cache) -> None:
    assert cache.ping() is True
    assert latest_key("X", "1m") == "cryptolab:latest:X:1m"
    assert recent_key("X", "1m") == "cryptolab:recent:X:1m"
    assert isinstance(cache, Cache)
    if isinstance(cache, MemoryCache):
        assert cache.name.startswith("contract-")
