"""Candles as columns: a block of final candles, and a list that holds blocks and candles (pure).

On sparse data (a symbol's ticks minutes or hours apart) nearly every tick closes a window of
each interval, so a streaming aggregator emits about as many final candles as it reads ticks.
Building a :class:`~cryptolab.models.records.Candle` object per window then costs more than
folding the ticks. :class:`CandleBlock` keeps such candles as numpy columns, and
:class:`CandleList` (the aggregator's ``finals`` and ``first_finals``) holds blocks beside
ordinary candles:

- as a sequence of :class:`~cryptolab.models.records.Candle` it behaves like a list: a block's
  candles are built the first time they are read, once (a block read twice gives the same
  objects, in ``finals`` and ``first_finals`` alike);
- :meth:`CandleList.columns` gives the candles field by field without building them: what the
  store's one-statement upsert binds.

Examples
--------
>>> import numpy as np
>>> one, price, ts = np.array([1, 1]), np.array([2.0, 2.0]), np.array([1_000, 1_000])
>>> block = CandleBlock(
...     ["BTC-USD"], ("1m", "5m"), code=np.array([0, 0]), k=np.array([0, 1]),
...     window_start=np.array([0, 0]), window_end=np.array([60_000, 300_000]), open=price, high=price,
...     low=price, close=price, volume=np.array([0.5, 0.0]), vwap=np.array([2.0, np.nan]),
...     has_vwap=np.array([True, False]), trades=one, first_ts=ts, last_ts=ts, high_ts=ts, low_ts=ts)
>>> out = CandleList()
>>> out.append(Candle(symbol="ETH-USD", interval="1m", window_start=0, window_end=60_000, open=1.0,
...                   high=1.0, low=1.0, close=1.0, volume=0.0, vwap=None, trades=1, first_ts=5,
...                   last_ts=5, high_ts=5, low_ts=5, final=True))
>>> out.add_block(block, slice(0, 2))
>>> len(out), [(c.symbol, c.interval, c.vwap) for c in out]
(3, [('ETH-USD', '1m', None), ('BTC-USD', '1m', 2.0), ('BTC-USD', '5m', None)])
>>> out.columns()[1], out.columns()[9]
(['1m', '1m', '5m'], [None, 2.0, None])
>>> out[1] is block.candles()[0]
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain
from operator import attrgetter
from typing import TYPE_CHECKING, Any, overload

from cryptolab.models.records import CANDLE_FIELDS, Candle, make_candle

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    _Array = npt.NDArray[Any]
    _Rows = slice | npt.NDArray[np.intp]

__all__ = ["CandleBlock", "CandleList", "candle_columns"]

_GETTERS = tuple(attrgetter(f) for f in CANDLE_FIELDS)


class CandleBlock:
    """Final candles (revision 0, not gap-filled) as numpy columns, in emission order.

    Parameters
    ----------
    symbols, intervals
        The names that ``code`` and ``k`` index.
    code, k
        Per candle, its symbol's index in ``symbols`` and its interval's in ``intervals``.
    window_start, window_end, open, high, low, close, volume, trades, first_ts, last_ts, high_ts, low_ts
        Per candle, its field (ints or floats).
    vwap, has_vwap
        Per candle, its VWAP, and whether it has one (``None`` where not).
    """

    __slots__ = ("_candles", "code", "columns", "has_vwap", "intervals", "k", "symbols")

    def __init__(
        self, symbols: Sequence[str], intervals: Sequence[str], *, code: _Array, k: _Array,
        window_start: _Array, window_end: _Array, open: _Array, high: _Array, low: _Array, close: _Array,
        volume: _Array, vwap: _Array, has_vwap: _Array, trades: _Array, first_ts: _Array, last_ts: _Array,
        high_ts: _Array, low_ts: _Array,
    ) -> None:
        self.symbols, self.intervals, self.code, self.k, self.has_vwap = symbols, intervals, code, k, has_vwap
        #: The numeric columns, in :data:`CANDLE_FIELDS` order from ``window_start`` to ``low_ts``.
        self.columns: tuple[_Array, ...] = (window_start, window_end, open, high, low, close, volume, vwap,
                                            trades, first_ts, last_ts, high_ts, low_ts)
        self._candles: list[Candle] | None = None

    def __len__(self) -> int:
        return int(self.code.shape[0])

    def __repr__(self) -> str:
        return f"CandleBlock({len(self)} candles)"

    def field_lists(self, rows: _Rows = slice(None)) -> list[list[Any]]:
        """Rows ``rows`` of the block as one Python list per field, in :data:`CANDLE_FIELDS` order."""
        import numpy as np

        code, k, has = self.code[rows], self.k[rows], self.has_vwap[rows]
        n = int(code.shape[0])
        symbols = np.asarray(self.symbols, dtype=object)[code].tolist() if n else []
        intervals = np.asarray(self.intervals, dtype=object)[k].tolist() if n else []
        numbers = [col[rows].tolist() for col in self.columns]
        if not has.all():
            vwap = np.asarray(self.columns[7][rows], dtype=object)
            vwap[~has] = None
            numbers[7] = vwap.tolist()
        return [symbols, intervals, *numbers, [0] * n, [True] * n, [False] * n]

    def candles(self) -> list[Candle]:
        """The block's candles, built the first time (the same objects every time after)."""
        if self._candles is None:
            self._candles = list(map(make_candle, *self.field_lists()))
        return self._candles


