"""Shared fixtures: the real services started by ``make test`` and the recorded market data.

``make test`` runs ``scripts/services.sh up`` and exports ``CRYPTOLAB_KAFKA_BOOTSTRAP``,
``CRYPTOLAB_STORE_URL`` and ``CRYPTOLAB_REDIS_URL``. This module captures them at import
time into :data:`KAFKA_BOOTSTRAP`, :data:`STORE_URL` and :data:`REDIS_URL`, then removes
*every* ``CRYPTOLAB_*`` variable from ``os.environ``: a test's ``Settings.from_env()``
sees only what the test passes, whatever the developer's shell exports.

Fixtures
--------
``kafka_bootstrap`` (session)
    Bootstrap servers of a Kafka broker that answered a metadata request.
``pg_url`` (function)
    ``postgresql+psycopg://`` URL of a fresh, empty database ``cl_test_<random>`` on the
    configured PostgreSQL server, dropped (``WITH (FORCE)``) after the test.
``redis_url`` (function)
    URL of Redis logical database :data:`TEST_REDIS_DB`, flushed before the test (the
    configured database itself, usually 0, is left alone for notebooks and demos).
``unique_topic`` (function)
    A fresh topic name ``t_<uuid hex>`` (not created: create it, or let the broker
    auto-create it with one partition).
``shared_data`` (session)
    ``Path`` of the recorded market data, ``<repo>/../shared/data``.

A service fixture *skips* its test when the service is not configured or does not answer,
with a reason saying how to start it, but *fails* it when ``CI=true``: in CI a missing
service is an error, never a silent skip. The same holds for ``shared_data``.

Markers (registered in pyproject.toml): ``integration`` (added automatically to any test
that uses a service fixture), ``slow``, ``browser``, ``notebooks``. Everything runs by
default; select with ``-m``, e.g. ``pytest -m "not slow"`` or ``pytest -m "not integration"``.
"""

from __future__ import annotations

import logging
import os
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, NoReturn
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

# --------------------------------------------------------------------------- environment

#: Kafka bootstrap servers from the environment at import time (``None`` when unset).
KAFKA_BOOTSTRAP: Final[str | None] = os.environ.get("CRYPTOLAB_KAFKA_BOOTSTRAP") or None
#: SQLAlchemy URL of the PostgreSQL server from the environment (``None`` when unset).
STORE_URL: Final[str | None] = os.environ.get("CRYPTOLAB_STORE_URL") or None
#: Redis URL from the environment (``None`` when unset).
REDIS_URL: Final[str | None] = os.environ.get("CRYPTOLAB_REDIS_URL") or None

for _name in [n for n in os.environ if n.startswith("CRYPTOLAB_")]:
    del os.environ[_name]

#: True under CI (``CI=true``): a missing service or data set fails instead of skipping.
IN_CI: Final = os.environ.get("CI") == "true"
#: The Redis logical database tests use (flushed before each test that asks for it).
TEST_REDIS_DB: Final = 15
#: The repository root and the recorded market data beside it.
REPO_ROOT: Final = Path(__file__).resolve().parents[1]
SHARED_DATA: Final = REPO_ROOT.parent / "shared" / "data"

_HOW_TO_START: Final = (
    "run `make test`, or `scripts/services.sh up` then `eval \"$(scripts/services.sh env)\"`"
)
_SERVICE_FIXTURES: Final = frozenset({"kafka_bootstrap", "pg_url", "redis_url"})

log = logging.getLogger(__name__)


def unavailable(message: str) -> NoReturn:
    """Skip the current test with ``message``, or fail it under ``CI=true``."""
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing service or data set is an error)", pytrace=False)
    pytest.skip(message)


def _redacted(url: str | None) -> str:
    if not url:
        return "unset"
    from cryptolab.config import redact_url

    return redact_url(url) or "unset"


# --------------------------------------------------------------------------- pytest hooks


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "restarts_services: stops and restarts the shared services (run last, after every "
        "other test)",
    )


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        "cryptolab services: "
        f"kafka={KAFKA_BOOTSTRAP or 'unset'} store={_redacted(STORE_URL)} "
        f"redis={_redacted(REDIS_URL)}"
        + (" (CI=true: missing services fail)" if IN_CI else ""),
        f"cryptolab shared data: {SHARED_DATA}"
        + ("" if SHARED_DATA.is_dir() else " (absent)"),
    ]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark service-using tests ``integration``; move service restarts to the very end."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & _SERVICE_FIXTURES and item.get_closest_marker("integration") is None:
            item.add_marker(pytest.mark.integration)
    restarts = [i for i in items if i.get_closest_marker("restarts_services") is not None]
    if restarts:
        items[:] = [i for i in items if i.get_closest_marker("restarts_services") is None]
        items.extend(restarts)


# Notebooks under tests/ are fixtures for notebook tests, never nbval tests themselves.
collect_ignore_glob = ["*.ipynb"]


