"""The ``klines`` format: Binance klines, as the REST JSON array of arrays or the
headerless CSV of ``data.binance.vision`` (``open_time, open, high, low, close, volume,
close_time, ...``). Each kline becomes four ticks, as bars do."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final

from cryptolab.errors import ValidationError
from cryptolab.models.records import Tick
from cryptolab.models.time import TsUnit, detect_ts_unit, parse_ts
from cryptolab.sources import RejectHandler
from cryptolab.sources.replay.bars import bar_to_ticks
from cryptolab.sources.replay.tabular import csv_rows
from cryptolab.sources.replay.values import load_json, parse_number

if TYPE_CHECKING:  # pragma: no cover
    from cryptolab.sources.replay.source import Replay

__all__ = ["kline_rows", "kline_times", "read_klines"]

#: Bytes looked at to tell a JSON klines file from a CSV one.
_SNIFF_BYTES: Final = 64
#: A kline's fields up to its close time.
_KLINE_FIELDS: Final = 7


def kline_rows(replay: Replay) -> Iterable[tuple[str, Any]]:
    """``(where, kline)`` for each kline of the file, JSON or CSV."""
    path = str(replay.path)
    is_json = replay.path.suffix.lower() == ".json"
    if is_json or replay.path.read_bytes()[:_SNIFF_BYTES].lstrip().startswith(b"["):
        data = load_json(replay.path)
        if not isinstance(data, list):
            raise ValidationError("record", f"{path}: klines JSON must be an array of arrays")
        return ((f"{path}: [{i}]", k) for i, k in enumerate(data))
    return csv_rows(replay)


def kline_times(k: Any, unit: TsUnit | None) -> tuple[int, int, TsUnit]:
    """A kline's open and close times, and the unit (detected from it when ``None``)."""
    if not isinstance(k, list) or len(k) < _KLINE_FIELDS:
        raise ValidationError("record", "a kline is an array of at least 7 fields")
    if unit is None:
        is_int = isinstance(k[0], int) and not isinstance(k[0], bool)
        unit = "ms" if is_int else detect_ts_unit(parse_number(k[0], "open_time"))
    return parse_ts(k[0], unit, "open_time"), parse_ts(k[6], unit, "close_time"), unit


def read_klines(replay: Replay, on_reject: RejectHandler | None) -> Iterator[Tick]:
    """The ticks of a ``klines`` file, four per kline."""
    symbol = replay._need_symbol()
    unit = replay.ts_unit
    for where, k in kline_rows(replay):
        try:
            open_ms, close_ms, unit = kline_times(k, unit)
            interval = replay.interval_ms or (close_ms + 1 - open_ms)
            ticks = bar_to_ticks(
                symbol=symbol, start_ms=open_ms, interval_ms=interval,
                open=parse_number(k[1], "open"), high=parse_number(k[2], "high"),
                low=parse_number(k[3], "low"), close=parse_number(k[4], "close"),
                volume=parse_number(k[5], "volume"), source=replay.source,
            )
        except ValidationError as exc:
            replay._reject(on_reject, k if isinstance(k, list) else repr(k), exc, where)
            continue
        yield from ticks
