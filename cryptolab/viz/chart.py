"""CandleChart: live Bokeh candlesticks with moving averages, volume and anomaly markers.

The chart is a thin Bokeh layer over the pure :class:`~cryptolab.viz.buffer.CandleBuffer`:
every candle goes through the buffer, which answers with stream / patch / reset
operations, and the chart applies exactly those to its ``ColumnDataSource``
(``source.stream(rows, rollover=maxlen)`` for a new window, ``source.patch(...)``
for the open candle or a late revision). Bokeh then ships only the change to
the browser, through jupyter_bokeh in JupyterLab or the Bokeh server in the
dashboard.

Live updates are pulled, never pushed from another thread: :meth:`CandleChart.poll`
drains the feed's subscription without blocking (``Subscription.get(0)``) and
applies the whole batch at once. In a notebook :meth:`CandleChart.attach`
schedules ``poll`` as an asyncio task on the kernel's running event loop; the
dashboard calls it from ``document.add_periodic_callback``.

Examples
--------
A static chart from candles (a DataFrame from :func:`cryptolab.history` or
:func:`cryptolab.candles_from_ticks`, or :class:`~cryptolab.models.Candle` objects):

>>> import pandas as pd
>>> from cryptolab.batch import candles_from_ticks
>>> ticks = pd.DataFrame({"symbol": ["BTC-USD"] * 4,
...                       "ts_ms": [1_700_000_040_000 + i * 30_000 for i in range(4)],
...                       "price": [100.0, 101.0, 99.5, 102.0], "size": [1.0] * 4})
>>> chart = CandleChart(symbol="BTC-USD", interval="1m")
>>> chart.load(candles_from_ticks(ticks, intervals="1m"))
2
>>> chart.source.data["close"]
[101.0, 102.0]

A revision of a candle already drawn patches its bar in place:

>>> from dataclasses import replace
>>> first = chart.candles()[0]
>>> chart.update(replace(first, close=98.0, low=98.0, revision=1))
'patch'
>>> chart.source.data["close"], len(chart.source.data["close"])
([98.0, 102.0], 2)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from bokeh.layouts import column
from bokeh.models import (
    BasicTicker,
    ColumnDataSource,
    CrosshairTool,
    DataRange1d,
    HoverTool,
    NumeralTickFormatter,
)
from bokeh.models.annotations import Title
from bokeh.models.renderers import GlyphRenderer
from bokeh.plotting import figure
from bokeh.transform import factor_cmap

from cryptolab.errors import CryptolabError, ValidationError, WireError
from cryptolab.models import (
    Alert,
    Candle,
    decode_alert,
    decode_candle,
    iso_utc,
    parse_interval,
    parse_intervals,
    validate_symbol,
)
from cryptolab.viz.buffer import AlertBuffer, CandleBuffer, Op, Patch, Reset, Stream

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from bokeh.models import LayoutDOM

    from cryptolab.config import Settings

__all__ = [
    "ALERTS_CHANNEL",
    "DOWN_COLOR",
    "SEVERITY_COLORS",
    "UP_COLOR",
    "CandleChart",
    "LiveFeed",
    "Subscription",
    "apply_ops",
    "candle_channels",
]

log = logging.getLogger(__name__)

UP_COLOR: Final = "#26a69a"
DOWN_COLOR: Final = "#ef5350"
MA_COLORS: Final = ("#f29d00", "#3f51b5", "#8d6e63", "#00838f")
SEVERITY_COLORS: Final = {"LOW": "#fdd835", "MEDIUM": "#fb8c00", "HIGH": "#c62828"}
#: Pub/sub channel of alerts (all series).
ALERTS_CHANNEL: Final = "cryptolab:alerts"
#: Indicator names accepted by :meth:`CandleChart.set_indicator` (plus ``ma<N>``).
BASE_INDICATORS: Final = ("volume", "anomalies")
#: The volume panel's least height (px) and how many labels its axis aims at.
VOLUME_MIN_HEIGHT: Final = 130
VOLUME_TICKS: Final = 3


def candle_channels(symbol: str, interval: str) -> list[str]:
    """The pub/sub channels the chart follows for one series.

    ``cryptolab:candles:<symbol>:<interval>`` carries every update of the
    series: open candles as they change, finals and later revisions (see
    :mod:`cryptolab.cache`).

    Examples
    --------
    >>> candle_channels("BTC-USD", "1m")
    ['cryptolab:candles:BTC-USD:1m']
    """
    return [f"cryptolab:candles:{symbol}:{interval}"]


class Subscription(Protocol):
    """A pub/sub subscription: ``get(0)`` returns at once, ``None`` when nothing is waiting."""

    def get(self, timeout: float = 0.0) -> tuple[str, bytes] | None: ...  # pragma: no cover

    def close(self) -> None: ...  # pragma: no cover


class LiveFeed(Protocol):
    """What the chart needs from a cache (``MemoryCache`` or ``RedisCache``)."""

    def subscribe(self, patterns: Sequence[str]) -> Subscription: ...  # pragma: no cover

    def recent(self, symbol: str, interval: str, n: int) -> list[Candle]: ...  # pragma: no cover

    def latest(self, symbol: str, interval: str) -> Candle | None: ...  # pragma: no cover

    def recent_alerts(self, n: int) -> list[Alert]: ...  # pragma: no cover


class HistorySource(Protocol):
    """What the chart needs from a store for backfill."""

    def history(self, symbol: str, interval: str, start: Any = None, end: Any = None, *,
                final_only: bool = False, limit: int | None = None
                ) -> pd.DataFrame: ...  # pragma: no cover

    def alerts(self, symbol: str | None = None, interval: str | None = None,
               start: Any = None, end: Any = None, *, detector: str | None = None,
               limit: int | None = None) -> pd.DataFrame: ...  # pragma: no cover


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


def _to_ms(value: Any) -> int:
    if isinstance(value, bool):
        raise ValidationError("timestamp", f"not a timestamp: {value!r}")
    if isinstance(value, int):
        return value
    ts = getattr(value, "timestamp", None)
    if callable(ts):
        return int(round(float(ts()) * 1000))
    return int(value)


def as_candles(data: Any) -> list[Candle]:
    """Candles from a DataFrame (history or batch output) or an iterable of :class:`Candle`."""
    if data is None:
        return []
    if hasattr(data, "columns") and hasattr(data, "to_dict"):
        from cryptolab.batch import frame_to_candles

        if len(data) == 0:
            return []
        return frame_to_candles(data)
    out = list(data)
    for c in out:
        if not isinstance(c, Candle):
            raise ValidationError("candles", f"expected Candle objects, got {type(c).__name__}")
    return out


def as_alerts(data: Any, *, interval: str | None = None) -> list[Alert]:
    """Alerts from a DataFrame or an iterable of :class:`Alert`.

    Accepts the store's alert table (``symbol, interval, window_start, detector,
    severity, score, ts_ms``) and the output of
    :func:`cryptolab.score_history` (``severity_<detector>`` / ``score_<detector>``
    columns next to candle columns): every row with a severity becomes an alert.
    """
    if data is None:
        return []
    if not (hasattr(data, "columns") and hasattr(data, "to_dict")):
        out = list(data)
        for a in out:
            if not isinstance(a, Alert):
                raise ValidationError("alerts", f"expected Alert objects, got {type(a).__name__}")
        return out
    cols = set(data.columns)
    rows = data.to_dict("records")
    alerts: list[Alert] = []
    if {"detector", "severity", "score"} <= cols:
        for r in rows:
            alerts.append(
                Alert(
                    symbol=str(r["symbol"]), interval=str(r.get("interval", interval)),
                    window_start=_to_ms(r["window_start"]), detector=str(r["detector"]),
                    severity=str(r["severity"]), score=float(r["score"]),
                    ts_ms=_to_ms(r.get("ts_ms", r["window_start"])),
                )
            )
        return alerts
    detectors = [c[len("severity_"):] for c in data.columns if str(c).startswith("severity_")]
    for r in rows:
        for det in detectors:
            sev = r.get(f"severity_{det}")
            if sev is None or (isinstance(sev, float) and math.isnan(sev)) or sev == "":
                continue
            score = r.get(f"score_{det}", math.nan)
            alerts.append(
                Alert(
                    symbol=str(r["symbol"]), interval=str(r.get("interval", interval)),
                    window_start=_to_ms(r["window_start"]), detector=det, severity=str(sev),
                    score=float(score) if score is not None else math.nan,
                    ts_ms=_to_ms(r.get("window_end", r["window_start"])),
                )
            )
    return alerts


class CandleChart:
    """A live candlestick chart of one ``(symbol, interval)`` series at a time.

    Parameters
    ----------
    symbol
        The series shown first; defaults to the first of ``symbols``, or to the
        first symbol of the data given to :meth:`load`.
    interval
        Candle interval shown first (``"1m"``).
    symbols
        Choices offered by the symbol picker.
    intervals
        Choices offered by the interval picker (default ``1m, 5m, 15m`` plus ``interval``).
    maxlen
        Bars kept in memory (and in the browser); older bars roll over.
    visible_bars
        How many of the newest bars the x-range follows (pan or zoom to see the rest).
    ma_windows
        Simple moving averages of the close drawn as lines (``MA20``, ``MA50``).
    height
        Height in pixels of the price panel (the volume panel is a third of it).
    title
        Fixed title; default ``"<symbol> · <interval>"``.

    Attributes
    ----------
    source, alert_source : bokeh.models.ColumnDataSource
        The candle and anomaly-marker data sources (named ``candles`` and ``alerts``).
    layout : bokeh.models.LayoutDOM
        Price panel above a volume panel with a linked x-range; embed it
        anywhere Bokeh goes (``bokeh.io.show``, a server document, a widget).
    buffer : CandleBuffer
        The pure data state behind the chart.
    """

    def __init__(
        self,
        *,
        symbol: str | None = None,
        interval: str = "1m",
        symbols: Sequence[str] | None = None,
        intervals: Sequence[str] | str | None = None,
        maxlen: int = 500,
        visible_bars: int = 120,
        ma_windows: Sequence[int] = (20, 50),
        height: int = 380,
        title: str | None = None,
    ) -> None:
        parse_interval(interval)
        self.symbols: list[str] = [validate_symbol(s) for s in (symbols or [])]
        if symbol is not None:
            validate_symbol(symbol)
            if symbol not in self.symbols:
                self.symbols.insert(0, symbol)
        self.symbol: str = symbol or (self.symbols[0] if self.symbols else "")
        self.interval: str = interval
        base = intervals if intervals is not None else ("1m", "5m", "15m")
        self.intervals: list[str] = list(parse_intervals([*list(
            base.split(",") if isinstance(base, str) else base), interval]))
        if visible_bars < 1:
            raise ValidationError("visible_bars", f"must be >= 1, got {visible_bars}")
        self.maxlen = maxlen
        self.visible_bars = visible_bars
        self.ma_windows = tuple(ma_windows)
        self.height = height
        self._fixed_title = title
        self.buffer = CandleBuffer(symbol=self.symbol or "_", interval=interval, maxlen=maxlen,
                                   ma_windows=self.ma_windows)
        self.alert_buffer = AlertBuffer(symbol=self.symbol or "_", interval=interval, maxlen=maxlen)
        self.source = ColumnDataSource(self.buffer.data(), name="candles")
        self.alert_source = ColumnDataSource(self.alert_buffer.data(), name="alerts")
        self.indicators: dict[str, bool] = {f"ma{n}": True for n in self.ma_windows}
        self.indicators.update({name: True for name in BASE_INDICATORS})
        self._renderers: dict[str, list[GlyphRenderer[Any]]] = {}
        self._build()
        # live state
        self.feed: LiveFeed | None = None
        self.store: HistorySource | None = None
        self.poll_interval: float = 0.25
        self._sub: Subscription | None = None
        self._owned_store: Any = None
        self._task: asyncio.Task[None] | None = None
        self._paused = False
        self._stale = False
        self._listeners: list[Callable[[CandleChart], None]] = []
        self.messages = 0
        self.bad_messages = 0
        self.updates = 0
        self.last_update_wall: float | None = None
        self.last_error: str | None = None

    # ---------------------------------------------------------------- building
    @property
    def interval_ms(self) -> int:
        """The current interval in milliseconds."""
        return parse_interval(self.interval)

    def _title_text(self) -> str:
        if self._fixed_title:
            return self._fixed_title
        return f"{self.symbol or '(no symbol)'} · {self.interval}"

    def _build(self) -> None:
        iv = self.interval_ms
        direction = factor_cmap("direction", [UP_COLOR, DOWN_COLOR], ["up", "down"])
        x_range = DataRange1d(follow="end", follow_interval=self.visible_bars * iv,
                              range_padding=0.02, range_padding_units="percent")
        price = figure(
            x_axis_type="datetime", x_range=x_range, height=self.height,
            sizing_mode="stretch_width", title=self._title_text(),
            tools="xpan,xwheel_zoom,box_zoom,reset,save", active_drag="xpan",
            active_scroll="xwheel_zoom", name="price", toolbar_location="right",
        )
        price.add_tools(CrosshairTool(dimensions="height", line_alpha=0.3))
        price.yaxis.formatter = NumeralTickFormatter(format="0,0.[0000]")
        price.xaxis.visible = False
        price.grid.grid_line_alpha = 0.3
        wick = price.segment(x0="x", y0="high", x1="x", y1="low", source=self.source,
                             line_color=direction, line_width=1, name="wicks")
        body = price.vbar(x="x", width=0.7 * iv, top="top", bottom="bottom", source=self.source,
                          fill_color=direction, line_color=direction, name="bodies")
        self._renderers["candles"] = [wick, body]
        for k, (n, name) in enumerate(zip(self.ma_windows, self.buffer.ma_columns, strict=True)):
            line = price.line("x", name, source=self.source, line_width=1.6,
                              line_color=MA_COLORS[k % len(MA_COLORS)], legend_label=f"MA{n}",
                              name=name)
            self._renderers[name] = [line]
        sev = factor_cmap("severity", list(SEVERITY_COLORS.values()), list(SEVERITY_COLORS),
                          nan_color="#9e9e9e")
        markers = price.scatter("x", "y", source=self.alert_source, marker="inverted_triangle",
                                size=13, fill_color=sev, line_color="#212121",
                                legend_label="anomaly", name="anomalies")
        self._renderers["anomalies"] = [markers]
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
            x_axis_type="datetime", x_range=price.x_range, height=max(VOLUME_MIN_HEIGHT, self.height // 3),
            sizing_mode="stretch_width", tools="xpan,xwheel_zoom,reset",
            active_drag="xpan", active_scroll="xwheel_zoom", name="volume",
            toolbar_location="right",
        )
        volume.yaxis.formatter = NumeralTickFormatter(format="0.[0]a")
        # a short panel: a few labels, or they overlap one another
        volume.yaxis.ticker = BasicTicker(desired_num_ticks=VOLUME_TICKS, num_minor_ticks=2)
        volume.grid.grid_line_alpha = 0.3
        bars = volume.vbar(x="x", width=0.7 * iv, top="volume", bottom=0, source=self.source,
                           fill_color=direction, line_color=None, fill_alpha=0.65,
                           name="volume_bars")
        self._renderers["volume"] = [bars]
        self._bar_glyphs = [body.glyph, bars.glyph]
        self.price_figure = price
        self.volume_figure = volume
        self.layout: LayoutDOM = column(price, volume, sizing_mode="stretch_width",
                                        name="candle_chart")

    # ----------------------------------------------------------------- reading
    def __repr__(self) -> str:
        state = "paused" if self._paused else ("live" if self._sub is not None else "static")
        return (f"CandleChart(symbol={self.symbol!r}, interval={self.interval!r}, "
                f"bars={len(self.buffer)}, {state})")

    def __len__(self) -> int:
        return len(self.buffer)

    def candles(self) -> list[Candle]:
        """The candles currently drawn, oldest first (rebuilt from the buffer's columns)."""
        d = self.buffer.data()
        iv = self.interval_ms
        out = []
        for i in range(len(self.buffer)):
            vw = d["vwap"][i]
            ws = d["window_start"][i]
            out.append(Candle(
                symbol=self.symbol, interval=self.interval, window_start=ws, window_end=ws + iv,
                open=d["open"][i], high=d["high"][i], low=d["low"][i], close=d["close"][i],
                volume=d["volume"][i], vwap=None if math.isnan(vw) else vw, trades=d["trades"][i],
                first_ts=ws, last_ts=ws, high_ts=ws, low_ts=ws, revision=d["revision"][i],
                final=d["final"][i], gap=d["gap"][i],
            ))
        return out

    @property
    def paused(self) -> bool:
        """True while the view is frozen (updates are still folded into the buffer)."""
        return self._paused

    @property
    def attached(self) -> bool:
        """True while a live feed is attached."""
        return self._sub is not None

    def status(self) -> dict[str, Any]:
        """Counters for display and monitoring."""
        st = self.buffer.stats
        return {
            "symbol": self.symbol, "interval": self.interval, "bars": len(self.buffer),
            "alerts": len(self.alert_buffer), "live": self.attached, "paused": self._paused,
            "messages": self.messages, "bad_messages": self.bad_messages,
            "streamed": st.streamed, "patched": st.patched, "ignored": st.ignored,
            "rolled_over": st.rolled_over, "last_update_wall": self.last_update_wall,
            "last_error": self.last_error,
        }

    def status_text(self) -> str:
        """One line of status, e.g. ``live · 120 bars · last 12:01 UTC``."""
        last = self.buffer.last()
        state = "paused" if self._paused else ("live" if self.attached else "static")
        parts = [state, f"{len(self.buffer)} bars", f"{len(self.alert_buffer)} anomalies"]
        if last is not None:
            parts.append(f"last bar {iso_utc(int(last['window_start']))}")
            parts.append(f"close {last['close']:,.6g}")
        if self.last_error:
            parts.append(f"error: {self.last_error}")
        return " · ".join(parts)

    # ----------------------------------------------------------------- writing
    def _render(self, ops: list[Op], alert_ops: list[Op]) -> None:
        if not ops and not alert_ops:
            return
        self.updates += 1
        self.last_update_wall = time.time()
        if self._paused:
            self._stale = True
            return
        apply_ops(self.source, ops)
        apply_ops(self.alert_source, alert_ops)
        for fn in list(self._listeners):
            fn(self)

    def on_update(self, callback: Callable[[CandleChart], None]) -> None:
        """Call ``callback(chart)`` after each applied update (e.g. to refresh a status line)."""
        self._listeners.append(callback)

    def update(self, candle: Candle) -> str:
        """Apply one candle; return what happened: ``stream``, ``patch``, ``reset`` or ``ignore``."""
        decision = self.buffer.decide(candle)
        self.update_many([candle])
        return decision

    def update_many(self, candles: Iterable[Candle]) -> int:
        """Apply a batch of candles with one stream/patch per kind; return how many changed the chart."""
        batch = list(candles)
        if not self.symbol and batch:
            self.set_series(batch[0].symbol, self.interval)
        before = self._changes()
        ops = self.buffer.extend(batch)
        alert_ops: list[Op] = []
        if len(self.alert_buffer):
            for c in batch:
                row = self.buffer.row(c.window_start)
                if row is not None and c.symbol == self.symbol and c.interval == self.interval:
                    alert_ops.extend(self.alert_buffer.move(c.window_start, row["high"]))
        self._render(ops, alert_ops)
        return self._changes() - before

    def _changes(self) -> int:
        st = self.buffer.stats
        return st.streamed + st.patched + st.reset

    def add_alerts(self, alerts: Iterable[Alert]) -> int:
        """Draw anomaly markers (alerts of other series are skipped); return how many changed."""
        ops: list[Op] = []
        for a in alerts:
            if a.symbol != self.symbol or a.interval != self.interval:
                continue
            row = self.buffer.row(a.window_start)
            if row is None:
                last = self.buffer.last()
                if last is None or a.window_start < self.buffer.column("window_start")[0]:
                    continue
                y = float(last["close"])
            else:
                y = float(row["high"])
            ops.extend(self.alert_buffer.apply(a, y=y))
        self._render([], ops)
        return len(ops)

    def load(self, candles: Any, alerts: Any = None) -> int:
        """Replace the chart's data with ``candles`` (DataFrame or Candle objects) and ``alerts``.

        Rows of other series are skipped. When the chart has no symbol yet, the
        first row's symbol is used. ``candles`` may be the output of
        :func:`cryptolab.score_history`; its flagged rows become markers.
        Returns the number of bars drawn.
        """
        items = as_candles(candles)
        if not self.symbol and items:
            self.set_series(items[0].symbol, self.interval)
        self.buffer.clear()
        self.alert_buffer.clear()
        self.buffer.extend(items)
        self.source.data = self.buffer.data()
        self.alert_source.data = self.alert_buffer.data()
        if alerts is None and hasattr(candles, "columns") and any(
            str(c).startswith("severity_") for c in candles.columns
        ):
            alerts = candles
        if alerts is not None:
            self.add_alerts(as_alerts(alerts, interval=self.interval))
        self.last_update_wall = time.time()
        return len(self.buffer)

    def set_series(self, symbol: str, interval: str | None = None) -> None:
        """Show another series: clears the bars, resubscribes and backfills when attached."""
        validate_symbol(symbol)
        interval = interval or self.interval
        parse_interval(interval)
        if symbol == self.symbol and interval == self.interval and len(self.buffer):
            return
        self.symbol, self.interval = symbol, interval
        if symbol not in self.symbols:
            self.symbols.append(symbol)
        if interval not in self.intervals:
            self.intervals = list(parse_intervals([*self.intervals, interval]))
        self.buffer = CandleBuffer(symbol=symbol, interval=interval, maxlen=self.maxlen,
                                   ma_windows=self.ma_windows)
        self.alert_buffer = AlertBuffer(symbol=symbol, interval=interval, maxlen=self.maxlen)
        iv = self.interval_ms
        for glyph in self._bar_glyphs:
            glyph.width = 0.7 * iv
        x_range = self.price_figure.x_range
        if isinstance(x_range, DataRange1d):
            x_range.follow_interval = self.visible_bars * iv
        if isinstance(self.price_figure.title, Title):
            self.price_figure.title.text = self._title_text()
        self.source.data = self.buffer.data()
        self.alert_source.data = self.alert_buffer.data()
        if self.feed is not None:
            self._subscribe()
            self.backfill()
        for fn in list(self._listeners):
            fn(self)

    def set_indicator(self, name: str, visible: bool) -> None:
        """Show or hide ``ma20``, ``ma50`` (any configured MA), ``volume`` or ``anomalies``."""
        if name not in self.indicators:
            raise ValidationError("indicator", f"unknown {name!r}; choose from {sorted(self.indicators)}")
        self.indicators[name] = bool(visible)
        for r in self._renderers.get(name, []):
            r.visible = bool(visible)
        if name == "volume":
            self.volume_figure.visible = bool(visible)

    def pause(self) -> None:
        """Freeze the view; incoming candles are still folded into the buffer."""
        self._paused = True

    def resume(self) -> None:
        """Unfreeze the view, catching up with everything that arrived while paused."""
        self._paused = False
        if self._stale:
            self.source.data = self.buffer.data()
            self.alert_source.data = self.alert_buffer.data()
            self._stale = False
        for fn in list(self._listeners):
            fn(self)

    # -------------------------------------------------------------------- live
    @classmethod
    def live(
        cls,
        symbol: str | None = None,
        interval: str = "1m",
        *,
        settings: Settings | None = None,
        feed: LiveFeed | None = None,
        **kwargs: Any,
    ) -> CandleChart:
        """A chart already attached to the live feed the settings name (see :meth:`attach`).

        ``kwargs`` go to the constructor (``symbols``, ``maxlen``, ``visible_bars``...).
        """
        chart = cls(symbol=symbol, interval=interval, **kwargs)
        return chart.attach(feed, settings=settings)

    def attach(
        self,
        feed: LiveFeed | None = None,
        *,
        settings: Settings | None = None,
        store: HistorySource | None = None,
        backfill: bool = True,
        poll_interval: float = 0.25,
        run: bool | None = None,
    ) -> CandleChart:
        """Follow a live feed: subscribe, backfill history, then stream and patch as candles arrive.

        Parameters
        ----------
        feed
            A cache (``MemoryCache`` or ``RedisCache``); default: the one the
            settings name (``open_cache(settings)``).
        settings
            Where the feed and the store are (default: ``Settings.from_env()``).
        store
            Store to backfill from; default: the settings' store when ``feed``
            was not given explicitly.
        backfill
            Load the newest ``maxlen`` bars (store, then the cache's recent list) first.
        poll_interval
            Seconds between two drains of the subscription.
        run
            Schedule :meth:`poll` as an asyncio task on the running event loop
            (the Jupyter kernel's). ``None`` (default) does so when a loop is
            running; ``False`` leaves the polling to the caller (the dashboard
            uses a Bokeh periodic callback).
        """
        self.detach()
        if feed is None or (store is None and backfill and settings is not None):
            from cryptolab.config import Settings as _Settings

            settings = settings or _Settings.from_env()
            if feed is None:
                from cryptolab.cache import open_cache

                feed = open_cache(settings)
            if store is None and backfill:
                store = self._owned_store = _open_store(settings)
        self.feed = feed
        self.store = store
        self.poll_interval = poll_interval
        self._subscribe()
        if backfill:
            self.backfill()
        if run is None or run:
            loop = _running_loop()
            if loop is None:
                if run:
                    raise CryptolabError(
                        "no running asyncio event loop: call chart.poll() yourself, "
                        "or attach(..., run=False)"
                    )
                log.info("no running event loop; call chart.poll() to apply updates")
            else:
                self._task = loop.create_task(self._pump(), name=f"CandleChart {self.symbol}")
        return self

    def _subscribe(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                self._sub.close()
            self._sub = None
        if self.feed is None or not self.symbol:
            return
        self._sub = self.feed.subscribe([*candle_channels(self.symbol, self.interval), ALERTS_CHANNEL])

    def backfill(self) -> int:
        """Load the newest bars of the current series from the store and the cache; return bars."""
        candles: list[Candle] = []
        alerts: list[Alert] = []
        need = self.maxlen + max(self.ma_windows, default=1) - 1
        if self.store is not None and self._store_ready():
            try:
                frame = self.store.history(self.symbol, self.interval, limit=need)
                candles.extend(as_candles(frame))
                afr = self.store.alerts(self.symbol, self.interval, limit=self.maxlen)
                alerts.extend(as_alerts(afr, interval=self.interval))
            except CryptolabError as exc:
                log.warning("backfill from the store failed: %s", exc)
                self.last_error = str(exc)
        if self.feed is not None:
            try:
                candles.extend(self.feed.recent(self.symbol, self.interval, self.maxlen))
                newest = self.feed.latest(self.symbol, self.interval)  # the open candle
                if newest is not None:
                    candles.append(newest)
                alerts.extend(self.feed.recent_alerts(self.maxlen))
            except CryptolabError as exc:
                log.warning("backfill from the cache failed: %s", exc)
                self.last_error = str(exc)
        candles.sort(key=lambda c: (c.window_start, c.revision, c.final, c.trades))
        self.buffer.extend(candles)
        self.source.data = self.buffer.data()
        self.add_alerts(sorted(alerts, key=lambda a: a.window_start))
        self.alert_source.data = self.alert_buffer.data()
        self.last_update_wall = time.time()
        return len(self.buffer)

    def _store_ready(self) -> bool:
        """False while the store has no schema yet (a pipeline that is still starting)."""
        version = getattr(self.store, "schema_version", None)
        if not callable(version):
            return True
        try:
            return version() is not None
        except CryptolabError as exc:
            log.warning("store unavailable for backfill: %s", exc)
            self.last_error = str(exc)
            return False

    def poll(self, max_messages: int = 20_000) -> int:
        """Drain the subscription without blocking and apply the batch; return messages read."""
        sub = self._sub
        if sub is None:
            return 0
        candles: list[Candle] = []
        alerts: list[Alert] = []
        n = 0
        while n < max_messages:
            msg = sub.get(0.0)
            if msg is None:
                break
            n += 1
            channel, payload = msg
            name = channel.decode() if isinstance(channel, bytes | bytearray) else str(channel)
            try:
                if name == ALERTS_CHANNEL:
                    alerts.append(decode_alert(payload))
                else:
                    candles.append(decode_candle(payload))
            except WireError as exc:
                self.bad_messages += 1
                log.warning("skipping a bad message on %s: %s", name, exc)
        self.messages += n
        if candles:
            self.update_many(candles)
        if alerts:
            self.add_alerts(alerts)
        return n

    async def _pump(self) -> None:
        failures = 0
        while self._sub is not None:
            try:
                self.poll()
                failures = 0
                if self.last_error and not self._paused:
                    self.last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the notebook's chart alive across feed hiccups
                failures += 1
                self.last_error = str(exc)
                log.warning("chart update failed (%d in a row): %s", failures, exc)
            delay = self.poll_interval * min(2 ** failures, 40)
            await asyncio.sleep(delay)

    def detach(self) -> None:
        """Stop following the feed (the bars stay; the status line says ``static``)."""
        was_attached = self._sub is not None
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._sub is not None:
            with contextlib.suppress(Exception):
                self._sub.close()
            self._sub = None
        self.feed = None
        if self._owned_store is not None:
            with contextlib.suppress(Exception):
                self._owned_store.close()
            self._owned_store = None
        self.store = None
        if was_attached:
            for fn in list(self._listeners):
                fn(self)

    # ------------------------------------------------------------------ display
    def widget(self, *, controls: bool = True) -> Any:
        """The chart as a JupyterLab widget (``jupyter_bokeh.BokehModel``), with ipywidgets controls.

        BokehJS is put in the page first (:func:`cryptolab.viz.notebook.output_notebook`),
        and displaying the widget publishes a static snapshot of the chart before it
        (hidden while the live widget draws; shown when the notebook is reopened
        without its kernel).

        Controls: symbol and interval pickers, a toggle per indicator (MAs,
        volume, anomalies), pause/resume, and a status line.
        """
        try:
            from jupyter_bokeh import BokehModel
        except ImportError as exc:  # pragma: no cover - depends on the extra
            raise ImportError(
                "CandleChart.widget() needs jupyter_bokeh and ipywidgets: "
                "pip install 'cryptolab[jupyter]'"
            ) from exc
        from cryptolab.viz.notebook import live_widget_class, output_notebook

        output_notebook()  # BokehJS in the page first, or the widget cannot draw
        if not controls:
            model = live_widget_class(BokehModel)(self.layout)
            model.snapshot_of = self.layout  # shown instead when the kernel is gone
            model.add_class("cl-chart")
            model.add_class("cl-live")
            return model
        from cryptolab.viz.controls import chart_controls

        return chart_controls(self, BokehModel(self.layout))

    def show(self) -> None:
        """Show the chart with ``bokeh.io.show`` (static output in a notebook or a file)."""
        from bokeh.io import show

        from cryptolab.viz.notebook import output_notebook

        output_notebook()
        show(self.layout)

    def _ipython_display_(self) -> None:  # pragma: no cover - needs a frontend
        from IPython.display import display

        display(self.widget())  # type: ignore[no-untyped-call]


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _open_store(settings: Settings) -> HistorySource | None:
    from cryptolab.store import Store

    try:
        return Store.from_settings(settings)
    except CryptolabError as exc:
        log.warning("no store for backfill: %s", exc)
        return None
