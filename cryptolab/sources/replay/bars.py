"""OHLCV bars as ticks: :func:`bar_to_ticks`, and the ``bars`` format (bar JSON).

Bar JSON is ``{"name": "ETH/USD_PT5M@...", "ohlc": [{"endTime", "openPrice",
"highPrice", "lowPrice", "closePrice", "volume"}...]}`` (endTime = last millisecond
of the bar), Coinbase's ``{"candles": [{"start" (epoch s), "open", "high", "low",
"close", "volume"}...]}``, or a bare list of such bars.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from cryptolab.errors import ValidationError
from cryptolab.models.records import Tick
from cryptolab.models.time import parse_ts
from cryptolab.models.wire import validate_tick
from cryptolab.sources import RejectHandler
from cryptolab.sources.replay.values import load_json, parse_number

if TYPE_CHECKING:  # pragma: no cover
    from cryptolab.sources.replay.source import Replay

__all__ = ["bar_list", "bar_to_ticks", "bars_interval", "read_bars"]

_ISO_PERIOD_RE: Final = re.compile(r"PT?(\d+)([SMHD])", re.IGNORECASE)
#: Bars looked at to find the most common gap between them.
_GAP_SAMPLE: Final = 1000


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


def _interval_from_name(name: object) -> int | None:
    """The interval a ``PT5M``-style bar series name gives (``None`` when it gives none)."""
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


def bar_list(replay: Replay) -> tuple[list[Any], str, object]:
    """The file's bars, the key they are under (``""`` for a bare list) and its ``name``."""
    data = load_json(replay.path)
    path = str(replay.path)
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


def bars_interval(replay: Replay, bars: list[Any], name: object) -> int:
    """The bars' interval: given, else from the series name, else the most common gap."""
    starts: list[int] = []  # from the window starts of the bars that parse
    for b in bars[:_GAP_SAMPLE]:
        try:
            starts.append(_bar_start(replay, b, None))
        except (ValidationError, TypeError, KeyError):
            continue
    interval = replay.interval_ms or _interval_from_name(name) or _mode_gap(starts)
    if interval is None:
        raise ValidationError(
            "interval", f"{replay.path}: cannot tell the bar interval; pass interval= (--bar-interval)"
        )
    return interval


def read_bars(replay: Replay, on_reject: RejectHandler | None) -> Iterator[Tick]:
    """The ticks of a ``bars`` file, four per bar."""
    bars, label, name = bar_list(replay)
    path = str(replay.path)
    found = None
    if isinstance(name, str):
        m = re.match(r"([A-Za-z0-9]+)[/-]([A-Za-z0-9]+)", name)
        if m:
            found = f"{m.group(1).upper()}-{m.group(2).upper()}"
    symbol = replay._need_symbol(found)
    interval = bars_interval(replay, bars, name)
    for i, b in enumerate(bars):
        where = f"{path}: {label}[{i}]" if label else f"{path}: [{i}]"
        try:
            if not isinstance(b, dict):
                raise ValidationError("record", f"a bar must be a JSON object, got {type(b).__name__}")
            start = _bar_start(replay, b, interval)
            o, h, low, c = (_bar_field(b, k) for k in ("open", "high", "low", "close"))
            vol_raw = b.get("volume")
            vol = None if vol_raw is None else parse_number(vol_raw, "volume")
            ticks = bar_to_ticks(symbol=symbol, start_ms=start, interval_ms=interval,
                                 open=o, high=h, low=low, close=c, volume=vol, source=replay.source)
        except ValidationError as exc:
            replay._reject(on_reject, b if isinstance(b, dict) else repr(b), exc, where)
            continue
        yield from ticks


def _bar_field(b: Mapping[str, Any], key: str) -> float:
    for k in (key + "Price", key):
        if k in b:
            return parse_number(b[k], key)
    raise ValidationError(key, "missing")


def _bar_start(replay: Replay, b: Any, interval: int | None) -> int:
    if not isinstance(b, dict):
        raise ValidationError("record", "not an object")
    if "start" in b:
        return parse_ts(b["start"], replay.ts_unit, "start")
    if "endTime" in b:
        end = parse_ts(b["endTime"], replay.ts_unit or "ms", "endTime")
        return end + 1 - (interval or 0) if interval else end + 1
    if "openTime" in b:
        return parse_ts(b["openTime"], replay.ts_unit or "ms", "openTime")
    raise ValidationError("start", "missing (need start, endTime or openTime)")
