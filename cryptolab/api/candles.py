"""REST routes of the candles: ``/api/v1/symbols``, ``/candles/{symbol}/{interval}``, ``/latest/...``.

History comes from the store of record; ``latest`` from the cache, falling back to the store's
newest candle (an API started next to a replayed SQLite file answers). Symbols may be
venue-aware (``BINANCE:BTC-USDT``; ``:`` may be sent URL-encoded as ``%3A``).
"""

from __future__ import annotations

import logging

import orjson
from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from cryptolab.api.encode import candles_from_frame, json_array
from cryptolab.api.errors import ERROR_RESPONSES, ApiError
from cryptolab.api.params import (
    MAX_LIMIT,
    IntervalPath,
    SymbolPath,
    interval_param,
    no_unknown_query,
    symbol_param,
    time_param,
)
from cryptolab.api.schemas import CandleOut, CandlesOut, SymbolsOut
from cryptolab.api.state import ApiState, State
from cryptolab.cache import MemoryCache, RedisCache, updates_channel
from cryptolab.errors import CacheError
from cryptolab.models import Candle, encode_candle
from cryptolab.store.times import to_ms

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["candles"], responses=ERROR_RESPONSES,
                   dependencies=[Depends(no_unknown_query)])

_JSON = "application/json"


@router.get("/symbols", response_model=SymbolsOut, summary="Every series in the store")
def symbols(state: State) -> Response:
    """Every (symbol, interval) in the store with its first and last window (epoch ms) and count."""
    series = state.store.info().get("series", [])
    body = {"series": [
        {"symbol": s["symbol"], "interval": s["interval"], "first": to_ms(s["first"]),
         "last": to_ms(s["last"]), "count": s["candles"]}
        for s in series
    ]}
    return Response(orjson.dumps(body), media_type=_JSON)


@router.get("/candles/{symbol:path}/{interval}", response_model=CandlesOut,
            summary="Candle history from the store")
def candles(
    state: State,
    symbol: SymbolPath,
    interval: IntervalPath,
    start: str | None = Query(None, description="first window_start: ISO-8601 or epoch ms"),
    end: str | None = Query(None, description="end (exclusive) of window_start: ISO-8601 or epoch ms"),
    limit: int = Query(1000, ge=1, le=MAX_LIMIT, description="the most recent N of the range"),
    final_only: bool = Query(False, description="only closed windows"),
) -> Response:
    """Candles of one series with ``window_start`` in ``[start, end)``, ascending; the most
    recent ``limit`` of them (default 1,000, at most 10,000)."""
    sym, iv = symbol_param(symbol), interval_param(interval)
    lo, hi = time_param(start, "start"), time_param(end, "end")
    frame = state.store.history(sym, iv, lo, hi, final_only=final_only, limit=limit)
    items = [encode_candle(c) for c in candles_from_frame(frame)]
    head = orjson.dumps({"symbol": sym, "interval": iv, "count": len(items)})
    return Response(head[:-1] + b',"candles":' + json_array(items) + b"}", media_type=_JSON)


async def _cached(state: ApiState, symbol: str, interval: str) -> bytes | None:
    """The cache's newest candle as JSON, read on the event loop. On Redis: from the process's
    mirror of its subscription while that is live (:mod:`cryptolab.api.mirror`), else Redis's
    stored JSON as it is (no decode, no encode; the mirror refreshed from it). The in-process
    cache directly (no I/O); another cache through the thread pool. A hop through the thread
    pool per request cost more than the whole of the read under load."""
    cache = state.cache
    try:
        if isinstance(cache, RedisCache):
            hub, channel = state.hub, updates_channel(symbol, interval)
            if hub.subscribed and (body := hub.mirror.get(channel)) is not None:
                return body
            body = await cache.latest_json_async(symbol, interval)
            if hub.subscribed:
                hub.mirror.refresh(channel, body)
            return body
        if isinstance(cache, MemoryCache):
            candle = cache.latest(symbol, interval)
        else:
            candle = await run_in_threadpool(cache.latest, symbol, interval)
    except CacheError as exc:  # the store still answers
        log.warning("latest from the cache failed, reading the store: %s", exc)
        return None
    return None if candle is None else encode_candle(candle)


def _newest(state: ApiState, symbol: str, interval: str) -> Candle | None:
    newest = candles_from_frame(state.store.history(symbol, interval, limit=1))
    return newest[0] if newest else None


@router.get("/latest/{symbol:path}/{interval}", response_model=CandleOut,
            summary="The newest candle of a series")
async def latest(symbol: SymbolPath, interval: IntervalPath, state: State) -> Response:
    """The newest candle: from the cache, else the store's newest; 404 when there is none."""
    sym, iv = symbol_param(symbol), interval_param(interval)
    body = await _cached(state, sym, iv)
    if body is None:
        candle = await run_in_threadpool(_newest, state, sym, iv)
        if candle is None:
            raise ApiError(404, f"no candle of {sym} {iv} in the cache or the store")
        body = encode_candle(candle)
    return Response(body, media_type=_JSON)
