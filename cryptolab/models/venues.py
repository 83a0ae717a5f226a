"""Venue-aware symbols: ``VENUE:BASE-QUOTE`` for a pair traded on one exchange.

A ticker from a venue is the venue's name in capitals, a colon, then the pair as
cryptolab writes it (``BASE-QUOTE``): ``BINANCE:BTC-USDT``, ``COINBASE:BTC-USD``.
Venue-less sources (the synthetic market, replays, CoinGecko's aggregate price) keep
the plain ``BASE-QUOTE``. The same pair from two venues is two symbols, so it never
shares a candle. Both forms match the wire format's symbol pattern
(:data:`cryptolab.models.wire.SYMBOL_RE`), so every store, cache key, chart and export
takes them unchanged.

The venue is the ccxt exchange id in capitals, except where one venue has several
ccxt ids (``coinbase`` and ``coinbaseexchange`` are both Coinbase): :data:`VENUE_ALIASES`.

Examples
--------
>>> venue_symbol("binance", "BTC/USDT")
'BINANCE:BTC-USDT'
>>> venue_symbol("coinbaseexchange", "BTC/USD")
'COINBASE:BTC-USD'
>>> split_venue("BINANCE:BTC-USDT")
('BINANCE', 'BTC-USDT')
>>> split_venue("BTC-USD")
(None, 'BTC-USD')
>>> market_symbol("BINANCE:BTC-USDT")
'BTC/USDT'
>>> venue_of("ETH-USD") is None
True

In file names a symbol is written with ``~`` for ``:`` and ``+`` for ``/``
(:func:`file_symbol`): Windows allows neither ``:`` nor ``/`` in a name, and
neither ``~`` nor ``+`` is in a symbol, so the mapping is one to one.

>>> file_symbol("BINANCE:BTC-USDT"), symbol_from_file("BINANCE~BTC-USDT")
('BINANCE~BTC-USDT', 'BINANCE:BTC-USDT')
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from cryptolab.errors import ValidationError
from cryptolab.models.wire import validate_symbol

__all__ = [
    "VENUE_ALIASES",
    "by_venue",
    "file_symbol",
    "market_symbol",
    "pair_symbol",
    "split_venue",
    "symbol_from_file",
    "venue_name",
    "venue_of",
    "venue_symbol",
]

#: ccxt exchange ids that name the same venue as another id: id -> venue name.
VENUE_ALIASES: Final[dict[str, str]] = {
    "coinbaseexchange": "COINBASE",
    "coinbaseadvanced": "COINBASE",
    "binanceus": "BINANCEUS",
}


def venue_name(exchange_id: str) -> str:
    """The venue name of a ccxt exchange id (capitals; aliases folded).

    Examples
    --------
    >>> venue_name("kraken"), venue_name("coinbaseexchange")
    ('KRAKEN', 'COINBASE')
    """
    name = VENUE_ALIASES.get(exchange_id.lower(), exchange_id.upper())
    if not name.isalnum():
        raise ValidationError("exchange", f"{exchange_id!r} is not an exchange id (letters and digits)")
    return name


def pair_symbol(market: str) -> str:
    """cryptolab's ``BASE-QUOTE`` for a ccxt market symbol (``BTC/USDT``, ``BTC/USDT:USDT``).

    A derivative's settle currency (after ``:``) is dropped from the name only when it is
    the quote, as for linear perpetuals; otherwise it is kept after a dot.

    Examples
    --------
    >>> pair_symbol("BTC/USDT"), pair_symbol("BTC/USDT:USDT"), pair_symbol("BTC/USD:BTC")
    ('BTC-USDT', 'BTC-USDT', 'BTC-USD.BTC')
    >>> pair_symbol("btc-usd")
    'BTC-USD'
    """
    text = market.strip().upper()
    settle = None
    if ":" in text:
        text, settle = text.split(":", 1)
    base, sep, quote = text.replace("-", "/").partition("/")
    if not sep or not base or not quote:
        raise ValidationError("symbol", f"{market!r} is not BASE/QUOTE (for example BTC/USDT)")
    name = f"{base}-{quote}" if settle in (None, quote) else f"{base}-{quote}.{settle}"
    return validate_symbol(name)


def venue_symbol(exchange_id: str, market: str) -> str:
    """``VENUE:BASE-QUOTE`` for a ccxt exchange id and market symbol.

    Examples
    --------
    >>> venue_symbol("kraken", "ETH/EUR")
    'KRAKEN:ETH-EUR'
    """
    return validate_symbol(f"{venue_name(exchange_id)}:{pair_symbol(market)}")


def split_venue(symbol: str) -> tuple[str | None, str]:
    """``(venue, pair)`` of a symbol; the venue is None for a venue-less symbol.

    Examples
    --------
    >>> split_venue("COINBASE:ETH-USD")
    ('COINBASE', 'ETH-USD')
    """
    venue, sep, pair = symbol.partition(":")
    return (venue, pair) if sep else (None, symbol)


def venue_of(symbol: str) -> str | None:
    """The venue of a symbol, or None when it has none.

    Examples
    --------
    >>> venue_of("BINANCE:BTC-USDT"), venue_of("BTC-USD")
    ('BINANCE', None)
    """
    return split_venue(symbol)[0]


def market_symbol(symbol: str) -> str:
    """The ccxt market symbol (``BASE/QUOTE``) of a cryptolab symbol, venue or not.

    Examples
    --------
    >>> market_symbol("ETH-USD"), market_symbol("BTC-USD.BTC")
    ('ETH/USD', 'BTC/USD:BTC')
    """
    pair = split_venue(symbol)[1]
    pair, dot, settle = pair.partition(".")
    base, sep, quote = pair.partition("-")
    if not sep:
        raise ValidationError("symbol", f"{symbol!r} is not [VENUE:]BASE-QUOTE")
    return f"{base}/{quote}:{settle}" if dot else f"{base}/{quote}"


def by_venue(symbols: Iterable[str]) -> dict[str | None, list[str]]:
    """Symbols grouped by venue: venues in alphabetical order, venue-less ones (key None) last.

    Each group keeps the symbols' first-seen order, duplicates dropped.

    Examples
    --------
    >>> by_venue(["COINBASE:BTC-USD", "BTC-USD", "BINANCE:BTC-USDT", "BINANCE:ETH-USDT"])
    {'BINANCE': ['BINANCE:BTC-USDT', 'BINANCE:ETH-USDT'], 'COINBASE': ['COINBASE:BTC-USD'], None: ['BTC-USD']}
    """
    groups: dict[str | None, dict[str, None]] = {}
    for symbol in symbols:
        groups.setdefault(venue_of(symbol), {})[symbol] = None
    order = sorted(v for v in groups if v is not None) + ([None] if None in groups else [])
    return {v: list(groups[v]) for v in order}


#: Characters of a symbol that file names cannot hold, and what stands for them.
_FILE_SAFE: Final = str.maketrans({":": "~", "/": "+"})
_FILE_BACK: Final = str.maketrans({"~": ":", "+": "/"})


def file_symbol(symbol: str) -> str:
    """A symbol as it may appear in a file name on every system (``:`` -> ``~``, ``/`` -> ``+``).

    Examples
    --------
    >>> file_symbol("COINBASE:BTC-USD"), file_symbol("BTC/USD"), file_symbol("ETH-USD")
    ('COINBASE~BTC-USD', 'BTC+USD', 'ETH-USD')
    """
    return validate_symbol(symbol).translate(_FILE_SAFE)


def symbol_from_file(name: str) -> str:
    """The symbol :func:`file_symbol` wrote as ``name``.

    Examples
    --------
    >>> symbol_from_file("KRAKEN~ETH-EUR")
    'KRAKEN:ETH-EUR'
    """
    return validate_symbol(name.translate(_FILE_BACK))
