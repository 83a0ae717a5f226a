"""A local stand-in for Binance's public REST API on 127.0.0.1, serving one :class:`Tape`.

It answers the paths ccxt's ``binance`` class calls, with Binance's response shapes, so
``cryptolab.sources.ccxt_open.open_exchange("binance", api_url=rest.url)`` talks to it
unchanged:

* ``/api/v3/ping`` ``{}``; ``/api/v3/time`` ``{"serverTime": ms}``;
* ``/api/v3/exchangeInfo``: the tape's spot markets (``load_markets``); ccxt also asks
  ``/fapi/v1/exchangeInfo`` and ``/dapi/v1/exchangeInfo`` (futures), answered with no symbols;
* ``/api/v3/klines?symbol&interval&startTime&endTime&limit`` (``fetch_ohlcv``): Binance's
  12-field arrays, openTime in ``[startTime, endTime]``, at most ``limit`` (default 500, max
  :attr:`FakeBinanceRest.max_limit`); a window without trades is a flat zero-volume kline at
  the previous close, as on Binance, from the symbol's first trade to the tape's end;
* ``/api/v3/aggTrades?symbol&fromId&startTime&endTime&limit`` (``fetch_trades``): one
  aggregate trade per tape trade (``f == l == a``); startTime and endTime more than an hour
  apart is Binance's error -1127;
* ``/api/v3/trades?symbol&limit``: the most recent trades.

Klines and trades are both derived from the tape, so candles built from the trades and
the served klines describe the same market. A websocket stand-in can replay the same tape.

Usage::

    from fakes.exchange_rest import FakeBinanceRest, Tape

    tape = Tape.from_trade_csv(shared_data / "trades" / "mtgox_btcusd_2013-01-01.csv", "BTC/USDT")
    with FakeBinanceRest(tape) as rest:
        rest.script("429", path="/api/v3/klines")   # the next klines request gets a 429
        ex = open_exchange("binance", api_url=rest.url)
        ex.fetch_ohlcv("BTC/USDT", "1m", since=tape.start_ms)
        [r.path for r in rest.requests]                # every request, in order

Behaviours for :meth:`FakeBinanceRest.script` (each consumed by one request whose path ends
with ``path``, default any): ``"ok"``, ``"429"`` (Binance's -1003 body, ``Retry-After:
retry_after_s``), ``"429-no-retry-after"``, ``"418"`` (IP ban, ``Retry-After``), ``"500"``,
``"empty"`` (200 with ``[]``), ``("limit", n)`` (this page holds at most ``n`` items, fewer
than asked), or an ``(status, headers, body)`` tuple.
"""

from __future__ import annotations

import bisect
import csv
import json
import random
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptolab.models import Tick
from cryptolab.models.venues import venue_symbol

__all__ = ["FakeBinanceRest", "Request", "Tape", "TapeTrade", "binance_interval_ms"]

_EIGHT = Decimal("0.00000001")
_HOUR_MS = 3_600_000
_UNITS_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}

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


def binance_interval_ms(interval: str) -> int:
    """Milliseconds of a Binance kline interval (``1m``, ``4h``, ``1d``; ``1M`` is not served)."""
    n, unit = int(interval[:-1]), interval[-1]
    if unit not in _UNITS_MS or n <= 0:
        raise ValueError(f"interval {interval!r} is not served")
    return n * _UNITS_MS[unit]


def _fmt(value: Decimal) -> str:
    return str(value.quantize(_EIGHT))


@dataclass(frozen=True)
class TapeTrade:
    """One trade: ``market`` is ccxt's symbol (``BTC/USDT``); price and size as Binance's decimal strings."""

    market: str
    id: int
    ts_ms: int
    price: str
    size: str
    buyer_maker: bool = False

    @property
    def market_id(self) -> str:
        """Binance's market id (``BTCUSDT``)."""
        return self.market.replace("/", "")


