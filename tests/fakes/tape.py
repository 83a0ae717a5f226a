"""The market a stand-in exchange serves: a :class:`Tape` of trades, from a recording or generated.

One tape is one market: the websocket side of :class:`fakes.exchange.StandInExchange`
publishes its trades in order, and the REST side derives everything else from the same
trades (the trade history, Binance's klines), so what a client reads over either API
describes the same market.

* :meth:`Tape.from_trade_csv`: a recorded trade file of ``../shared/data/trades/``;
* :meth:`Tape.from_binance_capture` / :func:`tape_from_frames`: the trades of a real websocket
  capture (``../shared/data/ws/``), with their ids, times, decimals and original payloads;
* :meth:`Tape.generated`: a seeded random walk, optionally with quiet spans; stamped with
  wall-clock times, it is a market that keeps trading while a test runs.
"""

from __future__ import annotations

import bisect
import csv
import json
import random
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, overload

from cryptolab.models import Tick
from cryptolab.models.venues import venue_symbol

__all__ = ["Tape", "TapeTrade", "binance_interval_ms", "build_klines", "split_pair", "tape_from_frames"]

_EIGHT = Decimal("0.00000001")
_UNITS_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_QUOTES = ("USDT", "BUSD", "USDC", "EUR", "BTC", "ETH", "BNB", "USD", "GBP")


def binance_interval_ms(interval: str) -> int:
    """Milliseconds of a Binance kline interval (``1m``, ``4h``, ``1d``; ``1M`` is not served)."""
    n, unit = int(interval[:-1]), interval[-1]
    if unit not in _UNITS_MS or n <= 0:
        raise ValueError(f"interval {interval!r} is not served")
    return n * _UNITS_MS[unit]


def split_pair(market_id: str) -> tuple[str, str]:
    """``("BTC", "USDT")`` for a Binance id ``BTCUSDT`` or a Coinbase id ``BTC-USDT``."""
    if "-" in market_id:
        base, quote = market_id.split("-", 1)
        return base, quote
    for quote in _QUOTES:
        if market_id.endswith(quote) and len(market_id) > len(quote):
            return market_id[: -len(quote)], quote
    raise ValueError(f"cannot split {market_id!r}")


def _fmt(value: Decimal) -> str:
    return str(value.quantize(_EIGHT))


