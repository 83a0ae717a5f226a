"""CandleChart: live Bokeh candlesticks with moving averages, volume and anomaly markers.

The chart is a thin Bokeh layer over the pure :class:`~cryptolab.viz.buffer.CandleBuffer`:
every candle goes through the buffer, which answers with stream / patch / reset
operations, and the chart applies exactly those to its ``ColumnDataSource``
(``source.stream(rows, rollover=maxlen)`` for a new window, ``source.patch(...)``
for the open candle or a late revision). Bokeh then ships only the change to
the browser, through jupyter_bokeh in JupyterLab or the Bokeh server in the
dashboard.

The chart opens nothing itself: it draws what it is given, by :meth:`CandleChart.load`,
:meth:`CandleChart.update` and :meth:`CandleChart.add_alerts`. To follow the live
market, :meth:`CandleChart.attach` takes a cache (or the settings naming one) and
hands it to :mod:`cryptolab.viz.live`, which subscribes to the series' channels
and reads history; :meth:`CandleChart.poll` then drains that subscription without
blocking and applies the whole batch at once. In a notebook ``attach`` schedules
``poll`` as an asyncio task on the kernel's running event loop; the dashboard calls
it from ``document.add_periodic_callback``.

Examples
--------
A static chart from candles (a DataFrame from :func:`cryptolab.history` or
:func:`cryptolab.candles_from_ticks`, or :class:`~cryptolab.models.Candle` objects):

>>> import pandas as pd
>>> from cryptolab.candles.batch import candles_from_ticks
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

import importlib
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

from bokeh.models import ColumnDataSource

from cryptolab.errors import ValidationError
from cryptolab.models import (
    Alert,
    Candle,
    iso_utc,
    parse_interval,
    parse_intervals,
    validate_symbol,
)
from cryptolab.viz.buffer import AlertBuffer, CandleBuffer, Op
from cryptolab.viz.figure import (
    DOWN_COLOR,
    SEVERITY_COLORS,
    UP_COLOR,
    apply_ops,
    build_figures,
    retarget,
)
from cryptolab.viz.figure import MA_COLORS as MA_COLORS
from cryptolab.viz.figure import VOLUME_MIN_HEIGHT as VOLUME_MIN_HEIGHT
from cryptolab.viz.figure import VOLUME_TICKS as VOLUME_TICKS
from cryptolab.viz.frames import as_alerts, as_candles, columns_to_candles

if TYPE_CHECKING:  # pragma: no cover
    import asyncio

    from bokeh.models import LayoutDOM

    from cryptolab.config import Settings
    from cryptolab.viz.live import (
        ALERTS_CHANNEL,
        HistorySource,
        LiveFeed,
        LiveLink,
        Subscription,
        candle_channels,
    )

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

#: Indicator names accepted by :meth:`CandleChart.set_indicator` (plus ``ma<N>``).
BASE_INDICATORS: Final = ("volume", "anomalies")
#: Names that moved to :mod:`cryptolab.viz.live` (the live wiring), still importable from here.
_LIVE_NAMES: Final = frozenset(
    {"ALERTS_CHANNEL", "HistorySource", "LiveFeed", "Subscription", "candle_channels"}
)


def __getattr__(name: str) -> Any:
    if name in _LIVE_NAMES:
        return getattr(importlib.import_module("cryptolab.viz.live"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
        self._renderers: dict[str, list[Any]] = {}
        self._build()
        # live state: the link to a cache (and a store) while attached
        self._link: LiveLink | None = None
        self.poll_interval: float = 0.25
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
        figures = build_figures(
            self.source, self.alert_source, interval_ms=self.interval_ms,
            visible_bars=self.visible_bars, height=self.height, title=self._title_text(),
            ma_windows=self.ma_windows, ma_columns=self.buffer.ma_columns,
        )
        self._figures = figures
        self._renderers = figures.renderers
        self.price_figure = figures.price
        self.volume_figure = figures.volume
        self.layout: LayoutDOM = figures.layout

    # ----------------------------------------------------------------- reading
    def __repr__(self) -> str:
        state = "paused" if self._paused else ("live" if self.attached else "static")
        return (f"CandleChart(symbol={self.symbol!r}, interval={self.interval!r}, "
                f"bars={len(self.buffer)}, {state})")

    def __len__(self) -> int:
        return len(self.buffer)

    def candles(self) -> list[Candle]:
        """The candles currently drawn, oldest first (rebuilt from the buffer's columns)."""
        return columns_to_candles(self.buffer.data(), self.symbol, self.interval, self.interval_ms)

    @property
    def paused(self) -> bool:
        """True while the view is frozen (updates are still folded into the buffer)."""
        return self._paused

    @property
    def attached(self) -> bool:
        """True while a live feed is attached."""
        return self._link is not None and self._link.subscribed

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
        retarget(self._figures, interval_ms=self.interval_ms, visible_bars=self.visible_bars,
                 title=self._title_text())
        self.source.data = self.buffer.data()
        self.alert_source.data = self.alert_buffer.data()
        if self._link is not None:
            self._link.subscribe(symbol, interval)
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
    @property
    def feed(self) -> LiveFeed | None:
        """The cache followed while attached, else ``None``."""
        return self._link.feed if self._link is not None else None

    @property
    def store(self) -> HistorySource | None:
        """The store backfilled from while attached, else ``None``."""
        return self._link.store if self._link is not None else None

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

        The services are opened by :func:`cryptolab.viz.live.connect`, not by the chart.

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
        from cryptolab.viz.live import connect, schedule_polling

        self.detach()
        self._link = connect(feed, settings=settings, store=store, backfill=backfill)
        self.poll_interval = poll_interval
        self._link.subscribe(self.symbol, self.interval)
        if backfill:
            self.backfill()
        self._task = schedule_polling(self, run)
        return self

    def backfill(self) -> int:
        """Load the newest bars of the current series from the store and the cache; return bars."""
        candles: list[Candle] = []
        alerts: list[Alert] = []
        if self._link is not None:
            need = self.maxlen + max(self.ma_windows, default=1) - 1
            candles, alerts, errors = self._link.history(self.symbol, self.interval, need=need,
                                                         maxlen=self.maxlen)
            if errors:
                self.last_error = errors[-1]
        candles.sort(key=lambda c: (c.window_start, c.revision, c.final, c.trades))
        self.buffer.extend(candles)
        self.source.data = self.buffer.data()
        self.add_alerts(sorted(alerts, key=lambda a: a.window_start))
        self.alert_source.data = self.alert_buffer.data()
        self.last_update_wall = time.time()
        return len(self.buffer)

    def poll(self, max_messages: int = 20_000) -> int:
        """Drain the subscription without blocking and apply the batch; return messages read."""
        if self._link is None:
            return 0
        got = self._link.drain(max_messages)
        self.bad_messages += got.bad
        self.messages += got.messages
        if got.candles:
            self.update_many(got.candles)
        if got.alerts:
            self.add_alerts(got.alerts)
        return got.messages

    def detach(self) -> None:
        """Stop following the feed (the bars stay; the status line says ``static``)."""
        was_attached = self.attached
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._link is not None:
            self._link.close()
            self._link = None
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
        from cryptolab.viz.controls import chart_widget

        return chart_widget(self, BokehModel, controls=controls)

    def show(self) -> None:
        """Show the chart with ``bokeh.io.show`` (static output in a notebook or a file)."""
        from bokeh.io import show

        from cryptolab.viz.notebook import output_notebook

        output_notebook()
        show(self.layout)

    def _ipython_display_(self) -> None:  # pragma: no cover - needs a frontend
        from IPython.display import display

        display(self.widget())  # type: ignore[no-untyped-call]
