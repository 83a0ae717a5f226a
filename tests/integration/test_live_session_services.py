"""`cryptolab.live` on the real services: Kafka, PostgreSQL and Redis from the settings."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cryptolab.cache import RedisCache
from cryptolab.config import Settings
from cryptolab.market.session import live

pytestmark = pytest.mark.integration


def test_a_session_on_the_services_backfills_streams_and_finalises(
        kafka_bootstrap: str, pg_url: str, redis_url: str, tmp_path: Path) -> None:
    settings = Settings.from_env({}, kafka_bootstrap=kafka_bootstrap, store_url=pg_url, redis_url=redis_url,
                                 data_dir=str(tmp_path / "data"))
    session = live("synthetic", symbols=["BTC-USD"], intervals="1m", backfill="20m", settings=settings,
                   speed=30.0, ticks_per_second=5.0)
    try:
        assert session.store_url == pg_url and isinstance(session.cache, RedisCache)
        first = session.history("BTC-USD", "1m")
        assert len(first) >= 19 and first["final"].all()
        chart = session.chart("BTC-USD", "1m")
        assert len(chart) >= len(first)
        deadline = time.monotonic() + 120
        while session.cache.latest("BTC-USD", "1m") is None:  # live candles reach Redis
            assert time.monotonic() < deadline, "no candle reached Redis"
            time.sleep(0.2)
    finally:
        stats = session.stop()
    assert stats.errors == [] and stats.produced == stats.consumed
    after = session.history("BTC-USD", "1m")
    assert len(after) >= len(first) and after["final"].all()
    assert (tmp_path / "data").exists() is False or not any((tmp_path / "data").rglob("*.db"))
    session.close()