def _iso_ms(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(dt.timestamp()) * 1000 + dt.microsecond // 1000


@dataclass(frozen=True)
class TapeTrade:
    """One trade of the market.

    ``market_id`` is the exchange's id (Binance ``BTCUSDT``, Coinbase ``BTC-USD``); price and
    size are the exchange's decimal strings. ``payload`` is the exchange's own websocket trade
    object when the trade comes from a capture (else one is made, :meth:`ws_payload`);
    ``stream`` what a client subscribes to for it (default: Binance's ``btcusdt@aggTrade``,
    Coinbase's product id).
    """

    market_id: str
    id: int
    ts_ms: int
    price: str
    size: str
    buyer_maker: bool = False
    payload: dict[str, Any] | None = field(default=None, compare=False)
    stream: str | None = None

    @property
    def market(self) -> str:
        """ccxt's symbol (``BTC/USDT``)."""
        return "/".join(split_pair(self.market_id))

    @property
    def trade_id(self) -> int:
        """The exchange's trade id (``id``)."""
        return self.id

    def stream_name(self, protocol: str) -> str:
        """What a client subscribes to for this trade."""
        if self.stream is not None:
            return self.stream
        return f"{self.market_id.lower()}@aggTrade" if protocol == "binance" else self.market_id

    def ws_payload(self, protocol: str) -> dict[str, Any]:
        """The exchange's websocket trade object: the captured one, or one in the exchange's shape."""
        if self.payload is not None:
            return self.payload
        if protocol == "binance":
            return {"e": "aggTrade", "E": self.ts_ms, "s": self.market_id, "a": self.id, "p": self.price,
                    "q": self.size, "f": self.id, "l": self.id, "T": self.ts_ms, "m": self.buyer_maker,
                    "M": True}
        stamp = datetime.fromtimestamp(self.ts_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
        return {"type": "match", "trade_id": self.id, "maker_order_id": f"m{self.id}",
                "taker_order_id": f"t{self.id}", "side": "buy" if self.buyer_maker else "sell",
                "size": self.size, "price": self.price, "product_id": self.market_id,
                "sequence": self.id, "time": stamp}


def tape_from_frames(frames: Sequence[str], protocol: str) -> list[TapeTrade]:
    """The trades in a capture's frames, in order (``binance``: trade/aggTrade; ``coinbase``: match)."""
    out: list[TapeTrade] = []
    for frame in frames:
        msg = json.loads(frame)
        if protocol == "binance":
            data = msg.get("data", msg) if isinstance(msg, dict) and "stream" in msg else msg
            event = data.get("e") if isinstance(data, dict) else None
            if event not in ("trade", "aggTrade"):
                continue
            tid = data["a"] if event == "aggTrade" else data["t"]
            out.append(TapeTrade(data["s"], int(tid), int(data["T"]), data["p"], data["q"], bool(data["m"]),
                                 data, f"{data['s'].lower()}@{event}"))
        elif protocol == "coinbase":
            if msg.get("type") != "match":
                continue
            out.append(TapeTrade(msg["product_id"], int(msg["trade_id"]), _iso_ms(msg["time"]), msg["price"],
                                 msg["size"], msg.get("side") == "buy", msg, msg["product_id"]))
        else:
            raise ValueError(f"unknown protocol {protocol!r}")
    return out


def build_klines(trades: Sequence[TapeTrade], iv: int, end_ms: int) -> list[list[Any]]:
    """Binance's 12-field klines of one market's trades (time order), every window from the first
    trade's to the one holding ``end_ms``; a window without trades is flat at the previous close."""
    if not trades:
        return []
    out: list[list[Any]] = []
    i, n = 0, len(trades)
    ws = trades[0].ts_ms - trades[0].ts_ms % iv
    prev_close = trades[0].price
    while ws <= end_ms:
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


class Tape(Sequence[TapeTrade]):
    """The trades of a market: a sequence in the order they happen (and are published), and per
    market ccxt symbol in time order, from which the klines are derived.

    ``end_ms`` is the tape's "now" when every trade has happened: klines run to the window
    holding it (default: the last trade).
    """

    def __init__(self, trades: Iterable[TapeTrade], *, end_ms: int | None = None) -> None:
        self.sequence: list[TapeTrade] = list(trades)
        by: dict[str, list[TapeTrade]] = {}
        for t in self.sequence:
            by.setdefault(t.market, []).append(t)
        for ts in by.values():
            ts.sort(key=lambda t: t.ts_ms)  # stable: the tape's order within a millisecond
        self._trades = by
        self._times = {m: [t.ts_ms for t in ts] for m, ts in by.items()}
        last = max((t.ts_ms for t in self.sequence), default=0)
        self.end_ms = last if end_ms is None else end_ms
        self._klines: dict[tuple[str, int], list[list[Any]]] = {}
        self._lock = threading.Lock()

    # -- sequence --------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.sequence)

    @overload
    def __getitem__(self, i: int) -> TapeTrade: ...

    @overload
    def __getitem__(self, i: slice) -> list[TapeTrade]: ...

    def __getitem__(self, i: int | slice) -> TapeTrade | list[TapeTrade]:
        return self.sequence[i]

    def __iter__(self) -> Iterator[TapeTrade]:
        return iter(self.sequence)

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
        mid = market.replace("/", "")
        return cls(TapeTrade(mid, first_id + i, ts, _fmt(Decimal(p)), _fmt(Decimal(q)), m)
                   for i, (ts, p, q, m) in enumerate(rows))

    @classmethod
    def from_binance_capture(cls, path: str | Path) -> Tape:
        """A tape of the ``aggTrade`` / ``trade`` frames of a Binance websocket capture
        (``../shared/data/ws/binance_*_capture.txt``), with their real ids, times and decimals."""
        from fakes.ws import exchange_frames

        return cls(tape_from_frames(exchange_frames(path), "binance"))

    @classmethod
    def generated(cls, market: str, start_ms: int, end_ms: int, *, seed: int = 0, price: float = 100.0,
                  mean_gap_ms: int = 5_000, quiet: Sequence[tuple[int, int]] = (), first_id: int = 1,
                  market_id: str | None = None) -> Tape:
        """A seeded random walk of trades of ``market`` (ccxt's ``BTC/USDT``) in ``[start_ms, end_ms)``,
        none in the ``quiet`` spans; ``market_id`` is the exchange's id (default Binance's ``BTCUSDT``)."""
        rng = random.Random(seed)
        mid = market_id or market.replace("/", "")
        trades: list[TapeTrade] = []
        ts, p, tid = start_ms, Decimal(str(price)), first_id
        while ts < end_ms:
            if not any(a <= ts < b for a, b in quiet):
                p = max(_EIGHT * 100, p * Decimal(str(round(1 + rng.gauss(0, 0.001), 6))))
                size = Decimal(str(round(rng.expovariate(2.0) + 0.001, 8)))
                trades.append(TapeTrade(mid, tid, ts, _fmt(p), _fmt(size), rng.random() < 0.5))
                tid += 1
            ts += 1 + int(rng.expovariate(1 / mean_gap_ms))
        return cls(trades, end_ms=end_ms - 1)

    # -- reading ---------------------------------------------------------------------

    @property
    def markets(self) -> list[str]:
        """ccxt symbols of the tape's markets (``BTC/USDT``)."""
        return sorted(self._trades)

    @property
    def market_ids(self) -> list[str]:
        """The exchange's ids of the tape's markets (``BTCUSDT``)."""
        return sorted({t.market_id for t in self.sequence})

    @property
    def start_ms(self) -> int:
        """The first trade's time."""
        return min(ts[0].ts_ms for ts in self._trades.values() if ts)

    def market_of(self, market_id: str) -> str | None:
        """ccxt symbol of an exchange id (``BTCUSDT`` -> ``BTC/USDT``), None when not on the tape."""
        return next((m for m, ts in self._trades.items() if ts[0].market_id == market_id), None)

    def trades(self, market: str, start_ms: int | None = None, end_ms: int | None = None) -> list[TapeTrade]:
        """The trades of ``market`` with time in ``[start_ms, end_ms)``, in time order."""
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
                self._klines[key] = build_klines(self._trades.get(market, []), interval_ms, self.end_ms)
            return self._klines[key]
