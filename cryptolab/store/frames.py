"""DataFrames of the store's history and alerts (imported only when a frame is asked for).

pandas and pyarrow take ~90 MiB of a process's memory once imported; a consumer
(:class:`~cryptolab.pipeline.CandlePipeline`) never builds a DataFrame, so the rest of
:mod:`cryptolab.store` imports this module lazily, from the functions that return one.

Examples
--------
>>> import numpy as np
>>> cols = {name: np.zeros(1) for name in ("window_start", "window_end", "open", "high", "low",
...         "close", "volume", "vwap", "trades", "first_ts", "last_ts", "high_ts", "low_ts",
...         "revision", "final", "gap")}
>>> history_frame("BTC-USD", "1m", cols, 1)[["symbol", "window_start", "open"]]
    symbol              window_start  open
0  BTC-USD 1970-01-01 00:00:00+00:00   0.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa

from cryptolab.store.schema import _FLOAT_COLS, _INT_COLS, HISTORY_COLUMNS

if TYPE_CHECKING:
    from cryptolab.models import Alert

try:  # pandas >= 3: assemble frames from 2-D blocks without per-column overhead
    from pandas.api.internals import create_dataframe_from_blocks as _create_from_blocks
except ImportError:  # pragma: no cover
    _create_from_blocks = None

__all__ = ["alerts_frame", "history_frame", "utc_column"]

_UTC_MS: Final = pd.DatetimeTZDtype("ms", "UTC")
#: The string dtype pandas infers by default (``str`` on pandas 3, ``object`` before).
_STR_DTYPE: Final = pd.Series(["x"]).dtype
_BOOL_COLS: Final = ("final", "gap")
_HISTORY_INDEX: Final = pd.Index(HISTORY_COLUMNS)
_PLACEMENT: Final = {name: i for i, name in enumerate(HISTORY_COLUMNS)}


def utc_column(values: Sequence[Any] | np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Epoch-ms integers as a ``datetime64[ms, UTC]`` array."""
    arr = np.asarray(values, dtype=np.int64).view("datetime64[ms]")
    return pd.array(arr, dtype=_UTC_MS)


def _repeated_string(value: str, n: int) -> Any:
    """A column holding ``value`` ``n`` times, in pandas' default string dtype."""
    if isinstance(_STR_DTYPE, np.dtype):  # object strings (pandas < 3)
        return np.full(n, value, dtype=object)
    return pd.array(pa.repeat(pa.scalar(value, pa.large_string()), n), dtype=_STR_DTYPE)


def history_frame(
    symbol: str, interval: str, columns: Mapping[str, np.ndarray], n: int
) -> pd.DataFrame:
    """Assemble the history frame from per-column numpy arrays (``columns`` keyed by name).

    Float, int and bool columns go into one 2-D block each, so building the
    frame costs the same for 10 or 10,000 rows.
    """
    floats = np.empty((len(_FLOAT_COLS), n), dtype=np.float64)
    for i, name in enumerate(_FLOAT_COLS):
        floats[i] = columns[name]
    ints = np.empty((len(_INT_COLS), n), dtype=np.int64)
    for i, name in enumerate(_INT_COLS):
        ints[i] = columns[name]
    bools = np.empty((len(_BOOL_COLS), n), dtype=bool)
    for i, name in enumerate(_BOOL_COLS):
        bools[i] = columns[name]
    parts: list[tuple[str, Any]] = [
        ("symbol", _repeated_string(symbol, n)),
        ("interval", _repeated_string(interval, n)),
        ("window_start", utc_column(columns["window_start"])),
        ("window_end", utc_column(columns["window_end"])),
    ]
    if _create_from_blocks is None:  # pragma: no cover - pandas without pandas.api.internals
        data = dict(parts)
        data.update({k: floats[i] for i, k in enumerate(_FLOAT_COLS)})
        data.update({k: ints[i] for i, k in enumerate(_INT_COLS)})
        data.update({k: bools[i] for i, k in enumerate(_BOOL_COLS)})
        return pd.DataFrame(data, columns=_HISTORY_INDEX)
    blocks: list[tuple[Any, np.ndarray]] = [
        (arr, np.array([_PLACEMENT[name]])) for name, arr in parts
    ]
    for block, names in ((floats, _FLOAT_COLS), (ints, _INT_COLS), (bools, _BOOL_COLS)):
        blocks.append((block, np.array([_PLACEMENT[k] for k in names])))
    return _create_from_blocks(blocks, index=pd.RangeIndex(n), columns=_HISTORY_INDEX)


def alerts_frame(items: Sequence[Alert]) -> pd.DataFrame:
    """Alerts as the frame of :meth:`cryptolab.store.Store.alerts`."""
    n = len(items)
    data = {
        "symbol": pd.array([a.symbol for a in items], dtype="str"),
        "interval": pd.array([a.interval for a in items], dtype="str"),
        "window_start": utc_column([a.window_start for a in items]),
        "detector": pd.array([a.detector for a in items], dtype="str"),
        "severity": pd.array([a.severity for a in items], dtype="str"),
        "score": np.array([a.score for a in items], dtype=np.float64),
        "ts_ms": np.array([a.ts_ms for a in items], dtype=np.int64),
        "features": pd.Series([a.features for a in items], dtype=object, index=range(n)),
    }
    return pd.DataFrame(data)
