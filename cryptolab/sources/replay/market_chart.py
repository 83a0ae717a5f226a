"""The ``coingecko`` format: CoinGecko ``/coins/{id}/market_chart`` JSON
(``{"prices": [[ms, price]...], "total_volumes": ...}``): one tick per price point,
without size (the volumes there are rolling 24-hour totals, not trade sizes)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from cryptolab.errors import ValidationError
from cryptolab.models.records import Tick
from cryptolab.models.time import parse_ts
from cryptolab.models.wire import validate_tick
from cryptolab.sources import RejectHandler
from cryptolab.sources.replay.values import load_json, parse_number

if TYPE_CHECKING:  # pragma: no cover
    from cryptolab.sources.replay.source import Replay

__all__ = ["read_market_chart"]


def read_market_chart(replay: Replay, on_reject: RejectHandler | None) -> Iterator[Tick]:
    """The ticks of a ``coingecko`` market_chart file, one per price point."""
    data = load_json(replay.path)
    path = str(replay.path)
    if not isinstance(data, dict) or not isinstance(data.get("prices"), list):
        raise ValidationError("prices", f"{path}: market_chart JSON needs a 'prices' list")
    symbol = replay._need_symbol()
    for i, pt in enumerate(data["prices"]):
        try:
            if not isinstance(pt, list) or len(pt) != 2:
                raise ValidationError("record", "a price point is [ms, price]")
            ts = parse_ts(pt[0], replay.ts_unit or "ms")
            price = parse_number(pt[1], "price")
            tick = validate_tick(Tick(symbol=symbol, ts_ms=ts, price=price, source=replay.source))
        except ValidationError as exc:
            replay._reject(on_reject, pt if isinstance(pt, list) else repr(pt), exc,
                           f"{path}: prices[{i}]")
            continue
        yield tick
