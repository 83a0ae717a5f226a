"""Moved to :mod:`cryptolab.candles` (:mod:`~cryptolab.candles.stream`, :mod:`~cryptolab.candles.state`);
these names stay importable.

Examples
--------
>>> from cryptolab.candles import stream
>>> CandleAggregator is stream.CandleAggregator
True
"""

from __future__ import annotations

from cryptolab.candles import kernels as _kernels
from cryptolab.candles import state as _state
from cryptolab.candles.state import STATE_VERSION as STATE_VERSION
from cryptolab.candles.state import state_from_bytes, state_has_open_windows, state_to_bytes
from cryptolab.candles.stream import _VECTOR_MIN as _VECTOR_MIN
from cryptolab.candles.stream import CandleAggregator, Emission

__all__ = ["CandleAggregator", "Emission", "state_from_bytes", "state_has_open_windows", "state_to_bytes"]

# Private names under their old spelling (a monkeypatch must target cryptolab.candles.stream).
_sequential_sums = _kernels.sequential_sums
_NEG_INF = _state.NEG_INF
_Partition = _state.Partition
