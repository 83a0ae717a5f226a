"""Cross-venue composite series: every venue trade of a pair also counted under one venue-less name.

:func:`with_composite` wraps a source so that each tick of a member symbol is yielded
twice: as it came (``BINANCE:BTC-USDT``), then under the composite's name (``BTC-USDT``)
with the same time, price, size and trade id, and the member symbol as its ``source``.
The consumer then builds the composite's candles like any series: its OHLCV is that of
all the members' trades together, its VWAP the volume-weighted price of those trades per
window, and the venue series are unchanged beside it.

Members are named explicitly (``{"BTC-USD": ["BINANCE:BTC-USDT", "COINBASE:BTC-USD"]}``),
or by the rule of the pair (``{"BTC-USD": None}``): every venue symbol whose pair is
exactly ``BTC-USD``. The rule never mixes quotes: ``BTC-USDT`` and ``BTC-USD`` are
different markets (a stablecoin is not the dollar); name members explicitly to merge them.

Examples
--------
>>> from cryptolab.models import Tick
>>> class Two:
...     name, validated = "demo", True
...     def iter_ticks(self, *, on_reject=None):
...         yield Tick(symbol="BINANCE:BTC-USDT", ts_ms=1_700_000_000_000, price=100.0, size=1.0)
...         yield Tick(symbol="KRAKEN:BTC-USDT", ts_ms=1_700_000_000_500, price=102.0, size=3.0)
>>> [(t.symbol, t.price, t.source) for t in with_composite(Two(), {"BTC-USDT": None}).iter_ticks()]
... # doctest: +NORMALIZE_WHITESPACE
[('BINANCE:BTC-USDT', 100.0, ''), ('BTC-USDT', 100.0, 'BINANCE:BTC-USDT'),
 ('KRAKEN:BTC-USDT', 102.0, ''), ('BTC-USDT', 102.0, 'KRAKEN:BTC-USDT')]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from cryptolab.errors import ValidationError
from cryptolab.models import Tick
from cryptolab.models.venues import split_venue
from cryptolab.models.wire import validate_symbol
from cryptolab.sources import RejectHandler, Source, unchecked_tick

__all__ = ["CompositeSource", "parse_composites", "with_composite"]

#: A composite's members: symbols, or None for every venue symbol of the composite's pair.
Members = Sequence[str] | None


def parse_composites(specs: Iterable[str]) -> dict[str, list[str] | None]:
    """Composites from ``--composite`` values: ``NAME`` (the pair rule) or ``NAME=SYM,SYM...``.

    Raises
    ------
    ValidationError
        A malformed name or member, a composite with a venue, or one named twice.

    Examples
    --------
    >>> parse_composites(["BTC-USD", "ETH-USD=BINANCE:ETH-USDT,COINBASE:ETH-USD"])
    {'BTC-USD': None, 'ETH-USD': ['BINANCE:ETH-USDT', 'COINBASE:ETH-USD']}
    >>> parse_composites(["BINANCE:BTC-USD"])
    Traceback (most recent call last):
    ...
    cryptolab.errors.ValidationError: invalid 'composite': 'BINANCE:BTC-USD' has a venue; a composite is venue-less (BTC-USD)
    """
    out: dict[str, list[str] | None] = {}
    for spec in specs:
        name, sep, members = (part.strip() for part in spec.partition("="))
        name = _composite_name(name.upper())
        if name in out:
            raise ValidationError("composite", f"{name!r} is given twice")
        out[name] = [m.strip().upper() for m in members.split(",") if m.strip()] if sep else None
        if sep and not out[name]:
            raise ValidationError("composite", f"{spec!r} names no member after '='")
    return out


def _composite_name(name: str) -> str:
    venue, pair = split_venue(validate_symbol(name))
    if venue is not None:
        raise ValidationError("composite", f"{name!r} has a venue; a composite is venue-less ({pair})")
    return name


class CompositeSource:
    """A source that also yields each member tick under its composite's name (:func:`with_composite`).

    Attributes other than the ticks (``stats``, ``stop``, ``close``, ``write_labels``...)
    are the wrapped source's; ``iter_wire`` is not offered, so a producer always sees
    the composite ticks.
    """

    def __init__(self, source: Source, composites: Mapping[str, Members]) -> None:
        self.source = source
        self.name: str = source.name
        self.validated: bool = source.validated
        self.composites: dict[str, tuple[str, ...] | None] = {}
        for name, members in composites.items():
            name = _composite_name(name)
            if members is None:
                self.composites[name] = None
                continue
            checked = tuple(dict.fromkeys(validate_symbol(m) for m in members))
            if not checked or name in checked:
                raise ValidationError("composite", f"{name!r} needs members other than itself")
            self.composites[name] = checked
        if not self.composites:
            raise ValidationError("composite", "no composite given")
        self.composite_ticks = 0

    def __getattr__(self, attr: str) -> Any:
        if attr == "iter_wire" or attr.startswith("_") or attr == "source":
            raise AttributeError(attr)
        return getattr(self.source, attr)

    def __repr__(self) -> str:
        return f"CompositeSource({self.source!r}, {self.composites!r})"

    def composites_of(self, symbol: str) -> tuple[str, ...]:
        """The composites a symbol's ticks also count in.

        Examples
        --------
        >>> src = CompositeSource.__new__(CompositeSource)
        >>> src.composites = {"BTC-USD": None, "X-USD": ("BINANCE:BTC-USD",)}
        >>> src.composites_of("BINANCE:BTC-USD"), src.composites_of("BTC-USD"), src.composites_of("K:BTC-EUR")
        (('BTC-USD', 'X-USD'), (), ())
        """
        venue, pair = split_venue(symbol)
        return tuple(name for name, members in self.composites.items()
                     if (symbol in members if members is not None else venue is not None and pair == name))

    def iter_ticks(self, *, on_reject: RejectHandler | None = None) -> Iterator[Tick]:
        """The wrapped source's ticks, each member tick followed by its composite copies."""
        found: dict[str, tuple[str, ...]] = {}
        for tick in self.source.iter_ticks(on_reject=on_reject):
            yield tick
            names = found.get(tick.symbol)
            if names is None:
                names = found[tick.symbol] = self.composites_of(tick.symbol)
            for name in names:
                self.composite_ticks += 1
                yield unchecked_tick(name, tick.ts_ms, tick.price, tick.size, tick.symbol, tick.trade_id)


def with_composite(source: Source, composites: Mapping[str, Members] | Iterable[str]) -> CompositeSource:
    """Wrap ``source`` so that its venue ticks also build cross-venue composite series.

    Parameters
    ----------
    source
        Any source (:class:`cryptolab.sources.Source`).
    composites
        ``{name: members}`` (members ``None``: every venue symbol of the pair ``name``),
        or ``--composite`` strings (:func:`parse_composites`).

    Examples
    --------
    >>> from cryptolab.sources.synthetic import SyntheticMarket
    >>> src = with_composite(SyntheticMarket(symbols=1, seed=1, duration_ms=5_000), ["X-USD=BTC-USD"])
    >>> sorted({t.symbol for t in src.iter_ticks()})
    ['BTC-USD', 'X-USD']
    """
    if not isinstance(composites, Mapping):
        composites = parse_composites(composites)
    return CompositeSource(source, composites)
