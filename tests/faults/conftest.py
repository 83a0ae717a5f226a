"""Fixtures of the fault suite: one loaded stream and its uninterrupted run, shared by every test.

``fault_run`` (session) produces :data:`N_TICKS` synthetic ticks (and a few
bad records) to a 3-partition topic once, computes the batch reference, and
runs an uninterrupted pipeline over it into its own PostgreSQL database: every
fault test compares its faulted run's candles and alerts with both.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from harness import (
    CONSUMER_ENV,
    FaultRun,
    ServiceControl,
    alert_rows,
    build_stream,
    candles_frame,
    new_topic,
    produce,
)

from cryptolab.config import Settings
from cryptolab.pipeline import CandlePipeline
from cryptolab.store import Store

#: Ticks per fault stream: enough for faults to land mid-stream, small enough for a 2-core CI box.
N_TICKS = 120_000


def _database(admin_url: str, name: str) -> str:
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    admin = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _drop(admin_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    admin = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def fault_run(kafka_bootstrap: str, _pg_admin_url: str) -> Iterator[FaultRun]:
    stream = build_stream(N_TICKS)
    settings = new_topic(Settings.from_env({}, kafka_bootstrap=kafka_bootstrap, store_url=_pg_admin_url,
                                           idle_timeout=CONSUMER_ENV["CRYPTOLAB_IDLE_TIMEOUT"]))
    produce(settings, settings.topic, stream.records)
    name = f"cl_faults_ref_{secrets.token_hex(4)}"
    url = _database(_pg_admin_url, name)
    try:
        store = Store(url)
        store.init()
        stats = CandlePipeline(replace(settings, store_url=url), store=store, group="uninterrupted").run(
            stop_at_end=True)
        assert stats.ticks == len(stream.ticks) and stats.dead_letters == stream.bad, stats
        run = FaultRun(settings=settings, stream=stream, uninterrupted=candles_frame(store),
                       uninterrupted_alerts=alert_rows(store), uninterrupted_stats=stats.to_dict())
        store.close()
        pd.testing.assert_frame_equal(run.uninterrupted, stream.reference, check_exact=True)
        assert run.uninterrupted_alerts, "the injected spike and crash should raise alerts"
        yield run
    finally:
        _drop(_pg_admin_url, name)


@pytest.fixture
def services_control() -> Iterator[ServiceControl]:
    """Stops and starts services; anything a test stopped is started again when it ends."""
    control = ServiceControl()
    try:
        yield control
    finally:
        control.restore()


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    d = tmp_path / "logs"
    d.mkdir()
    return d