class Tape:
    """The trades of a market, by symbol, in id (= time) order; klines are derived from them.

    ``end_ms`` is the tape's "now": klines run to the window holding it (default: the last trade).
    """

    def __init__(self, trades: Iterable[TapeTrade], *, end_ms: int | None = None) -> None:
        by: dict[str, list[TapeTrade]] = {}
        for t in trades:
            by.setdefault(t.market, []).append(t)
        for market, ts in by.items():
            ts.sort(key=lambda t: t.id)
            if any(b.ts_ms < a.ts_ms or b.id == a.id for a, b in zip(ts, ts[1:], strict=False)):
                raise ValueError(f"{market}: trade ids must be unique and in time order")
        self._trades = by
        self._times = {m: [t.ts_ms for t in ts] for m, ts in by.items()}
        self._ids = {m: [t.id for t in ts] for m, ts in by.items()}
        last = max((ts[-1].ts_ms for ts in by.values() if ts), default=0)
        self.end_ms = last if end_ms is None else end_ms
        self._klines: dict[tuple[str, int], list[list[Any]]] = {}
        self._lock = threading.Lock()

    # -- building --------------------------------------------------------------------

    @classmethod
    def from_trade_csv(cls, path: str | Path, market: str, *, first_id: int = 1) -> Tape:
        """A tape from a recorded trade file of ``../shared/data/trades/`` (relabelled ``market``).

        Two layouts: MtGox's ``id,price,amount,type`` (id = microseconds) and Bitstamp's
        headerless ``unix seconds,price,amount``. Trades get ids ``first_id, first_id + 1, ...``.
        """
        rows: list[tuple[int, str, str, bool]] = []
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.reader(f):
                if not row or not row[0].strip().isdigit():
                    continue  # header
                raw = int(row[0])
                ts = raw // 1000 if raw > 10**14 else raw * 1000
                side = len(row) > 3 and row[3].strip() == "ask"
                rows.append((ts, row[1], row[2], side))
        rows.sort(key=lambda r: r[0])  # stable: file order within a millisecond
        return cls(
            TapeTrade(market, first_id + i, ts, _fmt(Decimal(p)), _fmt(Decimal(q)), m)
            for i, (ts, p, q, m) in enumerate(rows)
        )

    @classmethod
    def from_binance_capture(cls, path: str | Path) -> Tape:
        """A tape of the ``aggTrade`` / ``trade`` frames of a Binance websocket capture
        (``../shared/data/ws/binance_*_capture.txt``), with their real ids, times and decimals."""
        from fakes.ws import exchange_frames

        trades: list[TapeTrade] = []
        for frame in exchange_frames(path):
            msg = json.loads(frame)
            data = msg.get("data", msg) if isinstance(msg, dict) else None
            if not isinstance(data, dict) or data.get("e") not in ("aggTrade", "trade"):
                continue
            sym = str(data["s"])
            market = f"{sym[:-4]}/{sym[-4:]}" if sym.endswith(("USDT", "BUSD")) else f"{sym[:-3]}/{sym[-3:]}"
            tid = int(data["a"] if data["e"] == "aggTrade" else data["t"])
            trades.append(TapeTrade(market, tid, int(data["T"]), data["p"], data["q"], bool(data["m"])))
        return cls(trades)

    @classmethod
    def generated(cls, market: str, start_ms: int, end_ms: int, *, seed: int = 0, price: float = 100.0,
                  mean_gap_ms: int = 5_000, quiet: Sequence[tuple[int, int]] = (), first_id: int = 1) -> Tape:
        """A seeded random walk of trades in ``[start_ms, end_ms)``, none in the ``quiet`` spans."""
        rng = random.Random(seed)
        trades: list[TapeTrade] = []
        ts, p, tid = start_ms, Decimal(str(price)), first_id
        while ts < end_ms:
            if not any(a <= ts < b for a, b in quiet):
                p = max(_EIGHT * 100, p * Decimal(str(round(1 + rng.gauss(0, 0.001), 6))))
                size = Decimal(str(round(rng.expovariate(2.0) + 0.001, 8)))
                trades.append(TapeTrade(market, tid, ts, _fmt(p), _fmt(size), rng.random() < 0.5))
                tid += 1
            ts += 1 + int(rng.expovariate(1 / mean_gap_ms))
        return cls(trades, end_ms=end_ms - 1)

    # -- reading ---------------------------------------------------------------------

    @property
    def markets(self) -> list[str]:
        """ccxt symbols of the tape's markets (``BTC/USDT``)."""
        return sorted(self._trades)

    @property
    def start_ms(self) -> int:
        """The first trade's time."""
        return min(ts[0].ts_ms for ts in self._trades.values() if ts)

    def market_of(self, market_id: str) -> str | None:
        """ccxt symbol of a Binance id (``BTCUSDT`` -> ``BTC/USDT``), None when not on the tape."""
        return next((m for m in self._trades if m.replace("/", "") == market_id), None)

    def trades(self, market: str, start_ms: int | None = None, end_ms: int | None = None) -> list[TapeTrade]:
        """The trades of ``market`` with time in ``[start_ms, end_ms)``."""
        ts = self._trades.get(market, [])
        times = self._times.get(market, [])
        lo = 0 if start_ms is None else bisect.bisect_left(times, start_ms)
        hi = len(ts) if end_ms is None else bisect.bisect_left(times, end_ms)
        return ts[lo:hi]

    def ticks(self, market: str, start_ms: int | None = None, end_ms: int | None = None, *,
              exchange: str = "binance") -> list[Tick]:
        """The trades as cryptolab ticks named ``VENUE:BASE-QUOTE`` (the batch reference)."""
        symbol = venue_symbol(exchange, market)
        return [Tick(symbol=symbol, ts_ms=t.ts_ms, price=float(t.price), size=float(t.size), source=exchange,
                     trade_id=str(t.id)) for t in self.trades(market, start_ms, end_ms)]

    def klines(self, market: str, interval_ms: int) -> list[list[Any]]:
        """Binance's klines of ``market``: every window from its first trade's to the tape's end."""
        key = (market, interval_ms)
        with self._lock:
            if key not in self._klines:
                self._klines[key] = self._build_klines(market, interval_ms)
            return self._klines[key]

    def _build_klines(self, market: str, iv: int) -> list[list[Any]]:
        trades = self._trades.get(market, [])
        if not trades:
            return []
        out: list[list[Any]] = []
        i, n = 0, len(trades)
        ws = trades[0].ts_ms - trades[0].ts_ms % iv
        prev_close = trades[0].price
        while ws <= self.end_ms:
            j = i
            while j < n and trades[j].ts_ms < ws + iv:
                j += 1
            chunk = trades[i:j]
            if chunk:
                prices = [Decimal(t.price) for t in chunk]
                vol = sum((Decimal(t.size) for t in chunk), Decimal(0))
                quote = sum((Decimal(t.size) * Decimal(t.price) for t in chunk), Decimal(0))
                taker = [t for t in chunk if not t.buyer_maker]
                tvol = sum((Decimal(t.size) for t in taker), Decimal(0))
                tquote = sum((Decimal(t.size) * Decimal(t.price) for t in taker), Decimal(0))
                o, h, lo, c = chunk[0].price, _fmt(max(prices)), _fmt(min(prices)), chunk[-1].price
                prev_close = c
                counts = (_fmt(vol), _fmt(quote), len(chunk), _fmt(tvol), _fmt(tquote))
            else:
                o = h = lo = c = prev_close
                counts = ("0.00000000", "0.00000000", 0, "0.00000000", "0.00000000")
            vol_s, quote_s, count, tvol_s, tquote_s = counts
            out.append([ws, o, h, lo, c, vol_s, ws + iv - 1, quote_s, count, tvol_s, tquote_s, "0"])
            i = j
            ws += iv
        return out


