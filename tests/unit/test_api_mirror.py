"""The process's mirror of the newest candle per series (``/latest``'s answers on Redis): the
order of Redis's ``latest`` key, the refresh from a read, and the hub that feeds and empties it."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cryptolab.cache import MemoryCache, updates_channel
from cryptolab.models import Candle, encode_candle

pytest.importorskip("fastapi", reason="the API needs the api extra")

from cryptolab.api.fanout import Hub
from cryptolab.api.mirror import LatestMirror

CH = updates_channel("BTC-USD", "1m")


def _candle(ws_index: int, revision: int, final: bool, close: float = 1.0) -> Candle:
    ws = 1_700_000_040_000 + ws_index * 60_000
    return Candle(symbol="BTC-USD", interval="1m", window_start=ws, window_end=ws + 60_000, open=1.0,
                  high=max(1.0, close), low=min(1.0, close), close=close, volume=1.0, vwap=None, trades=1,
                  first_ts=ws, last_ts=ws, high_ts=ws, low_ts=ws, revision=revision, final=final)


updates = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.booleans()), min_size=1, max_size=30)


@given(updates)
def test_the_mirror_holds_what_redis_latest_would(seq: list[tuple[int, int, bool]]) -> None:
    """Redis's script replaces ``latest`` unless the update is older by (window, revision, final):
    the mirror holds the last update of the greatest order, as Redis does."""
    m = LatestMirror(clock=lambda: 0.0)
    for k, (w, r, f) in enumerate(seq):
        m.offer(CH, encode_candle(_candle(w, r, f, close=1.0 + k)))
    best = max((w, r, int(f)) for w, r, f in seq)
    last = max(k for k, (w, r, f) in enumerate(seq) if (w, r, int(f)) == best)
    assert m.get(CH) == encode_candle(_candle(*seq[last], close=1.0 + last))


def test_an_entry_is_trusted_for_max_age_and_a_read_refreshes_it() -> None:
    now = [0.0]
    m = LatestMirror(max_age_s=1.0, clock=lambda: now[0])
    first, second = encode_candle(_candle(1, 0, False)), encode_candle(_candle(1, 1, False))
    m.offer(CH, first)
    now[0] = 0.9
    assert m.get(CH) == first
    now[0] = 1.2
    assert m.get(CH) is None  # too old: the route reads the cache
    m.refresh(CH, second)
    assert m.get(CH) == second
    m.refresh(CH, None)  # the cache has none (expired)
    assert m.get(CH) is None and len(m) == 0
    m.offer(CH, b"not json")
    assert len(m) == 0


def test_the_hub_mirrors_every_series_and_empties_the_mirror_when_it_subscribes_again() -> None:
    async def run() -> tuple[bytes | None, int]:
        cache = MemoryCache("test-api-mirror-hub")
        hub = Hub(cache)
        hub.start(asyncio.get_running_loop())
        try:
            assert await hub.ready(5.0)
            c = _candle(2, 0, True)
            cache.publish([c])  # no client follows the series: the mirror still keeps it
            for _ in range(500):
                if hub.mirror.get(CH) is not None:
                    break
                await asyncio.sleep(0.01)
            mirrored = hub.mirror.get(CH)
            sub = hub._subscribe()  # what the reader does after a lost subscription
            assert sub is not None
            sub.close()
            await asyncio.sleep(0.05)  # the loop runs the clear the hub scheduled
            return mirrored, len(hub.mirror)
        finally:
            hub.stop()

    mirrored, left = asyncio.run(run())
    assert mirrored == encode_candle(_candle(2, 0, True))
    assert left == 0
