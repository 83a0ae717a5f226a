"""`cryptolab.live`: the history is there at once and grows live; errors of the session's threads
surface on the handle; stop drains, closes every window and commits (embedded defaults)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cryptolab
from cryptolab.config import Settings
from cryptolab.errors import SourceError, ValidationError
from cryptolab.market.feeds import Feed
from cryptolab.market.session import LiveSession, live
from cryptolab.models import Tick

T0 = 1_700_000_040_000  # a whole minute


def _settings(tmp_path: Path) -> Settings:
    return Settings.from_env({}, data_dir=str(tmp_path / "data"))


def _until(condition: Any, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:g}s")
        time.sleep(0.2)


def test_cryptolab_live_is_the_function() -> None:
    assert cryptolab.live is live and callable(cryptolab.live)
    assert "live" in cryptolab.__all__


def test_synthetic_history_is_there_at_once_then_grows_and_stop_finalises(tmp_path: Path) -> None:
    session = live("synthetic", symbols=["BTC-USD", "ETH-USD"], intervals="1m,5m", backfill="40m",
                   settings=_settings(tmp_path), speed=30.0, ticks_per_second=5.0)
    try:
        first = session.history("BTC-USD", "1m")
        # forty minutes of history, every window before the current one closed
        assert len(first) >= 39 and first["final"].all()
        span = first["window_start"].max() - first["window_start"].min()
        assert span.total_seconds() >= 38 * 60
        assert session.stats.backfilled and session.stats.source == "live"
        chart = session.chart("BTC-USD", "1m")
        assert chart.attached and len(chart) >= len(first)  # the chart shows the history at once
        newest = first["window_start"].max()
        # at 30x a minute passes every two seconds: new candles arrive
        _until(lambda: session.history("BTC-USD", "1m")["window_start"].max() > newest, "no new candle")
    finally:
        stats = session.stop()
    assert stats.source == "stopped" and stats.errors == []
    assert stats.produced == stats.consumed > 0
    after = session.history("BTC-USD", "1m")
    assert len(after) > len(first) and after["final"].all()  # stop closed every open window
    assert session.history("BTC-USD", "5m")["final"].all()
    assert not chart.attached
    session.close()


class _Failing:
    """A source that yields a few ticks, then fails as an exchange connection would."""

    name = "failing"
    validated = False

    def __init__(self) -> None:
        self.stats = None

    def iter_ticks(self, *, on_reject: Any = None) -> Iterator[Tick]:
        for k in range(3):
            yield Tick(symbol="BTC-USD", ts_ms=T0 + k * 20_000, price=100.0 + k, size=1.0)
        raise ConnectionResetError("the exchange went away")


def _failing_session(tmp_path: Path) -> LiveSession:
    feed = Feed(kind="exchange", name="failing", source=_Failing(), symbols=["BTC-USD"])
    return LiveSession(feed, _settings(tmp_path).__class__.from_env(
        {}, data_dir=str(tmp_path / "data"), store_url=f"sqlite:///{tmp_path / 'f.db'}", intervals="1m"))


def test_an_error_in_a_thread_is_raised_on_the_next_call_once_and_listed_in_stats(tmp_path: Path) -> None:
    session = _failing_session(tmp_path).start()
    _until(lambda: session.stats.errors, "the failure never showed in stats")
    assert session.stats.source == "failed" and session.source_ended
    assert "the exchange went away" in session.stats.errors[0]
    with pytest.raises(SourceError, match="source failed: ConnectionResetError: the exchange went away"):
        session.history("BTC-USD", "1m")
    session.history("BTC-USD", "1m")  # raised once; the store still reads
    stats = session.stop()  # nothing left to raise: what came before the failure is stored, final
    assert stats.errors and stats.source == "failed"
    frame = session.history("BTC-USD", "1m")
    assert len(frame) == 1 and frame["final"].all() and int(frame["trades"].iloc[0]) == 3
    session.close()


def test_an_error_not_raised_yet_is_raised_by_stop(tmp_path: Path) -> None:
    session = _failing_session(tmp_path).start()
    _until(lambda: session.stats.errors, "the failure never showed in stats")
    with pytest.raises(SourceError, match="the exchange went away"):
        session.stop()
    session.close()


def test_a_replayed_file_is_its_own_history(tmp_path: Path) -> None:
    trades = tmp_path / "trades.csv"
    trades.write_text("ts_ms,price,size\n" + "".join(f"{T0 + k * 20_000},{100 + k},1\n" for k in range(12)))
    with live(f"replay:{trades}", intervals="1m", settings=_settings(tmp_path), symbol="BTC-USD") as session:
        # when live() returns the file is consumed: every window it closed is stored (the last
        # one stays open for what may come, until stop)
        frame = session.history("BTC-USD", "1m")
        assert list(frame["trades"]) == [3, 3, 3] and frame["final"].all()
        _until(lambda: session.source_ended, "the file never ended")
        assert session.symbols == ["BTC-USD"]
    frame = session.history("BTC-USD", "1m")
    assert list(frame["trades"]) == [3, 3, 3, 3] and frame["final"].all()


@pytest.mark.parametrize(("source", "kwargs", "message"), [
    ("nowhere-exchange", {}, "unknown source"),
    ("synthetic", {"backfill": "soon"}, "not a duration"),
    ("synthetic", {"colour": "red"}, "synthetic takes no option colour"),
    ("replay", {}, "replay needs a file"),
])
def test_bad_input_is_a_clear_error_that_starts_nothing(tmp_path: Path, source: str, kwargs: dict[str, Any],
                                                        message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        live(source, settings=_settings(tmp_path), **kwargs)
    assert not (tmp_path / "data").exists()
