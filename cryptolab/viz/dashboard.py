"""The live dashboard: a Bokeh server app with the candle chart, price cards and alerts.

One page per browser tab (a Bokeh document): a symbol and interval picker,
indicator toggles, pause/resume, a price card per symbol (last price and
change), the :class:`~cryptolab.viz.chart.CandleChart` of the chosen series
and the most recent alerts. Every update runs on the server's event loop
through ``document.add_periodic_callback`` (the chart drains its
subscription without blocking); nothing touches a document from another
thread.

Run it with ``cryptolab dashboard`` (``--demo`` starts a synthetic market
flowing through the embedded pipeline in the same process).
"""

from __future__ import annotations

import functools
import html
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from bokeh.application import Application
from bokeh.application.handlers.function import FunctionHandler
from bokeh.layouts import column, row
from bokeh.models import ColumnDataSource
from bokeh.models.widgets.buttons import Toggle
from bokeh.models.widgets.groups import CheckboxButtonGroup
from bokeh.models.widgets.inputs import Select
from bokeh.models.widgets.markups import Div
from bokeh.models.widgets.tables import DataTable, HTMLTemplateFormatter, TableColumn

from cryptolab.errors import CryptolabError
from cryptolab.models import Alert, Candle, iso_utc, parse_interval
from cryptolab.models.venues import by_venue, split_venue
from cryptolab.viz.chart import CandleChart
from cryptolab.viz.figure import DOWN_COLOR, SEVERITY_COLORS, UP_COLOR

if TYPE_CHECKING:  # pragma: no cover
    from bokeh.document import Document

    from cryptolab.viz.live import HistorySource, LiveFeed

__all__ = [
    "DashboardConfig",
    "dashboard_app",
    "make_document",
    "price_card",
    "price_change",
    "serve_dashboard",
    "symbol_options",
]

log = logging.getLogger(__name__)

_CSS: Final = """
<style>
.cl-cards{display:flex;flex-wrap:wrap;gap:10px;margin:2px 0 6px 0;font-family:system-ui,sans-serif}
.cl-card{border:1px solid #e0e0e0;border-radius:8px;padding:8px 12px;min-width:150px;background:#fafafa}
.cl-card.sel{border-color:#3f51b5;box-shadow:0 0 0 1px #3f51b5 inset;background:#fff}
.cl-sym{font-size:12px;color:#616161;font-weight:600;letter-spacing:.03em}
.cl-px{font-size:20px;font-weight:600;color:#212121;margin-top:2px}
.cl-chg{font-size:12px;font-weight:600}
.cl-head{font-family:system-ui,sans-serif;display:flex;align-items:baseline;gap:14px}
.cl-head h2{margin:4px 0;font-size:20px}
.cl-status{font-size:12px;color:#757575}
</style>
"""


@dataclass(frozen=True, kw_only=True)
class DashboardConfig:
    """What a dashboard shows and how often it refreshes."""

    symbols: tuple[str, ...] = ()
    interval: str = "1m"
    intervals: tuple[str, ...] = ("1m", "5m", "15m")
    maxlen: int = 500
    visible_bars: int = 120
    poll_ms: int = 250
    cards_ms: int = 1000
    alerts_shown: int = 50
    change_over_ms: int = 3_600_000
    title: str = "cryptolab · live market"


def price_change(candles: Sequence[Candle], latest: Candle | None, over_ms: int
                 ) -> tuple[float, float | None, int]:
    """Last price, relative change over about ``over_ms`` and the span actually covered (ms).

    The change compares the latest close with the close of the newest candle at
    least ``over_ms`` older; with less history, with the oldest candle known.

    Examples
    --------
    >>> from cryptolab.models import Candle
    >>> def c(k, close):
    ...     ws = 1_700_000_040_000 + k * 60_000
    ...     return Candle(symbol="X", interval="1m", window_start=ws, window_end=ws + 60_000,
    ...                   open=close, high=close, low=close, close=close, volume=1.0, vwap=None,
    ...                   trades=1, first_ts=ws, last_ts=ws, high_ts=ws, low_ts=ws, final=True)
    >>> price, change, span = price_change([c(k, 100.0 + k) for k in range(90)], c(90, 190.0), 3_600_000)
    >>> price, round(change, 4), span // 60_000
    (190.0, 0.4615, 60)
    """
    pool = sorted(candles, key=lambda x: x.window_start)
    if latest is None:
        if not pool:
            return (float("nan"), None, 0)
        latest = pool[-1]
    older = [x for x in pool if x.window_start < latest.window_start]
    if not older:
        return (latest.close, None, 0)
    target = latest.window_start - over_ms
    base = next((x for x in reversed(older) if x.window_start <= target), older[0])
    if base.close <= 0:
        return (latest.close, None, 0)
    return (latest.close, latest.close / base.close - 1.0, latest.window_start - base.window_start)


