"""WebSocket routes: ``/ws/candles`` (every candle update) and ``/ws/alerts``.

Each frame is one candle (or alert) JSON object, exactly as the cache publishes it. Clients
are fed by the process's :class:`~cryptolab.api.fanout.Hub`: one cache subscription, however
many clients. A client that falls :data:`~cryptolab.api.fanout.DEFAULT_QUEUE` messages behind
is closed with code :data:`~cryptolab.api.fanout.SLOW_CLIENT_CLOSE` (1008). With
``?since=<epoch ms or ISO-8601>`` a (re)connecting client first gets, from the store, the
candles (or alerts) whose window starts at or after it, then the live updates; an update in
both is sent twice (key by ``(symbol, interval, window_start)``, keep the highest ``revision``).
A bad parameter is answered with one error frame (the API's error JSON) and close code 1008.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Final

import anyio
from fastapi import APIRouter, WebSocket
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect

from cryptolab.api.encode import candles_from_frame
from cryptolab.api.errors import error_body
from cryptolab.api.fanout import SLOW_CLIENT_CLOSE, Client
from cryptolab.api.params import (
    MAX_LIMIT,
    interval_param,
    reject_unknown_query,
    symbols_param,
    time_param,
)
from cryptolab.api.state import ApiState, api_state
from cryptolab.cache import ALERTS_CHANNEL, updates_channel
from cryptolab.errors import CryptolabError, ValidationError
from cryptolab.models import encode_alert, encode_candle

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["streams"])

#: Close code of a refused request (bad parameter): policy violation.
BAD_REQUEST_CLOSE: Final = 1008
#: Close code when the store fails during a replay: try again later.
UNAVAILABLE_CLOSE: Final = 1013


async def _refuse(ws: WebSocket, exc: ValidationError) -> None:
    await ws.accept()
    await ws.send_text(error_body("bad_request", str(exc), exc.field).decode())
    await ws.close(BAD_REQUEST_CLOSE, str(exc)[:120])


async def _serve(ws: WebSocket, state: ApiState, channels: set[str],
                 replay: Callable[[], list[bytes]] | None) -> None:
    """Accept, register with the hub, replay, then pump live updates until either side stops."""
    await ws.accept()
    hub = state.hub
    client = hub.add(channels)  # live updates queue from here on: the replay misses nothing
    try:
        if replay is not None:
            try:
                frames = await run_in_threadpool(replay)
            except CryptolabError as exc:
                await ws.send_text(error_body("unavailable", str(exc)).decode())
                await ws.close(UNAVAILABLE_CLOSE, "the store does not answer")
                return
            for frame in frames:
                await ws.send_text(frame.decode())
        await _pump(ws, client)
    except WebSocketDisconnect:
        pass
    finally:
        hub.remove(client)


async def _pump(ws: WebSocket, client: Client) -> None:
    async def send() -> None:
        while True:
            await ws.send_text(await client.queue.get())

    async def receive() -> None:
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass  # clients have nothing to say; their frames are read and ignored

    async with anyio.create_task_group() as tasks:

        async def until_done(part: Callable[[], Awaitable[object]]) -> None:
            # the first to end (client gone, send failed, or dropped as slow) ends them all
            with contextlib.suppress(Exception):
                await part()
            tasks.cancel_scope.cancel()

        for part in (send, receive, client.kicked.wait):
            tasks.start_soon(until_done, part)
    if client.kicked.is_set():
        log.info("dropping a slow WebSocket client (%s)", ws.client)
        with contextlib.suppress(Exception), anyio.move_on_after(30.0):
            await ws.close(SLOW_CLIENT_CLOSE, "too slow: updates were queueing up")


@router.websocket("/ws/candles")
async def ws_candles(ws: WebSocket, symbols: str | None = None, interval: str = "1m",
                     since: str | None = None, token: str | None = None) -> None:
    """Every update (open, final, revised) of ``symbols`` (comma-separated) at ``interval``."""
    state = api_state(ws)
    try:
        reject_unknown_query(ws)
        if symbols is None:
            raise ValidationError("symbols", "required, e.g. ?symbols=BTC-USD,ETH-USD&interval=1m")
        names, iv = symbols_param(symbols), interval_param(interval)
        since_ms = time_param(since, "since")
    except ValidationError as exc:
        await _refuse(ws, exc)
        return

    def replay() -> list[bytes]:
        out: list[bytes] = []
        for name in names:
            frame = state.store.history(name, iv, since_ms, limit=MAX_LIMIT)
            out += (encode_candle(c) for c in candles_from_frame(frame))
        return out

    await _serve(ws, state, {updates_channel(n, iv) for n in names},
                 None if since_ms is None else replay)


@router.websocket("/ws/alerts")
async def ws_alerts(ws: WebSocket, since: str | None = None, token: str | None = None) -> None:
    """Every alert as it is raised."""
    state = api_state(ws)
    try:
        reject_unknown_query(ws)
        since_ms = time_param(since, "since")
    except ValidationError as exc:
        await _refuse(ws, exc)
        return

    def replay() -> list[bytes]:
        return [encode_alert(a) for a in state.store.alert_list(start=since_ms, limit=MAX_LIMIT)]

    await _serve(ws, state, {ALERTS_CHANNEL}, None if since_ms is None else replay)
