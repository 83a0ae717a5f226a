"""A local exchange speaking Binance's or Coinbase Exchange's real websocket and REST shapes.

The stand-in replays the trades of a real capture (``../shared/data/ws/``) as a *market*:
a tape of trades published in order to the websocket clients subscribed to them, while
the REST side (same host and port, plain HTTP) serves the market list and the trade
history of the same tape, so ccxt's ``watch_trades`` and ``fetch_trades`` see one market.

Protocols, as ccxt.pro uses them:

``binance`` (spot, and USD-M futures for ``binanceusdm``)
    ccxt connects to ``/ws/<n>`` (raw payloads; a path ending in ``/stream`` gets the
    combined ``{"stream":..., "data":...}`` wrapper), sends ``{"method":"SUBSCRIBE","params":
    ["nknusdt@aggTrade"],"id":N}`` and gets ``{"result":null,"id":N}``. REST:
    ``/api/v3/exchangeInfo``, ``/fapi/v1/exchangeInfo``, ``/dapi/v1/exchangeInfo``,
    ``/api/v3/aggTrades`` and ``/fapi/v1/aggTrades`` (``symbol``, ``startTime``,
    ``endTime``, ``fromId``, ``limit``; oldest first).
``coinbase`` (ccxt's ``coinbaseexchange``)
    ``{"type":"subscribe","product_ids":[...],"channels":["matches"]}`` answered by a
    ``subscriptions`` frame, then ``match`` frames. REST: ``/products``, ``/currencies``,
    ``/products/<id>/trades`` (the newest ``limit`` trades, newest first).

Faults: with ``drop_after=N`` every connection is aborted (no close frame, a network
drop) once N trades were published since the last (re)connection, ``drops`` times;
the next ``missed`` trades of the tape happen while no client is connected (only REST
can give them back); after the reconnection the last ``overlap`` trades are published
again (duplicates the client must drop). ``rest_history=K`` makes the REST trade
history reach back only K trades (older ones are gone), ``rest_fail=True`` answers
every trade-history request with a 500.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from fakes._loop import LoopServer


@dataclass(frozen=True)
class TapeTrade:
    """One trade of the tape: ``stream`` is what a client subscribes to
    (``nknusdt@aggTrade``, ``BAND-GBP``); ``payload`` the exchange's trade object."""

    stream: str
    market_id: str
    trade_id: int
    ts_ms: int
    price: str
    size: str
    payload: dict[str, Any]


