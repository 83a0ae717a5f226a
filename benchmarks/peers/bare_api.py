"""The ``api`` section's bench-only routes, added to cryptolab's application in the benchmark's
server process only (never in ``cryptolab.api``'s own routes).

- ``GET /bench/bare``: a bare FastAPI endpoint returning a constant: the ceiling of the server
  (uvicorn, FastAPI, the API's own middleware) that ``/api/v1/latest`` is compared with.
- ``POST /bench/publish?symbol=S&k=K``: publish :func:`bench_candle` ``(S, K)`` through the
  server's own cache (``Cache.publish``) and answer the wall-clock time (ns) just before the
  publish: how the WebSocket push latency is measured when the cache is the in-process one,
  which only the server's own process can publish to.

Examples
--------
>>> c = bench_candle("BENCH-USD", 2)
>>> c.window_start - BENCH_T0, c.final
(120000, True)
"""

from __future__ import annotations

import time
from typing import Final

from fastapi import FastAPI, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from cryptolab.models import Candle

__all__ = ["BARE_BODY", "BARE_PATH", "BENCH_T0", "PUBLISH_PATH", "bench_candle", "with_bench_routes"]

#: The bare endpoint, and the constant it answers.
BARE_PATH: Final = "/bench/bare"
BARE_BODY: Final = b'{"ok":true}'
#: The in-process publisher's route.
PUBLISH_PATH: Final = "/bench/publish"
#: Window start of candle 0 (2023-11-14 22:14 UTC).
BENCH_T0: Final = 1_700_000_040_000


def bench_candle(symbol: str, k: int) -> Candle:
    """The ``k``-th 1m candle of ``symbol``'s benchmark series (window ``k`` from :data:`BENCH_T0`)."""
    ws = BENCH_T0 + k * 60_000
    price = 100.0 + (k % 97) * 0.25
    return Candle(symbol=symbol, interval="1m", window_start=ws, window_end=ws + 60_000, open=price,
                  high=price + 1.5, low=price - 0.5, close=price + 0.25, volume=1.0 + (k % 13) / 8, vwap=price,
                  trades=3 + k % 7, first_ts=ws + 1, last_ts=ws + 59_000, high_ts=ws + 10, low_ts=ws + 20,
                  final=True)


def with_bench_routes(app: FastAPI) -> FastAPI:
    """``app`` (from :func:`cryptolab.api.create_app`) with the bench-only routes added."""

    @app.get(BARE_PATH, include_in_schema=False)
    async def bare() -> Response:
        return Response(BARE_BODY, media_type="application/json")

    @app.post(PUBLISH_PATH, include_in_schema=False)
    async def publish(symbol: str = Query(...), k: int = Query(..., ge=0)) -> Response:
        candle = bench_candle(symbol, k)
        cache = app.state.api.cache

        def send() -> int:
            stamp = time.time_ns()
            cache.publish([candle])
            return stamp

        stamp = await run_in_threadpool(send)
        return Response(b'{"t_ns":%d}' % stamp, media_type="application/json")

    return app
