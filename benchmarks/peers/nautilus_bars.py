"""NautilusTrader's ``TimeBarAggregator`` building time bars from ``TradeTick`` s in historical mode.

Run by the NautilusTrader virtualenv's Python (see :mod:`benchmarks.peers.venv`), never
imported by the suite: it imports neither cryptolab nor ``benchmarks``. Usage::

    <venv>/bin/python benchmarks/peers/nautilus_bars.py PARAMS_JSON

``PARAMS_JSON`` names an ``.npz`` of ticks (``codes``, ``symbols``, ``ts_ms``, ``price``,
``size``, in arrival order), the bar intervals in minutes, the price and size precisions,
the number of timed runs (more, up to 50, until they
add up to ``min_seconds``) and where to write the bars. It prints one JSON line: the time to
build the ``TradeTick`` objects (not timed as aggregation: like cryptolab's columns, they are
the input), each run's aggregation seconds and ticks/s, and the bars of the first run.

Each symbol and interval has its own aggregator with its own ``TestClock``, in historical
mode (``set_historical_mode(True, handler)``): the aggregator advances its clock to each
tick's ``ts_init`` and closes the bars whose timers fired, as NautilusTrader's data engine
does for historical requests. ``build_with_no_updates=False``: no bar for a minute without
trades (cryptolab's candles have none either). The windows are left-open ``(start, end]``
and stamped at the close (the defaults).
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any


def _instrument(symbol: str, price_precision: int, size_precision: int) -> Any:
    from nautilus_trader.model.currencies import BTC, USD
    from nautilus_trader.model.identifiers import InstrumentId, Symbol, Venue
    from nautilus_trader.model.instruments import CurrencyPair
    from nautilus_trader.model.objects import Price, Quantity

    ticker = symbol.replace("-", "").replace("/", "")
    return CurrencyPair(
        instrument_id=InstrumentId(Symbol(ticker), Venue("BENCH")),
        raw_symbol=Symbol(ticker),
        base_currency=BTC,  # the bars do not depend on it
        quote_currency=USD,
        price_precision=price_precision,
        size_precision=size_precision,
        price_increment=Price(10.0 ** -price_precision, price_precision),
        size_increment=Quantity(10.0 ** -size_precision, size_precision),
        lot_size=None, max_quantity=None, min_quantity=None, max_notional=None, min_notional=None,
        max_price=None, min_price=None, margin_init=Decimal(0), margin_maint=Decimal(0),
        maker_fee=Decimal(0), taker_fee=Decimal(0), ts_event=0, ts_init=0,
    )


def _ticks(data: Any, instruments: list[Any], pp: int, sp: int) -> list[Any]:
    """The ``TradeTick`` s of every symbol, in arrival order."""
    import numpy as np
    from nautilus_trader.model.data import TradeTick

    codes = data["codes"]
    ts_ns = data["ts_ms"].astype(np.uint64) * np.uint64(1_000_000)
    out: list[Any] = [None] * len(codes)
    for k, inst in enumerate(instruments):
        rows = np.flatnonzero(codes == k)
        ticks = TradeTick.from_raw_arrays_to_list(
            inst.id, pp, sp, np.ascontiguousarray(data["price"][rows], dtype=np.float64),
            np.ascontiguousarray(data["size"][rows], dtype=np.float64),
            np.zeros(len(rows), dtype=np.uint8), [str(i) for i in rows.tolist()],
            np.ascontiguousarray(ts_ns[rows]), np.ascontiguousarray(ts_ns[rows]),
        )
        for i, t in zip(rows.tolist(), ticks, strict=True):
            out[i] = t
    return out


def _sink(bars: list[tuple[int, int, Any]] | None, k: int, m: int) -> Callable[[Any], None]:
    """The handler of symbol ``k``'s ``m``-minute bars: kept in ``bars``, or dropped."""
    if bars is None:
        return lambda bar: None
    keep = bars.append
    return lambda bar: keep((k, m, bar))


def _aggregate(ticks: list[Any], codes: list[int], instruments: list[Any],
               minutes: list[int], bars: list[tuple[int, int, Any]] | None) -> float:
    """One timed run over fresh aggregators; the bars go to ``bars`` when given."""
    from nautilus_trader.common.component import TestClock
    from nautilus_trader.data.aggregation import TimeBarAggregator
    from nautilus_trader.model.data import BarType

    per_code: list[list[Any]] = []
    for k, inst in enumerate(instruments):
        aggs = []
        for m in minutes:
            bar_type = BarType.from_str(f"{inst.id}-{m}-MINUTE-LAST-INTERNAL")
            sink = _sink(bars, k, m)
            agg = TimeBarAggregator(inst, bar_type, sink, TestClock(), build_with_no_updates=False)
            agg.set_historical_mode(True, sink)
            aggs.append(agg.handle_trade_tick)
        per_code.append(aggs)
    gc.collect()
    t0 = time.perf_counter()
    for tick, code in zip(ticks, codes, strict=True):
        for handle in per_code[code]:
            handle(tick)
    return time.perf_counter() - t0


def main(argv: list[str]) -> int:
    """Run the measurement described by ``argv[0]`` (JSON) and print the result as JSON."""
    import nautilus_trader
    import numpy as np

    p = json.loads(argv[0])
    data = dict(np.load(p["ticks"], allow_pickle=False))
    symbols = [str(s) for s in data["symbols"].tolist()]
    pp, sp = int(p["price_precision"]), int(p["size_precision"])
    instruments = [_instrument(s, pp, sp) for s in symbols]
    t0 = time.perf_counter()
    ticks = _ticks(data, instruments, pp, sp)
    build_s = time.perf_counter() - t0
    codes = data["codes"].tolist()
    n = len(ticks)
    bars: list[tuple[int, int, Any]] = []
    runs = [_aggregate(ticks, codes, instruments, p["minutes"], bars)]
    while len(runs) < int(p["repeat"]) or (sum(runs) < p.get("min_seconds", 0.0) and len(runs) < 50):
        runs.append(_aggregate(ticks, codes, instruments, p["minutes"], None))
    rows = [[symbols[k], m, int(b.ts_event) // 1_000_000, float(str(b.open)), float(str(b.high)),
             float(str(b.low)), float(str(b.close)), float(str(b.volume))] for k, m, b in bars]
    with open(p["bars_out"], "w") as fh:
        json.dump(rows, fh)
    best = min(runs)
    print(json.dumps({"ticks": n, "seconds": best, "ticks_per_s": n / best if best > 0 else None,
                      "runs_seconds": runs, "tick_build_seconds": build_s, "bars": len(rows),
                      "version": nautilus_trader.__version__, "python": sys.version.split()[0]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