# --------------------------------------------------------------------------- Kafka


def kafka_answers(bootstrap: str, timeout: float = 10.0) -> str | None:
    """Return ``None`` when a broker at ``bootstrap`` answers a metadata request, else why not."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(
        {
            "bootstrap.servers": bootstrap,
            "socket.timeout.ms": int(timeout * 1000),
            "logger": logging.getLogger("tests.kafka"),
        }
    )
    try:
        md = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        return str(exc.args[0])
    return None if md.brokers else "no broker in the metadata"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap servers of the real Kafka broker (``CRYPTOLAB_KAFKA_BOOTSTRAP``)."""
    if not KAFKA_BOOTSTRAP:
        unavailable(f"Kafka is not configured (CRYPTOLAB_KAFKA_BOOTSTRAP unset): {_HOW_TO_START}")
    why = kafka_answers(KAFKA_BOOTSTRAP)
    if why is not None:
        unavailable(f"Kafka at {KAFKA_BOOTSTRAP} does not answer ({why}): {_HOW_TO_START}")
    return KAFKA_BOOTSTRAP


@pytest.fixture
def unique_topic() -> str:
    """A fresh, random topic name such as ``t_3f2a...`` (not created)."""
    return f"t_{uuid.uuid4().hex}"


# --------------------------------------------------------------------------- PostgreSQL


def _pg_conninfo(sqlalchemy_url: str) -> str:
    """A libpq URL (for psycopg) from a SQLAlchemy ``postgresql+psycopg://`` URL."""
    from sqlalchemy.engine import make_url

    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def _pg_admin_url() -> str:
    """The configured PostgreSQL URL, after checking that the server answers."""
    if not STORE_URL:
        unavailable(f"PostgreSQL is not configured (CRYPTOLAB_STORE_URL unset): {_HOW_TO_START}")
    if not STORE_URL.startswith(("postgresql://", "postgresql+")):
        unavailable(f"CRYPTOLAB_STORE_URL is not a PostgreSQL URL: {_redacted(STORE_URL)}")
    import psycopg

    try:
        with psycopg.connect(_pg_conninfo(STORE_URL), connect_timeout=10) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        unavailable(
            f"PostgreSQL at {_redacted(STORE_URL)} does not answer ({exc}): {_HOW_TO_START}"
        )
    return STORE_URL


@pytest.fixture
def pg_url(_pg_admin_url: str) -> Iterator[str]:
    """A fresh, empty database ``cl_test_<random>``; yields its SQLAlchemy URL, then drops it."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    name = f"cl_test_{secrets.token_hex(6)}"
    admin = _pg_conninfo(_pg_admin_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(_pg_admin_url).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# --------------------------------------------------------------------------- Redis


def _redis_test_url(url: str, db: int) -> str:
    """``url`` pointing at logical database ``db`` (path for redis://, ``?db=`` for unix://)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "db"] + [("db", str(db))]
        return urlunsplit(parts._replace(query=urlencode(query)))
    return urlunsplit(parts._replace(path=f"/{db}"))


@pytest.fixture(scope="session")
def _redis_server() -> str:
    """The configured Redis URL, after checking that the server answers PING."""
    if not REDIS_URL:
        unavailable(f"Redis is not configured (CRYPTOLAB_REDIS_URL unset): {_HOW_TO_START}")
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=10, socket_timeout=10)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        unavailable(f"Redis at {_redacted(REDIS_URL)} does not answer ({exc}): {_HOW_TO_START}")
    return REDIS_URL


@pytest.fixture
def redis_url(_redis_server: str) -> str:
    """URL of Redis database :data:`TEST_REDIS_DB`, flushed before the test."""
    import redis

    url = _redis_test_url(_redis_server, TEST_REDIS_DB)
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
    return url


# --------------------------------------------------------------------------- recorded data


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the recorded market data (``<repo>/../shared/data``, see its NOTICE.md)."""
    if not SHARED_DATA.is_dir():
        unavailable(
            f"recorded market data not found at {SHARED_DATA} (expected beside the repository "
            "as ../shared/data)"
        )
    return SHARED_DATA


# --------------------------------------------------------------------------- browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright (fails under ``CI=true`` when missing).

    Module-scoped on purpose: Playwright's sync API keeps an asyncio loop running in the main
    thread while it is open, and later tests call ``asyncio.run``.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed: pip install 'cryptolab[test]'")
    chromium = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
    if not chromium.exists():
        unavailable(f"no Chromium at {chromium}: run scripts/ensure_chromium.sh")
    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=str(chromium),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield b
        b.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser context whose pages reach loopback only (see ``tests/browser/browsing.py``)."""
    # the module the browser tests import (their folder is on sys.path): one OFFLINE_BLOCKED list
    import browsing

    ctx = browser.new_context(viewport={"width": 1400, "height": 950})
    ctx.route("**/*", browsing.loopback_only)
    yield ctx
    ctx.close()