class CandleList(Sequence[Candle]):
    """A list of candles, some of them held as rows of :class:`CandleBlock` objects until they are read.

    ``append`` is the bound ``append`` of the list that ends it, so appending a candle costs
    what appending to a list costs.

    Examples
    --------
    >>> CandleList() == [], bool(CandleList())
    (True, False)
    """

    __slots__ = ("_flat", "_parts", "_tail", "append")

    def __init__(self, candles: Iterable[Candle] = ()) -> None:
        self._tail: list[Candle] = list(candles)
        self._parts: list[list[Candle] | tuple[CandleBlock, _Rows]] = [self._tail]
        self.append: Callable[[Candle], None] = self._tail.append
        self._flat: list[Candle] | None = None

    def extend(self, candles: Iterable[Candle]) -> None:
        """Append ``candles``."""
        self._tail.extend(candles)

    def add_block(self, block: CandleBlock, rows: _Rows) -> None:
        """Append rows ``rows`` of ``block`` (a slice or an index array)."""
        self._parts.append((block, rows))
        self._tail = []
        self._parts.append(self._tail)
        self.append = self._tail.append
        self._flat = None

    @property
    def blocks(self) -> int:
        """How many block parts the list holds."""
        return sum(isinstance(p, tuple) for p in self._parts)

    def columns(self) -> list[list[Any]]:
        """The candles as one Python list per field, in :data:`CANDLE_FIELDS` order, built from the
        blocks' columns without building their candles."""
        out: list[list[Any]] = [[] for _ in CANDLE_FIELDS]
        for part in self._parts:
            if isinstance(part, tuple):
                block, rows = part
                if block._candles is None:
                    for col, values in zip(out, block.field_lists(rows), strict=True):
                        col.extend(values)
                    continue
                part = _rows_of(block.candles(), rows)
            for col, get in zip(out, _GETTERS, strict=True):
                col.extend(map(get, part))
        return out

    def _list(self) -> list[Candle]:
        if len(self._parts) == 1:
            return self._tail
        flat = self._flat
        if flat is None or len(flat) != self.__len__():
            flat = self._flat = list(chain.from_iterable(
                _rows_of(p[0].candles(), p[1]) if isinstance(p, tuple) else p for p in self._parts))
        return flat

    def __len__(self) -> int:
        n = 0
        for p in self._parts:
            if isinstance(p, tuple):
                rows = p[1]
                n += len(range(*rows.indices(len(p[0])))) if isinstance(rows, slice) else int(rows.shape[0])
            else:
                n += len(p)
        return n

    def __iter__(self) -> Iterator[Candle]:
        return iter(self._list())

    @overload
    def __getitem__(self, i: int) -> Candle: ...
    @overload
    def __getitem__(self, i: slice) -> list[Candle]: ...
    def __getitem__(self, i: int | slice) -> Candle | list[Candle]:
        return self._list()[i]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CandleList | list | tuple):
            return self._list() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __add__(self, other: Iterable[Candle]) -> list[Candle]:
        return [*self._list(), *other]

    def __radd__(self, other: Iterable[Candle]) -> list[Candle]:
        return [*other, *self._list()]

    def __repr__(self) -> str:
        return f"CandleList({self._list()!r})"


def _rows_of(candles: list[Candle], rows: _Rows) -> list[Candle]:
    if isinstance(rows, slice):
        return candles[rows]
    return [candles[i] for i in rows.tolist()]


def candle_columns(candles: Iterable[Candle]) -> list[list[Any]]:
    """``candles`` as one Python list per field, in :data:`CANDLE_FIELDS` order (a
    :class:`CandleList`'s blocks read from their columns).

    Examples
    --------
    >>> c = Candle(symbol="BTC-USD", interval="1m", window_start=0, window_end=60_000, open=1.0, high=2.0,
    ...            low=0.5, close=1.5, volume=3.0, vwap=None, trades=3, first_ts=1, last_ts=2, high_ts=3,
    ...            low_ts=4)
    >>> candle_columns([c])[:3]
    [['BTC-USD'], ['1m'], [0]]
    """
    if isinstance(candles, CandleList):
        return candles.columns()
    seq = candles if isinstance(candles, list | tuple) else list(candles)
    return [list(map(get, seq)) for get in _GETTERS]
