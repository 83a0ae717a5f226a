"""Replay recorded market data files as ticks, preserving event time.

:class:`Replay` reads one file and yields its records as ticks in file order,
as fast as possible (``speed=None``) or paced by event time at ``speed`` times
real time (``speed=1`` is real time, ``speed=60`` a minute per second).

Formats (``format="auto"`` detects them from the extension and content):

``csv``
    Trades with a header row: a time column (``ts``, ``ts_ms``, ``timestamp``,
    ``time``, ``date``, ``datetime``...), ``price``, a size column (``size``,
    ``amount``, ``qty``, ``quantity``, ``volume``), and optionally ``symbol``
    (or ``pair``, ``product_id``), ``side`` (or ``type``; read, not carried:
    ticks have no side) and ``trade_id`` (or ``tid``, ``id``). Also headerless
    ``ts,price,amount[,side]`` files (like Bitstamp's), and files whose only
    time is an ``id`` column of epoch microseconds (like Mt.Gox's
    ``id,price,amount,type``): an ``id`` column is taken as the time when no
    time column exists and its first value is a plausible epoch timestamp.
    Choose the column yourself with ``ts_column``.
``klines``
    Binance klines, as the REST JSON array of arrays or the headerless CSV of
    ``data.binance.vision`` (``open_time, open, high, low, close, volume,
    close_time, ...``). Each kline becomes four ticks, as bars do.
``bars``
    Bar JSON: ``{"name": "ETH/USD_PT5M@...", "ohlc": [{"endTime", "openPrice",
    "highPrice", "lowPrice", "closePrice", "volume"}...]}`` (endTime = last
    millisecond of the bar) or Coinbase's ``{"candles": [{"start" (epoch s),
    "open", "high", "low", "close", "volume"}...]}``; a bare list of such bars
    works too. The interval comes from the ``PT5M``-style name, else from the
    most common gap between bars, or from ``interval``.
``coingecko``
    CoinGecko ``/coins/{id}/market_chart`` JSON (``{"prices": [[ms, price]...],
    "total_volumes": ...}``): one tick per price point, without size (the
    volumes there are rolling 24-hour totals, not trade sizes).
``parquet``
    Columns named as for ``csv``; timestamp columns of Arrow timestamp type work.
``jsonl``
    Wire-format ticks, one JSON object a line (what ``--to jsonl:PATH`` writes).

**Bars become ticks** as four ticks inside the bar ``[start, end)``: the open
at ``start``, then the low and the high (low first for a rising bar, high first
for a falling one) at ``start + d/4`` and ``start + d/2``, and the close at
``end - 1 ms``, each with a quarter of the volume. Re-aggregated at the bar's
interval (windows aligned to the epoch, as cryptolab's are) they give back the
bar's open, high, low, close and volume exactly.

**Timestamps** are epoch seconds, milliseconds, microseconds or nanoseconds --
the unit is detected from the first row's magnitude (below 1e11: s, 1e14: ms,
1e17: us, else ns) and then fixed for the file, or given with ``ts_unit`` --
or ISO-8601 text (``2024-01-01T00:00:00Z``; text without an offset is UTC).
A column named ``ts_ms`` is milliseconds.

**Bad rows** never pass silently and never corrupt data. With the default
``errors="raise"`` the first malformed row stops the replay with a
:class:`~cryptolab.errors.ValidationError` naming the file, the line and the
field. With ``errors="skip"`` it is skipped, logged and counted
(:attr:`Replay.stats`). Either way, an ``on_reject`` callback (the producer's
dead-letter topic) receives it first.

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "t.csv").write_text("ts,price,size\\n1700000000,100.5,2\\n1700000001,oops,1\\n")
>>> [t.price for t in Replay(d / "t.csv", symbol="BTC-USD", errors="skip").iter_ticks()]
[100.5]
>>> list(Replay(d / "t.csv", symbol="BTC-USD").iter_ticks())  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
cryptolab.errors.ValidationError: invalid 'price': ...t.csv:3: not a number: 'oops'
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import orjson

from cryptolab.errors import SourceError, ValidationError
from cryptolab.models import (
    MAX_TS_MS,
    MIN_TS_MS,
    Tick,
    tick_from_dict,
    validate_symbol,
    validate_tick,
)
from cryptolab.sources import (
    ErrorPolicy,
    Rejected,
    RejectHandler,
    SourceStats,
    handle_reject,
    loads_lenient,
)

__all__ = ["FORMATS", "Replay", "TsUnit", "bar_to_ticks", "detect_format", "detect_ts_unit",
           "parse_number", "parse_ts"]

log = logging.getLogger(__name__)

TsUnit = Literal["s", "ms", "us", "ns", "iso"]
FORMATS: Final = ("csv", "klines", "bars", "coingecko", "parquet", "jsonl")

_TS_NAMES: Final = ("ts", "ts_ms", "timestamp", "time", "date", "datetime", "t",
                    "trade_time", "created_at", "unix", "epoch")
_PRICE_NAMES: Final = ("price", "p", "rate", "last")
_SIZE_NAMES: Final = ("size", "amount", "qty", "quantity", "volume", "q")
_SYMBOL_NAMES: Final = ("symbol", "pair", "product_id", "instrument", "market", "s")
_SIDE_NAMES: Final = ("side", "type", "taker_side")
_ID_NAMES: Final = ("trade_id", "tid", "id", "trade")
_KNOWN_NAMES: Final = frozenset(
    _TS_NAMES + _PRICE_NAMES + _SIZE_NAMES + _SYMBOL_NAMES + _SIDE_NAMES + _ID_NAMES
)
_NUMBER_RE: Final = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")
_ISO_PERIOD_RE: Final = re.compile(r"PT?(\d+)([SMHD])", re.IGNORECASE)
_PAIR_IN_NAME_RE: Final = re.compile(
    r"(?<![a-z])(btc|eth|sol|ada|xrp|ltc|bnb|doge|dot|avax|link|matic)[-_/]?(usdt|usdc|usd|eur|gbp|btc|eth)(?![a-z])",
    re.IGNORECASE,
)
_UNIT_MS: Final[dict[str, float]] = {"s": 1000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6}


# --------------------------------------------------------------------------- parsing helpers


def parse_number(text: object, field: str) -> float:
    """Parse a price or size given as a number or a decimal string.

    Raises
    ------
    ValidationError
        For anything that is not a plain finite decimal number.

    Examples
    --------
    >>> parse_number("0.35280000", "price"), parse_number(12, "size")
    (0.3528, 12.0)
    >>> parse_number("NaN", "price")
    Traceback (most recent call last):
    ...
    cryptolab.errors.ValidationError: invalid 'price': not a number: 'NaN'
    """
    if isinstance(text, bool) or text is None:
        raise ValidationError(field, f"not a number: {text!r}")
    if isinstance(text, int | float):
        value = float(text) if not isinstance(text, int) or abs(text) < 1e300 else math.inf
    elif isinstance(text, str) and len(text) <= 64 and _NUMBER_RE.fullmatch(text):
        value = float(text)
    else:
        shown = text if not isinstance(text, str) else text[:40]
        raise ValidationError(field, f"not a number: {shown!r}")
    if not math.isfinite(value):
        raise ValidationError(field, f"not a finite number: {text!r}")
    return value


def detect_ts_unit(value: float) -> Literal["s", "ms", "us", "ns"]:
    """Guess the unit of a numeric epoch timestamp from its magnitude.

    Examples
    --------
    >>> [detect_ts_unit(v) for v in (1315922016, 1700000000000, 1356998659486096, 1.7e18)]
    ['s', 'ms', 'us', 'ns']
    """
    v = abs(value)
    if v < 1e11:
        return "s"
    if v < 1e14:
        return "ms"
    if v < 1e17:
        return "us"
    return "ns"


def parse_ts(value: object, unit: TsUnit | None = None, field: str = "ts") -> int:
    """Parse a timestamp into epoch milliseconds (UTC), in cryptolab's valid range.

    Parameters
    ----------
    value
        A number, a numeric string or ISO-8601 text.
    unit
        ``"s"``, ``"ms"``, ``"us"``, ``"ns"`` or ``"iso"``; ``None`` detects it.

    Examples
    --------
    >>> parse_ts("1315922016"), parse_ts(1356998659486096), parse_ts("2024-01-01T00:00:00Z")
    (1315922016000, 1356998659486, 1704067200000)
    >>> parse_ts("1315922016.25", "s")
    1315922016250
    >>> parse_ts(99, "s")
    Traceback (most recent call last):
    ...
    cryptolab.errors.ValidationError: invalid 'ts': 99 (s) is outside 2009-01-03..2100-01-01
    """
    if isinstance(value, bool) or value is None:
        raise ValidationError(field, f"not a timestamp: {value!r}")
    if isinstance(value, datetime):
        return _check_ms(field, int(_as_utc(value).timestamp() * 1000), value, "datetime")
    if isinstance(value, str):
        text = value.strip()
        if unit == "iso" or not _NUMBER_RE.fullmatch(text):
            return _parse_iso(text, field)
        if len(text) > 32:
            raise ValidationError(field, f"not a timestamp: {text[:40]!r}")
        num: int | float = int(text) if text.lstrip("+-").isdigit() else float(text)
    elif isinstance(value, int | float):
        num = value
    else:
        raise ValidationError(field, f"not a timestamp: {type(value).__name__}")
    if unit == "iso":
        raise ValidationError(field, f"expected ISO-8601 text, got {value!r}")
    if isinstance(num, float) and not math.isfinite(num):
        raise ValidationError(field, f"not a finite timestamp: {value!r}")
    u = unit or detect_ts_unit(num)
    if isinstance(num, int):
        ms = num * 1000 if u == "s" else num if u == "ms" else num // 1000 if u == "us" else num // 1_000_000
    else:
        ms = math.floor(num * _UNIT_MS[u] + 1e-6) if abs(num) < 1e20 else MAX_TS_MS
    return _check_ms(field, int(ms), value, u)


def _check_ms(field: str, ms: int, original: object, unit: str) -> int:
    if not MIN_TS_MS <= ms < MAX_TS_MS:
        shown = original if not isinstance(original, str) else original[:40]
        raise ValidationError(field, f"{shown} ({unit}) is outside 2009-01-03..2100-01-01")
    return ms


def _as_utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def _parse_iso(text: str, field: str) -> int:
    if len(text) > 40:
        raise ValidationError(field, f"not a timestamp: {text[:40]!r}")
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(field, f"not a timestamp: {text!r}") from None
    return _check_ms(field, int(_as_utc(dt).timestamp() * 1000), text, "iso")


def bar_to_ticks(
    *,
    symbol: str,
    start_ms: int,
    interval_ms: int,
    open: float,
    high: float,
    low: float,
    close: float,
    volume: float | None,
    source: str = "replay",
) -> list[Tick]:
    """Turn one OHLCV bar into four ticks that re-aggregate to the same bar.

    Open at ``start``, low/high (low first when ``close >= open``) at
    ``start + d/4`` and ``start + d/2``, close at ``start + d - 1``; each with a
    quarter of the volume.

    Raises
    ------
    ValidationError
        When the bar is inconsistent (``low > min(open, close)``,
        ``high < max(open, close)``), a price is not > 0, or the interval is < 4 ms.

    Examples
    --------
    >>> ticks = bar_to_ticks(symbol="ETH-USD", start_ms=1_678_730_400_000, interval_ms=300_000,
    ...                      open=10.0, high=12.0, low=9.0, close=11.0, volume=4.0)
    >>> [(t.ts_ms - 1_678_730_400_000, t.price, t.size) for t in ticks]
    [(0, 10.0, 1.0), (75000, 9.0, 1.0), (150000, 12.0, 1.0), (299999, 11.0, 1.0)]
    """
    if interval_ms < 4:
        raise ValidationError("interval", f"a bar must last at least 4 ms, got {interval_ms}")
    for name, v in (("open", open), ("high", high), ("low", low), ("close", close)):
        if not (math.isfinite(v) and v > 0):
            raise ValidationError(name, f"must be a finite number > 0, got {v!r}")
    if low > min(open, close) or high < max(open, close) or low > high:
        raise ValidationError(
            "bar", f"inconsistent bar: open={open} high={high} low={low} close={close}"
        )
    size = None if volume is None else volume / 4.0
    if size is not None and not (math.isfinite(size) and size >= 0):
        raise ValidationError("volume", f"must be a finite number >= 0, got {volume!r}")
    mid = (low, high) if close >= open else (high, low)
    times = (start_ms, start_ms + interval_ms // 4, start_ms + interval_ms // 2,
             start_ms + interval_ms - 1)
    prices = (open, mid[0], mid[1], close)
    return [
        validate_tick(Tick(symbol=symbol, ts_ms=ts, price=p, size=size, source=source))
        for ts, p in zip(times, prices, strict=True)
    ]


def detect_format(path: Path) -> str:
    """Detect a file's replay format from its extension and first bytes.

    Raises
    ------
    ValidationError
        When the format cannot be told; pass ``format`` explicitly then.
    """
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    with open(path, "rb") as fh:
        head = fh.read(4096)
    text = head.lstrip()
    if suffix == ".json" or text[:1] in (b"{", b"["):
        if text.startswith(b"["):
            rest = text[1:].lstrip()
            if rest.startswith(b"["):
                return "klines"
            return "bars"
        if b'"prices"' in head:
            return "coingecko"
        if b'"ohlc"' in head or b'"candles"' in head:
            return "bars"
        if text.startswith(b"{") and b'"v"' in head.split(b"\n", 1)[0]:
            return "jsonl"
        raise ValidationError("format", f"{path}: cannot tell the JSON format; pass format=")
    first = head.split(b"\n", 1)[0].decode("utf-8", "replace")
    cells = next(csv.reader([first]), [])
    if len(cells) >= 11 and all(_NUMBER_RE.fullmatch(c) for c in cells[:11]):
        return "klines"
    return "csv"


def _guess_symbol(path: Path) -> str | None:
    m = _PAIR_IN_NAME_RE.search(path.name)
    if m is None:
        return None
    return f"{m.group(1).upper()}-{m.group(2).upper()}"


def _interval_from_name(name: object) -> int | None:
    if not isinstance(name, str):
        return None
    m = _ISO_PERIOD_RE.search(name.split("@")[0].split("_")[-1])
    if m is None:
        return None
    unit = {"S": 1_000, "M": 60_000, "H": 3_600_000, "D": 86_400_000}[m.group(2).upper()]
    if m.group(0).upper().startswith("PT") or m.group(2).upper() == "D":
        return int(m.group(1)) * unit
    return None


def _mode_gap(starts: Sequence[int]) -> int | None:
    gaps = Counter(b - a for a, b in zip(starts, starts[1:], strict=False) if b > a)
    if not gaps:
        return None
    return gaps.most_common(1)[0][0]


# --------------------------------------------------------------------------- the source


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
        from cryptolab.models import parse_interval

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
        readers: dict[str, Callable[[RejectHandler | None], Iterator[Tick]]] = {
            "csv": self._csv,
            "klines": self._klines,
            "bars": self._bars,
            "coingecko": self._coingecko,
            "parquet": self._parquet,
            "jsonl": self._jsonl,
        }
        ticks = readers[self.format](on_reject)
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
        sym = self.symbol or found or _guess_symbol(self.path)
        if sym is None:
            raise ValidationError(
                "symbol", f"{self.path} has no symbol column; pass symbol= (--symbol)"
            )
        if self.symbol is None:
            log.info("%s: symbol %s", self.path.name, sym)
        return validate_symbol(sym)

    # -- csv ------------------------------------------------------------------------

    def _csv(self, on_reject: RejectHandler | None) -> Iterator[Tick]:
        with open(self.path, newline="", encoding="utf-8", errors="replace") as fh:
            reader = csv.reader(fh)
            try:
                first = next(reader, None)
            except csv.Error as exc:
                raise ValidationError("header", f"{self.path}:1: {exc}") from None
            if first is None:
                return
            header = [c.strip().lower().lstrip("\ufeff") for c in first]
            has_header = not all(_NUMBER_RE.fullmatch(c) for c in header[:2]) and any(
                c in _KNOWN_NAMES for c in header
            )
            if not has_header and not all(_NUMBER_RE.fullmatch(c) for c in header[:2]):
                raise ValidationError(
                    "header", f"{self.path}:1: unrecognised header {first!r}; expected columns like "
                    "ts,price,size[,symbol,side,trade_id]"
                )
            if has_header:
                columns = self._map_columns(header)
                rows: Iterator[list[str] | _CsvError] = _safe_rows(reader)
            else:
                columns = self._map_columns(["ts", "price", "size", "side"][: len(header)] + [
                    f"col{i}" for i in range(4, len(header))
                ])
                rows = _chain_first(first, _safe_rows(reader))
            yield from self._rows(rows, columns, on_reject, lambda: reader.line_num)

    def _map_columns(self, header: list[str]) -> dict[str, int]:
        def find(names: Sequence[str]) -> int | None:
            for n in names:
                if n in header:
                    return header.index(n)
            return None

        cols: dict[str, int] = {}
        if self.ts_column is not None:
            if isinstance(self.ts_column, int):
                if not 0 <= self.ts_column < len(header):
                    raise ValidationError("ts_column", f"no column {self.ts_column} in {header}")
                cols["ts"] = self.ts_column
            elif self.ts_column.lower() in header:
                cols["ts"] = header.index(self.ts_column.lower())
            else:
                raise ValidationError("ts_column", f"no column {self.ts_column!r} in {header}")
        else:
            ts = find(_TS_NAMES)
            if ts is not None:
                cols["ts"] = ts
                if header[ts] == "ts_ms" and self.ts_unit is None:
                    self.ts_unit = "ms"
            elif "id" in header:
                cols["ts"] = header.index("id")
                cols["id_as_ts"] = 1
            else:
                raise ValidationError(
                    "ts", f"{self.path}: no time column in {header}; pass ts_column= (--ts-column)"
                )
        taken = {cols["ts"]}
        for key, names in (("price", _PRICE_NAMES), ("size", _SIZE_NAMES),
                           ("symbol", _SYMBOL_NAMES), ("trade_id", _ID_NAMES)):
            idx = find([n for n in names if n in header and header.index(n) not in taken])
            if idx is not None:
                cols[key] = idx
                taken.add(idx)
        if "price" not in cols:
            raise ValidationError("price", f"{self.path}: no price column in {header}")
        return cols

    def _rows(
        self,
        rows: Iterable[list[str] | _CsvError],
        cols: dict[str, int],
        on_reject: RejectHandler | None,
        line_of: Callable[[], int],
    ) -> Iterator[Tick]:
        ts_i = cols["ts"]
        price_i = cols["price"]
        size_i = cols.get("size")
        sym_i = cols.get("symbol")
        id_i = cols.get("trade_id")
        id_as_ts = "id_as_ts" in cols
        fixed_symbol = None if sym_i is not None else self._need_symbol()
        unit = self.ts_unit
        width = max(v for k, v in cols.items() if k != "id_as_ts") + 1
        path = str(self.path)
        source = self.source
        for row in rows:
            line = line_of()
            if isinstance(row, _CsvError):
                self._reject(on_reject, row.raw, ValidationError("record", row.reason), f"{path}:{line}")
                continue
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            try:
                if len(row) < width:
                    raise ValidationError("record", f"expected at least {width} columns, got {len(row)}")
                raw_ts = row[ts_i]
                if unit is None and _NUMBER_RE.fullmatch(raw_ts):
                    unit = detect_ts_unit(float(raw_ts))
                    log.info("%s: timestamps in %s", self.path.name, unit)
                ts = parse_ts(raw_ts, unit)
                price = parse_number(row[price_i], "price")
                size = parse_number(row[size_i], "size") if size_i is not None and row[size_i].strip() else None
                sym = fixed_symbol if fixed_symbol is not None else validate_symbol(
                    row[sym_i].strip().upper() if sym_i is not None else ""
                )
                tid: str | None = None
                if id_i is not None:
                    tid = row[id_i].strip() or None
                elif id_as_ts:
                    tid = row[ts_i].strip()
                tick = validate_tick(
                    Tick(symbol=sym, ts_ms=ts, price=price, size=size, source=source, trade_id=tid)
                )
            except ValidationError as exc:
                self._reject(on_reject, ",".join(row), exc, f"{path}:{line}")
                continue
            yield tick

    # -- klines ---------------------------------------------------------------------

    def _kline_rows(self) -> Iterable[tuple[str, Any]]:
        path = str(self.path)
        if self.path.suffix.lower() == ".json" or self.path.read_bytes()[:64].lstrip().startswith(b"["):
            data = self._load_json()
            if not isinstance(data, list):
                raise ValidationError("record", f"{path}: klines JSON must be an array of arrays")
            return ((f"{path}: [{i}]", k) for i, k in enumerate(data))
        return self._csv_rows()

    @staticmethod
    def _kline_times(k: Any, unit: TsUnit | None) -> tuple[int, int, TsUnit]:
        """A kline's open and close times, and the unit (detected from it when ``None``)."""
        if not isinstance(k, list) or len(k) < 7:
            raise ValidationError("record", "a kline is an array of at least 7 fields")
        if unit is None:
            is_int = isinstance(k[0], int) and not isinstance(k[0], bool)
            unit = "ms" if is_int else detect_ts_unit(parse_number(k[0], "open_time"))
        return parse_ts(k[0], unit, "open_time"), parse_ts(k[6], unit, "close_time"), unit

    def _klines(self, on_reject: RejectHandler | None) -> Iterator[Tick]:
        symbol = self._need_symbol()
        unit = self.ts_unit
        for where, k in self._kline_rows():
            try:
                open_ms, close_ms, unit = self._kline_times(k, unit)
                interval = self.interval_ms or (close_ms + 1 - open_ms)
                ticks = bar_to_ticks(
                    symbol=symbol, start_ms=open_ms, interval_ms=interval,
                    open=parse_number(k[1], "open"), high=parse_number(k[2], "high"),
                    low=parse_number(k[3], "low"), close=parse_number(k[4], "close"),
                    volume=parse_number(k[5], "volume"), source=self.source,
                )
            except ValidationError as exc:
                self._reject(on_reject, k if isinstance(k, list) else repr(k), exc, where)
                continue
            yield from ticks

    def _csv_rows(self) -> Iterator[tuple[str, Any]]:
        with open(self.path, newline="", encoding="utf-8", errors="replace") as fh:
            reader = csv.reader(fh)
            for r in _safe_rows(reader):
                if isinstance(r, _CsvError):
                    yield f"{self.path}:{reader.line_num}", r.raw
                elif r:
                    yield f"{self.path}:{reader.line_num}", r

    # -- bars ---------------------------------------------------------------------------

    def _load_json(self) -> Any:
        try:
            return loads_lenient(self.path.read_bytes())
        except ValueError as exc:
            raise ValidationError("record", f"{self.path}: not valid JSON: {exc}") from None

    def _bar_list(self) -> tuple[list[Any], str, object]:
        """The file's bars, the key they are under (``""`` for a bare list) and its ``name``."""
        data = self._load_json()
        path = str(self.path)
        name: object = None
        if isinstance(data, dict):
            name = data.get("name")
            key = "ohlc" if "ohlc" in data else "candles" if "candles" in data else None
            if key is None:
                raise ValidationError("record", f"{path}: bars JSON needs an 'ohlc' or 'candles' list")
            bars, label = data[key], key
        else:
            bars, label = data, ""
        if not isinstance(bars, list):
            raise ValidationError("record", f"{path}: the bars must be a JSON list")
        return bars, label, name

    def _bars_interval(self, bars: list[Any], name: object) -> int:
        # from the window starts of the bars that parse
        starts: list[int] = []
        for b in bars[:1000]:
            try:
                starts.append(self._bar_start(b, None))
            except (ValidationError, TypeError, KeyError):
                continue
        interval = self.interval_ms or _interval_from_name(name) or _mode_gap(starts)
        if interval is None:
            raise ValidationError(
                "interval", f"{self.path}: cannot tell the bar interval; pass interval= (--bar-interval)"
            )
        return interval

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
            bars, _label, name = self._bar_list()
            return self._bars_interval(bars, name)
        if self.format != "klines" or self.interval_ms is not None:
            return self.interval_ms if self.format == "klines" else None
        for _where, k in self._kline_rows():  # the first kline that parses
            with contextlib.suppress(ValidationError):
                open_ms, close_ms, _unit = self._kline_times(k, self.ts_unit)
                return close_ms + 1 - open_ms
        return None

    def _bars(self, on_reject: RejectHandler | None) -> Iterator[Tick]:
        bars, label, name = self._bar_list()
        path = str(self.path)
        found = None
        if isinstance(name, str):
            m = re.match(r"([A-Za-z0-9]+)[/-]([A-Za-z0-9]+)", name)
            if m:
                found = f"{m.group(1).upper()}-{m.group(2).upper()}"
        symbol = self._need_symbol(found)
        interval = self._bars_interval(bars, name)
        for i, b in enumerate(bars):
            where = f"{path}: {label}[{i}]" if label else f"{path}: [{i}]"
            try:
                if not isinstance(b, dict):
                    raise ValidationError("record", f"a bar must be a JSON object, got {type(b).__name__}")
                start = self._bar_start(b, interval)
                o, h, low, c = (self._bar_field(b, k) for k in ("open", "high", "low", "close"))
                vol_raw = b.get("volume")
                vol = None if vol_raw is None else parse_number(vol_raw, "volume")
                ticks = bar_to_ticks(symbol=symbol, start_ms=start, interval_ms=interval,
                                     open=o, high=h, low=low, close=c, volume=vol, source=self.source)
            except ValidationError as exc:
                self._reject(on_reject, b if isinstance(b, dict) else repr(b), exc, where)
                continue
            yield from ticks

    @staticmethod
    def _bar_field(b: Mapping[str, Any], key: str) -> float:
        for k in (key + "Price", key):
            if k in b:
                return parse_number(b[k], key)
        raise ValidationError(key, "missing")

    def _bar_start(self, b: Any, interval: int | None) -> int:
        if not isinstance(b, dict):
            raise ValidationError("record", "not an object")
        if "start" in b:
            return parse_ts(b["start"], self.ts_unit, "start")
        if "endTime" in b:
            end = parse_ts(b["endTime"], self.ts_unit or "ms", "endTime")
            return end + 1 - (interval or 0) if interval else end + 1
        if "openTime" in b:
            return parse_ts(b["openTime"], self.ts_unit or "ms", "openTime")
        raise ValidationError("start", "missing (need start, endTime or openTime)")

    # -- coingecko market_chart ---------------------------------------------------------

    def _coingecko(self, on_reject: RejectHandler | None) -> Iterator[Tick]:
        data = self._load_json()
        path = str(self.path)
        if not isinstance(data, dict) or not isinstance(data.get("prices"), list):
            raise ValidationError("prices", f"{path}: market_chart JSON needs a 'prices' list")
        symbol = self._need_symbol()
        for i, pt in enumerate(data["prices"]):
            try:
                if not isinstance(pt, list) or len(pt) != 2:
                    raise ValidationError("record", "a price point is [ms, price]")
                ts = parse_ts(pt[0], self.ts_unit or "ms")
                price = parse_number(pt[1], "price")
                tick = validate_tick(Tick(symbol=symbol, ts_ms=ts, price=price, source=self.source))
            except ValidationError as exc:
                self._reject(on_reject, pt if isinstance(pt, list) else repr(pt), exc,
                             f"{path}: prices[{i}]")
                continue
            yield tick

    # -- parquet ------------------------------------------------------------------------

    def _parquet(self, on_reject: RejectHandler | None) -> Iterator[Tick]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(self.path)
        header = [n.lower() for n in pf.schema_arrow.names]
        cols = self._map_columns(header)
        names = pf.schema_arrow.names
        ts_type = pf.schema_arrow.field(cols["ts"]).type
        if pa.types.is_timestamp(ts_type):
            self.ts_unit = None
        wanted = sorted({v for k, v in cols.items() if k != "id_as_ts"})
        row_no = 0

        def convert(v: object) -> str:
            if v is None:
                return ""
            if isinstance(v, datetime):
                return _as_utc(v).isoformat()
            return repr(v) if isinstance(v, float) else str(v)

        def rows() -> Iterator[list[str]]:
            nonlocal row_no
            for batch in pf.iter_batches(batch_size=65_536, columns=[names[i] for i in wanted]):
                table = batch.to_pydict()
                columns = [table[names[i]] if i in wanted else [None] * batch.num_rows
                           for i in range(max(wanted) + 1)]
                for r in range(batch.num_rows):
                    row_no += 1
                    yield [convert(c[r]) for c in columns]

        yield from self._rows(rows(), cols, on_reject, lambda: row_no)

    # -- jsonl (wire format) -----------------------------------------------------------

    def _jsonl(self, on_reject: RejectHandler | None) -> Iterator[Tick]:
        path = str(self.path)
        with open(self.path, "rb") as fh:
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    tick = tick_from_dict(orjson.loads(line))
                except orjson.JSONDecodeError as exc:
                    self._reject(on_reject, line.rstrip(b"\n"),
                                 ValidationError("record", f"not valid JSON: {exc}"), f"{path}:{line_no}")
                    continue
                except ValidationError as exc:
                    self._reject(on_reject, line.rstrip(b"\n"), exc, f"{path}:{line_no}")
                    continue
                yield tick


class _CsvError:
    """A CSV line the csv module could not split."""

    __slots__ = ("raw", "reason")

    def __init__(self, reason: str) -> None:
        self.reason = f"not a CSV row: {reason}"
        self.raw = ""


def _safe_rows(reader: Any) -> Iterator[list[str] | _CsvError]:
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield _CsvError(str(exc))
            continue
        yield row


def _chain_first(
    first: list[str], rest: Iterator[list[str] | _CsvError]
) -> Iterator[list[str] | _CsvError]:
    yield first
    yield from rest

