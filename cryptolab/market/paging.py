"""Walking an exchange's REST history page by page through ccxt, politely.

ccxt makes one request per call and maps the exchange's answers to unified rows and
exceptions, but its own pagination (``params={"paginate": True}``) keeps every page in
memory, stops at 10 calls by default, never waits for ``Retry-After``, and, for trades,
moves to ``last timestamp + 1`` (losing trades that share the last page's final
millisecond) and stops at the first empty page (an hour without trades on Binance ends
it). So the walk is done here:

* :class:`Pacer` retries what ccxt raises as a transient :class:`ccxt.OperationFailed`
  (timeouts, 5xx and the exchange's "unknown error", 429 and 418 rate limits, which ccxt
  raises as ``RateLimitExceeded`` / ``DDoSProtection``),
  waiting the response's ``Retry-After`` when there is one, else an exponential back-off,
  a bounded number of times; any other ccxt error becomes a one-line
  :class:`~cryptolab.errors.SourceError`.
* :func:`ohlcv_pages` asks for candles from a cursor up to ``until`` and moves the cursor
  past the last candle served, so a server page smaller than the request (or than ccxt's
  limit) only costs one more request; an empty page ends the walk.
* :func:`trade_pages` walks time windows (an hour: Binance's limit for one aggTrades
  query) from a cursor; after a page it asks again from the page's last timestamp and keeps
  only trades it has not seen (by id at that millisecond), so a short page never loses a
  trade, and a window ends when a page brings nothing new.

Examples
--------
>>> retry_after_s({"Retry-After": "3"}), retry_after_s({}), retry_after_s({"retry-after": "soon"})
(3.0, None, None)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any, Final, TypeVar

from cryptolab.errors import SourceError

__all__ = ["TRADE_WINDOW_MS", "Pacer", "ohlcv_pages", "retry_after_s", "trade_pages"]

T = TypeVar("T")

#: The time window of one trades query (Binance answers at most an hour per aggTrades query).
TRADE_WINDOW_MS: Final = 3_600_000


def retry_after_s(headers: Mapping[str, Any] | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), or None.

    Examples
    --------
    >>> retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past
    True
    """
    if not headers:
        return None
    raw = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    if raw is None:
        return None
    text = str(raw).strip()
    try:
        value = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())
    return value if math.isfinite(value) and value >= 0 else None


@dataclass
class Pacer:
    """Calls an exchange, retrying rate limits and network errors a bounded number of times.

    Parameters
    ----------
    max_retries
        Retries of one call before giving up (a :class:`SourceError`).
    max_wait_s
        The longest ``Retry-After`` honoured; a longer one (an IP ban) gives up at once.
    backoff_s
        First back-off when the exchange gives no ``Retry-After`` (doubled each retry).
    sleep
        The wait function (tests may record the waits).

    Examples
    --------
    >>> import ccxt
    >>> waits = []
    >>> pacer = Pacer(backoff_s=0.5, sleep=waits.append)
    >>> answers = iter([ccxt.RequestTimeout("slow"), ccxt.ExchangeNotAvailable("503"), [1, 2]])
    >>> def call():
    ...     a = next(answers)
    ...     if isinstance(a, Exception):
    ...         raise a
    ...     return a
    >>> pacer.call(None, "fetch", call), waits, pacer.retries
    ([1, 2], [0.5, 1.0], 2)
    """

    max_retries: int = 5
    max_wait_s: float = 120.0
    backoff_s: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    retries: int = 0
    waited_s: float = 0.0
    requests: int = field(default=0)

    def call(self, exchange: Any, what: str, fn: Callable[[], T]) -> T:
        """``fn()``, retried on ccxt's transient errors; ``what`` names the call in errors."""
        import ccxt

        name = getattr(exchange, "id", "exchange")
        for attempt in range(self.max_retries + 1):
            self.requests += 1
            try:
                return fn()
            except ccxt.OperationFailed as exc:
                limited = isinstance(exc, ccxt.DDoSProtection)
                wait = retry_after_s(getattr(exchange, "last_response_headers", None)) if limited else None
                if wait is not None and wait > self.max_wait_s:
                    raise SourceError(
                        f"{name} {what}: rate limited, the exchange asks to wait {wait:.0f} s "
                        f"(more than {self.max_wait_s:.0f} s); try again later"
                    ) from exc
                if attempt == self.max_retries:
                    raise SourceError(
                        f"{name} {what}: gave up after {attempt + 1} attempts: {_one_line(exc)}"
                    ) from exc
                if wait is None:
                    wait = self.backoff_s * 2**attempt
                self.retries += 1
                self.waited_s += wait
                self.sleep(wait)
            except ccxt.BaseError as exc:
                raise SourceError(f"{name} {what}: {_one_line(exc)}") from exc
        raise AssertionError("unreachable")  # pragma: no cover


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _trade_key(trade: Mapping[str, Any]) -> str:
    """A trade's identity among those of its millisecond: its id, else its values."""
    tid = trade.get("id")
    if tid is not None:
        return str(tid)
    return repr((trade.get("price"), trade.get("amount"), trade.get("side")))


