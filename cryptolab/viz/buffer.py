"""Pure data logic of the live candlestick chart (no Bokeh, no I/O).

A :class:`CandleBuffer` holds the last ``maxlen`` candles of one
``(symbol, interval)`` series as plain columns, the same columns a Bokeh
``ColumnDataSource`` shows. For every incoming candle it decides what the
chart must do and returns the operation:

* :class:`Stream` - a window newer than the last one: append a row
  (``source.stream(rows, rollover=maxlen)``);
* :class:`Patch` - the same window again (the open candle changed, or a late
  revision of a candle still in the buffer): overwrite the row in place
  (``source.patch(patches)``), together with the moving averages it moves;
* nothing - a window older than the buffer, a stale revision or a duplicate;
* :class:`Reset` - the rare window that lands between two buffered windows
  that were not neighbours: the whole data is replaced.

Which copy of a window is newer is decided by its version
``(revision, final, trades, last_ts)``: later revisions beat earlier ones, a
final candle beats the open one, and an open candle that saw more trades beats
the one that saw fewer. Replaying the same candles in any order therefore
converges to the same rows.

Moving averages (``ma20``, ``ma50`` by default) are simple moving averages of
``close``; the buffer keeps the closes of the last ``max(ma_windows) - 1``
rows it rolled over, so a revision near the oldest row still recomputes exact
averages.

Examples
--------
>>> from cryptolab.models import Candle
>>> def candle(minute, close, *, trades=1, revision=0, final=False):
...     ws = 1_700_000_040_000 + minute * 60_000
...     return Candle(symbol="BTC-USD", interval="1m", window_start=ws, window_end=ws + 60_000,
...                   open=100.0, high=max(100.0, close), low=min(100.0, close), close=close,
...                   volume=1.0, vwap=None, trades=trades, first_ts=ws, last_ts=ws + trades,
...                   high_ts=ws, low_ts=ws, revision=revision, final=final)
>>> buf = CandleBuffer(symbol="BTC-USD", interval="1m", maxlen=3, ma_windows=(2,))
>>> [type(op).__name__ for op in buf.apply(candle(0, 101.0))]
['Stream']
>>> buf.apply(candle(0, 102.0, trades=2))  # doctest: +ELLIPSIS
[Patch(patches={'open': [(0, 100.0)], ...})]
>>> buf.apply(candle(0, 102.0, trades=2))  # the same version again: nothing to do
[]
>>> for m in (1, 2, 3):
...     _ = buf.apply(candle(m, 100.0 + m))
>>> buf.column("window_start") == [1_700_000_100_000, 1_700_000_160_000, 1_700_000_220_000]
True
>>> buf.apply(candle(0, 90.0, revision=1, final=True))   # rolled over: ignored
[]
>>> buf.column("ma2")
[101.5, 101.5, 102.5]
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptolab.errors import ValidationError
from cryptolab.models import Alert, Candle, parse_interval

__all__ = [
    "ALERT_COLUMNS",
    "CANDLE_COLUMNS",
    "AlertBuffer",
    "BufferStats",
    "CandleBuffer",
    "Op",
    "Patch",
    "Reset",
    "Stream",
    "coalesce",
    "version_of",
]

#: Columns of the candle source, before the moving-average columns (``ma20``, ``ma50``...).
CANDLE_COLUMNS: Final = (
    "window_start",
    "x",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "vwap",
    "trades",
    "revision",
    "final",
    "gap",
    "top",
    "bottom",
    "direction",
)

#: Columns of the anomaly-marker source.
ALERT_COLUMNS: Final = ("x", "y", "window_start", "detector", "severity", "score", "ts_ms")

_FIXED: Final = frozenset({"window_start", "x"})


@dataclass(frozen=True, slots=True)
class Stream:
    """Append ``rows`` (column -> list of values), then drop the oldest rows beyond ``rollover``."""

    rows: dict[str, list[Any]]
    rollover: int

    @property
    def length(self) -> int:
        """Number of rows appended."""
        return len(next(iter(self.rows.values()), []))


@dataclass(frozen=True, slots=True)
class Patch:
    """Overwrite cells in place: column -> list of ``(row index, new value)``."""

    patches: dict[str, list[tuple[int, Any]]]


@dataclass(frozen=True, slots=True)
class Reset:
    """Replace the whole data (column -> list of values)."""

    data: dict[str, list[Any]]


Op = Stream | Patch | Reset


def version_of(candle: Candle) -> tuple[int, int, int, int]:
    """The version of one copy of a window: the greater copy wins.

    Examples
    --------
    >>> from cryptolab.models import Candle
    >>> c = Candle(symbol="X", interval="1m", window_start=0, window_end=60_000, open=1.0,
    ...            high=1.0, low=1.0, close=1.0, volume=0.0, vwap=None, trades=3, first_ts=0,
    ...            last_ts=5, high_ts=0, low_ts=0, revision=1, final=True)
    >>> version_of(c)
    (1, 1, 3, 5)
    """
    return (int(candle.revision), int(bool(candle.final)), int(candle.trades), int(candle.last_ts))


def _num(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def coalesce(ops: Iterable[Op]) -> list[Op]:
    """Merge neighbouring operations of the same kind, preserving their effect.

    Consecutive streams become one stream; consecutive patches become one patch
    (a later value for the same cell wins); anything before a reset is dropped.

    Examples
    --------
    >>> ops = [Stream({"a": [1]}, 5), Stream({"a": [2]}, 5), Patch({"a": [(0, 9)]}),
    ...        Patch({"a": [(0, 8), (1, 7)]})]
    >>> coalesce(ops)
    [Stream(rows={'a': [1, 2]}, rollover=5), Patch(patches={'a': [(0, 8), (1, 7)]})]
    """
    out: list[Op] = []
    for op in ops:
        if isinstance(op, Reset):
            out = [op]
            continue
        prev = out[-1] if out else None
        if isinstance(op, Stream) and isinstance(prev, Stream) and prev.rollover == op.rollover:
            rows = {k: [*prev.rows[k], *op.rows[k]] for k in prev.rows}
            out[-1] = Stream(rows, op.rollover)
        elif isinstance(op, Patch) and isinstance(prev, Patch):
            merged: dict[str, dict[int, Any]] = {k: dict(v) for k, v in prev.patches.items()}
            for k, cells in op.patches.items():
                merged.setdefault(k, {}).update(dict(cells))
            out[-1] = Patch({k: sorted(v.items()) for k, v in merged.items()})
        else:
            out.append(op)
    return out


@dataclass(slots=True)
class BufferStats:
    """Counters of what a buffer did with the candles it was given."""

    streamed: int = 0
    patched: int = 0
    ignored: int = 0
    reset: int = 0
    rolled_over: int = 0
    other_series: int = 0


class CandleBuffer:
    """The last ``maxlen`` candles of one series, and the chart operations that keep a copy in sync.

    Parameters
    ----------
    symbol, interval
        The series; candles of other series are ignored (and counted).
    maxlen
        Rows kept; older rows roll over (memory stays bounded).
    ma_windows
        Lengths of the simple moving averages of ``close`` (columns ``ma<N>``).

    Notes
    -----
    The buffer is the single source of truth: a view (a Bokeh
    ``ColumnDataSource``) that starts from :meth:`data` and applies every
    returned operation in order holds exactly the buffer's columns. Not
    thread-safe: drive it from one thread (the chart's event loop).
    """

    def __init__(
        self,
        *,
        symbol: str,
        interval: str,
        maxlen: int = 500,
        ma_windows: Sequence[int] = (20, 50),
    ) -> None:
        if maxlen < 1:
            raise ValidationError("maxlen", f"must be >= 1, got {maxlen}")
        if any(n < 1 for n in ma_windows):
            raise ValidationError("ma_windows", f"must all be >= 1, got {tuple(ma_windows)}")
        self.symbol = symbol
        self.interval = interval
        self.interval_ms = parse_interval(interval)
        self.maxlen = maxlen
        self.ma_windows = tuple(ma_windows)
        self.ma_columns = tuple(f"ma{n}" for n in self.ma_windows)
        self.columns: tuple[str, ...] = (*CANDLE_COLUMNS, *self.ma_columns)
        self._cols: dict[str, list[Any]] = {c: [] for c in self.columns}
        self._versions: list[tuple[int, int, int, int]] = []
        keep = max(self.ma_windows, default=1) - 1
        self._dropped_closes: deque[float] = deque(maxlen=max(keep, 0))
        self.stats = BufferStats()

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return len(self._versions)

    def __repr__(self) -> str:
        return (
            f"CandleBuffer(symbol={self.symbol!r}, interval={self.interval!r}, "
            f"rows={len(self)}, maxlen={self.maxlen})"
        )

    def column(self, name: str) -> list[Any]:
        """A copy of one column."""
        return list(self._cols[name])

    def data(self) -> dict[str, list[Any]]:
        """A copy of all columns (what a fresh ``ColumnDataSource`` should hold)."""
        return {k: list(v) for k, v in self._cols.items()}

    def index_of(self, window_start: int) -> int | None:
        """Row index of a window, or ``None`` when it is not in the buffer."""
        starts = self._cols["window_start"]
        i = bisect.bisect_left(starts, window_start)
        if i < len(starts) and starts[i] == window_start:
            return i
        return None

    def row(self, window_start: int) -> dict[str, Any] | None:
        """One row as a dict, or ``None``."""
        i = self.index_of(window_start)
        if i is None:
            return None
        return {k: v[i] for k, v in self._cols.items()}

    def last(self) -> dict[str, Any] | None:
        """The newest row, or ``None`` when empty."""
        if not self._versions:
            return None
        return {k: v[-1] for k, v in self._cols.items()}

    def decide(self, candle: Candle) -> str:
        """What :meth:`apply` would do: ``"stream"``, ``"patch"``, ``"reset"`` or ``"ignore"``.

        Does not change the buffer.
        """
        if candle.symbol != self.symbol or candle.interval != self.interval:
            return "ignore"
        starts = self._cols["window_start"]
        if not starts or candle.window_start > starts[-1]:
            return "stream"
        i = self.index_of(candle.window_start)
        if i is not None:
            return "patch" if version_of(candle) > self._versions[i] else "ignore"
        if candle.window_start < starts[0] and len(starts) >= self.maxlen:
            return "ignore"
        return "reset"

    # ------------------------------------------------------------------ writing
    def clear(self) -> None:
        """Forget every row (e.g. when the chart switches series)."""
        for v in self._cols.values():
            v.clear()
        self._versions.clear()
        self._dropped_closes.clear()

    def apply(self, candle: Candle) -> list[Op]:
        """Fold one candle in; return the operations a view must apply (possibly none)."""
        decision = self.decide(candle)
        if decision == "ignore":
            if candle.symbol != self.symbol or candle.interval != self.interval:
                self.stats.other_series += 1
            else:
                self.stats.ignored += 1
            return []
        row = self._row_values(candle)
        if decision == "stream":
            return [self._stream(candle, row)]
        if decision == "patch":
            i = self.index_of(candle.window_start)
            assert i is not None
            return [self._patch(i, candle, row)]
        return [self._insert(candle, row)]

    def extend(self, candles: Iterable[Candle]) -> list[Op]:
        """Fold many candles in; return the operations, coalesced (see :func:`coalesce`)."""
        ops: list[Op] = []
        for c in candles:
            ops.extend(self.apply(c))
        ops = coalesce(ops)
        if any(isinstance(op, Reset) for op in ops):
            return [Reset(self.data())]
        return ops

    # ----------------------------------------------------------------- internals
    def _row_values(self, c: Candle) -> dict[str, Any]:
        o, cl = float(c.open), float(c.close)
        return {
            "window_start": int(c.window_start),
            "x": float(c.window_start) + self.interval_ms / 2,
            "open": o,
            "high": float(c.high),
            "low": float(c.low),
            "close": cl,
            "volume": float(c.volume),
            "vwap": _num(c.vwap),
            "trades": int(c.trades),
            "revision": int(c.revision),
            "final": bool(c.final),
            "gap": bool(c.gap),
            "top": max(o, cl),
            "bottom": min(o, cl),
            "direction": "up" if cl >= o else "down",
        }

    def _closes_with_prefix(self) -> list[float]:
        return [*self._dropped_closes, *self._cols["close"]]

    def _ma_at(self, closes: list[float], offset: int, i: int, n: int) -> float:
        lo = offset + i - n + 1
        if lo < 0:
            return math.nan
        return math.fsum(closes[lo : offset + i + 1]) / n

    def _stream(self, candle: Candle, row: dict[str, Any]) -> Stream:
        for k, v in row.items():
            self._cols[k].append(v)
        self._versions.append(version_of(candle))
        closes = self._closes_with_prefix()
        offset = len(self._dropped_closes)
        i = len(self._versions) - 1
        out = {k: [v] for k, v in row.items()}
        for n, name in zip(self.ma_windows, self.ma_columns, strict=True):
            value = self._ma_at(closes, offset, i, n)
            self._cols[name].append(value)
            out[name] = [value]
        self._roll()
        self.stats.streamed += 1
        return Stream(out, self.maxlen)

    def _roll(self) -> None:
        extra = len(self._versions) - self.maxlen
        if extra <= 0:
            return
        if self._dropped_closes.maxlen:
            self._dropped_closes.extend(self._cols["close"][:extra])
        for v in self._cols.values():
            del v[:extra]
        del self._versions[:extra]
        self.stats.rolled_over += extra

    def _patch(self, i: int, candle: Candle, row: dict[str, Any]) -> Patch:
        patches: dict[str, list[tuple[int, Any]]] = {}
        close_changed = not _same(self._cols["close"][i], row["close"])
        for k, v in row.items():
            if k in _FIXED:
                continue
            if not _same(self._cols[k][i], v):
                self._cols[k][i] = v
            patches[k] = [(i, v)]
        self._versions[i] = version_of(candle)
        if close_changed:
            self._recompute_ma(i, patches)
        self.stats.patched += 1
        return Patch(patches)

    def _recompute_ma(self, start: int, patches: dict[str, list[tuple[int, Any]]]) -> None:
        closes = self._closes_with_prefix()
        offset = len(self._dropped_closes)
        size = len(self._versions)
        for n, name in zip(self.ma_windows, self.ma_columns, strict=True):
            col = self._cols[name]
            cells: list[tuple[int, Any]] = []
            for j in range(start, min(start + n, size)):
                value = self._ma_at(closes, offset, j, n)
                if not _same(col[j], value):
                    col[j] = value
                    cells.append((j, value))
            if cells:
                patches[name] = cells

    def _insert(self, candle: Candle, row: dict[str, Any]) -> Reset:
        i = bisect.bisect_left(self._cols["window_start"], candle.window_start)
        for k, v in row.items():
            self._cols[k].insert(i, v)
        self._versions.insert(i, version_of(candle))
        for name in self.ma_columns:
            self._cols[name].insert(i, math.nan)
        self._recompute_ma(i, {})
        self._roll()
        self.stats.reset += 1
        return Reset(self.data())


class AlertBuffer:
    """Anomaly markers of one series: at most one per ``(window_start, detector)``, bounded.

    Examples
    --------
    >>> from cryptolab.models import Alert
    >>> buf = AlertBuffer(symbol="BTC-USD", interval="1m", maxlen=2)
    >>> a = Alert(symbol="BTC-USD", interval="1m", window_start=1_700_000_040_000,
    ...           detector="rule", severity="HIGH", score=0.9, ts_ms=1_700_000_100_000)
    >>> [type(op).__name__ for op in buf.apply(a, y=101.0)]
    ['Stream']
    >>> buf.apply(a, y=101.0)    # the same alert again
    []
    """

    def __init__(self, *, symbol: str, interval: str, maxlen: int = 500) -> None:
        if maxlen < 1:
            raise ValidationError("maxlen", f"must be >= 1, got {maxlen}")
        self.symbol = symbol
        self.interval = interval
        self.interval_ms = parse_interval(interval)
        self.maxlen = maxlen
        self._cols: dict[str, list[Any]] = {c: [] for c in ALERT_COLUMNS}
        self._keys: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self._keys)

    def data(self) -> dict[str, list[Any]]:
        """A copy of all columns."""
        return {k: list(v) for k, v in self._cols.items()}

    def clear(self) -> None:
        """Forget every marker."""
        for v in self._cols.values():
            v.clear()
        self._keys.clear()

    def apply(self, alert: Alert, *, y: float) -> list[Op]:
        """Add or update the marker of ``alert`` drawn at price ``y``."""
        if alert.symbol != self.symbol or alert.interval != self.interval:
            return []
        key = (int(alert.window_start), str(alert.detector))
        row: dict[str, Any] = {
            "x": float(alert.window_start) + self.interval_ms / 2,
            "y": float(y),
            "window_start": int(alert.window_start),
            "detector": str(alert.detector),
            "severity": str(alert.severity),
            "score": float(alert.score),
            "ts_ms": int(alert.ts_ms),
        }
        if key in self._keys:
            i = self._keys.index(key)
            cells = {k: [(i, v)] for k, v in row.items() if not _same(self._cols[k][i], v)}
            for k, cell in cells.items():
                self._cols[k][i] = cell[0][1]
            return [Patch(cells)] if cells else []
        for k, v in row.items():
            self._cols[k].append(v)
        self._keys.append(key)
        extra = len(self._keys) - self.maxlen
        if extra > 0:
            for v in self._cols.values():
                del v[:extra]
            del self._keys[:extra]
        return [Stream({k: [v] for k, v in row.items()}, self.maxlen)]

    def move(self, window_start: int, y: float) -> list[Op]:
        """Move the markers of one window to price ``y`` (after a revision changed its high)."""
        cells = [
            (i, float(y))
            for i, (ws, _) in enumerate(self._keys)
            if ws == window_start and not _same(self._cols["y"][i], float(y))
        ]
        for i, v in cells:
            self._cols["y"][i] = v
        return [Patch({"y": cells})] if cells else []