@dataclass
class Request:
    """One request the stand-in received, and the status it answered."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int = 0


@dataclass
class _Scripted:
    behaviour: Any
    path: str | None


@dataclass
class FakeBinanceRest:
    """The stand-in server; a context manager (or :meth:`start` / :meth:`stop`).

    ``max_limit`` is the server's page cap (Binance: 1000); ``retry_after_s`` the
    ``Retry-After`` of a scripted 429/418.
    """

    tape: Tape
    max_limit: int = 1000
    retry_after_s: int = 1
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._script: deque[_Scripted] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- control ---------------------------------------------------------------------

    def script(self, *behaviours: Any, path: str | None = None) -> None:
        """Queue behaviours for the next requests whose path ends with ``path`` (any when None)."""
        with self._lock:
            self._script.extend(_Scripted(b, path) for b in behaviours)

    @property
    def url(self) -> str:
        """The ``api_url`` to give ccxt (``http://127.0.0.1:PORT``)."""
        assert self._server is not None, "start the stand-in first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def data_requests(self, path: str = "/api/v3/klines") -> list[Request]:
        """The requests received on ``path``."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def start(self) -> FakeBinanceRest:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                fake._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeBinanceRest:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- answers ---------------------------------------------------------------------

    def _next_behaviour(self, path: str) -> Any:
        for i, s in enumerate(self._script):
            if s.path is None or path.endswith(s.path):
                del self._script[i]
                return s.behaviour
        return "ok"

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        req = Request(parts.path, query, {k.lower(): v for k, v in h.headers.items()})
        with self._lock:
            self.requests.append(req)
            behaviour = self._next_behaviour(parts.path)
        status, headers, body = self._answer(parts.path, query, behaviour)
        req.status = status
        _send(h, status, headers, body)

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
        limit_cap = behaviour[1] if isinstance(behaviour, tuple) else self.max_limit
        try:
            data = self._route(path, q, min(limit_cap, self.max_limit))
        except _ApiError as exc:
            return exc.status, {}, json.dumps({"code": exc.code, "msg": exc.msg})
        if behaviour == "empty" and isinstance(data, list):
            data = []
        return 200, {"x-mbx-used-weight-1m": str(len(self.requests))}, json.dumps(data)

    def _route(self, path: str, q: dict[str, str], cap: int) -> Any:
        if path == "/api/v3/ping":
            return {}
        if path == "/api/v3/time":
            return {"serverTime": int(time.time() * 1000)}
        if path == "/api/v3/exchangeInfo":
            return self._exchange_info([_spot_symbol(m) for m in self.tape.markets])
        if path in ("/fapi/v1/exchangeInfo", "/dapi/v1/exchangeInfo"):
            return self._exchange_info([])
        if path == "/api/v3/klines":
            return self._klines(q, cap)
        if path == "/api/v3/aggTrades":
            return self._agg_trades(q, cap)
        if path == "/api/v3/trades":
            market = self._market(q)
            limit = _limit(q, cap)
            trades = self.tape.trades(market)[-limit:]
            return [{"id": t.id, "price": t.price, "qty": t.size,
                     "quoteQty": _fmt(Decimal(t.price) * Decimal(t.size)), "time": t.ts_ms,
                     "isBuyerMaker": t.buyer_maker, "isBestMatch": True} for t in trades]
        raise _ApiError(404, -1000, f"no such path {path}")

    def _exchange_info(self, symbols: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "timezone": "UTC",
            "serverTime": int(time.time() * 1000),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            ],
            "exchangeFilters": [],
            "symbols": symbols,
        }

    def _market(self, q: dict[str, str]) -> str:
        market = self.tape.market_of(q.get("symbol", ""))
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
        rows = self.tape.klines(market, iv)
        starts = [r[0] for r in rows]
        start, end = _int(q, "startTime"), _int(q, "endTime")
        lo = 0 if start is None else bisect.bisect_left(starts, start)
        hi = len(rows) if end is None else bisect.bisect_right(starts, end)
        if start is None:  # the most recent
            return rows[max(lo, hi - limit):hi]
        return rows[lo:min(hi, lo + limit)]

    def _agg_trades(self, q: dict[str, str], cap: int) -> list[dict[str, Any]]:
        market = self._market(q)
        limit = _limit(q, cap)
        start, end, from_id = _int(q, "startTime"), _int(q, "endTime"), _int(q, "fromId")
        if start is not None and end is not None and end - start > _HOUR_MS:
            raise _ApiError(400, -1127, "More than 1 hours between startTime and endTime.")
        trades = self.tape.trades(market, start, None if end is None else end + 1)
        if from_id is not None:
            trades = [t for t in trades if t.id >= from_id]
        if start is None and end is None and from_id is None:
            trades = trades[-limit:]
        return [{"a": t.id, "p": t.price, "q": t.size, "f": t.id, "l": t.id, "T": t.ts_ms,
                 "m": t.buyer_maker, "M": True} for t in trades[:limit]]


class _ApiError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def _int(q: dict[str, str], key: str) -> int | None:
    raw = q.get(key)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise _ApiError(400, -1100, f"Illegal characters found in parameter '{key}'; legal range is '^[0-9]{{1,20}}$'.") from None


def _limit(q: dict[str, str], cap: int) -> int:
    limit = _int(q, "limit")
    if limit is None:
        limit = 500
    if limit <= 0 or limit > 1000:
        raise _ApiError(400, -1130, "Data sent for parameter 'limit' is not valid.")
    return min(limit, cap)


def _spot_symbol(market: str) -> dict[str, Any]:
    base, quote = market.split("/")
    return {
        "symbol": base + quote, "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8,
        "quoteAsset": quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True, "ocoAllowed": True, "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True, "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000",
             "tickSize": "0.00001000"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000", "stepSize": "0.00000001"},
            {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
             "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
        ],
        "permissions": [], "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def _send(h: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: str) -> None:
    data = body.encode()
    h.send_response(status)
    h.send_header("content-type", "application/json;charset=UTF-8")
    h.send_header("content-length", str(len(data)))
    for k, v in headers.items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(data)
