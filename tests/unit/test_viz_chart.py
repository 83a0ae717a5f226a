"""CandleChart: the Bokeh layer applies exactly the buffer's operations; live feed, controls."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pandas as pd
import pytest
from bokeh.document import Document
from bokeh.document.events import ColumnDataChangedEvent, ColumnsPatchedEvent, ColumnsStreamedEvent

from cryptolab.batch import candles_from_ticks
from cryptolab.cache import MemoryCache
from cryptolab.errors import ValidationError
from cryptolab.models import Alert, Candle
from cryptolab.store import Store
from cryptolab.viz import CandleChart

T0 = 1_700_000_040_000
MIN = 60_000


def candle(k: int, close: float, *, symbol: str = "BTC-USD", trades: int = 1, revision: int = 0,
           final: bool = False, interval: str = "1m") -> Candle:
    ws = T0 + k * MIN
    return Candle(symbol=symbol, interval=interval, window_start=ws, window_end=ws + MIN,
                  open=100.0, high=max(100.0, close) + 0.5, low=min(100.0, close) - 0.5,
                  close=close, volume=2.0 * trades, vwap=None, trades=trades, first_ts=ws,
                  last_ts=ws + trades, high_ts=ws, low_ts=ws, revision=revision, final=final)


def alert(k: int, *, symbol: str = "BTC-USD", detector: str = "rule") -> Alert:
    return Alert(symbol=symbol, interval="1m", window_start=T0 + k * MIN, detector=detector,
                 severity="HIGH", score=0.12, ts_ms=T0 + (k + 1) * MIN, features={"ret": 0.12})


def plain(source_data: Any) -> dict[str, list[Any]]:
    return {k: list(v) for k, v in source_data.items()}


@pytest.fixture
def cache() -> Any:
    c = MemoryCache(f"test-viz-{uuid.uuid4().hex}")
    yield c
    c.clear()
    c.close()


def test_load_a_batch_frame_and_draw_every_series_row() -> None:
    ticks = pd.DataFrame({
        "symbol": ["BTC-USD"] * 6 + ["ETH-USD"] * 2,
        "ts_ms": [T0 + i * 25_000 for i in range(6)] + [T0, T0 + 70_000],
        "price": [100.0, 102.0, 99.0, 101.0, 103.0, 98.0, 10.0, 11.0],
        "size": [1.0] * 8,
    })
    frame = candles_from_ticks(ticks, intervals="1m")
    chart = CandleChart(interval="1m")
    assert chart.load(frame) == 3  # BTC-USD, the first symbol, over three minutes
    assert chart.symbol == "BTC-USD"
    data = plain(chart.source.data)
    assert data == chart.buffer.data()
    assert data["open"] == [100.0, 101.0, 98.0]
    assert data["close"] == [99.0, 103.0, 98.0]
    assert data["direction"] == ["down", "up", "up"]  # a flat candle counts as up
    assert data["x"] == [T0 + 30_000, T0 + 90_000, T0 + 150_000]


def test_updates_stream_new_windows_and_patch_in_place_without_resending_data() -> None:
    chart = CandleChart(symbol="BTC-USD", interval="1m", maxlen=3)
    doc = Document()
    doc.add_root(chart.layout)
    events: list[Any] = []
    doc.on_change(lambda e: events.append(e))
    assert chart.update(candle(0, 101.0)) == "stream"
    assert chart.update(candle(0, 102.0, trades=2)) == "patch"
    assert chart.update(candle(0, 102.0, trades=2)) == "ignore"
    for k in range(1, 5):
        chart.update(candle(k, 100.0 + k))
    assert chart.update(candle(3, 90.0, revision=1, final=True)) == "patch"
    kinds = [type(e) for e in events]
    assert ColumnDataChangedEvent not in kinds
    assert kinds.count(ColumnsStreamedEvent) == 5 and kinds.count(ColumnsPatchedEvent) == 2
    data = plain(chart.source.data)
    assert len(data["close"]) == 3  # rollover
    assert data["close"] == [102.0, 90.0, 104.0]
    assert data["revision"] == [0, 1, 0]


def test_alert_markers_follow_the_series_and_show_detector_score_severity() -> None:
    chart = CandleChart(symbol="BTC-USD", interval="1m")
    chart.update_many([candle(k, 100.0 + k) for k in range(5)])
    assert chart.add_alerts([alert(2), alert(2, symbol="ETH-USD"), alert(3, detector="hst")]) == 2
    data = plain(chart.alert_source.data)
    assert data["detector"] == ["rule", "hst"]
    assert data["severity"] == ["HIGH", "HIGH"]
    assert data["y"] == [102.5, 103.5]  # at the bar's high
    tooltips = [t.tooltips for t in chart.price_figure.tools if getattr(t, "tooltips", None)]
    assert any(dict(tt).keys() >= {"detector", "score", "severity"} for tt in tooltips)
    chart.update(candle(2, 120.0, revision=1, final=True))  # the revision moves its marker
    assert list(chart.alert_source.data["y"]) == [120.5, 103.5]


def test_scored_history_frame_brings_its_markers() -> None:
    frame = pd.DataFrame([c.to_dict() for c in (candle(k, 100.0 + k, final=True) for k in range(4))])
    frame["score_rule"] = [0.0, 0.2, 0.0, 0.0]
    frame["severity_rule"] = [None, "MEDIUM", None, None]
    chart = CandleChart(symbol="BTC-USD")
    chart.load(frame)
    assert list(chart.alert_source.data["window_start"]) == [T0 + MIN]
    assert list(chart.alert_source.data["severity"]) == ["MEDIUM"]


def test_pause_freezes_the_view_and_resume_catches_up() -> None:
    chart = CandleChart(symbol="BTC-USD")
    chart.update(candle(0, 101.0))
    chart.pause()
    chart.update_many([candle(0, 105.0, trades=3), candle(1, 106.0)])
    assert list(chart.source.data["close"]) == [101.0]
    assert len(chart.buffer) == 2
    chart.resume()
    assert plain(chart.source.data) == chart.buffer.data()
    assert list(chart.source.data["close"]) == [105.0, 106.0]


def test_indicator_toggles_hide_their_renderers() -> None:
    chart = CandleChart(symbol="BTC-USD")
    assert set(chart.indicators) == {"ma20", "ma50", "volume", "anomalies"}
    chart.set_indicator("ma50", False)
    chart.set_indicator("volume", False)
    assert chart.price_figure.select_one({"name": "ma50"}).visible is False
    assert chart.price_figure.select_one({"name": "ma20"}).visible is True
    assert chart.volume_figure.visible is False
    with pytest.raises(ValidationError):
        chart.set_indicator("rsi", True)


def test_live_feed_backfills_then_streams_and_patches(cache: MemoryCache) -> None:
    cache.publish([candle(k, 100.0 + k, final=True) for k in range(3)] + [candle(3, 103.0)])
    cache.publish_alerts([alert(1)])
    chart = CandleChart(symbol="BTC-USD", interval="1m")
    chart.attach(cache, run=False)
    assert chart.attached and len(chart) == 4
    assert list(chart.alert_source.data["window_start"]) == [T0 + MIN]
    # Updates published after attach arrive on the next poll, as one batch.
    cache.publish([candle(3, 104.0, trades=2), candle(3, 104.5, trades=3, final=True),
                   candle(4, 99.0), candle(1, 80.0, revision=1, final=True),
                   candle(0, 1.0, symbol="ETH-USD")])
    cache.publish_alerts([alert(4)])
    assert chart.poll() == 5  # one ETH-USD message was not subscribed to
    data = plain(chart.source.data)
    assert data == chart.buffer.data()
    assert data["close"] == [100.0, 80.0, 102.0, 104.5, 99.0]
    assert data["final"] == [True, True, True, True, False]
    assert list(chart.alert_source.data["window_start"]) == [T0 + MIN, T0 + 4 * MIN]
    assert chart.poll() == 0
    chart.detach()
    cache.publish([candle(5, 1.0)])
    assert chart.poll() == 0 and not chart.attached


def test_bad_messages_are_counted_not_fatal(cache: MemoryCache) -> None:
    chart = CandleChart(symbol="BTC-USD").attach(cache, run=False, backfill=False)
    bus = MemoryCache(cache.name)
    bus._bus.fan_out([("cryptolab:candles:BTC-USD:1m", b"{not json")])
    cache.publish([candle(0, 100.0)])
    assert chart.poll() == 2
    assert chart.bad_messages == 1 and len(chart) == 1
    chart.detach()


def test_switching_series_resubscribes_and_backfills(cache: MemoryCache) -> None:
    cache.publish([candle(k, 100.0 + k, final=True) for k in range(3)])
    cache.publish([candle(k, 10.0 + k, final=True, symbol="ETH-USD") for k in range(5)])
    chart = CandleChart(symbol="BTC-USD", symbols=["BTC-USD", "ETH-USD"])
    chart.attach(cache, run=False)
    assert len(chart) == 3
    chart.set_series("ETH-USD")
    assert chart.symbol == "ETH-USD" and len(chart) == 5
    assert chart.price_figure.title.text == "ETH-USD · 1m"
    cache.publish([candle(5, 16.0, symbol="ETH-USD"), candle(9, 1.0)])
    assert chart.poll() == 1
    assert list(chart.source.data["close"])[-1] == 16.0
    chart.set_series("ETH-USD", "5m")
    assert len(chart) == 0 and chart.price_figure.x_range.follow_interval == 120 * 5 * MIN
    chart.detach()


def test_backfill_reads_the_store_then_the_cache(cache: MemoryCache, tmp_path: Any) -> None:
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    store.init()
    store.commit_batch(group="g", topic="t",
                       candles=[candle(k, 100.0 + k, final=True) for k in range(120)],
                       alerts=[alert(100), alert(10)])
    cache.publish([candle(119, 300.0, revision=1, final=True), candle(120, 301.0)])
    chart = CandleChart(symbol="BTC-USD", maxlen=40, ma_windows=(20, 50))
    chart.attach(cache, store=store, run=False)
    data = chart.buffer.data()
    assert len(chart) == 40 and data["window_start"][0] == T0 + 81 * MIN
    assert data["window_start"][-1] == T0 + 120 * MIN
    assert data["close"][-2:] == [300.0, 301.0]  # the cache's revision and open candle win
    # Enough history was read for MA50 to be defined (and exact) on the oldest bar shown.
    assert data["ma50"][0] == pytest.approx(sum(100.0 + k for k in range(32, 82)) / 50)
    assert list(chart.alert_source.data["window_start"]) == [T0 + 100 * MIN]  # 10 rolled off
    chart.detach()
    store.close()


def test_attach_schedules_polling_on_the_running_event_loop(cache: MemoryCache) -> None:
    async def main() -> CandleChart:
        chart = CandleChart(symbol="BTC-USD").attach(cache, backfill=False, poll_interval=0.01)
        assert chart._task is not None
        cache.publish([candle(0, 100.0), candle(1, 101.0)])
        for _ in range(500):  # bounded wait for the task, no timing assertion
            if len(chart) == 2:
                break
            await asyncio.sleep(0.01)
        chart.detach()
        return chart

    chart = asyncio.run(main())
    assert len(chart) == 2 and not chart.attached


def test_attach_run_true_without_a_loop_explains(cache: MemoryCache) -> None:
    from cryptolab.errors import CryptolabError

    with pytest.raises(CryptolabError, match="no running asyncio event loop"):
        CandleChart(symbol="BTC-USD").attach(cache, run=True, backfill=False)


def test_widget_wraps_the_bokeh_model_with_working_controls(cache: MemoryCache) -> None:
    from ipywidgets import Checkbox, Dropdown, ToggleButton
    from jupyter_bokeh import BokehModel

    cache.publish([candle(k, 100.0 + k, symbol=s, final=k < 2) for k in range(3)
                   for s in ("BTC-USD", "ETH-USD")])
    chart = CandleChart(symbol="BTC-USD", symbols=["BTC-USD", "ETH-USD"])
    chart.attach(cache, run=False)
    box = chart.widget()
    bar, model, _status = box.children
    assert isinstance(model, BokehModel)
    controls = {getattr(c, "description", ""): c for c in bar.children}
    assert isinstance(controls["Symbol"], Dropdown) and isinstance(controls["Interval"], Dropdown)
    assert isinstance(controls["MA20"], Checkbox) and isinstance(controls["Pause"], ToggleButton)
    controls["MA20"].value = False
    assert chart.price_figure.select_one({"name": "ma20"}).visible is False
    pause = controls["Pause"]
    pause.value = True
    assert chart.paused and pause.description == "Resume"
    pause.value = False
    assert not chart.paused
    controls["Symbol"].value = "ETH-USD"
    assert chart.symbol == "ETH-USD" and len(chart) == 3
    chart.detach()


def test_a_revision_replayed_in_any_order_converges() -> None:
    seq = [candle(0, 100.0, trades=t) for t in range(1, 5)] + [
        candle(0, 103.0, trades=4, final=True), candle(0, 99.0, trades=5, revision=1, final=True)]
    a, b = CandleChart(symbol="BTC-USD"), CandleChart(symbol="BTC-USD")
    a.update_many(seq)
    for c in reversed(seq):
        b.update(c)
    assert plain(a.source.data) == plain(b.source.data)
    assert list(a.source.data["close"]) == [99.0]
    assert [c.revision for c in a.candles()] == [1]


@pytest.mark.parametrize("height", [240, 300, 380, 600])
def test_the_volume_axis_labels_have_room_in_their_panel(height: int) -> None:
    """Bokeh places about ``desired_num_ticks`` labels on the axis; below the panel's own time
    axis (two label lines) each label needs at least its line height, or labels overlap."""
    chart = CandleChart(symbol="BTC-USD", height=height)
    volume = chart.volume_figure
    (axis,) = volume.yaxis
    font_px = int(str(axis.major_label_text_font_size).removesuffix("px"))
    time_axis_px = 2 * 2 * font_px  # two label lines and their standoff
    borders = sum(b if b is not None else (volume.min_border or 0)
                  for b in (volume.min_border_top, volume.min_border_bottom))
    plot_px = volume.height - time_axis_px - borders
    labels = axis.ticker.desired_num_ticks + 1  # the ticker may round up by one
    assert plot_px / labels >= 1.5 * font_px, (plot_px, labels)
