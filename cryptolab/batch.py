"""Moved to :mod:`cryptolab.candles` (:mod:`~cryptolab.candles.batch`, :mod:`~cryptolab.candles.frames`);
these names stay importable.

Examples
--------
>>> from cryptolab.candles import batch
>>> candles_from_ticks is batch.candles_from_ticks
True
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cryptolab.candles import frames as _frames
from cryptolab.candles import kernels as _kernels
from cryptolab.candles.batch import _CHUNK_TICKS as _CHUNK_TICKS
from cryptolab.candles.batch import _THREADS as _THREADS
from cryptolab.candles.batch import _TS_ALIASES as _TS_ALIASES
from cryptolab.candles.batch import _add_gaps as _add_gaps
from cryptolab.candles.batch import _coerce_ticks as _coerce_ticks
from cryptolab.candles.batch import _first_where as _first_where
from cryptolab.candles.batch import _general_frames as _general_frames
from cryptolab.candles.batch import _in_order_frames as _in_order_frames
from cryptolab.candles.batch import _time_chunks as _time_chunks
from cryptolab.candles.batch import candles_from_ticks
from cryptolab.candles.frames import _FLOAT_COLUMNS as _FLOAT_COLUMNS
from cryptolab.candles.frames import _STR_DTYPE as _STR_DTYPE
from cryptolab.candles.frames import _TIME_COLUMNS as _TIME_COLUMNS
from cryptolab.candles.frames import _UTC_MS as _UTC_MS
from cryptolab.candles.frames import CANDLE_COLUMNS as CANDLE_COLUMNS
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

__all__ = [
    "WINDOW_COLUMNS",
    "candles_from_ticks",
    "candles_to_frame",
    "epoch_ms",
    "frame_to_candles",
    "ticks_to_frame",
    "utc_times",
    "with_ms_windows",
    "with_utc_windows",
]

# Private names under their old spelling (a monkeypatch must target cryptolab.candles.batch).
_empty_frame = _frames.empty_frame
_as_history_frame = _frames.history_dtypes


def _seq_segment_sum(
    x: npt.NDArray[np.float64], starts: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """:func:`cryptolab.candles.kernels.sequential_sums` of one row of values."""
    out: npt.NDArray[np.float64] = _kernels.sequential_sums(x[np.newaxis, :], starts, lengths)[0]
    return out


def _seq_segment_sums2(
    x: npt.NDArray[np.float64], starts: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """:func:`cryptolab.candles.kernels.sequential_sums` of two rows of values."""
    return _kernels.sequential_sums(x, starts, lengths)
