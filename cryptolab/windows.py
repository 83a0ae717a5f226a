"""Moved to :mod:`cryptolab.candles` (:mod:`~cryptolab.candles.stream`, :mod:`~cryptolab.candles.state`);
these names stay importable.

Examples
--------
>>> from cryptolab.candles import stream
>>> CandleAggregator is stream.CandleAggregator
True
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cryptolab.candles import columns as _columns
from cryptolab.candles import kernels as _kernels
from cryptolab.candles import state as _state
from cryptolab.candles.state import STATE_VERSION as STATE_VERSION
from cryptolab.candles.state import state_from_bytes, state_has_open_windows, state_to_bytes
from cryptolab.candles.stream import _VECTOR_MIN as _VECTOR_MIN
from cryptolab.candles.stream import CandleAggregator, Emission

__all__ = ["CandleAggregator", "Emission", "state_from_bytes", "state_has_open_windows", "state_to_bytes"]

# Private names under their old spelling (a monkeypatch must target cryptolab.candles.stream).
# The accumulator is an object with named fields now; these indexes are those of its fields
# in a snapshot's window row (after interval index, window start and symbol).
_O, _H, _L, _C, _V, _PV, _N, _FT, _LT, _HT, _LWT, _REV, _SIZED, _CLOSED, _DIRTY, _SNAP = range(16)
_NEG_INF = _state.NEG_INF
_POS_INF = np.iinfo(np.int64).max
_Partition = _state.Partition
_first_key = _columns._first_key


def _sequential_sums(
    values: npt.NDArray[np.float64],
    starts: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    init: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """:func:`cryptolab.candles.kernels.sequential_sums` with one row per value (its old layout)."""
    return _kernels.sequential_sums(values.T.copy(), starts, lengths, init.T.copy()).T
