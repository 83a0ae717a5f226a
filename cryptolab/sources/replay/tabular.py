"""Trades as rows of named columns: the ``csv`` format, and the rows ``parquet`` shares.

Columns are found by name (a time column, ``price``, a size column, and optionally
``symbol``, ``side`` and ``trade_id`` under their usual aliases), or given by
position in a headerless ``ts,price,amount[,side]`` file.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

from cryptolab.errors import ValidationError
from cryptolab.models.records import Tick
from cryptolab.models.time import NUMBER_RE, detect_ts_unit, parse_ts
from cryptolab.models.wire import validate_symbol, validate_tick
from cryptolab.sources import RejectHandler
from cryptolab.sources.replay.values import log, parse_number

if TYPE_CHECKING:  # pragma: no cover
    from cryptolab.sources.replay.source import Replay

__all__ = ["CsvError", "csv_rows", "map_columns", "read_csv", "read_rows", "safe_rows"]

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


class CsvError:
    """A CSV line the csv module could not split."""

    __slots__ = ("raw", "reason")

    def __init__(self, reason: str) -> None:
        self.reason = f"not a CSV row: {reason}"
        self.raw = ""


def safe_rows(reader: Any) -> Iterator[list[str] | CsvError]:
    """The rows of a csv reader, with a :class:`CsvError` for each line it cannot split."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield CsvError(str(exc))
            continue
        yield row


def _chain_first(first: list[str], rest: Iterator[list[str] | CsvError]) -> Iterator[list[str] | CsvError]:
    yield first
    yield from rest


def csv_rows(replay: Replay) -> Iterator[tuple[str, Any]]:
    """``(where, row)`` for each non-empty line of the replay's CSV file (the raw text when
    the line does not split)."""
    with open(replay.path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        for r in safe_rows(reader):
            if isinstance(r, CsvError):
                yield f"{replay.path}:{reader.line_num}", r.raw
            elif r:
                yield f"{replay.path}:{reader.line_num}", r


def read_csv(replay: Replay, on_reject: RejectHandler | None) -> Iterator[Tick]:
    """The ticks of a ``csv`` file, with or without a header row."""
    with open(replay.path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        try:
            first = next(reader, None)
        except csv.Error as exc:
            raise ValidationError("header", f"{replay.path}:1: {exc}") from None
        if first is None:
            return
        header = [c.strip().lower().lstrip("\ufeff") for c in first]
        has_header = not all(NUMBER_RE.fullmatch(c) for c in header[:2]) and any(
            c in _KNOWN_NAMES for c in header
        )
        if not has_header and not all(NUMBER_RE.fullmatch(c) for c in header[:2]):
            raise ValidationError(
                "header", f"{replay.path}:1: unrecognised header {first!r}; expected columns like "
                "ts,price,size[,symbol,side,trade_id]"
            )
        if has_header:
            columns = map_columns(replay, header)
            rows: Iterator[list[str] | CsvError] = safe_rows(reader)
        else:
            columns = map_columns(replay, ["ts", "price", "size", "side"][: len(header)] + [
                f"col{i}" for i in range(4, len(header))
            ])
            rows = _chain_first(first, safe_rows(reader))
        yield from read_rows(replay, rows, columns, on_reject, lambda: reader.line_num)


def _find(header: list[str], names: Sequence[str]) -> int | None:
    for n in names:
        if n in header:
            return header.index(n)
    return None


def _time_column(replay: Replay, header: list[str], cols: dict[str, int]) -> None:
    """Place the time column in ``cols`` (``id_as_ts`` when an ``id`` column stands in for it)."""
    if replay.ts_column is not None:
        if isinstance(replay.ts_column, int):
            if not 0 <= replay.ts_column < len(header):
                raise ValidationError("ts_column", f"no column {replay.ts_column} in {header}")
            cols["ts"] = replay.ts_column
        elif replay.ts_column.lower() in header:
            cols["ts"] = header.index(replay.ts_column.lower())
        else:
            raise ValidationError("ts_column", f"no column {replay.ts_column!r} in {header}")
        return
    ts = _find(header, _TS_NAMES)
    if ts is not None:
        cols["ts"] = ts
        if header[ts] == "ts_ms" and replay.ts_unit is None:
            replay.ts_unit = "ms"
    elif "id" in header:
        cols["ts"] = header.index("id")
        cols["id_as_ts"] = 1
    else:
        raise ValidationError(
            "ts", f"{replay.path}: no time column in {header}; pass ts_column= (--ts-column)"
        )


def map_columns(replay: Replay, header: list[str]) -> dict[str, int]:
    """Where each field is in rows of this ``header`` (lower-case names).

    Raises
    ------
    ValidationError
        When there is no time or no price column.
    """
    cols: dict[str, int] = {}
    _time_column(replay, header, cols)
    taken = {cols["ts"]}
    for key, names in (("price", _PRICE_NAMES), ("size", _SIZE_NAMES),
                       ("symbol", _SYMBOL_NAMES), ("trade_id", _ID_NAMES)):
        idx = _find(header, [n for n in names if n in header and header.index(n) not in taken])
        if idx is not None:
            cols[key] = idx
            taken.add(idx)
    if "price" not in cols:
        raise ValidationError("price", f"{replay.path}: no price column in {header}")
    return cols


def read_rows(
    replay: Replay,
    rows: Iterable[list[str] | CsvError],
    cols: dict[str, int],
    on_reject: RejectHandler | None,
    line_of: Callable[[], int],
) -> Iterator[Tick]:
    """The ticks of rows of text cells laid out as ``cols`` says (``line_of()``: where a row is)."""
    ts_i = cols["ts"]
    price_i = cols["price"]
    size_i = cols.get("size")
    sym_i = cols.get("symbol")
    id_i = cols.get("trade_id")
    id_as_ts = "id_as_ts" in cols
    fixed_symbol = None if sym_i is not None else replay._need_symbol()
    unit = replay.ts_unit
    width = max(v for k, v in cols.items() if k != "id_as_ts") + 1
    path = str(replay.path)
    source = replay.source
    for row in rows:
        line = line_of()
        if isinstance(row, CsvError):
            replay._reject(on_reject, row.raw, ValidationError("record", row.reason), f"{path}:{line}")
            continue
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        try:
            if len(row) < width:
                raise ValidationError("record", f"expected at least {width} columns, got {len(row)}")
            raw_ts = row[ts_i]
            if unit is None and NUMBER_RE.fullmatch(raw_ts):
                unit = detect_ts_unit(float(raw_ts))
                log.info("%s: timestamps in %s", replay.path.name, unit)
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
            replay._reject(on_reject, ",".join(row), exc, f"{path}:{line}")
            continue
        yield tick
