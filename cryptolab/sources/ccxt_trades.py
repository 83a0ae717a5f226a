"""Live trades from any ccxt exchange with websocket ``watch_trades`` (ccxt.pro).

:class:`CcxtTrades` is a :class:`~cryptolab.sources.Source`: it runs ccxt.pro's async
``watch_trades`` for each symbol on an event loop of its own (a background thread)
and :meth:`~CcxtTrades.iter_ticks` yields the trades as validated ticks named
``VENUE:BASE-QUOTE`` (:func:`~cryptolab.models.venues.venue_symbol`): event time is
the exchange's trade time, price and size the exchange's decimals, the trade id is
kept and the source is the exchange id.

After a disconnection the symbol's stream is watched again after an exponential
back-off with jitter (``backoff_base * 2**(n-1)`` seconds, capped at ``max_backoff``);
on the first trades the new connection brings, the trades missed meanwhile are
fetched over REST (:func:`~cryptolab.sources.ccxt_repair.fetch_missed`) and
delivered first, then the live ones: trades already delivered (the stream and the
history overlap) are dropped (:class:`~cryptolab.sources.trade_gaps.SeenTrades`).
What the exchange cannot give back becomes a
:class:`~cryptolab.sources.trade_gaps.TradeGap`: in :attr:`CcxtTrades.gaps`, counted
in ``stats.gaps``, logged, and handed to ``on_gap``.

Binance's exchanges (``binance``, ``binanceusdm``...) are watched on the ``aggTrade``
stream by default, whose ids are those of the REST ``aggTrades`` history that ccxt's
``fetch_trades`` reads, so repaired and live trades de-duplicate by id.

Examples
--------
>>> src = CcxtTrades("binance", "BTC/USDT,ETH-USDT")
>>> src.markets
['BTC/USDT', 'ETH/USDT']
>>> CcxtTrades("nosuchexchange", "BTC/USDT")
Traceback (most recent call last):
...
cryptolab.errors.ValidationError: invalid 'exchange': unknown websocket exchange 'nosuchexchange'; ccxt knows ... (see ccxt.exchanges)
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

from cryptolab.errors import SourceError, ValidationError
from cryptolab.models.records import Tick
from cryptolab.models.venues import market_symbol, venue_symbol
from cryptolab.sources import Rejected, RejectHandler, SourceStats, handle_reject
from cryptolab.sources.ccxt_open import open_exchange
from cryptolab.sources.ccxt_repair import fetch_missed, gap_of
from cryptolab.sources.ccxt_ticks import ccxt_tick, trade_key
from cryptolab.sources.trade_gaps import SeenTrades, TradeGap

__all__ = ["CcxtTrades"]

log = logging.getLogger(__name__)

#: ccxt exceptions after which a symbol's stream is given up (the rest are retried).
_FATAL: Final = ("BadSymbol", "BadRequest", "NotSupported", "AuthenticationError", "PermissionDenied")


def _connected(ex: Any) -> bool:
    """Whether every websocket connection of a ccxt.pro exchange is up."""
    clients = list(getattr(ex, "clients", {}).values())
    return bool(clients) and all(
        c.connected is not None and c.connected.done() and c.connected.exception() is None
        for c in clients)


def _markets(symbols: str | Sequence[str]) -> list[str]:
    items = symbols.split(",") if isinstance(symbols, str) else list(symbols)
    out = []
    for item in (s.strip() for s in items):
        if item:
            out.append(item.upper() if "/" in item else market_symbol(item))
    if not out:
        raise ValidationError("symbols", "at least one symbol is required")
    return list(dict.fromkeys(out))


class CcxtTrades:
    """Live trades of ``symbols`` on a ccxt exchange (see the module docs).

    Parameters
    ----------
    exchange
        A ccxt.pro exchange id (``binance``, ``coinbaseexchange``, ``kraken``...).
    symbols
        Markets: ``"BTC/USDT,ETH/USDT"``, a list, or cryptolab names (``BTC-USDT``,
        ``BINANCE:BTC-USDT``).
    api_url, ws_url
        Replace the scheme, host and port of every REST / websocket endpoint
        (:func:`~cryptolab.sources.ccxt_open.open_exchange`).
    repair
        Fetch the trades missed while disconnected (else every disconnection is
        recorded as a gap).
    backoff_base, max_backoff
        Back-off before watching again after a failure (seconds).
    max_reconnects
        Give a symbol up after this many reconnections (default: never).
    duration
        Stop after this many seconds.
    page_limit, max_pages
        Trades per REST request, and requests per repair.
    repair_wait
        After a reconnection, repair at the first live trade or, on a quiet market,
        once connected for this many seconds (time for the subscription to take).
    options
        Extra ccxt constructor options (merged into the defaults).
    on_gap
        Called with each :class:`~cryptolab.sources.trade_gaps.TradeGap`, in the
        thread iterating :meth:`iter_ticks`, in order with the ticks.
    seed
        Seed of the back-off jitter.
    since_ms
        Deliver every trade from this time on: those before the stream's first trades
        come over REST first, as after a reconnection (what cannot be fetched is a gap).
        A live session gives the end of its backfill, so history and live trades meet
        without a seam.
    """

    name = "ccxt"
    validated: Final = True

    def __init__(
        self,
        exchange: str = "binance",
        symbols: str | Sequence[str] = ("BTC/USDT",),
        *,
        api_url: str | None = None,
        ws_url: str | None = None,
        repair: bool = True,
        backoff_base: float = 1.0,
        max_backoff: float = 60.0,
        max_reconnects: int | None = None,
        duration: float | None = None,
        page_limit: int = 1000,
        max_pages: int = 100,
        repair_wait: float = 1.0,
        options: dict[str, Any] | None = None,
        on_gap: Callable[[TradeGap], None] | None = None,
        seed: int | None = None,
        since_ms: int | None = None,
    ) -> None:
        for name, v in (("backoff_base", backoff_base), ("max_backoff", max_backoff)):
            if not (math.isfinite(v) and v > 0):
                raise ValidationError(name, f"must be > 0 seconds, got {v}")
        if duration is not None and not (math.isfinite(duration) and duration > 0):
            raise ValidationError("duration", f"must be > 0 seconds, got {duration}")
        if page_limit < 1 or max_pages < 1:
            raise ValidationError("page_limit", "page_limit and max_pages must be >= 1")
        self.exchange = exchange
        self.markets = _markets(symbols)
        self.api_url, self.ws_url = api_url, ws_url
        self.repair = repair
        self.backoff_base, self.max_backoff = float(backoff_base), float(max_backoff)
        self.max_reconnects = max_reconnects
        self.duration = duration
        self.page_limit, self.max_pages = page_limit, max_pages
        self.repair_wait = float(repair_wait)
        self.options = self._default_options(exchange, options)
        self.on_gap = on_gap
        self.since_ms = since_ms
        self.stats = SourceStats()
        self.gaps: list[TradeGap] = []
        self.last_error: str | None = None
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None
        self._latest: dict[str, SeenTrades] = {}
        probe = open_exchange(exchange, pro=True, options=self.options)  # validates the id
        if not probe.has.get("watchTrades"):
            raise ValidationError("exchange", f"{exchange!r} has no websocket watch_trades in ccxt")

    @staticmethod
    def _default_options(exchange: str, options: dict[str, Any] | None) -> dict[str, Any]:
        config: dict[str, Any] = {"newUpdates": True}
        if exchange.startswith("binance"):
            name = {"name": "aggTrade"}
            config["options"] = {"watchTrades": dict(name), "watchTradesForSymbols": dict(name)}
        for key, value in (options or {}).items():
            if key == "options" and isinstance(value, dict):
                config.setdefault("options", {}).update(value)
            else:
                config[key] = value
        return config

    def __repr__(self) -> str:
        return f"CcxtTrades({self.exchange!r}, {self.markets})"

    # -- control ------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`iter_ticks` to return (safe from another thread or a signal handler)."""
        self._stop.set()
        loop, main = self._loop, self._main
        if loop is not None and main is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(main.cancel)
            except RuntimeError:  # the loop just closed
                pass

    def _backoff(self, n: int) -> float:
        delay = min(self.max_backoff, self.backoff_base * float(2 ** min(max(n, 1) - 1, 30)))
        return delay * (0.5 + 0.5 * self._rng.random())

    # -- the consumer's side ------------------------------------------------------------------

    def iter_ticks(self, *, on_reject: RejectHandler | None = None) -> Iterator[Tick]:
        """Yield trades until :meth:`stop`, ``duration``, or every symbol is given up.

        Raises
        ------
        ValidationError
            For a symbol the exchange does not list.
        SourceError
            When the exchange refuses the subscription or cannot be reached at all.
        """
        events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._stop.clear()
        thread = threading.Thread(target=self._run, args=(events,), name=f"ccxt-{self.exchange}",
                                  daemon=True)
        thread.start()
        try:
            while not self._stop.is_set():
                kind, payload = events.get()
                if kind == "ticks":
                    for tick in payload:
                        if self._stop.is_set():
                            return
                        self.stats.ticks += 1
                        yield tick
                elif kind == "reject":
                    handle_reject(payload, self.stats, on_reject, "skip")
                elif kind == "gap":
                    self.gaps.append(payload)
                    if self.on_gap is not None:
                        self.on_gap(payload)
                elif kind == "error":
                    raise payload
                else:  # "end"
                    return
        finally:
            self.stop()
            thread.join(30)

    # -- the event loop's side ------------------------------------------------------------------

    def _run(self, events: queue.SimpleQueue[tuple[str, Any]]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._main = loop.create_task(self._session(events))
            if self._stop.is_set():
                self._main.cancel()
            loop.run_until_complete(self._main)
        except asyncio.CancelledError:
            pass
        except (ValidationError, SourceError) as exc:
            events.put(("error", exc))
        except Exception as exc:  # surfaces in the consumer's thread
            events.put(("error", SourceError(f"{self.exchange}: {type(exc).__name__}: {exc}")))
        finally:
            self._main = None
            loop.close()
            self._loop = None
            events.put(("end", None))

    async def _session(self, events: queue.SimpleQueue[tuple[str, Any]]) -> None:
        ex = open_exchange(self.exchange, api_url=self.api_url, ws_url=self.ws_url, pro=True,
                           options=self.options)
        try:
            await self._load_markets(ex)
            tasks = [asyncio.create_task(self._watch(ex, m, events)) for m in self._resolve(ex)]
            try:
                await asyncio.wait_for(asyncio.gather(*tasks), self.duration)
            except TimeoutError:
                pass
        finally:
            await ex.close()

    async def _load_markets(self, ex: Any) -> None:
        import ccxt

        failures = 0
        while True:
            try:
                await ex.load_markets()
                return
            except ccxt.NetworkError as exc:
                failures += 1
                self.stats.failures["connect"] += 1
                self.last_error = f"connect: {exc}"
                if self.max_reconnects is not None and failures > self.max_reconnects:
                    raise SourceError(f"{self.exchange}: cannot load markets: {exc}") from None
                await asyncio.sleep(self._backoff(failures))
            except ccxt.BaseError as exc:
                raise SourceError(f"{self.exchange}: cannot load markets: {exc}") from None

    def _resolve(self, ex: Any) -> list[str]:
        """ccxt's unified symbols for the requested markets (``BTC/USDT`` finds the linear
        perpetual ``BTC/USDT:USDT`` on a futures exchange)."""
        out = []
        for m in self.markets:
            if m not in ex.markets and f"{m}:{m.rsplit('/', 1)[-1]}" in ex.markets:
                m = f"{m}:{m.rsplit('/', 1)[-1]}"
            if m not in ex.markets:
                raise ValidationError("symbols", f"{self.exchange} has no market {m!r}")
            out.append(m)
        return out

    def _convert(self, trades: list[dict[str, Any]], symbol: str, where: str,
                 events: queue.SimpleQueue[tuple[str, Any]]) -> list[Tick]:
        ticks = []
        for trade in trades:
            try:
                ticks.append(ccxt_tick(trade, symbol, self.exchange))
            except ValidationError as exc:
                events.put(("reject", Rejected(trade.get("info", trade), exc.field, exc.reason,
                                               source=self.exchange, where=where)))
        return ticks

    def _fresh(self, ticks: list[Tick], seen: SeenTrades) -> list[Tick]:
        out = []
        for t in ticks:
            if seen.fresh(t.ts_ms, trade_key(t)):
                out.append(t)
            else:
                self.stats.skipped += 1
        return out

    async def _watch(self, ex: Any, market: str, events: queue.SimpleQueue[tuple[str, Any]]) -> None:
        """Watch one market: deliver, reconnect with back-off, repair (see the module docs)."""
        import ccxt

        symbol = venue_symbol(self.exchange, market)
        seen = self._latest[market] = SeenTrades(floor_ms=self.since_ms)
        failures, batches = 0, 0
        # last_ts when the stream dropped, until repaired; at first, where the trades should start
        resumed_after: int | None = self.since_ms
        anchored = self.since_ms is None
        tried_quiet = False
        while not self._stop.is_set():
            watch: asyncio.Future[Any] | None = None
            try:
                if resumed_after is None:
                    # awaited inline: ccxt registers the next notification before any other
                    # callback runs, so none is missed between two batches
                    trades = await ex.watch_trades(market)
                else:
                    watch = asyncio.ensure_future(ex.watch_trades(market))
                    await asyncio.wait({watch}, timeout=self.repair_wait)
                    if not watch.done() and _connected(ex) and not tried_quiet:
                        # a quiet market: repair once the stream is back, without a trade; what
                        # cannot be fetched now is tried again (and recorded up to it) at the
                        # first live trade, as the span it spoils ends there
                        tried_quiet = True
                        if await self._catch_up(ex, market, symbol, resumed_after, anchored, None,
                                                seen, events, provisional=True):
                            resumed_after = None
                        self._drain(ex, market, symbol, seen, events)
                    trades = await watch
            except ccxt.BaseError as exc:
                kind = type(exc).__name__
                if kind in _FATAL:
                    raise SourceError(f"{self.exchange} {market}: {kind}: {exc}") from None
                failures += 1
                self.stats.failures["disconnect" if isinstance(exc, ccxt.NetworkError) else kind] += 1
                self.last_error = f"{kind}: {exc}"
                log.warning("%s %s: stream lost (%s); watching again", self.exchange, market, self.last_error)
                if resumed_after is None:
                    resumed_after = seen.last_ts if seen.last_ts is not None else self._clock_ms()
                    anchored = seen.last_ts is not None
                tried_quiet = False
                if self.max_reconnects is not None and self.stats.reconnects >= self.max_reconnects:
                    log.warning("%s %s: not reconnecting: max_reconnects=%d reached",
                                self.exchange, market, self.max_reconnects)
                    return
                await asyncio.sleep(self._backoff(failures))
                self.stats.reconnects += 1
                self.stats.retries += 1
                continue
            finally:
                if watch is not None and not watch.done():
                    watch.cancel()
            failures = 0
            batches += 1
            ticks = self._convert(trades, symbol, f"{market} batch {batches}", events)
            if resumed_after is not None and ticks:
                await self._catch_up(ex, market, symbol, resumed_after, anchored, ticks[0].ts_ms,
                                     seen, events)
                resumed_after = None
                self._emit(self._fresh(ticks, seen), events)
                self._drain(ex, market, symbol, seen, events)
                continue
            self._emit(self._fresh(ticks, seen), events)

    @staticmethod
    def _emit(ticks: list[Tick], events: queue.SimpleQueue[tuple[str, Any]]) -> None:
        if ticks:
            events.put(("ticks", ticks))

    def _drain(self, ex: Any, market: str, symbol: str, seen: SeenTrades,
               events: queue.SimpleQueue[tuple[str, Any]]) -> None:
        """Deliver what ccxt's trade cache holds that was not delivered yet: the trades that
        arrived while a repair awaited REST, whose notification found no waiting watch."""
        cached = list((getattr(ex, "trades", None) or {}).get(market) or [])
        fresh = []
        for trade in cached:
            try:
                tick = ccxt_tick(trade, symbol, self.exchange)
            except ValidationError:
                continue  # reported when its batch comes
            if seen.fresh(tick.ts_ms, trade_key(tick)):
                fresh.append(tick)
        self._emit(fresh, events)

    def _clock_ms(self) -> int:
        """The exchange's time as far as this source knows: its latest trade on any market
        (the local clock before the first trade)."""
        latest = [s.last_ts for s in self._latest.values() if s.last_ts is not None]
        return max(latest) if latest else int(time.time() * 1000)

    async def _catch_up(self, ex: Any, market: str, symbol: str, last_ts: int, anchored: bool,
                        first_live_ts: int | None, seen: SeenTrades,
                        events: queue.SimpleQueue[tuple[str, Any]], *, provisional: bool = False) -> bool:
        """Deliver the trades missed between ``last_ts`` and the stream's return (the first
        live trade, or now); record what cannot be recovered as a gap (unless ``provisional``:
        then return False and record nothing, to be tried again). True when settled."""
        end = first_live_ts if first_live_ts is not None else max(last_ts, self._clock_ms())
        if not self.repair:
            gap: TradeGap | None = TradeGap(symbol, last_ts, end, "repair is off", self.exchange)
        else:
            rep = await fetch_missed(ex, market, last_ts, symbol=symbol, source=self.exchange,
                                     anchored=anchored, limit=self.page_limit,
                                     max_pages=self.max_pages)
            for rej in rep.rejected:
                events.put(("reject", rej))
            fresh = self._fresh(rep.ticks, seen)
            self.stats.repaired += len(fresh)
            if fresh:
                events.put(("ticks", fresh))
            gap = gap_of(rep, last_ts, end, symbol=symbol, source=self.exchange)
        if gap is not None and provisional:
            return False
        if gap is not None:
            self.stats.gaps += 1
            log.warning("%s: trades between %d and %d may be missing: %s", symbol, gap.start_ms,
                        gap.end_ms, gap.reason)
            events.put(("gap", gap))
        return True
