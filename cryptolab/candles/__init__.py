"""OHLCV candles over event-time tumbling windows: streaming and batch (pure, no I/O).

=================  ==================================================================
``accumulator``    one open window's running totals (named, slotted fields)
``kernels``        the numpy reductions both engines share (groups, OHLC, exact sums)
``stream``         :class:`CandleAggregator`: watermarks, lateness, revisions, gap fill
``columns``        the aggregator's columnar fold (a chunk without window closes)
``sealed``         a batch's windows that open, close and pass lateness in it, never held
``state``          the aggregator's per-partition state, its snapshot and restore
``batch``          :func:`candles_from_ticks`: the vectorised twin, bit-identical
``frames``         candle and tick frames, their UTC window columns
=================  ==================================================================

Names are imported lazily: the streaming aggregator never loads pandas.

Examples
--------
>>> from cryptolab.candles import CandleAggregator
>>> agg = CandleAggregator(intervals="1m")
>>> agg.add("BTC-USD", 1_700_000_040_000, 37_000.0, 0.5)
True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "CandleAggregator": "cryptolab.candles.stream",
    "Emission": "cryptolab.candles.stream",
    "state_from_bytes": "cryptolab.candles.state",
    "state_has_open_windows": "cryptolab.candles.state",
    "state_to_bytes": "cryptolab.candles.state",
    "candles_from_ticks": "cryptolab.candles.batch",
    "WINDOW_COLUMNS": "cryptolab.candles.frames",
    "candles_to_frame": "cryptolab.candles.frames",
    "epoch_ms": "cryptolab.candles.frames",
    "frame_to_candles": "cryptolab.candles.frames",
    "ticks_to_frame": "cryptolab.candles.frames",
    "utc_times": "cryptolab.candles.frames",
    "with_ms_windows": "cryptolab.candles.frames",
    "with_utc_windows": "cryptolab.candles.frames",
}

__all__ = [
    "WINDOW_COLUMNS",
    "CandleAggregator",
    "Emission",
    "candles_from_ticks",
    "candles_to_frame",
    "epoch_ms",
    "frame_to_candles",
    "state_from_bytes",
    "state_has_open_windows",
    "state_to_bytes",
    "ticks_to_frame",
    "utc_times",
    "with_ms_windows",
    "with_utc_windows",
]

if TYPE_CHECKING:  # pragma: no cover
    from cryptolab.candles.batch import candles_from_ticks
    from cryptolab.candles.frames import (
        WINDOW_COLUMNS,
        candles_to_frame,
        epoch_ms,
        frame_to_candles,
        ticks_to_frame,
        utc_times,
        with_ms_windows,
        with_utc_windows,
    )
    from cryptolab.candles.state import state_from_bytes, state_has_open_windows, state_to_bytes
    from cryptolab.candles.stream import CandleAggregator, Emission


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cryptolab.candles' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
