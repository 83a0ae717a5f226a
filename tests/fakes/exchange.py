"""The stand-in exchange: one local market on 127.0.0.1 speaking Binance's (or Coinbase
Exchange's) real REST and websocket APIs, so ccxt -- pointed at it with ``api_url`` /
``ws_url`` -- reads it unchanged.

One :class:`~fakes.tape.Tape` is the market. Its trades *happen* in order; the websocket
side publishes each as it happens to the clients subscribed to its stream, and the REST
side serves what has happened so far: the trade history and, derived from the same trades,
Binance's klines. When the trades happen:

* ``publish=False``: all of them before the stand-in starts (a REST-only history server);
* ``paced=True``: at their own times on the wall clock (a tape generated around "now" is a
  market with a past, served over REST, that keeps trading live while a test runs);
* otherwise (default): one after another as fast as the clients take them, once ``expect``
  streams are subscribed.

Protocols, as ccxt and ccxt.pro use them (REST and websocket share one host and port):

``binance`` (spot, and USD-M futures for ``binanceusdm`` with ``futures=True``)
    websocket: ccxt connects to ``/ws/<n>`` (raw payloads; a path ending in ``/stream``
    gets the combined ``{"stream":..., "data":...}`` wrapper), sends ``{"method":
    "SUBSCRIBE","params":["btcusdt@aggTrade"],"id":N}`` and gets ``{"result":null,"id":N}``.
    REST: ``/api/v3/ping`` ``{}``; ``/api/v3/time``; ``/api/v3/exchangeInfo`` (the tape's spot
    markets, ``load_markets``), ``/fapi/v1/exchangeInfo`` (the same as perpetuals with
    ``futures``), ``/dapi/v1/exchangeInfo`` (none); ``/api/v3/klines?symbol&interval&
    startTime&endTime&limit`` (``fetch_ohlcv``: 12-field arrays, at most ``limit``, default
    500, max :attr:`StandInExchange.max_limit`; a window without trades is a flat zero-volume
    kline at the previous close, as on Binance); ``/api/v3/aggTrades`` and ``/fapi/v1/aggTrades``
    (``fetch_trades``: ``symbol``, ``fromId``, ``startTime``, ``endTime``, ``limit``; oldest
    first; startTime and endTime more than an hour apart is Binance's error -1127);
    ``/api/v3/trades?symbol&limit`` (the most recent).
``coinbase`` (ccxt's ``coinbaseexchange``)
    websocket: ``{"type":"subscribe","product_ids":[...],"channels":["matches"]}`` answered
    by a ``subscriptions`` frame, then ``match`` frames. REST: ``/products``, ``/currencies``,
    ``/products/<id>/trades`` (the newest ``limit`` trades, newest first).

Faults. REST: :meth:`StandInExchange.script` queues behaviours, each consumed by one request
whose path ends with ``path`` (default any): ``"ok"``, ``"429"`` (Binance's -1003 body,
``Retry-After: retry_after_s``), ``"429-no-retry-after"``, ``"418"`` (IP ban, ``Retry-After``),
``"500"``, ``"empty"`` (200 with ``[]``), ``("limit", n)`` (this page holds at most ``n``
items), or a ``(status, headers, body)`` tuple; ``rest_history=K`` makes the trade history
reach back only K trades, ``rest_fail=True`` answers every trade-history request with a 500.
Websocket: with ``drop_after=N`` every connection is aborted (no close frame, a network drop)
once N trades were published since the last (re)connection, ``drops`` times; the next
``missed`` trades of the tape happen while no client is connected (only REST can give them
back); after the reconnection the last ``overlap`` trades are published again (duplicates
the client must drop).

Usage::

    tape = Tape.generated("BTC/USDT", now - 2 * HOUR, now + HOUR, mean_gap_ms=500)
    with StandInExchange("binance", tape, paced=True) as ex:
        ex.script("429", path="/api/v3/klines")   # the next klines request gets a 429
        cryptolab.live("binance", symbols=["BTC/USDT"], api_url=ex.api_url, ws_url=ex.ws_url)
        ex.published                               # the trades the websocket sent
        [r.path for r in ex.requests]               # every REST request, in order
"""

from __future__ import annotations

import asyncio
import bisect
import json
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response

from fakes._loop import LoopServer
from fakes.tape import (
    Tape,
    TapeTrade,
    binance_interval_ms,
    build_klines,
    split_pair,
    tape_from_frames,
)

