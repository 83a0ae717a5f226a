"""Factory fixtures for the backend contract suites.

Every contract test body runs once per backend: the store suite against SQLite
(a file in ``tmp_path``) and PostgreSQL (``pg_url``), the cache suite against
:class:`MemoryCache` (a uniquely named bus with a fake clock) and
:class:`RedisCache` (``redis_url``). The PostgreSQL and Redis parameters are
marked ``integration`` and skip (or fail under ``CI=true``) without services.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cryptolab.cache import Cache, MemoryCache, RedisCache
from cryptolab.store import Store


@dataclass
class StoreBackend:
    """A store backend under test: ``make()`` opens another :class:`Store` on the same database."""

    name: str
    url: str
    opened: list[Store] = field(default_factory=list)

    def make(self, **kwargs: Any) -> Store:
        store = Store(self.url, **kwargs)
        store.init()
        self.opened.append(store)
        return store


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreBackend]:
    """A fresh, initialised database of each backend kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{(tmp_path / 'store.db').as_posix()}"
    else:
        url = request.getfixturevalue("pg_url")
    backend = StoreBackend(request.param, url)
    yield backend
    for store in backend.opened:
        store.close()


@pytest.fixture
def store(store_backend: StoreBackend) -> Store:
    """An initialised :class:`Store` on a fresh database."""
    return store_backend.make()


class FakeClock:
    """A settable monotonic clock in seconds."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class CacheBackend:
    """A cache backend under test: ``make()`` opens another client on the same data."""

    name: str
    make_cache: Callable[..., Cache]
    opened: list[Cache] = field(default_factory=list)

    def make(self, **kwargs: Any) -> Cache:
        cache = self.make_cache(**kwargs)
        self.opened.append(cache)
        return cache


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def cache_backend(request: pytest.FixtureRequest) -> Iterator[CacheBackend]:
    """An empty cache of each backend kind."""
    if request.param == "memory":
        name = f"contract-{uuid.uuid4().hex}"
        clock = FakeClock()

        def make(**kwargs: Any) -> Cache:
            return MemoryCache(name, clock=clock, **kwargs)
    else:
        url = request.getfixturevalue("redis_url")

        def make(**kwargs: Any) -> Cache:
            return RedisCache(url, **kwargs)

    backend = CacheBackend(request.param, make)
    yield backend
    for cache in backend.opened:
        if isinstance(cache, MemoryCache):
            cache.clear()
        cache.close()


@pytest.fixture
def cache(cache_backend: CacheBackend) -> Cache:
    """An empty cache."""
    return cache_backend.make()
