"""Exchange trade websockets: Binance (``trade`` / ``aggTrade``) and Coinbase (``match``).

Both sources connect, subscribe, parse every frame and yield one tick per trade,
named ``VENUE:BASE-QUOTE`` (``BINANCE:BTC-USDT``, ``COINBASE:BTC-USD``) as every venue's
ticker is (:mod:`cryptolab.models.venues`), the same names the ccxt source gives: price and size parsed as decimals from the exchange's strings, the exchange's
trade id, and the exchange's trade time as event time. Everything else on the
stream (depth, book tickers, klines, heartbeats, subscription acks) is skipped.
A frame that does not parse is rejected with a reason (see
:class:`~cryptolab.sources.Rejected`); a live source never crashes on one.

Connections are kept alive: websocket pings from the exchange are answered
(by the websockets library, on its own thread, even while the consumer is busy),
the client pings too (``ping_interval``), and a connection silent for
``stale_after`` seconds -- Coinbase sends a ``heartbeat`` every second on the
``heartbeat`` channel this source subscribes to -- is dropped. After a
disconnect the source reconnects with exponential back-off and jitter
(``backoff_base * 2**(n-1)`` seconds, capped at ``max_backoff``), resubscribes,
and drops trades it already yielded (trade ids only move forward per symbol),
such as the ``last_match`` Coinbase repeats on every subscription.

Examples
--------
>>> frame = ('{"stream":"btcusdt@trade","data":{"e":"trade","E":1700000000001,"s":"BTCUSDT",'
...          '"t":42,"p":"37000.10","q":"0.025","T":1700000000000,"m":true,"M":true}}')
>>> parse_binance_frame(frame)
Tick(symbol='BINANCE:BTC-USDT', ts_ms=1700000000000, price=37000.1, size=0.025, source='binance', trade_id='42')
>>> parse_coinbase_frame('{"type":"match","trade_id":7,"product_id":"ETH-USD","size":"0.5",'
...                      '"price":"2000.01","side":"buy","time":"2023-11-14T22:13:20.123456Z"}')
Tick(symbol='COINBASE:ETH-USD', ts_ms=1700000000123, price=2000.01, size=0.5, source='coinbase', trade_id='7')
>>> parse_coinbase_frame('{"type":"heartbeat","product_id":"ETH-USD"}') is None
True
"""

from __future__ import annotations

import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import orjson

from cryptolab.errors import SourceError, ValidationError
from cryptolab.models.records import Tick
from cryptolab.models.wire import MAX_TEXT, MAX_TS_MS, MIN_TS_MS, validate_symbol, validate_tick
from cryptolab.sources import Rejected, RejectHandler, SourceStats, handle_reject

__all__ = [
    "BinanceTrades",
    "CoinbaseMatches",
    "binance_symbol",
    "parse_binance_frame",
    "parse_coinbase_frame",
]

log = logging.getLogger(__name__)

#: Largest frame accepted (bigger frames are rejected unparsed).
MAX_FRAME_BYTES: Final = 1 << 20
_DECIMAL_RE: Final = re.compile(r"\d{1,20}(\.\d{1,20})?")
_BINANCE_QUOTES: Final = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USD", "BTC", "ETH", "BNB",
                          "EUR", "GBP", "TRY", "BRL", "JPY", "AUD", "DAI")