__all__ = ["Request", "StandInExchange", "Tape", "TapeTrade", "WsClient", "tape_from_frames"]

_HOUR_MS = 3_600_000

RATE_LIMIT_BODY = {
    "code": -1003,
    "msg": "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. "
    "Please use WebSocket Streams for live updates to avoid polling the API.",
}
BANNED_BODY = {
    "code": -1003,
    "msg": "Way too much request weight used; IP banned until 1700000000000. "
    "Please use WebSocket Streams for live updates to avoid bans.",
}


@dataclass
class Request:
    """One REST request the stand-in received, and the status it answered."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int = 0


@dataclass
class WsClient:
    """One websocket connection: its path, what it sent, what it subscribed."""

    ws: ServerConnection
    path: str
    received: list[str] = field(default_factory=list)
    streams: set[str] = field(default_factory=set)
    sent: int = 0


@dataclass
class _Scripted:
    behaviour: Any
    path: str | None


class _ApiError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class StandInExchange(LoopServer):
    """See the module docs; a context manager (or :meth:`start` / :meth:`stop`).

    ``expect`` is how many subscribed streams to wait for before publishing (after every
    reconnection too); ``markets`` lists market ids beyond the tape's; ``hold_open`` keeps
    connections open once the tape is done (else they are closed normally); ``max_limit`` is
    the REST page cap (Binance: 1000); ``retry_after_s`` the ``Retry-After`` of a scripted
    429/418; ``futures`` lists the markets as USD-M perpetuals too (``binanceusdm``).
    """

    _what = "stand-in exchange"

    protocol: str
    tape: Tape | Iterable[TapeTrade]
    publish: bool = True
    paced: bool = False
    expect: int = 1
    markets: Sequence[str] = ()
    futures: bool = False
    drop_after: int | None = None
    drops: int = 1
    missed: int = 0
    overlap: int = 0
    hold_open: bool = True
    frame_delay: float = 0.0
    rest_history: int | None = None
    rest_fail: bool = False
    max_limit: int = 1000
    retry_after_s: int = 1
    clients: list[WsClient] = field(default_factory=list)
    published: list[TapeTrade] = field(default_factory=list)
    missed_trades: list[TapeTrade] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    done: bool = False

    def __post_init__(self) -> None:
        super().__init__()
        if self.protocol not in ("binance", "coinbase"):
            raise ValueError(f"unknown protocol {self.protocol!r}")
        if not isinstance(self.tape, Tape):
            self.tape = Tape(self.tape)
        self._port = 0
        self._cursor = 0 if self.publish else len(self.tape)  # trades of the tape that happened so far
        self._script: deque[_Scripted] = deque()
        self._lock = threading.Lock()

    @property
    def market(self) -> Tape:
        """The tape (the market this stand-in serves)."""
        assert isinstance(self.tape, Tape)
        return self.tape

    # -- addresses -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The websocket base (``ws://127.0.0.1:PORT``): the ``ws_url`` for ``binanceusdm`` and
        ``coinbaseexchange``."""
        return f"ws://127.0.0.1:{self._port}"

    @property
    def spot_ws_url(self) -> str:
        """The websocket base for ccxt's ``binance`` (spot): ccxt tells a spot connection by
        ``/stream`` in its URL (``wss://stream.binance.com``), so the prefix keeps one there."""
        return f"{self.url}/stream"

    @property
    def ws_url(self) -> str:
        """The ``ws_url`` to give ccxt's ``binance`` (spot) or ``coinbaseexchange``."""
        return self.spot_ws_url if self.protocol == "binance" else self.url

    @property
    def api_url(self) -> str:
        """The ``api_url`` to give ccxt (``http://127.0.0.1:PORT``)."""
        return f"http://127.0.0.1:{self._port}"

    # -- control ---------------------------------------------------------------------------

    def script(self, *behaviours: Any, path: str | None = None) -> None:
        """Queue REST behaviours for the next requests whose path ends with ``path`` (any when None)."""
        with self._lock:
            self._script.extend(_Scripted(b, path) for b in behaviours)

    def data_requests(self, path: str = "/api/v3/klines") -> list[Request]:
        """The REST requests received on ``path``."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # -- what happened -----------------------------------------------------------------------

    def happened(self, market: str) -> list[TapeTrade]:
        """The trades of ``market`` (ccxt symbol) that happened so far, in time order."""
        tape = self.market
        if self.paced:
            return tape.trades(market, None, _now_ms() + 1)
        if self._cursor >= len(tape):
            return tape.trades(market)
        return sorted((t for t in tape.sequence[: self._cursor] if t.market == market), key=lambda t: t.ts_ms)

    def _history(self, market: str) -> list[TapeTrade]:
        """The trades of a market that happened so far, as far back as REST reaches."""
        trades = self.happened(market)
        if self.rest_history is not None:
            trades = trades[-self.rest_history:] if self.rest_history else []
        return trades

    # -- websocket ---------------------------------------------------------------------------

    def _live(self) -> list[WsClient]:
        return [c for c in self.clients if c.ws.state.name == "OPEN"]

    def _subscribed(self) -> set[str]:
        return set().union(*(c.streams for c in self._live())) if self.clients else set()

    async def _on_message(self, client: WsClient, text: str) -> None:
        client.received.append(text)
        msg = json.loads(text)
        if self.protocol == "binance" and msg.get("method") == "SUBSCRIBE":
            client.streams.update(msg["params"])
            await client.ws.send(json.dumps({"result": None, "id": msg["id"]}))
        elif self.protocol == "coinbase" and msg.get("type") == "subscribe":
            client.streams.update(msg["product_ids"])
            await client.ws.send(json.dumps({"type": "subscriptions", "channels": [
                {"name": ch, "product_ids": sorted(client.streams)} for ch in msg["channels"]]}))

    async def _handler(self, ws: ServerConnection) -> None:
        client = WsClient(ws, ws.request.path if ws.request is not None else "")
        self.clients.append(client)
        try:
            async for msg in ws:
                await self._on_message(client, msg if isinstance(msg, str) else msg.decode())
        except ConnectionClosed:
            pass  # the drops this stand-in makes

    def _frame(self, client: WsClient, trade: TapeTrade) -> str:
        payload = trade.ws_payload(self.protocol)
        if self.protocol == "binance" and client.path.split("?")[0].rstrip("/").endswith("/stream"):
            return json.dumps({"stream": trade.stream_name(self.protocol), "data": payload})
        return json.dumps(payload)

    async def _until(self, cond: Any) -> None:
        while not cond():
            await asyncio.sleep(0.005)

    def _skip_past(self) -> None:
        """Paced: the trades whose time has come happened, unseen by the websocket (REST has them)."""
        times = [t.ts_ms for t in self.market.sequence]
        self._cursor = max(self._cursor, bisect.bisect_right(times, _now_ms()))

    async def _publisher(self) -> None:
        tape = self.market.sequence
        if not self.publish:
            self.done = True
            return
        await self._until(lambda: len(self._subscribed()) >= self.expect)
        if self.paced:
            self._skip_past()
        since_connect, drops_left = 0, self.drops
        while self._cursor < len(tape):
            if self.drop_after is not None and drops_left and since_connect >= self.drop_after:
                drops_left -= 1
                for c in self._live():
                    assert c.ws.transport is not None
                    c.ws.transport.abort()  # a network drop: no close frame
                await self._until(lambda: not self._live())
                gone = tape[self._cursor: self._cursor + self.missed]
                self.missed_trades.extend(gone)
                self._cursor = max(0, self._cursor + len(gone) - self.overlap)
                await self._until(lambda: len(self._subscribed()) >= self.expect)
                since_connect = 0
            trade = tape[self._cursor]
            if self.paced:
                wait = trade.ts_ms / 1000 - time.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            self._cursor += 1
            stream = trade.stream_name(self.protocol)
            targets = [c for c in self._live() if stream in c.streams]
            if not targets:
                continue  # nobody subscribed: it happens on the market (REST has it), unseen
            for c in targets:
                await c.ws.send(self._frame(c, trade))
                c.sent += 1
            self.published.append(trade)
            since_connect += 1
            if self.frame_delay:
                await asyncio.sleep(self.frame_delay)
        self.done = True
        if not self.hold_open:
            await asyncio.sleep(0.05)
            for c in self._live():
                await c.ws.close()

    # -- REST --------------------------------------------------------------------------------

    def _next_behaviour(self, path: str) -> Any:
        for i, s in enumerate(self._script):
            if s.path is None or path.endswith(s.path):
                del self._script[i]
                return s.behaviour
        return "ok"

    async def _process_request(self, connection: ServerConnection, request: HttpRequest) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        parts = urlsplit(request.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        req = Request(parts.path, query, {k.lower(): v for k, v in request.headers.raw_items()})
        with self._lock:
            self.requests.append(req)
            behaviour = self._next_behaviour(parts.path)
        status, extra, body = self._answer(parts.path, query, behaviour)
        req.status = status
        data = body.encode()
        headers = Headers([("Content-Type", "application/json;charset=UTF-8"), ("Content-Length", str(len(data))),
                           ("Connection", "close"), *extra.items()])
        return Response(status, HTTPStatus(status).phrase, headers, data)

    def _answer(self, path: str, q: dict[str, str], behaviour: Any) -> tuple[int, dict[str, str], str]:
        if isinstance(behaviour, tuple) and behaviour[0] != "limit":
            status, headers, body = behaviour
            return int(status), dict(headers), str(body)
        if behaviour in ("429", "418"):
            body = RATE_LIMIT_BODY if behaviour == "429" else BANNED_BODY
            return int(behaviour), {"retry-after": str(self.retry_after_s)}, json.dumps(body)
        if behaviour == "429-no-retry-after":
            return 429, {}, json.dumps(RATE_LIMIT_BODY)
        if behaviour == "500":
            return 500, {}, json.dumps({"code": -1000, "msg": "An unknown error occurred while processing the request."})
        cap = min(behaviour[1] if isinstance(behaviour, tuple) else self.max_limit, self.max_limit)
        try:
            data = self._binance(path, q, cap) if self.protocol == "binance" else self._coinbase(path, q)
        except _ApiError as exc:
            return exc.status, {}, json.dumps({"code": exc.code, "msg": exc.msg})
        if behaviour == "empty" and isinstance(data, list):
            data = []
        return 200, {"x-mbx-used-weight-1m": str(len(self.requests))}, json.dumps(data)

    # -- Binance -------------------------------------------------------------------------------

    def _market_ids(self) -> list[str]:
        return sorted(set(self.market.market_ids) | set(self.markets))

    def _binance(self, path: str, q: dict[str, str], cap: int) -> Any:
        if path == "/api/v3/ping":
            return {}
        if path == "/api/v3/time":
            return {"serverTime": _now_ms()}
        if path == "/api/v3/exchangeInfo":
            return _exchange_info([_binance_market(mid, futures=False) for mid in self._market_ids()])
        if path in ("/fapi/v1/exchangeInfo", "/dapi/v1/exchangeInfo"):
            futures = self.futures and path.startswith("/fapi")
            return _exchange_info([_binance_market(mid, futures=True) for mid in self._market_ids()] if futures
                                  else [])
        if path == "/api/v3/klines":
            return self._klines(q, cap)
        if path in ("/api/v3/aggTrades", "/fapi/v1/aggTrades"):
            return self._agg_trades(q, cap)
        if path == "/api/v3/trades":
            trades = self._history(self._market(q))[-_limit(q, cap):]
            return [{"id": t.id, "price": t.price, "qty": t.size,
                     "quoteQty": str((Decimal(t.price) * Decimal(t.size)).quantize(Decimal("0.00000001"))),
                     "time": t.ts_ms, "isBuyerMaker": t.buyer_maker, "isBestMatch": True} for t in trades]
        raise _ApiError(404, -1000, f"no such path {path}")

    def _market(self, q: dict[str, str]) -> str:
        market = self.market.market_of(q.get("symbol", ""))
        if market is None:
            raise _ApiError(400, -1121, "Invalid symbol.")
        return market

    def _klines(self, q: dict[str, str], cap: int) -> list[list[Any]]:
        market = self._market(q)
        try:
            iv = binance_interval_ms(q.get("interval", ""))
        except ValueError:
            raise _ApiError(400, -1120, "Invalid interval.") from None
        limit = _limit(q, cap)
        if self.paced:
            now = _now_ms()
            rows = build_klines(self.happened(market), iv, now)
        elif self._cursor >= len(self.market):
            rows = self.market.klines(market, iv)
        else:
            trades = self.happened(market)
            rows = build_klines(trades, iv, trades[-1].ts_ms if trades else 0)
        starts = [r[0] for r in rows]
        start, end = _int(q, "startTime"), _int(q, "endTime")
        lo = 0 if start is None else bisect.bisect_left(starts, start)
        hi = len(rows) if end is None else bisect.bisect_right(starts, end)
        if start is None:  # the most recent
            return rows[max(lo, hi - limit):hi]
        return rows[lo:min(hi, lo + limit)]

    def _agg_trades(self, q: dict[str, str], cap: int) -> list[dict[str, Any]]:
        market = self._market(q)
        if self.rest_fail:
            raise _ApiError(500, -1000, "An unknown error occurred while processing the request.")
        limit = _limit(q, cap)
        start, end, from_id = _int(q, "startTime"), _int(q, "endTime"), _int(q, "fromId")
        if start is not None and end is not None and end - start > _HOUR_MS:
            raise _ApiError(400, -1127, "More than 1 hours between startTime and endTime.")
        trades = self._history(market)
        if start is not None:
            trades = [t for t in trades if t.ts_ms >= start]
        if end is not None:
            trades = [t for t in trades if t.ts_ms <= end]
        if from_id is not None:
            trades = [t for t in trades if t.id >= from_id]
        if start is None and end is None and from_id is None:
            trades = trades[-limit:]
        out = []
        for t in trades[:limit]:
            p = t.payload or {}
            out.append({"a": t.id, "p": t.price, "q": t.size, "f": p.get("f", t.id), "l": p.get("l", t.id),
                        "T": t.ts_ms, "m": t.buyer_maker, "M": True})
        return out

    # -- Coinbase ------------------------------------------------------------------------------

    def _coinbase(self, path: str, q: dict[str, str]) -> Any:
        if path == "/products":
            return [{"id": mid, "base_currency": mid.split("-")[0], "quote_currency": mid.split("-")[1],
                     "quote_increment": "0.00000001", "base_increment": "0.00000001",
                     "display_name": mid.replace("-", "/"), "min_market_funds": "1",
                     "margin_enabled": False, "post_only": False, "limit_only": False,
                     "cancel_only": False, "status": "online", "status_message": "",
                     "trading_disabled": False, "auction_mode": False}
                    for mid in self._market_ids()]
        if path == "/currencies":
            return []
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "products" and parts[2] == "trades":
            if self.rest_fail:
                raise _ApiError(500, -1000, "Internal server error")
            market = self.market.market_of(parts[1])
            trades = self._history(market)[::-1] if market is not None else []
            trades = trades[: min(int(q.get("limit", 100)), 1000)]
            return [{k: t.ws_payload("coinbase")[k] for k in ("trade_id", "side", "size", "price", "time")}
                    for t in trades]
        raise _ApiError(404, -1000, f"no such path {path}")

    # -- server --------------------------------------------------------------------------------

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with serve(self._handler, "127.0.0.1", 0, ping_interval=None, compression=None,
                         process_request=self._process_request) as server:
            sock = next(iter(server.sockets))
            self._port = sock.getsockname()[1]
            publisher = asyncio.create_task(self._publisher())
            self._ready.set()
            await self._stop.wait()
            publisher.cancel()


def _exchange_info(symbols: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "timezone": "UTC",
        "serverTime": _now_ms(),
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
        ],
        "exchangeFilters": [],
        "symbols": symbols,
    }


def _binance_market(mid: str, *, futures: bool) -> dict[str, Any]:
    base, quote = split_pair(mid)
    m: dict[str, Any] = {
        "symbol": mid, "status": "TRADING", "baseAsset": base, "quoteAsset": quote,
        "baseAssetPrecision": 8, "quotePrecision": 8, "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.00000001", "maxPrice": "1000000.00000000",
             "tickSize": "0.00000001"},
            {"filterType": "LOT_SIZE", "minQty": "0.00000001", "maxQty": "10000000.00000000",
             "stepSize": "0.00000001"},
        ],
    }
    if futures:
        m.update({"pair": mid, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
                  "onboardDate": 1569398400000, "marginAsset": quote, "pricePrecision": 6,
                  "quantityPrecision": 0, "underlyingType": "COIN"})
    else:
        m.update({"icebergAllowed": True, "ocoAllowed": True, "quoteOrderQtyMarketAllowed": True,
                  "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
                  "permissions": [], "permissionSets": [["SPOT"]]})
    return m


def _int(q: dict[str, str], key: str) -> int | None:
    raw = q.get(key)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise _ApiError(400, -1100, f"Illegal characters found in parameter '{key}'; legal range is "
                        "'^[0-9]{1,20}$'.") from None


def _limit(q: dict[str, str], cap: int) -> int:
    limit = _int(q, "limit")
    if limit is None:
        limit = 500
    if limit <= 0 or limit > 1000:
        raise _ApiError(400, -1130, "Data sent for parameter 'limit' is not valid.")
    return min(limit, cap)
