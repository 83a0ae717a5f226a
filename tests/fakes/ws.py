"""A local websocket server that replays real exchange captures (``../shared/data/ws/``).

Capture lines look like ``<receive time>: <json>`` (frames the exchange sent), with
some lines carrying the URL and a direction first: ``<url> <-> <time>`` marks a
connection, ``<url> <- <time>: <json>`` a frame the *client* sent (a subscription).
:func:`read_capture` parses them; :func:`exchange_frames` keeps what the exchange sent.

Usage::

    from fakes.ws import FakeExchange, exchange_frames

    frames = exchange_frames(shared_data / "ws" / "coinbase_ws_feed_capture.txt")
    with FakeExchange(frames, drop_after=50, overlap=5, ping_interval=0.05) as server:
        source = CoinbaseMatches(["BAND-GBP"], url=server.url, ...)
        ...
        server.connections[0].received   # the subscribe message(s)
        server.pongs                     # pongs the client answered to our pings

Per connection the server sends the next frames of the capture (from a shared cursor);
with ``drop_after=N`` it aborts the TCP connection after N frames (no close frame, like a
network drop), and the next connection resumes ``overlap`` frames earlier, so the client
sees duplicates it must drop. When every frame is sent it closes normally, or with
``hold_open=True`` keeps the connection open and silent (optionally sending Coinbase
``heartbeat`` frames every ``heartbeat_every`` seconds).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from fakes._loop import LoopServer

_LINE_RE = re.compile(
    r"^(?:(?P<url>\S+://\S+)\s+(?P<dir><->|<-|->)\s+)?(?P<time>\d+(?:\.\d+)?)(?::\s(?P<json>.*))?$"
)


@dataclass(frozen=True)
class CaptureLine:
    """One capture line: ``direction`` is ``in`` (exchange to client), ``out`` or ``connect``."""

    line_no: int
    recv_time: float
    direction: str
    url: str | None
    payload: str | None


def read_capture(path: str | Path) -> list[CaptureLine]:
    """Parse a capture file (blank lines skipped; malformed lines raise ValueError)."""
    out: list[CaptureLine] = []
    for no, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        m = _LINE_RE.match(line)
        if m is None:
            raise ValueError(f"{path}:{no}: not a capture line: {line[:80]!r}")
        d = m.group("dir")
        direction = "connect" if d == "<->" else "out" if d == "<-" else "in"
        out.append(CaptureLine(no, float(m.group("time")), direction, m.group("url"), m.group("json")))
    return out


def exchange_frames(path: str | Path) -> list[str]:
    """The frames the exchange sent, in order."""
    return [c.payload for c in read_capture(path) if c.direction == "in" and c.payload is not None]


def capture_url(path: str | Path) -> str | None:
    """The URL the capture was recorded from."""
    for c in read_capture(path):
        if c.url:
            return c.url
    return None


@dataclass
class Connection:
    """What one client connection did."""

    path: str
    received: list[str] = field(default_factory=list)
    sent: int = 0


@dataclass
class FakeExchange(LoopServer):
    """Replay ``frames`` to websocket clients; see the module docs."""

    _what = "fake exchange"

    frames: Sequence[str]
    drop_after: int | None = None
    overlap: int = 0
    ping_interval: float | None = None
    heartbeat_every: float | None = None
    hold_open: bool = False
    frame_delay: float = 0.0
    refuse_first: int = 0
    connections: list[Connection] = field(default_factory=list)
    pongs: int = 0
    refused: int = 0

    def __post_init__(self) -> None:
        self._cursor = 0
        super().__init__()
        self._port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._port}"

    @property
    def sent_total(self) -> int:
        return sum(c.sent for c in self.connections)

    # -- server ---------------------------------------------------------------------------

    async def _pinger(self, ws: ServerConnection) -> None:
        assert self.ping_interval is not None
        while True:
            await asyncio.sleep(self.ping_interval)
            try:
                waiter = await ws.ping()
                await asyncio.wait_for(waiter, timeout=5)
                self.pongs += 1
            except Exception:
                return

    async def _heartbeats(self, ws: ServerConnection) -> None:
        assert self.heartbeat_every is not None
        seq = 0
        while True:
            await asyncio.sleep(self.heartbeat_every)
            seq += 1
            frame = {"type": "heartbeat", "last_trade_id": 0, "product_id": "BTC-USD",
                     "sequence": seq, "time": "2021-04-17T16:43:37.000000Z"}
            try:
                await ws.send(json.dumps(frame))
            except Exception:
                return

    async def _handler(self, ws: ServerConnection) -> None:
        conn = Connection(path=ws.request.path if ws.request is not None else "")
        self.connections.append(conn)
        tasks = []
        if self.ping_interval:
            tasks.append(asyncio.create_task(self._pinger(ws)))

        async def reader() -> None:
            async for msg in ws:
                conn.received.append(msg if isinstance(msg, str) else msg.decode())

        tasks.append(asyncio.create_task(reader()))
        try:
            await asyncio.sleep(0.05)  # let the client subscribe first, like a real exchange
            start = max(0, self._cursor - self.overlap) if self.connections[:-1] else 0
            i = start
            while i < len(self.frames):
                if self.drop_after is not None and conn.sent >= self.drop_after:
                    self._cursor = i
                    assert ws.transport is not None
                    ws.transport.abort()  # a network drop: no close frame
                    return
                await ws.send(self.frames[i])
                conn.sent += 1
                i += 1
                if self.frame_delay:
                    await asyncio.sleep(self.frame_delay)
            self._cursor = i
            if self.hold_open:
                if self.heartbeat_every:
                    tasks.append(asyncio.create_task(self._heartbeats(ws)))
                await ws.wait_closed()
            else:
                await asyncio.sleep(0.05)
                await ws.close()
        finally:
            for t in tasks:
                t.cancel()

    async def _process_request(self, connection: ServerConnection, request: Any) -> Any:
        if self.refused < self.refuse_first:
            self.refused += 1
            return connection.respond(503, "Service Unavailable\n")
        return None

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with serve(self._handler, "127.0.0.1", 0, ping_interval=None, compression=None,
                         process_request=self._process_request) as server:
            sock = next(iter(server.sockets))
            self._port = sock.getsockname()[1]
            self._ready.set()
            await self._stop.wait()
