"""A fault-injecting TCP proxy in front of one real Kafka broker.

Clients bootstrap through the proxy; it rewrites the broker port in Metadata responses
so that every later connection goes through it too. It can then *lose acknowledgements*:
with ``drop_produce_responses={3, 7}`` the 3rd and 7th Produce responses are swallowed
and the client connection is cut, after the broker has already appended the batch. The
producer sees a dead connection with a request in flight and retries it: a genuine
broker-side retry, which an idempotent producer must not turn into duplicates.

Usage::

    from fakes.kafka_proxy import KafkaProxy

    with KafkaProxy("127.0.0.1:19092", drop_produce_responses={2, 5}) as proxy:
        producer = TickProducer(settings_with(kafka_bootstrap=proxy.bootstrap))
        ...
        proxy.dropped          # how many acknowledgements were lost
        proxy.produce_requests # Produce requests seen (retries included)

Only single-broker clusters are supported (the broker's host must be the proxy's host).
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field

from fakes._loop import LoopServer

_PRODUCE = 0
_METADATA = 3
_API_VERSIONS = 18


def _uvarint(buf: bytes | bytearray, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _skip_tagged(buf: bytes | bytearray, pos: int) -> int:
    n, pos = _uvarint(buf, pos)
    for _ in range(n):
        _, pos = _uvarint(buf, pos)
        size, pos = _uvarint(buf, pos)
        pos += size
    return pos


def rewrite_metadata_ports(frame: bytearray, version: int, port: int) -> int:
    """Rewrite every broker's port in a Metadata response frame (after the size); return how many."""
    flexible = version >= 9
    pos = 4  # correlation id
    if flexible:
        pos = _skip_tagged(frame, pos)  # response header v1
    if version >= 3:
        pos += 4  # throttle_time_ms
    if flexible:
        n, pos = _uvarint(frame, pos)
        n -= 1
    else:
        (n,) = struct.unpack_from(">i", frame, pos)
        pos += 4
    for _ in range(n):
        pos += 4  # node_id
        if flexible:
            ln, pos = _uvarint(frame, pos)
            pos += ln - 1
        else:
            (ln,) = struct.unpack_from(">h", frame, pos)
            pos += 2 + ln
        struct.pack_into(">i", frame, pos, port)
        pos += 4
        if version >= 1:  # rack
            if flexible:
                ln, pos = _uvarint(frame, pos)
                pos += max(ln - 1, 0)
            else:
                (ln,) = struct.unpack_from(">h", frame, pos)
                pos += 2 + max(ln, 0)
        if flexible:
            pos = _skip_tagged(frame, pos)
    return int(n)


@dataclass
class KafkaProxy(LoopServer):
    """Proxy ``upstream`` (``host:port``); see the module docs."""

    _what = "proxy"

    upstream: str
    drop_produce_responses: set[int] = field(default_factory=set)
    produce_requests: int = 0
    produce_responses: int = 0
    dropped: int = 0
    connections: int = 0

    def __post_init__(self) -> None:
        host, _, port = self.upstream.rpartition(":")
        self._up_host, self._up_port = host, int(port)
        super().__init__()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def bootstrap(self) -> str:
        return f"{self._up_host}:{self.port}"

    async def _pipe_requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                             inflight: dict[int, tuple[int, int]]) -> None:
        while True:
            head = await reader.readexactly(4)
            (size,) = struct.unpack(">i", head)
            body = await reader.readexactly(size)
            api_key, api_version, corr = struct.unpack_from(">hhi", body, 0)
            inflight[corr] = (api_key, api_version)
            if api_key == _PRODUCE:
                self.produce_requests += 1
            writer.write(head + body)
            await writer.drain()

    async def _pipe_responses(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                              inflight: dict[int, tuple[int, int]]) -> None:
        while True:
            head = await reader.readexactly(4)
            (size,) = struct.unpack(">i", head)
            frame = bytearray(await reader.readexactly(size))
            (corr,) = struct.unpack_from(">i", frame, 0)
            api_key, version = inflight.pop(corr, (-1, -1))
            if api_key == _METADATA:
                rewrite_metadata_ports(frame, version, self.port)
            elif api_key == _PRODUCE:
                self.produce_responses += 1
                if self.produce_responses in self.drop_produce_responses:
                    self.dropped += 1
                    writer.transport.abort()  # the broker appended; the client never hears of it
                    return
            writer.write(head + bytes(frame))
            await writer.drain()

    async def _client(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.connections += 1
        try:
            u_reader, u_writer = await asyncio.open_connection(self._up_host, self._up_port)
        except OSError:
            c_writer.close()
            return
        inflight: dict[int, tuple[int, int]] = {}
        tasks = [asyncio.create_task(self._pipe_requests(c_reader, u_writer, inflight)),
                 asyncio.create_task(self._pipe_responses(u_reader, c_writer, inflight))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for w in (u_writer, c_writer):
                w.transport.abort()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._client, self._up_host, 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
