"""The ``api`` section's WebSocket half: push latency from a cache publish to its receipt by
each of many ``/ws/candles`` clients of one ``cryptolab serve`` process.

The clients (``websockets``) share one event loop in the suite's process; a publisher thread
publishes one candle of the followed series at a time, paced, each of a window of its own, and
keeps the wall-clock time (ns) taken just before each publish. With Redis the publisher is a
:class:`~cryptolab.cache.RedisCache` of its own (the consumer's side of production); with the
in-process cache, which only the server's process can publish to, it asks the server's
bench-only route (:data:`~benchmarks.peers.bare_api.PUBLISH_PATH`), which stamps the time and
publishes on the server's own cache. A receipt is matched to its publish by ``window_start``;
its latency is the receipt's wall-clock time less the publish's (one machine, one clock).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson

from benchmarks.peers.bare_api import PUBLISH_PATH, bench_candle
from benchmarks.results import percentile, rnd

__all__ = ["measure_push", "publisher"]

#: The first window the push measurement publishes (far after the seeded history).
FIRST_K = 100_000


def publisher(http_url: str, redis_url: str | None, symbol: str) -> tuple[Callable[[int], int], Callable[[], None]]:
    """``(publish, close)``: ``publish(k)`` publishes candle ``k`` of ``symbol`` through the cache
    API and returns the wall-clock time (ns) taken just before the publish."""
    if redis_url:
        from cryptolab.cache import RedisCache

        cache = RedisCache(redis_url)

        def publish_redis(k: int) -> int:
            candle = bench_candle(symbol, k)
            stamp = time.time_ns()
            cache.publish([candle])
            return stamp

        return publish_redis, cache.close
    client = httpx.Client(base_url=http_url, timeout=30)

    def publish_remote(k: int) -> int:
        answer = client.post(PUBLISH_PATH, params={"symbol": symbol, "k": k})
        answer.raise_for_status()
        return int(answer.json()["t_ns"])

    return publish_remote, client.close


async def _connect_all(url: str, n: int) -> list[Any]:
    from websockets.asyncio.client import connect

    conns: list[Any] = []
    for start in range(0, n, 50):  # 50 handshakes at a time
        conns += await asyncio.gather(*(connect(url, open_timeout=120, max_queue=None)
                                        for _ in range(min(50, n - start))))
    return conns


async def _clients_seen(http_url: str, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=http_url, timeout=30) as http:
        while True:
            stream = (await http.get("/health")).json().get("stream", {})
            if stream.get("subscribed") and stream.get("clients") == n:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server has {stream.get('clients')} WebSocket clients, not {n}")
            await asyncio.sleep(0.1)


async def _run(ws_url: str, http_url: str, clients: int, publish: Callable[[int], int], count: int,
               warmup: int, rate: float) -> tuple[dict[int, int], list[list[tuple[int, bytes | str]]], float]:
    conns = await _connect_all(ws_url, clients)
    received: list[list[tuple[int, bytes | str]]] = [[] for _ in conns]
    total = warmup + count
    try:
        await _clients_seen(http_url, clients, 120)

        async def receive(i: int, ws: Any) -> None:
            mine = received[i]
            while len(mine) < total:
                msg = await ws.recv()
                mine.append((time.time_ns(), msg))

        stamps: dict[int, int] = {}

        def paced() -> None:
            t0 = time.monotonic()
            for i in range(total):
                k = FIRST_K + i
                stamps[k] = publish(k)
                pause = t0 + (i + 1) / rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)

        started = time.monotonic()
        tasks = [asyncio.create_task(receive(i, ws)) for i, ws in enumerate(conns)]
        sender = threading.Thread(target=paced, name="bench-ws-publisher", daemon=True)
        sender.start()
        await asyncio.to_thread(sender.join)
        _done, pending = await asyncio.wait(tasks, timeout=60)
        for task in pending:
            task.cancel()
        seconds = time.monotonic() - started
    finally:
        await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    return stamps, received, seconds


def measure_push(ws_base: str, http_url: str, redis_url: str | None, symbol: str, *, clients: int,
                 seconds: float, rate: float, warmup: int = 5) -> dict[str, Any]:
    """Push latency of ``rate`` updates/s for ``seconds`` to ``clients`` WebSocket clients.

    Returns
    -------
    dict
        ``ms_p50``, ``ms_p99``, ``ms_max`` over every (update, client) receipt after the
        ``warmup`` updates, ``expected`` and ``received`` receipts, ``publisher``.
    """
    count = max(1, round(seconds * rate))
    publish, close = publisher(http_url, redis_url, symbol)
    try:
        run = _run(f"{ws_base}/ws/candles?symbols={symbol}&interval=1m", http_url, clients, publish, count, warmup,
                   rate)
        with ThreadPoolExecutor(1) as pool:  # a loop of its own: a notebook's kernel already runs one
            stamps, received, took = pool.submit(asyncio.run, run).result()
    finally:
        close()
    counted = {k for i, k in enumerate(sorted(stamps)) if i >= warmup}
    ms: list[float] = []
    complete = 0
    for mine in received:
        got = set()
        for t_ns, msg in mine:
            k = (int(orjson.loads(msg)["window_start"]) - bench_candle(symbol, 0).window_start) // 60_000
            if k in counted:
                ms.append((t_ns - stamps[k]) / 1e6)
                got.add(k)
        complete += got == counted
    return {"clients": clients, "updates": len(counted), "warmup_updates": warmup, "rate_per_s": rate,
            "expected": len(counted) * clients, "received": len(ms), "clients_with_every_update": complete,
            "ms_p50": rnd(percentile(ms, 50)), "ms_p99": rnd(percentile(ms, 99)),
            "ms_max": rnd(max(ms)) if ms else None, "seconds": rnd(took, 2),
            "publisher": "RedisCache.publish (another process)" if redis_url else
                         "MemoryCache.publish in the server's process (bench-only route)"}