def _span_text(ms: int) -> str:
    if ms >= 86_400_000 and ms % 86_400_000 == 0:
        return f"{ms // 86_400_000}d"
    if ms >= 3_600_000 and ms % 3_600_000 == 0:
        return f"{ms // 3_600_000}h"
    return f"{max(ms // 60_000, 1)}m"


def price_card(symbol: str, price: float, change: float | None, span_ms: int, *,
               selected: bool = False) -> str:
    """HTML of one price card.

    Examples
    --------
    >>> "+1.50%" in price_card("BTC-USD", 37_000.0, 0.015, 3_600_000)
    True
    """
    sym = html.escape(symbol)
    if price != price:  # NaN: nothing yet
        px, chg = "—", '<span class="cl-chg" style="color:#9e9e9e">waiting for data</span>'
    else:
        px = f"{price:,.2f}" if price >= 1 else f"{price:,.6g}"
        if change is None:
            chg = '<span class="cl-chg" style="color:#9e9e9e">no change yet</span>'
        else:
            colour = UP_COLOR if change >= 0 else DOWN_COLOR
            arrow = "▲" if change >= 0 else "▼"
            chg = (f'<span class="cl-chg" style="color:{colour}">{arrow} {change:+.2%} '
                   f'<span style="color:#9e9e9e;font-weight:400">{_span_text(span_ms)}</span></span>')
    cls = "cl-card sel" if selected else "cl-card"
    return (f'<div class="{cls}" data-symbol="{sym}"><div class="cl-sym">{sym}</div>'
            f'<div class="cl-px">{px}</div>{chg}</div>')


def _alert_rows(alerts: Sequence[Alert]) -> dict[str, list[Any]]:
    ordered = sorted(alerts, key=lambda a: (a.ts_ms, a.window_start), reverse=True)
    return {
        "time": [iso_utc(a.window_start).replace("T", " ").rstrip("Z") for a in ordered],
        "symbol": [a.symbol for a in ordered],
        "interval": [a.interval for a in ordered],
        "detector": [a.detector for a in ordered],
        "severity": [a.severity for a in ordered],
        "score": [round(float(a.score), 4) for a in ordered],
    }


def dashboard_app(
    feed: LiveFeed,
    *,
    store: HistorySource | None = None,
    config: DashboardConfig | None = None,
    discover: Callable[[str], list[str]] | None = None,
) -> Application:
    """A Bokeh ``Application`` serving the dashboard (one document per browser tab).

    Parameters
    ----------
    feed
        The cache to follow (``MemoryCache`` or ``RedisCache``), shared by all tabs.
    store
        Store for backfill (optional).
    config
        Symbols, interval and refresh rates.
    discover
        ``discover(interval) -> symbols``: called every few seconds when no
        symbols were configured, to fill the pickers as series appear.
    """
    cfg = config or DashboardConfig()
    parse_interval(cfg.interval)
    return Application(FunctionHandler(functools.partial(
        make_document, feed=feed, store=store, cfg=cfg, discover=discover)))


def make_document(
    doc: Document,
    *,
    feed: LiveFeed,
    store: HistorySource | None,
    cfg: DashboardConfig,
    discover: Callable[[str], list[str]] | None,
) -> None:
    """Fill one browser tab's document: the page, its periodic updates and its clean-up."""
    symbols = list(cfg.symbols) or (discover(cfg.interval) if discover else [])
    chart = CandleChart(
        symbol=symbols[0] if symbols else None, interval=cfg.interval, symbols=symbols,
        intervals=[*cfg.intervals, cfg.interval], maxlen=cfg.maxlen,
        visible_bars=cfg.visible_bars, height=420,
    )
    chart.attach(feed, store=store, run=False)
    page = _Page(chart, feed, cfg, discover)
    page.refresh_cards()
    doc.add_periodic_callback(page.poll, cfg.poll_ms)
    doc.add_periodic_callback(page.refresh_cards, cfg.cards_ms)

    def on_destroyed(_ctx: Any) -> None:
        chart.detach()

    doc.on_session_destroyed(on_destroyed)
    doc.add_root(page.layout())
    doc.title = cfg.title


def _alerts_table(source: ColumnDataSource) -> DataTable:
    """The recent-alerts table over ``source`` (see :func:`_alert_rows`)."""
    return DataTable(
        source=source, name="alerts", width=430, height=520, index_position=None,
        columns=[
            TableColumn(field="time", title="window (UTC)", width=130),
            TableColumn(field="symbol", title="symbol", width=75),
            TableColumn(field="interval", title="iv", width=30),
            TableColumn(field="detector", title="detector", width=70),
            TableColumn(field="severity", title="severity", width=60,
                        formatter=_severity_formatter()),
            TableColumn(field="score", title="score", width=60),
        ],
    )