def _decimal(value: object, field: str) -> float:
    """A price/size sent as a decimal string (numbers are accepted too)."""
    if isinstance(value, str):
        if not _DECIMAL_RE.fullmatch(value):
            raise ValidationError(field, f"not a decimal string: {value[:40]!r}")
        return float(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        v = float(value) if not isinstance(value, int) or abs(value) < 1e300 else math.inf
        if math.isfinite(v):
            return v
    raise ValidationError(field, f"not a decimal: {str(value)[:40]!r}")


def _ms(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"must be integer epoch ms, got {str(value)[:40]!r}")
    if not MIN_TS_MS <= value < MAX_TS_MS:
        raise ValidationError(field, f"{value} is outside 2009-01-03..2100-01-01 (epoch ms)")
    return value


def _trade_id(value: object, prefix: str = "") -> str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValidationError("trade_id", f"must be an integer or string, got {str(value)[:40]!r}")
    text = f"{prefix}{value}"
    if not 0 < len(text) <= MAX_TEXT or not text.isprintable():
        raise ValidationError("trade_id", f"must be 1-{MAX_TEXT} printable characters")
    return text


def binance_symbol(raw: str) -> str:
    """A cryptolab symbol for a Binance symbol: ``BTCUSDT`` -> ``BTC-USDT``.

    Examples
    --------
    >>> binance_symbol("NKNUSDT"), binance_symbol("blzeth"), binance_symbol("XYZ")
    ('NKN-USDT', 'BLZ-ETH', 'XYZ')
    """
    up = raw.upper()
    for q in _BINANCE_QUOTES:
        if up.endswith(q) and len(up) > len(q):
            return validate_symbol(f"{up[: -len(q)]}-{q}")
    return validate_symbol(up)


def _loads(frame: str | bytes) -> Any:
    if len(frame) > MAX_FRAME_BYTES:
        raise ValidationError("record", f"frame of {len(frame)} bytes is too large")
    try:
        return orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise ValidationError("record", f"not valid JSON: {exc}") from None


def parse_binance_frame(frame: str | bytes, symbols: Mapping[str, str] | None = None) -> Tick | None:
    """Parse a Binance stream frame (combined or raw); ``None`` for non-trade frames.

    Parameters
    ----------
    frame
        The frame text.
    symbols
        ``{"BTCUSDT": "BINANCE:BTC-USDT"}``: how exchange symbols map to cryptolab's;
        others are ``BINANCE:`` and :func:`binance_symbol`.

    Raises
    ------
    ValidationError
        For a trade frame that does not parse (naming the field).
    """
    msg = _loads(frame)
    if not isinstance(msg, dict):
        raise ValidationError("record", f"expected a JSON object, got {type(msg).__name__}")
    data = msg.get("data", msg) if "stream" in msg else msg
    if not isinstance(data, dict):
        raise ValidationError("data", f"expected a JSON object, got {type(data).__name__}")
    event = data.get("e")
    if event not in ("trade", "aggTrade"):
        if "result" in msg and "id" in msg:  # subscription ack
            return None
        if event is None and "code" in msg and "msg" in msg:
            raise ValidationError("record", f"error frame: {str(msg)[:200]}")
        return None
    raw_sym = data.get("s")
    if not isinstance(raw_sym, str) or not raw_sym:
        raise ValidationError("symbol", f"missing or not a string: {str(raw_sym)[:40]!r}")
    symbol = (symbols or {}).get(raw_sym.upper()) or validate_symbol(f"BINANCE:{binance_symbol(raw_sym)}")
    price = _decimal(data.get("p"), "price")
    size = _decimal(data.get("q"), "size")
    ts = _ms(data.get("T"), "ts")
    tid = _trade_id(data.get("t"), "") if event == "trade" else _trade_id(data.get("a"), "a")
    return validate_tick(
        Tick(symbol=symbol, ts_ms=ts, price=price, size=size, source="binance", trade_id=tid)
    )


def _iso_ms(value: object) -> int:
    if not isinstance(value, str) or len(value) > 40:
        raise ValidationError("ts", f"must be ISO-8601 text, got {str(value)[:40]!r}")
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError("ts", f"not an ISO-8601 time: {value[:40]!r}") from None
    if dt.tzinfo is None:
        raise ValidationError("ts", f"time without a UTC offset: {value[:40]!r}")
    if not 2009 <= dt.year < 2100:
        raise ValidationError("ts", f"{value[:40]} is outside 2009-01-03..2100-01-01")
    seconds = int(dt.timestamp())
    return _ms(seconds * 1000 + dt.microsecond // 1000, "ts")


def parse_coinbase_frame(frame: str | bytes) -> Tick | None:
    """Parse a Coinbase feed frame; a tick for ``match``/``last_match``, else ``None``.

    Raises
    ------
    ValidationError
        For a match that does not parse, or an ``error`` frame.
    """
    msg = _loads(frame)
    if not isinstance(msg, dict):
        raise ValidationError("record", f"expected a JSON object, got {type(msg).__name__}")
    kind = msg.get("type")
    if kind == "error":
        raise ValidationError("record", f"error frame: {str(msg.get('message'))[:100]} "
                                        f"{str(msg.get('reason', ''))[:100]}".strip())
    if kind not in ("match", "last_match"):
        return None
    product = msg.get("product_id")
    if not isinstance(product, str):
        raise ValidationError("symbol", f"missing or not a string: {str(product)[:40]!r}")
    symbol = validate_symbol(f"COINBASE:{product.upper()}")
    return validate_tick(
        Tick(
            symbol=symbol,
            ts_ms=_iso_ms(msg.get("time")),
            price=_decimal(msg.get("price"), "price"),
            size=_decimal(msg.get("size"), "size"),
            source="coinbase",
            trade_id=_trade_id(msg.get("trade_id")),
        )
    )


class _WebsocketSource:
    """Connect, read, keep alive, reconnect with back-off; subclasses parse and subscribe."""

    name: str = ""
    validated: Final = True

    def __init__(
        self,
        *,
        url: str,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        stale_after: float = 60.0,
        open_timeout: float = 10.0,
        backoff_base: float = 1.0,
        max_backoff: float = 60.0,
        max_reconnects: int | None = None,
        duration: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        seed: int | None = None,
    ) -> None:
        for name, v in (("stale_after", stale_after), ("backoff_base", backoff_base),
                        ("max_backoff", max_backoff), ("open_timeout", open_timeout)):
            if not (math.isfinite(v) and v > 0):
                raise ValidationError(name, f"must be > 0 seconds, got {v}")
        self.url = url
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.stale_after = float(stale_after)
        self.open_timeout = float(open_timeout)
        self.backoff_base = float(backoff_base)
        self.max_backoff = float(max_backoff)
        self.max_reconnects = max_reconnects
        self.duration = duration
        self.stats = SourceStats()
        self.frames = 0
        self.last_error: str | None = None
        self._clock = clock
        self._stop = threading.Event()
        self._sleep = sleep if sleep is not None else self._stop.wait
        self._rng = random.Random(seed)
        self._last_id: dict[str, int] = {}
        self._ws: Any = None

    # -- subclass hooks -------------------------------------------------------------

    def connect_url(self) -> str:  # pragma: no cover - overridden
        return self.url

    def subscribe_messages(self) -> list[bytes]:
        return []

    def parse(self, frame: str | bytes) -> Tick | None:  # pragma: no cover - overridden
        raise NotImplementedError

    # -- control -----------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`iter_ticks` to return (safe from another thread or a signal handler)."""
        self._stop.set()
        ws = self._ws
        if ws is not None:
            try:
                ws.close()
            except Exception:  # best effort, from another thread
                pass

    def _backoff(self, n: int) -> float:
        delay = min(self.max_backoff, self.backoff_base * float(2 ** min(max(n, 1) - 1, 30)))
        return delay * (0.5 + 0.5 * self._rng.random())

    def _duplicate(self, tick: Tick) -> bool:
        tid = tick.trade_id
        if tid is None:
            return False
        digits = tid[1:] if tid[:1].isalpha() else tid
        if not digits.isdigit():
            return False
        key = f"{tick.symbol}/{tid[:1] if tid[:1].isalpha() else ''}"
        n = int(digits)
        last = self._last_id.get(key)
        if last is not None and n <= last:
            return True
        self._last_id[key] = n
        return False

    # -- the loop -------------------------------------------------------------------------

    def _wait_to_reconnect(self, failures: int, time_left: Callable[[], float]) -> bool:
        """Back off before the next connection attempt; False when the source stops instead."""
        if self.max_reconnects is not None and self.stats.reconnects >= self.max_reconnects:
            log.warning("%s: not reconnecting: max_reconnects=%d reached (last error: %s)",
                        self.name, self.max_reconnects, self.last_error)
            return False
        delay = self._backoff(failures)
        log.info("%s: reconnecting in %.1fs", self.name, delay)
        self._sleep(min(delay, max(time_left(), 0.0)))
        if self._stop.is_set() or time_left() <= 0:
            return False
        self.stats.reconnects += 1
        self.stats.retries += 1
        return True

    def _stale(self, last_frame: float) -> bool:
        """Whether the connection has been silent for ``stale_after`` (counted and logged)."""
        if self._clock() - last_frame < self.stale_after:
            return False
        self.stats.failures["stale"] += 1
        self.last_error = f"stale: no frame for {self.stale_after}s"
        log.warning("%s: no frame for %.1fs; reconnecting", self.name, self.stale_after)
        return True

    def _accept(self, frame: str | bytes, on_reject: RejectHandler | None) -> Tick | None:
        """The new trade a frame brings (counted), or ``None``: not a trade, rejected, or
        one already yielded."""
        try:
            tick = self.parse(frame)
        except ValidationError as exc:
            handle_reject(Rejected(frame, exc.field, exc.reason, source=self.name,
                                   where=f"frame {self.frames}"),
                          self.stats, on_reject, "skip")
            return None
        if tick is None:
            return None
        if self._duplicate(tick):
            self.stats.skipped += 1
            return None
        self.stats.ticks += 1
        return tick

    def iter_ticks(self, *, on_reject: RejectHandler | None = None) -> Iterator[Tick]:
        """Yield trades until :meth:`stop`, ``duration``, or ``max_reconnects`` is exceeded."""
        from websockets.exceptions import (
            ConnectionClosed,
            ConnectionClosedOK,
            InvalidHandshake,
            InvalidURI,
        )
        from websockets.sync.client import connect

        started = self._clock()
        failures = 0  # consecutive attempts that received nothing
        url = self.connect_url()
        first = True

        def time_left() -> float:
            if self.duration is None:
                return math.inf
            return started + self.duration - self._clock()

        while not self._stop.is_set() and time_left() > 0:
            if not first and not self._wait_to_reconnect(failures, time_left):
                return
            first = False
            got_data = False
            try:
                with connect(url, open_timeout=self.open_timeout, ping_interval=self.ping_interval,
                             ping_timeout=self.ping_timeout, close_timeout=2.0,
                             max_size=MAX_FRAME_BYTES, compression=None) as ws:
                    self._ws = ws
                    for msg in self.subscribe_messages():
                        ws.send(msg)
                    log.info("%s: connected to %s", self.name, url)
                    last_frame = self._clock()
                    while not self._stop.is_set():
                        left = time_left()
                        if left <= 0:
                            return
                        try:
                            # Wake up at least every second to notice stop() and staleness.
                            frame = ws.recv(timeout=min(1.0, self.stale_after, left))
                        except TimeoutError:
                            if self._stale(last_frame):
                                break
                            continue
                        last_frame = self._clock()
                        self.frames += 1
                        if not got_data:
                            got_data = True
                            failures = 0
                        tick = self._accept(frame, on_reject)
                        if tick is not None:
                            yield tick
            except InvalidURI as exc:
                raise SourceError(f"{self.name}: invalid URL {url!r}: {exc}") from None
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                failures += 1
                self.stats.failures["connect"] += 1
                self.last_error = f"connect: {exc}"
                log.warning("%s: cannot connect to %s: %s", self.name, url, exc)
                continue
            except ConnectionClosedOK as exc:
                if self._stop.is_set():
                    return
                self.stats.failures["closed"] += 1
                self.last_error = f"closed: {exc}"
                log.warning("%s: the server closed the connection (%s)", self.name, exc)
            except ConnectionClosed as exc:
                if self._stop.is_set():
                    return
                self.stats.failures["disconnect"] += 1
                self.last_error = f"disconnect: {exc}"
                log.warning("%s: connection lost (%s)", self.name, exc)
            finally:
                self._ws = None
            if not got_data:
                failures += 1


class BinanceTrades(_WebsocketSource):
    """Binance trades from the combined stream (a :class:`~cryptolab.sources.Source`).

    Parameters
    ----------
    symbols
        Pairs, as cryptolab symbols (``"BTC-USDT"``) or Binance's (``"btcusdt"``).
    streams
        ``"trade"`` (every trade, default) and/or ``"aggTrade"`` (aggregated;
        their trade ids are prefixed with ``a``).
    url
        Base URL (default ``wss://stream.binance.com:9443``; futures:
        ``wss://fstream.binance.com``). The combined-stream path
        ``/stream?streams=...`` is appended unless the URL already has one.
    **options
        Keep-alive and reconnection options, see the module docs:
        ``ping_interval``, ``ping_timeout``, ``stale_after``, ``backoff_base``,
        ``max_backoff``, ``max_reconnects`` (default: forever), ``duration``.
    """

    name = "binance"

    def __init__(
        self,
        symbols: str | Sequence[str] = ("BTC-USDT",),
        *,
        streams: str | Sequence[str] = ("trade",),
        url: str = "wss://stream.binance.com:9443",
        **options: Any,
    ) -> None:
        super().__init__(url=url.rstrip("/"), **options)
        items = symbols.split(",") if isinstance(symbols, str) else list(symbols)
        self.symbols: dict[str, str] = {}
        for item in items:
            item = item.strip()
            if not item:
                continue
            item = item.rpartition(":")[2]  # BINANCE:BTC-USDT names the market BTC-USDT
            exch = re.sub(r"[^A-Za-z0-9]", "", item).upper()
            sym = item.upper() if re.search(r"[-/_.]", item) else binance_symbol(exch)
            self.symbols[exch] = validate_symbol("BINANCE:" + sym.replace("/", "-").replace("_", "-"))
        if not self.symbols:
            raise ValidationError("symbols", "at least one symbol is required")
        kinds = streams.split(",") if isinstance(streams, str) else list(streams)
        self.streams = [k.strip() for k in kinds if k.strip()]
        bad = [k for k in self.streams if k not in ("trade", "aggTrade")]
        if bad or not self.streams:
            raise ValidationError("streams", f"must be trade and/or aggTrade, got {kinds}")

    def connect_url(self) -> str:
        if "/stream?" in self.url or "/ws" in self.url.split("//", 1)[-1]:
            return self.url
        names = "/".join(f"{s.lower()}@{k}" for s in self.symbols for k in self.streams)
        return f"{self.url}/stream?streams={names}"

    def parse(self, frame: str | bytes) -> Tick | None:
        return parse_binance_frame(frame, self.symbols)

    def __repr__(self) -> str:
        return f"BinanceTrades({list(self.symbols.values())}, streams={self.streams}, url={self.url!r})"


class CoinbaseMatches(_WebsocketSource):
    """Coinbase trades from the ``matches`` channel (a :class:`~cryptolab.sources.Source`).

    Parameters
    ----------
    products
        Product ids (``"BTC-USD,ETH-USD"`` or a list); they are the symbols.
    url
        Feed URL (default ``wss://ws-feed.exchange.coinbase.com``).
    heartbeat
        Also subscribe to the ``heartbeat`` channel (one frame a second per
        product), so a silent connection is noticed after ``stale_after``.
    **options
        Keep-alive and reconnection options, as for :class:`BinanceTrades`.
    """

    name = "coinbase"

    def __init__(
        self,
        products: str | Sequence[str] = ("BTC-USD",),
        *,
        url: str = "wss://ws-feed.exchange.coinbase.com",
        heartbeat: bool = True,
        **options: Any,
    ) -> None:
        options.setdefault("stale_after", 30.0)
        super().__init__(url=url, **options)
        items = products.split(",") if isinstance(products, str) else list(products)
        self.products = [validate_symbol(p.strip().upper().rpartition(":")[2]) for p in items if p.strip()]
        if not self.products:
            raise ValidationError("products", "at least one product id is required")
        self.heartbeat = heartbeat

    def connect_url(self) -> str:
        return self.url

    def subscribe_messages(self) -> list[bytes]:
        channels = ["matches"] + (["heartbeat"] if self.heartbeat else [])
        return [orjson.dumps({"type": "subscribe", "product_ids": self.products, "channels": channels})]

    def parse(self, frame: str | bytes) -> Tick | None:
        return parse_coinbase_frame(frame)

    def __repr__(self) -> str:
        return f"CoinbaseMatches({self.products}, url={self.url!r})"
