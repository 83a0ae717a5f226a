"""Live charts: :class:`CandleChart` (Bokeh candlesticks) and its pure data logic.

* :mod:`cryptolab.viz.buffer` - pure: which candle streams, patches or is ignored;
  moving averages; rollover (imports no Bokeh).
* :mod:`cryptolab.viz.figure` - the chart's Bokeh panels and colours; buffer operations applied
  to a ``ColumnDataSource`` (:func:`apply_ops`).
* :mod:`cryptolab.viz.frames` - candles and alerts from DataFrames or model objects.
* :mod:`cryptolab.viz.chart` - :class:`CandleChart`: draws what it is given, opens nothing.
* :mod:`cryptolab.viz.live` - wires a chart to a cache subscription and the store (history).
* :mod:`cryptolab.viz.controls` - the chart's JupyterLab widget and its ipywidgets controls.
* :mod:`cryptolab.viz.notebook` - BokehJS in the notebook page, inline from the installed
  bokeh, once per page (:func:`output_notebook`).
* :mod:`cryptolab.viz.dashboard` - the standalone Bokeh-server dashboard
  (``cryptolab dashboard``).

Names are imported lazily, so ``import cryptolab.viz.buffer`` does not load Bokeh.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "AlertBuffer",
    "CandleBuffer",
    "CandleChart",
    "Patch",
    "Reset",
    "Stream",
    "apply_ops",
    "candle_channels",
    "coalesce",
    "output_notebook",
]

_WHERE = {
    "AlertBuffer": "cryptolab.viz.buffer",
    "CandleBuffer": "cryptolab.viz.buffer",
    "Patch": "cryptolab.viz.buffer",
    "Reset": "cryptolab.viz.buffer",
    "Stream": "cryptolab.viz.buffer",
    "coalesce": "cryptolab.viz.buffer",
    "CandleChart": "cryptolab.viz.chart",
    "apply_ops": "cryptolab.viz.figure",
    "candle_channels": "cryptolab.viz.live",
    "output_notebook": "cryptolab.viz.notebook",
}

if TYPE_CHECKING:  # pragma: no cover
    from cryptolab.viz.buffer import AlertBuffer, CandleBuffer, Patch, Reset, Stream, coalesce
    from cryptolab.viz.chart import CandleChart
    from cryptolab.viz.figure import apply_ops
    from cryptolab.viz.live import candle_channels
    from cryptolab.viz.notebook import output_notebook


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'cryptolab.viz' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
