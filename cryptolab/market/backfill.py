"""Backfill: an exchange's history over REST (through ccxt) into the store, as final candles.

Two ways:

* ``kind="ohlcv"`` (default): the exchange's own candles (``fetch_ohlcv``), page after page
  past the exchange's page limit, each stored as a final candle of the venue symbol
  (``BINANCE:BTC-USDT``); a window the exchange serves with zero volume is stored as a flat
  gap candle, as the aggregator's gap fill stores one (:mod:`cryptolab.market.exchange_candles`).
* ``kind="trades"``: the exchange's trades (``fetch_trades``) folded by cryptolab's own
  streaming aggregator (:class:`~cryptolab.candles.CandleAggregator`, with the settings'
  lateness and gap fill), into every interval at once, exactly the candles the live path
  builds from the same trades.

Only whole windows are stored: ``since`` is rounded down to a window start (of the longest
interval, for trades) and the span ends at ``until`` (or now) rounded down, so no stored
candle is partial. Rate limits (HTTP 429/418) and network errors are retried, waiting the
exchange's ``Retry-After`` (:mod:`cryptolab.market.paging`). Candles are upserted by key with
revision 0, so running the same backfill again changes nothing.

Examples
--------
>>> backfill("binance", ["BTC/USDT"], since="2024-01-02", until="2024-01-01")
Traceback (most recent call last):
...
cryptolab.errors.ValidationError: invalid 'since': 2024-01-02T00:00:00Z is not before until 2024-01-01T00:00:00Z
>>> backfill("binance", ["BTC/USDT"], interval="7m", since="2024-01-01")
Traceback (most recent call last):
...
cryptolab.errors.ValidationError: invalid 'interval': 7m does not divide a day evenly
>>> backfill("nosuchexchange", ["BTC/USDT"], since="2024-01-01")
Traceback (most recent call last):
...
cryptolab.errors.ValidationError: invalid 'exchange': unknown exchange 'nosuchexchange'; ccxt knows ... (see ccxt.exchanges)
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from cryptolab.candles import CandleAggregator
from cryptolab.config import Settings
from cryptolab.errors import ValidationError
from cryptolab.market.exchange_candles import candle_from_ohlcv
from cryptolab.market.paging import Pacer, ohlcv_pages, trade_pages
from cryptolab.market.report import BackfillReport
from cryptolab.models import Candle
from cryptolab.models.time import iso_utc, parse_duration, parse_interval, parse_intervals, parse_ts
from cryptolab.models.venues import pair_symbol, venue_symbol
from cryptolab.sources.ccxt_open import open_exchange
from cryptolab.store import Store

if TYPE_CHECKING:  # pragma: no cover
    from tqdm import tqdm

__all__ = ["KINDS", "BackfillReport", "backfill"]

#: What a backfill reads: the exchange's candles, or its trades rebuilt into candles.
KINDS: Final = ("ohlcv", "trades")
_RELATIVE_RE: Final = re.compile(r"\s*\d+\s*(ms|s|m|h|d|w)\s*")
#: ccxt timeframe suffixes that are not a fixed number of milliseconds.
_CALENDAR: Final = ("M", "y")
_GROUP: Final = "backfill"


def backfill(
    exchange: str | Any,
    symbols: str | Sequence[str],
    *,
    interval: str = "1m",
    since: int | str | datetime,
    until: int | str | datetime | None = None,
    store: Store | str | None = None,
    kind: str = "ohlcv",
    intervals: str | Sequence[str] | None = None,
    api_url: str | None = None,
    progress: bool = True,
    settings: Settings | None = None,
) -> BackfillReport:
    """Fetch an exchange's history over REST and store it as final candles.

    Parameters
    ----------
    exchange
        A ccxt exchange id (``"binance"``, ``"kraken"``...) or a ccxt exchange instance.
    symbols
        ccxt market symbols (``"BTC/USDT"`` or a list); stored as ``VENUE:BASE-QUOTE``.
    interval
        The candle interval (``kind="ohlcv"``) when ``intervals`` is not given.
    since, until
        The span: epoch ms, ISO-8601 text, a ``datetime`` (naive = UTC), or a duration
        before now (``"6h"``, ``"2d"``). ``until`` defaults to now. ``since`` is rounded down
        to a window start; only windows that end by ``until`` are stored.
    store
        A :class:`~cryptolab.store.Store`, a store URL, or None for the settings' store.
    kind
        ``"ohlcv"``: the exchange's candles; ``"trades"``: its trades, rebuilt by cryptolab's
        aggregator into every interval (``intervals``, default the settings' intervals).
    intervals
        Several intervals (``"1m,5m,15m"`` or a list).
    api_url
        Replaces the scheme, host and port of every REST endpoint of the exchange
        (a local stand-in, a proxy, a mirror).
    progress
        Show a progress bar on standard error (pages, candles, ETA over the span covered).
    settings
        Store URL, intervals, lateness and gap fill (default: ``Settings.from_env()``).

    Returns
    -------
    BackfillReport
        Pages, requests, retries, and the candles stored per series.

    Raises
    ------
    ValidationError
        An unknown exchange, kind, symbol (not among the exchange's markets) or interval
        (not among the exchange's timeframes, for ``ohlcv``), or ``since`` not before ``until``;
        nothing is fetched or stored when the arguments are bad.
    SourceError
        The exchange failed for good (retries exhausted, a rate limit longer than two
        minutes, an error answer).
    StoreError
        The store failed.
    """
    if kind not in KINDS:
        raise ValidationError("kind", f"{kind!r} is not one of {', '.join(KINDS)}")
    markets = _markets(symbols)
    settings = settings or Settings.from_env()
    names = _interval_names(kind, interval, intervals, settings)
    ivs = [parse_interval(n) for n in names]
    now = int(time.time() * 1000)
    since_ms = _time("since", since, now)
    until_ms = now if until is None else min(_time("until", until, now), now)
    if since_ms >= until_ms:
        raise ValidationError("since", f"{iso_utc(since_ms)} is not before until {iso_utc(until_ms)}")
    ex = open_exchange(exchange, api_url=api_url) if isinstance(exchange, str) else exchange
    timeframes = _timeframes(ex, names, ivs) if kind == "ohlcv" else {}
    pacer = Pacer()
    _check_markets(ex, pacer, kind, markets)
    grain = math.lcm(*ivs) if kind == "trades" else ivs[0]
    start = since_ms - since_ms % grain
    report = BackfillReport(exchange=ex.id, kind=kind, symbols=tuple(venue_symbol(ex.id, m) for m in markets),
                            intervals=names, since_ms=start, until_ms=until_ms, store_url="")
    began = time.monotonic()
    with ExitStack() as stack:
        db = _open_store(store, settings, stack)
        report.store_url = db.url
        bar = _bar(ex.id, kind, markets, ivs, start, until_ms, progress, stack)
        if kind == "ohlcv":
            _ohlcv(ex, pacer, db, report, markets, names, ivs, timeframes, start, until_ms, bar)
        else:
            end = until_ms - until_ms % grain
            report.until_ms = end
            _trades(ex, pacer, db, report, markets, names, start, end, settings, bar)
    report.requests, report.retries, report.waited_s = pacer.requests, pacer.retries, pacer.waited_s
    report.elapsed_s = time.monotonic() - began
    return report


def _interval_names(kind: str, interval: str, intervals: str | Sequence[str] | None,
                    settings: Settings) -> tuple[str, ...]:
    if intervals is not None:
        return parse_intervals(intervals if isinstance(intervals, str) else list(intervals))
    if kind == "ohlcv":
        return (parse_intervals(interval)[0],)
    return settings.intervals


def _check_markets(ex: Any, pacer: Pacer, kind: str, markets: list[str]) -> None:
    needed = "fetchOHLCV" if kind == "ohlcv" else "fetchTrades"
    if not ex.has.get(needed):
        raise ValidationError("exchange", f"{ex.id} has no {needed} in ccxt")
    known = pacer.call(ex, "load_markets", ex.load_markets)
    for m in markets:
        if m not in known:
            raise ValidationError("symbol", f"{m!r} is not a market of {ex.id} ({len(known)} markets; "
                                  f"see ccxt's {ex.id}.load_markets())")


def _markets(symbols: str | Sequence[str]) -> list[str]:
    items = [symbols] if isinstance(symbols, str) else list(symbols)
    out: list[str] = []
    for s in items:
        pair_symbol(s)  # the name's shape: BASE/QUOTE
        m = s.strip().upper()
        if m not in out:
            out.append(m)
    if not out:
        raise ValidationError("symbol", "at least one symbol is required (for example BTC/USDT)")
    return out


def _time(name: str, value: int | str | datetime, now: int) -> int:
    if isinstance(value, str) and _RELATIVE_RE.fullmatch(value):
        return now - parse_duration(value.strip().replace(" ", ""))
    return parse_ts(value, None, name)


def _timeframes(ex: Any, names: Iterable[str], ivs: Iterable[int]) -> dict[int, str]:
    by_ms: dict[int, str] = {}
    for tf in ex.timeframes or {}:
        if tf.endswith(_CALENDAR):
            continue
        try:
            by_ms.setdefault(int(ex.parse_timeframe(tf) * 1000), tf)
        except Exception:  # a timeframe ccxt cannot size is not offered
            continue
    for name, iv in zip(names, ivs, strict=True):
        if iv not in by_ms:
            offered = ", ".join(by_ms[k] for k in sorted(by_ms))
            raise ValidationError("interval", f"{ex.id} has no {name} candles (it offers {offered})")
    return by_ms


def _open_store(store: Store | str | None, settings: Settings, stack: ExitStack) -> Store:
    if isinstance(store, Store):
        db = store
    else:
        db = Store(store) if store is not None else Store.from_settings(settings)
        stack.callback(db.close)
    db.init()
    return db


def _bar(ex_id: str, kind: str, markets: list[str], ivs: list[int], start: int, end: int, progress: bool,
         stack: ExitStack) -> tqdm[Any] | None:
    if not progress:
        return None
    from tqdm import tqdm

    series = len(markets) * (len(ivs) if kind == "ohlcv" else 1)
    bar: tqdm[Any] = tqdm(total=series * max(0, end - start) // 60_000, desc=f"backfill {ex_id} {kind}",
                          unit=" min", unit_scale=True, mininterval=0.5, dynamic_ncols=True)
    stack.callback(bar.close)
    return bar


class _Progress:
    """Market time covered by one series, reported to the bar in whole minutes."""

    def __init__(self, bar: tqdm[Any] | None, start: int, report: BackfillReport) -> None:
        self.bar, self.start, self.shown, self.report = bar, start, 0, report

    def at(self, t: int) -> None:
        if self.bar is None:
            return
        minutes = max(0, t - self.start) // 60_000
        if minutes > self.shown:
            self.bar.update(minutes - self.shown)
            self.shown = minutes
        self.bar.set_postfix(pages=self.report.pages, candles=self.report.candles, refresh=False)


def _store(db: Store, report: BackfillReport, ex_id: str, candles: Sequence[Candle], ivs: dict[str, int]) -> None:
    if not candles:
        return
    db.commit_batch(group=_GROUP, topic=ex_id, candles=candles)
    for c in candles:
        report.series_for(c.symbol, c.interval, ivs[c.interval]).add(c.window_start, gap=c.gap)


def _ohlcv(ex: Any, pacer: Pacer, db: Store, report: BackfillReport, markets: list[str], names: tuple[str, ...],
           ivs: list[int], timeframes: dict[int, str], start: int, end: int, bar: tqdm[Any] | None) -> None:
    limit = ((getattr(ex, "features", None) or {}).get("spot") or {}).get("fetchOHLCV", {}).get("limit")
    by_name = dict(zip(names, ivs, strict=True))
    for market in markets:
        symbol = venue_symbol(ex.id, market)
        for name, iv in by_name.items():
            first = start - start % iv
            report.series_for(symbol, name, iv)
            prog = _Progress(bar, first, report)
            for page in ohlcv_pages(ex, pacer, market, timeframes[iv], iv, first, end, limit=limit):
                report.pages += 1
                candles = [c for c in (candle_from_ohlcv(symbol, name, iv, row) for row in page) if c is not None]
                report.rejected += len(page) - len(candles)
                _store(db, report, ex.id, candles, by_name)
                prog.at(page[-1][0] + iv)
            prog.at(end)


def _trades(ex: Any, pacer: Pacer, db: Store, report: BackfillReport, markets: list[str], names: tuple[str, ...],
            start: int, end: int, settings: Settings, bar: tqdm[Any] | None) -> None:
    by_name = {n: parse_interval(n) for n in names}
    for market in markets:
        symbol = venue_symbol(ex.id, market)
        for name, iv in by_name.items():
            report.series_for(symbol, name, iv)
        agg = CandleAggregator(intervals=names, out_of_orderness_ms=settings.out_of_orderness_ms,
                               allowed_lateness_ms=settings.allowed_lateness_ms, gap_fill=settings.gap_fill)
        prog = _Progress(bar, start, report)
        for page in trade_pages(ex, pacer, market, start, end, on_window=prog.at):
            report.pages += 1
            for tr in page:
                price, size = _positive(tr.get("price")), _positive(tr.get("amount"))
                if price is None or (size is None and tr.get("amount") is not None):
                    report.rejected += 1
                    continue
                agg.add(symbol, tr["timestamp"], price, size)
                report.trades += 1
            _store(db, report, ex.id, agg.drain().finals, by_name)
        agg.close_all()
        _store(db, report, ex.id, agg.drain().finals, by_name)
        prog.at(end)


def _positive(x: Any) -> float | None:
    """``x`` as a float when it is a finite positive number, else None."""
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x) or x <= 0:
        return None
    return float(x)