class _Page:
    """One tab's widgets around its chart: pickers, toggles, pause, price cards, alerts."""

    def __init__(self, chart: CandleChart, feed: LiveFeed, cfg: DashboardConfig,
                 discover: Callable[[str], list[str]] | None) -> None:
        self.chart, self.feed, self.cfg, self.discover = chart, feed, cfg, discover
        self.header = Div(text="", sizing_mode="stretch_width", name="header")
        self.cards = Div(text="", sizing_mode="stretch_width", name="price_cards")
        self.symbol_select = Select(title="Symbol", value=chart.symbol,
                                    options=symbol_options(chart.symbols), width=170,
                                    name="symbol_select")
        self.interval_select = Select(title="Interval", value=chart.interval,
                                      options=_options(chart.intervals), width=110,
                                      name="interval_select")
        self.toggles = list(chart.indicators)
        labels = [t.upper() if t.startswith("ma") else t.capitalize() for t in self.toggles]
        self.indicators = CheckboxButtonGroup(labels=labels, active=list(range(len(self.toggles))),
                                              name="indicators")
        self.pause = Toggle(label="Pause", active=False, width=90, name="pause")
        self.alerts_source = ColumnDataSource(_alert_rows([]), name="alerts_table")
        self.table = _alerts_table(self.alerts_source)
        self.alerts_key: tuple[Any, ...] | None = None
        self.cards_text: str | None = None
        self.discover_at = 0.0
        self.symbol_select.on_change("value", self.on_symbol)
        self.interval_select.on_change("value", self.on_interval)
        self.indicators.on_change("active", self.on_indicators)
        self.pause.on_change("active", self.on_pause)

    def layout(self) -> Any:
        """The page: header, controls, price cards, then the chart beside the alerts."""
        controls = row(self.symbol_select, self.interval_select,
                       column(Div(text="&nbsp;"), self.indicators),
                       column(Div(text="&nbsp;"), self.pause), sizing_mode="stretch_width")
        alerts_title = Div(text='<b style="font-family:system-ui">Recent alerts</b>')
        body = row(self.chart.layout, column(alerts_title, self.table, width=440),
                   sizing_mode="stretch_width")
        return column(self.header, controls, self.cards, body, sizing_mode="stretch_width",
                      name="dashboard")

    # ------------------------------------------------------------------ handlers
    def on_symbol(self, _attr: str, _old: Any, new: Any) -> None:
        if new and new != self.chart.symbol:
            self.chart.set_series(str(new), self.chart.interval)
            self.refresh_cards()

    def on_interval(self, _attr: str, _old: Any, new: Any) -> None:
        if new and new != self.chart.interval and self.chart.symbol:
            self.chart.set_series(self.chart.symbol, str(new))
            self.refresh_cards()

    def on_indicators(self, _attr: str, _old: Any, new: Any) -> None:
        for i, name in enumerate(self.toggles):
            self.chart.set_indicator(name, i in new)

    def on_pause(self, _attr: str, _old: Any, new: Any) -> None:
        if new:
            self.chart.pause()
            self.pause.label = "Resume"
        else:
            self.chart.resume()
            self.pause.label = "Pause"

    # ------------------------------------------------------------------ updates
    def poll(self) -> None:
        """Apply what the chart's subscription brought (errors shown, never raised)."""
        try:
            self.chart.poll()
        except Exception as exc:  # keep the page alive; show what went wrong
            self.chart.last_error = str(exc)
            log.warning("dashboard update failed: %s", exc)

    def refresh_symbols(self) -> None:
        """Add discovered symbols to the picker (every 5 s at most, when none were configured)."""
        chart = self.chart
        if self.cfg.symbols or self.discover is None:
            return
        now = time.monotonic()
        if now - self.discover_at < 5.0:
            return
        self.discover_at = now
        found = [s for s in self.discover(chart.interval) if s not in chart.symbols]
        if found:
            chart.symbols.extend(found)
            self.symbol_select.options = symbol_options(chart.symbols)
        if not chart.symbol and chart.symbols:
            chart.set_series(chart.symbols[0], chart.interval)
            self.symbol_select.value = chart.symbol

    def refresh_cards(self) -> None:
        """Redraw the price cards, the alerts table (when it changed) and the header."""
        self.refresh_symbols()
        chart, cfg = self.chart, self.cfg
        parts = []
        iv = chart.interval
        need = max(2, cfg.change_over_ms // parse_interval(iv) + 2)
        try:
            for sym in chart.symbols:
                latest = self.feed.latest(sym, iv)
                recent = self.feed.recent(sym, iv, need)
                price, change, span = price_change(recent, latest, cfg.change_over_ms)
                parts.append(price_card(sym, price, change, span, selected=sym == chart.symbol))
            recent_alerts = self.feed.recent_alerts(cfg.alerts_shown)
            if chart.last_error and chart.last_error.startswith("feed:"):
                chart.last_error = None
        except CryptolabError as exc:
            chart.last_error = f"feed: {exc}"
            recent_alerts = []
        text = _CSS + '<div class="cl-cards">' + "".join(parts) + "</div>"
        if text != self.cards_text:
            self.cards.text = text
            self.cards_text = text
        key = tuple(a.key for a in recent_alerts)
        if recent_alerts and key != self.alerts_key:
            self.alerts_source.data = _alert_rows(recent_alerts)
            self.alerts_key = key
        self.header.text = (
            _CSS + f'<div class="cl-head"><h2>{html.escape(cfg.title)}</h2>'
            f'<span class="cl-status">{html.escape(chart.status_text())}</span></div>'
        )


def _severity_formatter() -> Any:
    colours = " : ".join(f"value == '{k}' ? '{v}'" for k, v in SEVERITY_COLORS.items())
    return HTMLTemplateFormatter(
        template=f'<b style="color:<%= ({colours} : "#616161") %>"><%= value %></b>'
    )


def serve_dashboard(
    feed: LiveFeed,
    *,
    store: HistorySource | None = None,
    config: DashboardConfig | None = None,
    discover: Callable[[str], list[str]] | None = None,
    port: int = 5006,
    address: str = "127.0.0.1",
    allow_origins: Sequence[str] = (),
    on_ready: Callable[[str], None] | None = None,
    show: bool = False,
) -> None:
    """Serve the dashboard until SIGINT/SIGTERM (blocking).

    Parameters
    ----------
    port
        TCP port (``0`` picks a free one; ``on_ready`` receives the URL).
    address
        Interface to listen on (``0.0.0.0`` for every interface).
    allow_origins
        Extra ``host:port`` origins allowed to open the websocket.
    on_ready
        Called with the dashboard's URL once the server listens.
    show
        Open a browser tab.
    """
    import signal

    from bokeh.server.server import Server
    from tornado.ioloop import IOLoop

    app = dashboard_app(feed, store=store, config=config, discover=discover)
    if port == 0:
        port = _free_port(address)
    host = "127.0.0.1" if address in ("0.0.0.0", "") else address
    origins = [f"{host}:{port}", f"localhost:{port}", f"127.0.0.1:{port}", *allow_origins]
    loop = IOLoop()
    server = Server({"/": app}, io_loop=loop, port=port, address=address,
                    allow_websocket_origin=origins,
                    check_unused_sessions_milliseconds=5_000,
                    unused_session_lifetime_milliseconds=15_000)
    server.start()
    url = f"http://{host}:{port}/"
    stopping = {"n": 0}

    def stop(signum: int, _frame: Any) -> None:
        stopping["n"] += 1
        log.info("signal %d: stopping the dashboard", signum)
        loop.add_callback_from_signal(loop.stop)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if on_ready is not None:
            on_ready(url)
        if show:
            loop.add_callback(server.show, "/")
        loop.start()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()
        loop.close(all_fds=True)


def _free_port(address: str) -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address or "127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _options(values: Sequence[str]) -> list[str | tuple[Any, str]]:
    return list(values)


def symbol_options(symbols: Sequence[str]) -> list[str | tuple[Any, str]] | dict[str, list[str | tuple[Any, str]]]:
    """The symbol picker's choices: a plain list, or grouped by venue when a symbol has one.

    Grouped, each venue is a group of ``(symbol, pair)`` choices (the picker shows the
    pair under its venue's heading and selects the whole symbol); venue-less symbols are
    in the group ``"no venue"``.

    Examples
    --------
    >>> symbol_options(["BTC-USD", "ETH-USD"])
    ['BTC-USD', 'ETH-USD']
    >>> symbol_options(["COINBASE:BTC-USD", "BINANCE:BTC-USDT", "BTC-USD"])  # doctest: +NORMALIZE_WHITESPACE
    {'BINANCE': [('BINANCE:BTC-USDT', 'BTC-USDT')], 'COINBASE': [('COINBASE:BTC-USD', 'BTC-USD')],
     'no venue': [('BTC-USD', 'BTC-USD')]}
    """
    groups = by_venue(symbols)
    if list(groups) in ([], [None]):
        return list(symbols)
    return {venue or "no venue": [(sym, split_venue(sym)[1]) for sym in members]  # (value, label)
            for venue, members in groups.items()}
