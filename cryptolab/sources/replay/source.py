"""The replay source: :class:`Replay` reads one recorded file and yields its ticks.

The formats are read by the modules of this package (one per format); this one holds
the options, the pacing by event time and the policy for bad rows.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Final

from cryptolab.errors import SourceError, ValidationError
from cryptolab.models.records import Tick
from cryptolab.models.time import TsUnit, parse_interval
from cryptolab.models.wire import validate_symbol
from cryptolab.sources import (
    ErrorPolicy,
    Rejected,
    RejectHandler,
    SourceStats,
    handle_reject,
)
from cryptolab.sources.replay.bars import bar_list, bars_interval, read_bars
from cryptolab.sources.replay.detect import FORMATS, detect_format, guess_symbol
from cryptolab.sources.replay.jsonl import read_jsonl
from cryptolab.sources.replay.klines import kline_rows, kline_times, read_klines
from cryptolab.sources.replay.market_chart import read_market_chart
from cryptolab.sources.replay.parquet import read_parquet
from cryptolab.sources.replay.tabular import read_csv
from cryptolab.sources.replay.values import log

__all__ = ["Replay"]

#: The reader of each format: ``read(replay, on_reject)`` yields the file's ticks.
_READERS: Final[dict[str, Callable[[Replay, RejectHandler | None], Iterator[Tick]]]] = {
    "csv": read_csv,
    "klines": read_klines,
    "bars": read_bars,
    "coingecko": read_market_chart,
    "parquet": read_parquet,
    "jsonl": read_jsonl,
}


class Replay:
    """Replay a recorded file (a :class:`~cryptolab.sources.Source`).

    Parameters
    ----------
    path
        The file.
    format
        One of :data:`FORMATS`, or ``"auto"`` (default) to detect it.
    symbol
        Symbol of every tick when the file has none (a ``symbol`` column, a
        bars ``name``). Default: a pair recognised in the file name
        (``bitstamp_btcusd_...csv`` -> ``BTC-USD``), else an error.
    speed
        ``None`` (default): as fast as possible. Otherwise pace by event time at
        ``speed`` times real time.
    ts_unit
        Unit of numeric timestamps (``s``, ``ms``, ``us``, ``ns``) or ``iso``;
        default: detected from the first row.
    ts_column
        Name (or 0-based index) of the time column, overriding detection.
    interval
        Bar interval for ``bars``/``klines`` (e.g. ``"4h"``), overriding detection.
    errors
        ``"raise"`` (default) stops at the first bad row with file and line;
        ``"skip"`` skips, logs and counts it.
    source
        The ticks' ``source`` field (default ``"replay"``).
    clock, sleep
        Injected for tests (default ``time.monotonic`` / ``time.sleep``).
    """

    name: Final = "replay"
    #: Every tick yielded has been validated.
    validated: Final = True

    def __init__(
        self,
        path: str | Path,
        *,
        format: str = "auto",
        symbol: str | None = None,
        speed: float | None = None,
        ts_unit: TsUnit | None = None,
        ts_column: str | int | None = None,
        interval: str | int | None = None,
        errors: ErrorPolicy = "raise",
        source: str = "replay",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"replay file not found: {self.path}")
        if format != "auto" and format not in FORMATS:
            raise ValidationError("format", f"unknown format {format!r}; choose from {FORMATS}")
        self.format = detect_format(self.path) if format == "auto" else format
        if ts_unit is not None and ts_unit not in ("s", "ms", "us", "ns", "iso"):
            raise ValidationError("ts_unit", f"must be s, ms, us, ns or iso, got {ts_unit!r}")
        if speed is not None and not (math.isfinite(speed) and speed > 0):
            raise ValidationError("speed", f"must be > 0 (or None for as fast as possible), got {speed}")
        if errors not in ("raise", "skip"):
            raise ValidationError("errors", f"must be 'raise' or 'skip', got {errors!r}")
        self.symbol = validate_symbol(symbol.upper()) if symbol else None
        self.speed = speed
        self.ts_unit: TsUnit | None = ts_unit
        self.ts_column = ts_column
        self.interval_ms = parse_interval(interval) if interval is not None else None
        self.errors: ErrorPolicy = errors
        self.source = source
        self._clock = clock
        self._sleep = sleep
        self.stats = SourceStats()

    def __repr__(self) -> str:
        return f"Replay({str(self.path)!r}, format={self.format!r}, speed={self.speed})"

    # -- iteration ----------------------------------------------------------------

    def iter_ticks(self, *, on_reject: RejectHandler | None = None) -> Iterator[Tick]:
        """Yield the file's ticks in file order (paced when ``speed`` is set)."""
        ticks = _READERS[self.format](self, on_reject)
        if self.speed is None:
            for t in ticks:
                self.stats.ticks += 1
                yield t
            return
        yield from self._paced(ticks)

    def __iter__(self) -> Iterator[Tick]:
        return self.iter_ticks()

    def _paced(self, ticks: Iterable[Tick]) -> Iterator[Tick]:
        assert self.speed is not None
        wall0: float | None = None
        ts0 = 0
        high = 0
        for t in ticks:
            if wall0 is None:
                wall0, ts0, high = self._clock(), t.ts_ms, t.ts_ms
            high = max(high, t.ts_ms)
            due = (high - ts0) / 1000.0 / self.speed
            wait = due - (self._clock() - wall0)
            if wait > 0:
                self._sleep(wait)
            self.stats.ticks += 1
            yield t

    def _reject(self, on_reject: RejectHandler | None, raw: Any, exc: ValidationError,
                where: str) -> None:
        rej = Rejected(raw, exc.field, exc.reason, source=self.name, where=where)
        if self.errors == "skip":
            handle_reject(rej, self.stats, on_reject, "skip")
            return
        self.stats.rejected += 1
        self.stats.rejected_by_field[rej.field] += 1
        if on_reject is not None:
            on_reject(rej)
        raise rej.error()

    def _need_symbol(self, found: str | None = None) -> str:
        sym = self.symbol or found or guess_symbol(self.path)
        if sym is None:
            raise ValidationError(
                "symbol", f"{self.path} has no symbol column; pass symbol= (--symbol)"
            )
        if self.symbol is None:
            log.info("%s: symbol %s", self.path.name, sym)
        return validate_symbol(sym)

    def bar_interval(self) -> int | None:
        """The interval of a ``bars`` or ``klines`` file's bars in ms (``None`` for other formats).

        A bar becomes four ticks inside it, so only candles at multiples of this
        interval are whole bars; finer ones are artefacts of the split.

        Examples
        --------
        >>> import json, pathlib, tempfile
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "eth.json"
        >>> _ = p.write_text(json.dumps({"name": "ETH/USD_PT5M@binance", "ohlc": []}))
        >>> Replay(p).bar_interval(), Replay(p, interval="4h").bar_interval()
        (300000, 14400000)
        """
        if self.format == "bars":
            bars, _label, name = bar_list(self)
            return bars_interval(self, bars, name)
        if self.format != "klines" or self.interval_ms is not None:
            return self.interval_ms if self.format == "klines" else None
        for _where, k in kline_rows(self):  # the first kline that parses
            with contextlib.suppress(ValidationError):
                open_ms, close_ms, _unit = kline_times(k, self.ts_unit)
                return close_ms + 1 - open_ms
        return None
