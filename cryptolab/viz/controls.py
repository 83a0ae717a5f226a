"""ipywidgets controls for :class:`~cryptolab.viz.chart.CandleChart` in JupyterLab.

Symbol and interval pickers, a checkbox per indicator (moving averages,
volume, anomaly markers), a pause/resume toggle and a status line. Every
handler runs on the kernel's event loop (ipywidgets dispatches comm messages
there), like the chart's own polling task.

The controls need only what :class:`ControlledChart` lists, so this module
does not import the chart (the chart imports it for :meth:`CandleChart.widget`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import ipywidgets as w

from cryptolab.viz.notebook import live_widget_class, output_notebook

__all__ = ["ControlledChart", "chart_controls", "chart_widget"]


class ControlledChart(Protocol):
    """What the controls read from and drive on a chart (:class:`~cryptolab.viz.chart.CandleChart`)."""

    symbol: str
    interval: str
    symbols: list[str]
    intervals: list[str]
    indicators: dict[str, bool]
    last_error: str | None

    @property
    def layout(self) -> Any: ...  # pragma: no cover

    @property
    def paused(self) -> bool: ...  # pragma: no cover

    @property
    def attached(self) -> bool: ...  # pragma: no cover

    def set_series(self, symbol: str, interval: str | None = None) -> None: ...  # pragma: no cover

    def set_indicator(self, name: str, visible: bool) -> None: ...  # pragma: no cover

    def pause(self) -> None: ...  # pragma: no cover

    def resume(self) -> None: ...  # pragma: no cover

    def on_update(self, callback: Callable[[Any], None]) -> None: ...  # pragma: no cover

    def status_text(self) -> str: ...  # pragma: no cover


def chart_widget(chart: ControlledChart, model_class: type[Any], *, controls: bool = True) -> Any:
    """A chart's JupyterLab widget: its layout in ``model_class`` (``jupyter_bokeh.BokehModel``).

    BokehJS is put in the page first (:func:`cryptolab.viz.notebook.output_notebook`).
    With ``controls``, the model is wrapped by :func:`chart_controls`; without,
    the model itself is returned, marked to publish a static snapshot of the
    chart when displayed.
    """
    output_notebook()  # BokehJS in the page first, or the widget cannot draw
    if not controls:
        model = live_widget_class(model_class)(chart.layout)
        model.snapshot_of = chart.layout  # shown instead when the kernel is gone
        model.add_class("cl-chart")
        model.add_class("cl-live")
        return model
    return chart_controls(chart, model_class(chart.layout))


_LABELS = {"volume": "Volume", "anomalies": "Anomalies"}


def chart_controls(chart: ControlledChart, model: Any) -> Any:
    """Wrap a chart's Bokeh widget ``model`` with controls; returns an ``ipywidgets.VBox``."""
    symbol = w.Dropdown(options=chart.symbols or [chart.symbol], value=chart.symbol or None,
                        description="Symbol", layout=w.Layout(width="210px"))
    interval = w.Dropdown(options=chart.intervals, value=chart.interval, description="Interval",
                          layout=w.Layout(width="170px"))
    toggles = {
        name: w.Checkbox(value=on, description=_LABELS.get(name, name.upper()), indent=False,
                         layout=w.Layout(width="auto"))
        for name, on in chart.indicators.items()
    }
    pause = w.ToggleButton(value=chart.paused, description="Resume" if chart.paused else "Pause",
                           icon="play" if chart.paused else "pause",
                           tooltip="Freeze the view; updates are kept and applied on resume",
                           layout=w.Layout(width="110px"))
    status = w.HTML(value=_status_html(chart))

    syncing = [False]  # True while the pickers are set from the chart (not by the user)

    def on_series(_change: dict[str, Any]) -> None:
        if syncing[0]:
            return
        if symbol.value and (symbol.value != chart.symbol or interval.value != chart.interval):
            chart.set_series(symbol.value, interval.value)

    symbol.observe(on_series, names="value")
    interval.observe(on_series, names="value")

    for name, box in toggles.items():
        def on_toggle(change: dict[str, Any], name: str = name) -> None:
            chart.set_indicator(name, bool(change["new"]))

        box.observe(on_toggle, names="value")

    def on_pause(change: dict[str, Any]) -> None:
        if change["new"]:
            chart.pause()
            pause.description, pause.icon = "Resume", "play"
        else:
            chart.resume()
            pause.description, pause.icon = "Pause", "pause"
        status.value = _status_html(chart)

    pause.observe(on_pause, names="value")

    last: list[Any] = [0.0, None]

    def refresh(_chart: ControlledChart) -> None:
        _sync_pickers(chart, symbol, interval, syncing)
        # the state changes at once; the counters at most one status message a second
        state = (chart.attached, chart.paused, chart.last_error, chart.symbol, chart.interval)
        now = time.monotonic()
        if state != last[1] or now - last[0] >= 1.0:
            last[0], last[1] = now, state
            status.value = _status_html(chart)

    chart.on_update(refresh)
    bar = w.HBox([symbol, interval, *toggles.values(), pause],
                 layout=w.Layout(align_items="center", flex_flow="row wrap"))
    box = live_widget_class(w.VBox)([bar, model, status])
    box.snapshot_of = chart.layout  # shown instead when the kernel is gone
    box.add_class("cl-chart-controls")
    box.add_class("cl-live")
    return box


def _sync_pickers(chart: ControlledChart, symbol: w.Dropdown, interval: w.Dropdown,
                  syncing: list[bool]) -> None:
    """Show the chart's series in the pickers (after ``chart.set_series`` from code)."""
    syncing[0] = True
    try:
        if list(symbol.options) != chart.symbols:
            symbol.options = list(chart.symbols)
        if list(interval.options) != chart.intervals:
            interval.options = list(chart.intervals)
        if chart.symbol and symbol.value != chart.symbol:
            symbol.value = chart.symbol
        if interval.value != chart.interval:
            interval.value = chart.interval
    finally:
        syncing[0] = False


def _status_html(chart: ControlledChart) -> str:
    live = chart.attached and not chart.paused
    colour = "#c62828" if chart.last_error else ("#2e7d32" if live else "#9e9e9e")
    return (f'<span style="color:{colour};font-size:0.85em">&#9679;</span> '
            f'<span style="font-size:0.85em;color:#555">{chart.status_text()}</span>')
