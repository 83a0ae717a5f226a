"""The Bokeh side of a candle chart: colours, the price and volume panels, applying buffer operations.

:func:`build_figures` lays out the glyphs over two ``ColumnDataSource`` objects
(candles and anomaly markers); :func:`apply_ops` applies the pure buffer's
stream / patch / reset operations to a source, so Bokeh ships only the change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from bokeh.layouts import column
from bokeh.models import (
    BasicTicker,
    ColumnDataSource,
    CrosshairTool,
    DataRange1d,
    HoverTool,
    LayoutDOM,
    NumeralTickFormatter,
)
from bokeh.models.annotations import Title
from bokeh.models.renderers import GlyphRenderer
from bokeh.plotting import figure
from bokeh.transform import factor_cmap

from cryptolab.viz.buffer import Op, Patch, Reset, Stream

__all__ = [
    "DOWN_COLOR",
    "MA_COLORS",
    "SEVERITY_COLORS",
    "UP_COLOR",
    "ChartFigures",
    "apply_ops",
    "build_figures",
    "retarget",
]

UP_COLOR: Final = "#26a69a"
DOWN_COLOR: Final = "#ef5350"
MA_COLORS: Final = ("#f29d00", "#3f51b5", "#8d6e63", "#00838f")
SEVERITY_COLORS: Final = {"LOW": "#fdd835", "MEDIUM": "#fb8c00", "HIGH": "#c62828"}
#: The volume panel's least height (px) and how many labels its axis aims at.
VOLUME_MIN_HEIGHT: Final = 130
VOLUME_TICKS: Final = 3


def apply_ops(source: ColumnDataSource, ops: Iterable[Op]) -> None:
    """Apply buffer operations to a Bokeh ``ColumnDataSource``."""
    for op in ops:
        if isinstance(op, Stream):
            source.stream(dict(op.rows), rollover=op.rollover)  # type: ignore[arg-type]
        elif isinstance(op, Patch):
            if op.patches:
                source.patch(op.patches)
        elif isinstance(op, Reset):
            source.data = op.data


@dataclass
class ChartFigures:
    """The Bokeh models of one chart.

    Attributes
    ----------
    price, volume : bokeh.plotting.figure
        The price panel and the volume panel below it (their x-ranges are linked).
    layout : bokeh.models.LayoutDOM
        Both panels in a column.
    renderers : dict
        The renderers an indicator toggle shows or hides, by indicator name
        (``candles``, ``ma<N>``, ``anomalies``, ``volume``).
    bar_glyphs : list
        The candle bodies and volume bars, whose width follows the interval.
    """

    price: Any
    volume: Any
    layout: LayoutDOM
    renderers: dict[str, list[GlyphRenderer[Any]]]
    bar_glyphs: list[Any]


def build_figures(
    source: ColumnDataSource,
    alert_source: ColumnDataSource,
    *,
    interval_ms: int,
    visible_bars: int,
    height: int,
    title: str,
    ma_windows: Sequence[int],
    ma_columns: Sequence[str],
) -> ChartFigures:
    """Draw candles, moving averages, anomaly markers and volume over ``source`` and ``alert_source``."""
    iv = interval_ms
    renderers: dict[str, list[GlyphRenderer[Any]]] = {}
    direction = factor_cmap("direction", [UP_COLOR, DOWN_COLOR], ["up", "down"])
    x_range = DataRange1d(follow="end", follow_interval=visible_bars * iv,
                          range_padding=0.02, range_padding_units="percent")
    price = figure(
        x_axis_type="datetime", x_range=x_range, height=height,
        sizing_mode="stretch_width", title=title,
        tools="xpan,xwheel_zoom,box_zoom,reset,save", active_drag="xpan",
        active_scroll="xwheel_zoom", name="price", toolbar_location="right",
    )
    price.add_tools(CrosshairTool(dimensions="height", line_alpha=0.3))
    price.yaxis.formatter = NumeralTickFormatter(format="0,0.[0000]")
    price.xaxis.visible = False
    price.grid.grid_line_alpha = 0.3
    wick = price.segment(x0="x", y0="high", x1="x", y1="low", source=source,
                         line_color=direction, line_width=1, name="wicks")
    body = price.vbar(x="x", width=0.7 * iv, top="top", bottom="bottom", source=source,
                      fill_color=direction, line_color=direction, name="bodies")
    renderers["candles"] = [wick, body]
    for k, (n, name) in enumerate(zip(ma_windows, ma_columns, strict=True)):
        line = price.line("x", name, source=source, line_width=1.6,
                          line_color=MA_COLORS[k % len(MA_COLORS)], legend_label=f"MA{n}",
                          name=name)
        renderers[name] = [line]
    sev = factor_cmap("severity", list(SEVERITY_COLORS.values()), list(SEVERITY_COLORS),
                      nan_color="#9e9e9e")
    markers = price.scatter("x", "y", source=alert_source, marker="inverted_triangle",
                            size=13, fill_color=sev, line_color="#212121",
                            legend_label="anomaly", name="anomalies")
    renderers["anomalies"] = [markers]
    price.legend.location = "top_left"
    price.legend.orientation = "horizontal"
    price.legend.click_policy = "hide"
    price.legend.background_fill_alpha = 0.7
    price.legend.label_text_font_size = "11px"
    price.legend.margin = 6
    price.add_tools(HoverTool(
        renderers=[body],
        tooltips=[
            ("window", "@window_start{%F %T}"), ("open", "@open{0,0.[0000]}"),
            ("high", "@high{0,0.[0000]}"), ("low", "@low{0,0.[0000]}"),
            ("close", "@close{0,0.[0000]}"), ("volume", "@volume{0,0.[00]}"),
            ("trades", "@trades"), ("revision", "@revision"), ("final", "@final"),
        ],
        formatters={"@window_start": "datetime"},
    ))
    price.add_tools(HoverTool(
        renderers=[markers],
        tooltips=[("detector", "@detector"), ("severity", "@severity"),
                  ("score", "@score{0.0000}"), ("window", "@window_start{%F %T}")],
        formatters={"@window_start": "datetime"},
    ))
    volume = figure(
        x_axis_type="datetime", x_range=price.x_range, height=max(VOLUME_MIN_HEIGHT, height // 3),
        sizing_mode="stretch_width", tools="xpan,xwheel_zoom,reset",
        active_drag="xpan", active_scroll="xwheel_zoom", name="volume",
        toolbar_location="right",
    )
    volume.yaxis.formatter = NumeralTickFormatter(format="0.[0]a")
    # a short panel: a few labels, or they overlap one another
    volume.yaxis.ticker = BasicTicker(desired_num_ticks=VOLUME_TICKS, num_minor_ticks=2)
    volume.grid.grid_line_alpha = 0.3
    bars = volume.vbar(x="x", width=0.7 * iv, top="volume", bottom=0, source=source,
                       fill_color=direction, line_color=None, fill_alpha=0.65,
                       name="volume_bars")
    renderers["volume"] = [bars]
    layout = column(price, volume, sizing_mode="stretch_width", name="candle_chart")
    return ChartFigures(price=price, volume=volume, layout=layout, renderers=renderers,
                        bar_glyphs=[body.glyph, bars.glyph])


def retarget(figures: ChartFigures, *, interval_ms: int, visible_bars: int, title: str) -> None:
    """Fit the bar widths, the followed x-span and the title to another series."""
    for glyph in figures.bar_glyphs:
        glyph.width = 0.7 * interval_ms
    x_range = figures.price.x_range
    if isinstance(x_range, DataRange1d):
        x_range.follow_interval = visible_bars * interval_ms
    if isinstance(figures.price.title, Title):
        figures.price.title.text = title