def ohlcv_pages(
    exchange: Any, pacer: Pacer, market: str, timeframe: str, interval_ms: int, start_ms: int, end_ms: int,
    *, limit: int | None = None,
) -> Iterator[list[list[Any]]]:
    """Pages of ccxt OHLCV rows ``[t, o, h, l, c, v]`` of the windows in ``[start_ms, end_ms)``.

    Only whole windows (ending by ``end_ms``), each once, in time order. ``start_ms`` is a
    window start.
    """
    cursor = start_ms
    while cursor + interval_ms <= end_ms:
        since = cursor
        rows = pacer.call(exchange, f"fetch_ohlcv {market} {timeframe}", partial(
            exchange.fetch_ohlcv, market, timeframe, since=since, limit=limit, params={"until": end_ms - 1}))
        fresh: dict[int, list[Any]] = {}
        for row in rows or ():
            ts = row[0] if row else None
            if isinstance(ts, int) and ts >= since and ts + interval_ms <= end_ms and ts % interval_ms == 0:
                fresh[ts] = row
        if not fresh:
            return
        page = [fresh[t] for t in sorted(fresh)]
        yield page
        cursor = page[-1][0] + interval_ms


def trade_pages(
    exchange: Any, pacer: Pacer, market: str, start_ms: int, end_ms: int,
    *, limit: int | None = None, window_ms: int = TRADE_WINDOW_MS,
    on_window: Callable[[int], None] | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Pages of ccxt trades with time in ``[start_ms, end_ms)``, each trade once, in time order.

    ``on_window(t)`` is told each time the walk has every trade before ``t`` (progress).
    """
    cursor = start_ms
    last_ts = start_ms - 1
    seen: set[str] = set()  # ids of the trades at last_ts
    while cursor < end_ms:
        since, until = cursor, min(cursor + window_ms, end_ms)
        rows = pacer.call(exchange, f"fetch_trades {market}", partial(
            exchange.fetch_trades, market, since=since, limit=limit, params={"until": until - 1}))
        fresh: list[dict[str, Any]] = []
        for tr in sorted((r for r in rows or () if isinstance(r.get("timestamp"), int)),
                         key=lambda r: r["timestamp"]):
            ts, tid = tr["timestamp"], _trade_key(tr)
            if ts < start_ms or ts >= end_ms or ts < last_ts or (ts == last_ts and tid in seen):
                continue
            if ts > last_ts:
                last_ts, seen = ts, set()
            seen.add(tid)
            fresh.append(tr)
        if not fresh:
            cursor = until
            if on_window is not None:
                on_window(cursor)
            continue
        yield fresh
        cursor = max(cursor, last_ts)
        if on_window is not None:
            on_window(cursor)