def _iso_ms(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(dt.timestamp()) * 1000 + dt.microsecond // 1000


def tape_from_frames(frames: Sequence[str], protocol: str) -> list[TapeTrade]:
    """The trades in a capture's frames (``binance``: trade/aggTrade; ``coinbase``: match)."""
    out: list[TapeTrade] = []
    for frame in frames:
        msg = json.loads(frame)
        if protocol == "binance":
            data = msg.get("data", msg) if "stream" in msg else msg
            event = data.get("e") if isinstance(data, dict) else None
            if event not in ("trade", "aggTrade"):
                continue
            tid = data["a"] if event == "aggTrade" else data["t"]
            out.append(TapeTrade(f"{data['s'].lower()}@{event}", data["s"], int(tid), int(data["T"]),
                                 data["p"], data["q"], data))
        elif protocol == "coinbase":
            if msg.get("type") != "match":
                continue
            out.append(TapeTrade(msg["product_id"], msg["product_id"], int(msg["trade_id"]),
                                 _iso_ms(msg["time"]), msg["price"], msg["size"], msg))
        else:
            raise ValueError(f"unknown protocol {protocol!r}")
    return out


@dataclass
class WsClient:
    """One websocket connection: its path, what it sent, what it subscribed."""

    ws: ServerConnection
    path: str
    received: list[str] = field(default_factory=list)
    streams: set[str] = field(default_factory=set)
    sent: int = 0


def _split_pair(market_id: str) -> tuple[str, str]:
    for quote in ("USDT", "BUSD", "USDC", "EUR", "BTC", "ETH", "BNB", "USD", "GBP"):
        if market_id.endswith(quote) and len(market_id) > len(quote):
            return market_id[: -len(quote)], quote
    raise ValueError(f"cannot split {market_id!r}")


@dataclass
class StandInExchange(LoopServer):
    """See the module docs. ``expect`` is how many subscribed streams to wait for before
    publishing (after every reconnection too); ``markets`` lists market ids beyond those
of the tape's trades; ``hold_open`` keeps connections open once
    the tape is done (else they are closed normally)."""

    _what = "stand-in exchange"

    protocol: str
    tape: Sequence[TapeTrade]
    expect: int = 1
    markets: Sequence[str] = ()
    drop_after: int | None = None
    drops: int = 1
    missed: int = 0
    overlap: int = 0
    hold_open: bool = True
    frame_delay: float = 0.0
    rest_history: int | None = None
    rest_fail: bool = False
    clients: list[WsClient] = field(default_factory=list)
    published: list[TapeTrade] = field(default_factory=list)
    missed_trades: list[TapeTrade] = field(default_factory=list)
    rest_requests: list[str] = field(default_factory=list)
    done: bool = False

    def __post_init__(self) -> None:
        super().__init__()
        self._port = 0
        self._cursor = 0  # trades of the tape that happened so far

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._port}"

    @property
    def spot_ws_url(self) -> str:
        """The websocket base for ccxt's ``binance`` (spot): ccxt tells a spot connection by
        ``/stream`` in its URL (``wss://stream.binance.com``), so the prefix keeps one there."""
        return f"{self.url}/stream"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    # -- websocket ------------------------------------------------------------------------

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
        if self.protocol == "binance" and client.path.split("?")[0].rstrip("/").endswith("/stream"):
            return json.dumps({"stream": trade.stream, "data": trade.payload})
        return json.dumps(trade.payload)

    async def _until(self, cond: Any) -> None:
        while not cond():
            await asyncio.sleep(0.005)

    async def _publisher(self) -> None:
        await self._until(lambda: len(self._subscribed()) >= self.expect)
        since_connect, drops_left = 0, self.drops
        while self._cursor < len(self.tape):
            if self.drop_after is not None and drops_left and since_connect >= self.drop_after:
                drops_left -= 1
                for c in self._live():
                    assert c.ws.transport is not None
                    c.ws.transport.abort()  # a network drop: no close frame
                await self._until(lambda: not self._live())
                gone = self.tape[self._cursor: self._cursor + self.missed]
                self.missed_trades.extend(gone)
                self._cursor = max(0, self._cursor + len(gone) - self.overlap)
                await self._until(lambda: len(self._subscribed()) >= self.expect)
                since_connect = 0
            trade = self.tape[self._cursor]
            self._cursor += 1
            targets = [c for c in self._live() if trade.stream in c.streams]
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

    # -- REST -------------------------------------------------------------------------------

    def _market_ids(self) -> list[str]:
        return sorted({t.market_id for t in self.tape} | set(self.markets))

    def _history(self, market_id: str) -> list[TapeTrade]:
        """The trades of a market that happened so far, as far back as REST reaches."""
        trades = [t for t in self.tape[: self._cursor] if t.market_id == market_id]
        if self.rest_history is not None:
            trades = trades[-self.rest_history:] if self.rest_history else []
        return trades

    def _binance_markets(self, futures: bool) -> list[dict[str, Any]]:
        ids = self._market_ids()
        out = []
        for mid in ids:
            base, quote = _split_pair(mid)
            m: dict[str, Any] = {
                "symbol": mid, "status": "TRADING", "baseAsset": base, "quoteAsset": quote,
                "baseAssetPrecision": 8, "quotePrecision": 8, "quoteAssetPrecision": 8,
                "orderTypes": ["LIMIT", "MARKET"], "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": "0.00000001", "maxPrice": "100000",
                     "tickSize": "0.00000001"},
                    {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "10000000", "stepSize": "0.001"}],
            }
            if futures:
                m.update({"pair": mid, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
                          "onboardDate": 1569398400000, "marginAsset": quote, "pricePrecision": 6,
                          "quantityPrecision": 0, "underlyingType": "COIN"})
            else:
                m.update({"isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
                          "permissions": ["SPOT"], "permissionSets": [["SPOT"]]})
            out.append(m)
        return out

    def _binance_agg_trades(self, q: dict[str, str]) -> list[dict[str, Any]]:
        trades = self._history(q["symbol"])
        if "fromId" in q:
            trades = [t for t in trades if t.trade_id >= int(q["fromId"])]
        if "startTime" in q:
            trades = [t for t in trades if t.ts_ms >= int(q["startTime"])]
        if "endTime" in q:
            trades = [t for t in trades if t.ts_ms <= int(q["endTime"])]
        trades = trades[: min(int(q.get("limit", 500)), 1000)]
        return [{k: t.payload[k] for k in ("a", "p", "q", "f", "l", "T", "m") if k in t.payload}
                for t in trades]

    def _rest(self, path: str, q: dict[str, str]) -> tuple[int, Any]:
        if self.protocol == "binance":
            if path == "/api/v3/exchangeInfo":
                return 200, {"timezone": "UTC", "serverTime": 0, "rateLimits": [],
                             "symbols": self._binance_markets(False)}
            if path in ("/fapi/v1/exchangeInfo", "/dapi/v1/exchangeInfo"):
                return 200, {"timezone": "UTC", "serverTime": 0, "rateLimits": [],
                             "symbols": self._binance_markets(True) if path.startswith("/fapi") else []}
            if path in ("/api/v3/aggTrades", "/fapi/v1/aggTrades"):
                if self.rest_fail:
                    return 500, {"code": -1000, "msg": "An unknown error occurred."}
                return 200, self._binance_agg_trades(q)
        elif self.protocol == "coinbase":
            if path == "/products":
                return 200, [{"id": mid, "base_currency": mid.split("-")[0], "quote_currency": mid.split("-")[1],
                              "quote_increment": "0.00000001", "base_increment": "0.00000001",
                              "display_name": mid.replace("-", "/"), "min_market_funds": "1",
                              "margin_enabled": False, "post_only": False, "limit_only": False,
                              "cancel_only": False, "status": "online", "status_message": "",
                              "trading_disabled": False, "auction_mode": False}
                             for mid in self._market_ids()]
            if path == "/currencies":
                return 200, []
            parts = path.strip("/").split("/")
            if len(parts) == 3 and parts[0] == "products" and parts[2] == "trades":
                if self.rest_fail:
                    return 500, {"message": "Internal server error"}
                trades = self._history(parts[1])[::-1][: min(int(q.get("limit", 100)), 1000)]
                return 200, [{k: t.payload[k] for k in ("trade_id", "side", "size", "price", "time")}
                             for t in trades]
        return 404, {"code": -1121, "msg": f"no such path {path}"}

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        u = urlsplit(request.path)
        self.rest_requests.append(request.path)
        status, body = self._rest(u.path, {k: v[-1] for k, v in parse_qs(u.query).items()})
        data = json.dumps(body).encode()
        headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                           ("Connection", "close")])
        return Response(status, HTTPStatus(status).phrase, headers, data)

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
