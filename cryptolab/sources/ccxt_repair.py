"""Fetch the trades a websocket missed, over the exchange's REST trade history (ccxt).

:func:`fetch_missed` asks ``fetch_trades(market, since=last_ts - 1, limit)`` and pages
forward by time until a page is short or brings nothing new. The history *reaches
back* when it holds a trade at or before the last one delivered (the last delivered
trade itself, normally; before any trade of the market was delivered, when the first
page from the time the stream was up is not full): only then is every trade between the disconnection and now
known. What it cannot give is reported (:class:`Repair` ``reached`` / ``error``) and
becomes a :class:`~cryptolab.sources.trade_gaps.TradeGap` in the caller.

Exchanges whose history endpoint ignores ``since`` and returns the newest trades
(Coinbase Exchange) are repaired when the gap is shorter than one page and marked
otherwise; exchanges that cap the span of one request (Binance: an hour) are paged
while trades come back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryptolab.errors import ValidationError
from cryptolab.models.records import Tick
from cryptolab.sources import Rejected
from cryptolab.sources.ccxt_ticks import ccxt_tick, trade_key
from cryptolab.sources.trade_gaps import TradeGap

__all__ = ["Repair", "fetch_missed", "gap_of"]


@dataclass
class Repair:
    """What the trade history gave back: ``ticks`` oldest first (not yet de-duplicated
    against what was delivered), ``rejected`` trades that did not validate, whether the
    history ``reached`` back to the last delivered trade, and the ``error`` that stopped
    the paging (None when it ended normally)."""

    ticks: list[Tick] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    reached: bool = False
    error: str | None = None
    pages: int = 0


async def fetch_missed(exchange: Any, market: str, last_ts: int, *, symbol: str, source: str,
                       anchored: bool = True, limit: int = 1000, max_pages: int = 100) -> Repair:
    """Page through ``exchange.fetch_trades`` from ``last_ts`` (see the module docs).

    Parameters
    ----------
    exchange
        An async ccxt exchange (ccxt.pro's), markets loaded.
    market
        The ccxt market symbol (``BTC/USDT``).
    last_ts
        Time of the last trade delivered before the disconnection (epoch ms).
    anchored
        False when no trade of the market was delivered yet and ``last_ts`` is only a
        time the stream was known to be up: the history then reaches back when its
        first page from ``last_ts`` is not full.
    symbol, source
        The ticks' symbol and source.
    limit, max_pages
        Trades per request, and requests at most.
    """
    import ccxt

    rep = Repair()
    if not exchange.has.get("fetchTrades"):
        rep.error = f"{exchange.id} has no fetchTrades"
        return rep
    got: dict[Any, Tick] = {}
    cursor = last_ts - 1
    while rep.pages < max_pages:
        try:
            page = await exchange.fetch_trades(market, since=cursor, limit=limit)
        except ccxt.BaseError as exc:
            rep.error = f"fetch_trades failed: {type(exc).__name__}: {str(exc)[:200]}"
            break
        rep.pages += 1
        new, top = 0, cursor
        for trade in page:
            try:
                tick = ccxt_tick(trade, symbol, source)
            except ValidationError as exc:
                rep.rejected.append(Rejected(trade.get("info", trade), exc.field, exc.reason,
                                             source=source, where=f"fetch_trades page {rep.pages}"))
                continue
            if tick.ts_ms <= last_ts:
                rep.reached = True
            key = trade_key(tick)
            if key not in got:
                got[key] = tick
                new += 1
            top = max(top, tick.ts_ms)
        if rep.pages == 1 and not anchored and len(page) < limit:
            rep.reached = True
        if len(page) < limit or new == 0:
            break
        cursor = top
    rep.ticks = sorted(got.values(), key=lambda t: t.ts_ms)
    return rep


def gap_of(rep: Repair, last_ts: int, first_live_ts: int, *, symbol: str, source: str) -> TradeGap | None:
    """The span a repair could not cover, or None when it covered everything.

    Examples
    --------
    >>> t = Tick(symbol="X-Y", ts_ms=1_700_000_050_000, price=1.0)
    >>> gap_of(Repair([t], reached=False), 1_700_000_000_000, 1_700_000_090_000, symbol="X-Y", source="x")
    TradeGap(symbol='X-Y', start_ms=1700000000000, end_ms=1700000050000, reason='the trade history does not reach back', source='x')
    >>> gap_of(Repair([t], reached=True), 1_700_000_000_000, 1_700_000_090_000, symbol="X-Y", source="x") is None
    True
    """
    if rep.error is None and rep.reached:
        return None
    if not rep.reached:
        end = rep.ticks[0].ts_ms if rep.ticks and rep.error is None else first_live_ts
        reason = rep.error or "the trade history does not reach back"
        return TradeGap(symbol, last_ts, max(end, last_ts), reason, source)
    start = max([last_ts] + [t.ts_ms for t in rep.ticks])
    return TradeGap(symbol, start, max(first_live_ts, start), rep.error or "", source)
