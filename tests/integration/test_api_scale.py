"""Horizontal scale of the API: two ``cryptolab serve`` processes on the same PostgreSQL and Redis
(what a load balancer would spread clients over) each hold one cache subscription, and a
WebSocket client of either receives the same live updates; REST answers the same on both."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from api_harness import candle, health, redis_subscribers_of, serve, unique_symbol, wait_until
from websockets.asyncio.client import connect

from cryptolab.cache import RedisCache
from cryptolab.models import encode_candle

pytest.importorskip("fastapi", reason="the API needs the api extra")


def test_two_serve_processes_on_one_redis_push_the_same_live_updates(
        pg_url: str, redis_url: str, tmp_path: Path) -> None:
    sym = unique_symbol("S")
    updates = [candle(sym, i // 2, final=i % 2 == 1) for i in range(20)]  # open, final, open...
    updates = [dataclasses.replace(c, close=c.close + k) for k, c in enumerate(updates)]
    args = ("--store", pg_url, "--redis", redis_url)
    with serve(tmp_path, *args) as one, serve(tmp_path, *args) as two:
        servers = (one, two)
        assert one.url != two.url and one.proc.pid != two.proc.pid
        for server in servers:
            wait_until(lambda s=server: health(s)["stream"]["subscribed"], 60, "each hub to subscribe")

        async def run() -> list[list[str]]:
            url = f"/ws/candles?symbols={sym}&interval=1m"
            clients: list[Any] = [await connect(s.ws + url, open_timeout=60) for s in servers]
            try:
                for server in servers:
                    await asyncio.to_thread(wait_until, lambda s=server: health(s)["stream"]["clients"] == 1,
                                            60, "a client on each server")
                cache = RedisCache(redis_url)  # the consumer's side: one publish, whichever process serves
                try:
                    await asyncio.to_thread(cache.publish, updates)
                finally:
                    cache.close()
                return [[await asyncio.wait_for(ws.recv(), 120) for _ in updates] for ws in clients]
            finally:
                await asyncio.gather(*(ws.close() for ws in clients))

        received = asyncio.run(run())
        want = [encode_candle(c).decode() for c in updates]
        assert received[0] == want and received[1] == want
        # one subscription per process, not per client or per server pair
        for server in servers:
            subs = redis_subscribers_of(server.proc.pid, redis_url)
            assert len(subs) == 1 and int(subs[0]["psub"]) == 2, subs
        # stateless: either process answers the newest candle from the shared cache
        latest = [s.get(f"/api/v1/latest/{sym}/1m").json() for s in servers]
        assert latest[0] == latest[1] and latest[0]["close"] == updates[-1].close
