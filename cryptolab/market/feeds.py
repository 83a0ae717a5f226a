"""What a live session reads: a source named in one word, and the history it brings.

:func:`open_feed` turns ``"synthetic"``, ``"coingecko"``, ``"replay:PATH"`` or a ccxt
exchange id into a :class:`Feed`: the source of live ticks, the symbols they carry, and
how the session's history comes first:

=============== ============================================================================
source          history
=============== ============================================================================
synthetic       the last ``backfill`` of the market, generated and sent at full speed; the
                ticks after it are paced by the wall clock (times ``speed``)
replay:PATH     the file is its own history: played at full speed (or at ``speed``)
coingecko       none: ``/simple/price`` quotes from now on
<ccxt id>       the exchange's candles of the last ``backfill`` over REST
                (:func:`cryptolab.market.backfill.backfill`), whole windows up to now;
                then its trades from the end of that history (those of the windows
                still open over REST, then the live ones:
                :class:`cryptolab.sources.ccxt_trades.CcxtTrades` ``since_ms``)
=============== ============================================================================

Examples
--------
>>> feed = open_feed("synthetic", symbols=2, backfill_ms=600_000, now_ms=1_700_000_040_000)
>>> feed.kind, feed.symbols, feed.history_end_ms - feed.source.start_ms
('synthetic', ['BTC-USD', 'ETH-USD'], 600000)
>>> open_feed("nowhere-exchange")
Traceback (most recent call last):
...
cryptolab.errors.ValidationError: invalid 'source': unknown source 'nowhere-exchange': synthetic, coingecko, replay:PATH or a ccxt exchange id (see ccxt.exchanges)
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from cryptolab.errors import ValidationError
from cryptolab.models import parse_duration, parse_interval

if TYPE_CHECKING:  # pragma: no cover
    from cryptolab.config import Settings
    from cryptolab.sources.synthetic import Injection

__all__ = [
    "FIRST_INJECTION_MS",
    "LIVE_INJECTION_HORIZON_MS",
    "Feed",
    "FeedKind",
    "live_injections",
    "open_feed",
    "parse_backfill",
]

_MINUTE = 60_000
#: How far ahead (simulated) a live synthetic market schedules its spikes and crashes.
LIVE_INJECTION_HORIZON_MS: Final = 7 * 24 * 3_600_000
#: The first injected move comes this long (simulated) after the live market starts.
FIRST_INJECTION_MS: Final = 5 * _MINUTE
#: The default markets of an exchange source.
DEFAULT_MARKETS: Final = ("BTC/USDT",)

FeedKind = Literal["synthetic", "replay", "coingecko", "exchange"]


def live_injections(symbols: Sequence[str], start_ms: int, every_s: float, *, seed: int = 7,
                    magnitude: float = 0.08,
                    horizon_ms: int = LIVE_INJECTION_HORIZON_MS) -> list[Injection]:
    """The moves a live synthetic market injects: a spike, then a crash, ... every ``every_s``.

    The first comes five simulated minutes in, on a seeded random symbol, then one
    every ``every_s`` simulated seconds for ``horizon_ms`` (a week); each is an 8%
    move over one minute, which the ``rule`` detector flags at once (HIGH).
    ``every_s <= 0`` injects nothing.

    Examples
    --------
    >>> moves = live_injections(["BTC-USD", "ETH-USD"], 1_700_000_040_000, 900)
    >>> [(m.kind, (m.at_ms - 1_700_000_040_000) // 60_000) for m in moves[:3]]
    [('spike', 5), ('crash', 20), ('spike', 35)]
    >>> len(moves), live_injections(["BTC-USD"], 0, 0)
    (672, [])
    """
    from cryptolab.sources.synthetic import Injection

    if every_s <= 0 or not symbols:
        return []
    step = max(int(every_s * 1000), 2 * _MINUTE)
    rng = random.Random(seed)
    moves: list[Injection] = []
    at = start_ms + FIRST_INJECTION_MS
    while at < start_ms + horizon_ms:
        kind: Literal["spike", "crash"] = "spike" if len(moves) % 2 == 0 else "crash"
        moves.append(Injection(symbol=rng.choice(list(symbols)), at_ms=at, kind=kind,
                               magnitude=magnitude))
        at += step
    return moves


def parse_backfill(value: str | int | float | None) -> int:
    """How much history to bring first, in ms: a duration (``"6h"``), or 0/None for none.

    Examples
    --------
    >>> parse_backfill("6h"), parse_backfill("0"), parse_backfill(None), parse_backfill(90_000)
    (21600000, 0, 0, 90000)
    >>> parse_backfill("-1h")
    Traceback (most recent call last):
    ...
    cryptolab.errors.ValidationError: invalid 'backfill': '-1h' is not a duration like 30m, 6h, 1d (or 0 for none)
    """
    if value is None:
        return 0
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValidationError("backfill", f"must be >= 0 ms, got {value}")
        return int(value)
    text = str(value).strip().lower()
    if text in ("", "0", "none", "no"):
        return 0
    try:
        return parse_duration(text)
    except ValidationError:
        raise ValidationError("backfill", f"{value!r} is not a duration like 30m, 6h, 1d (or 0 for none)") from None


@dataclass
class Feed:
    """A live session's source of ticks, and how its history comes first.

    Attributes
    ----------
    kind
        ``synthetic``, ``replay``, ``coingecko`` or ``exchange``.
    name
        The source as the session was given it (an exchange's ccxt id for ``exchange``).
    source
        The :class:`~cryptolab.sources.Source` whose ``iter_ticks`` the producer thread reads.
    symbols
        The symbols its ticks carry (``VENUE:BASE-QUOTE`` for an exchange).
    history_end_ms
        Ticks before this event time are history, sent at full speed; the later ones are
        paced by the wall clock (``None``: sent as the source yields them).
    speed
        Simulated seconds per wall-clock second after ``history_end_ms``.
    backfill
        ``f(settings, store_url)`` run before the source starts (an exchange's REST candles);
        returns what it wrote, for the session's stats.
    own_store
        The session should write to a SQLite file of its own unless a store is configured
        (a synthetic market must never mix with real candles).
    settings
        Settings this feed needs changed (for example no clock-skew bound for a market run
        faster than real time).
    """

    kind: FeedKind
    name: str
    source: Any
    symbols: list[str]
    history_end_ms: int | None = None
    speed: float = 1.0
    backfill: Callable[[Settings, str], Any] | None = None
    own_store: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    #: ccxt market symbol (``BTC/USDT``) -> session symbol, for an exchange.
    markets: dict[str, str] = field(default_factory=dict)


def open_feed(
    source: str,
    *,
    symbols: int | str | Sequence[str] | None = None,
    backfill_ms: int = 0,
    intervals: Sequence[str] = ("1m",),
    settings: Settings | None = None,
    now_ms: int | None = None,
    **options: Any,
) -> Feed:
    """The :class:`Feed` of a source named in one word (see the module docs).

    Parameters
    ----------
    source
        ``"synthetic"``, ``"coingecko"``, ``"replay:PATH"`` (or ``"replay"`` with
        ``path=``) or a ccxt exchange id (``"binance"``, ``"kraken"``...).
    symbols
        synthetic: a count or a list (default 5); coingecko: CoinGecko ids (default
        ``bitcoin,ethereum``; ``coins=`` too); exchange: ccxt market symbols (default
        ``BTC/USDT``); replay: ignored (the file's own).
    backfill_ms
        How much history comes first (synthetic, exchange).
    intervals
        The session's candle intervals (an exchange's candles are backfilled at each).
    settings
        Services, the CoinGecko URL and key.
    now_ms
        The wall clock (tests).
    options
        The source's own options: synthetic ``seed``, ``ticks_per_second``, ``speed``,
        ``spike_every_s``; replay ``path``, ``format``, ``symbol``, ``speed``, ``ts_unit``,
        ``ts_column``, ``interval``, ``errors``; coingecko ``coins``, ``vs_currency``,
        ``base_url``, ``poll_interval``, ``calls_per_minute``; exchange ``api_url``,
        ``ws_url``, ``backfill_from`` (``ohlcv`` or ``trades``).

    Raises
    ------
    ValidationError
        An unknown source, or an option it does not take.
    """
    now = int(time.time() * 1000) if now_ms is None else now_ms
    name = source.strip()
    if name == "synthetic":
        return _synthetic(symbols, backfill_ms, now, options)
    if name == "replay" or name.startswith("replay:"):
        path = name[len("replay:"):] if ":" in name else options.pop("path", None)
        if not path:
            raise ValidationError("source", "replay needs a file: replay:PATH")
        return _replay(Path(path), options)
    if name == "coingecko":
        return _coingecko(symbols, settings, options)
    return _exchange(name.lower(), symbols, backfill_ms, tuple(intervals), now, options)


def _take(options: dict[str, Any], source: str, known: Sequence[str]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValidationError("options", f"{source} takes no option {', '.join(unknown)} "
                              f"(it takes {', '.join(known)})")
    return {k: v for k, v in options.items() if v is not None}


def _synthetic(symbols: Any, backfill_ms: int, now: int, options: dict[str, Any]) -> Feed:
    from cryptolab.sources.synthetic import SyntheticMarket, synthetic_symbols

    opts = _take(options, "synthetic", ("seed", "ticks_per_second", "speed", "spike_every_s"))
    if symbols is None:
        symbols = 5
    if isinstance(symbols, str):
        text = symbols.strip()
        symbols = int(text) if text.isdigit() else [s.strip().upper() for s in text.split(",") if s.strip()]
    names = synthetic_symbols(symbols) if isinstance(symbols, int) else list(symbols)
    speed = float(opts.get("speed", 1.0))
    if not speed > 0:
        raise ValidationError("speed", f"must be > 0, got {speed}")
    seed = int(opts.get("seed", 7))
    start = (now - backfill_ms) // _MINUTE * _MINUTE
    market = SyntheticMarket(
        symbols=names, seed=seed, start_ms=start, duration_ms=None,
        ticks_per_second=float(opts.get("ticks_per_second", 10.0)),
        injections=live_injections(names, start, float(opts.get("spike_every_s", 900.0)), seed=seed),
    )
    # ordered ticks, maybe ahead of the wall clock (speed > 1): no lateness bound, no clock-skew
    # bound, and no idle close (a quiet partition is not a closed minute)
    return Feed(kind="synthetic", name="synthetic", source=market, symbols=market.symbols,
                history_end_ms=now, speed=speed, own_store=True,
                settings={"idle_timeout_ms": 0, "out_of_orderness_ms": 0, "max_clock_skew_ms": 0})


def _replay(path: Path, options: dict[str, Any]) -> Feed:
    from cryptolab.sources.replay import Replay

    opts = _take(options, "replay", ("format", "symbol", "speed", "ts_unit", "ts_column", "interval", "errors"))
    source = Replay(path, **opts)
    symbols = [source.symbol] if source.symbol else []
    return Feed(kind="replay", name=f"replay:{path}", source=source, symbols=symbols, speed=1.0)


def _coingecko(symbols: Any, settings: Settings | None, options: dict[str, Any]) -> Feed:
    from cryptolab.sources.coingecko import CoinGeckoPoller

    opts = _take(options, "coingecko", ("coins", "vs_currency", "base_url", "poll_interval",
                                        "calls_per_minute", "api_key", "plan"))
    coins = opts.pop("coins", None) or symbols or "bitcoin,ethereum"
    poller = CoinGeckoPoller(coins, settings=settings, **opts)
    return Feed(kind="coingecko", name="coingecko", source=poller, symbols=list(poller.coins.values()))


def _exchange(exchange: str, symbols: Any, backfill_ms: int, intervals: tuple[str, ...], now: int,
              options: dict[str, Any]) -> Feed:
    from cryptolab.models.venues import pair_symbol, venue_symbol

    if not exchange.isalnum() or not _is_ccxt_exchange(exchange):
        raise ValidationError("source", f"unknown source {exchange!r}: synthetic, coingecko, replay:PATH or "
                              "a ccxt exchange id (see ccxt.exchanges)")
    opts = _take(options, exchange, ("api_url", "ws_url", "backfill_from", "speed"))
    opts.pop("speed", None)
    given = symbols or DEFAULT_MARKETS
    listed = [s.strip() for s in given.split(",")] if isinstance(given, str) else [str(s) for s in given]
    # BASE/QUOTE, BASE-QUOTE or VENUE:BASE-QUOTE: all name a ccxt market BASE/QUOTE
    markets = {pair_symbol(m.split(":", 1)[1] if ":" in m and "/" not in m else m).replace("-", "/", 1): ""
               for m in listed if m}
    markets = {m: venue_symbol(exchange, m) for m in markets}
    api_url, ws_url = opts.get("api_url"), opts.get("ws_url")
    from cryptolab.sources.ccxt_trades import CcxtTrades  # type: ignore[import-not-found,unused-ignore]

    # the live trades start where the stored history ends (the last whole window of every
    # interval): the trades of the windows still open come over REST before the stream's
    grain = math.lcm(*(parse_interval(i) for i in intervals))
    since = now - now % grain if backfill_ms > 0 else None
    source = CcxtTrades(exchange, list(markets), api_url=api_url, ws_url=ws_url, since_ms=since)
    kind = str(opts.get("backfill_from", "ohlcv"))

    def backfill(settings: Settings, store_url: str) -> Any:
        if backfill_ms <= 0:
            return None
        from cryptolab.market.backfill import backfill as fetch  # type: ignore[import-not-found,unused-ignore]

        common: dict[str, Any] = {"since": now - backfill_ms, "until": now, "store": store_url,
                                  "api_url": api_url, "progress": False, "settings": settings}
        if kind == "trades":  # the trades, rebuilt into candles of every interval at once
            return [fetch(exchange, list(markets), interval=intervals[0], kind="trades",
                          intervals=list(intervals), **common)]
        return [fetch(exchange, list(markets), interval=interval, kind="ohlcv", **common)
                for interval in intervals]

    return Feed(kind="exchange", name=exchange, source=source, symbols=list(markets.values()),
                backfill=backfill, markets=markets)


def _is_ccxt_exchange(exchange: str) -> bool:
    import ccxt

    return exchange in ccxt.exchanges
