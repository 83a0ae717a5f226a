"""The application factory: :func:`create_app`.

Routers, one per concern: :mod:`~cryptolab.api.candles` (symbols, history, latest),
:mod:`~cryptolab.api.alerts`, :mod:`~cryptolab.api.rules` and :mod:`~cryptolab.api.webhooks`
(user alert rules, their webhook deliveries), :mod:`~cryptolab.api.streams` (WebSockets),
``/docs`` (Swagger UI, served from the files of PyPI ``fastapi-offline``, so that it works without
the internet; under :data:`DOCS_STATIC`),
:mod:`~cryptolab.api.health` and :mod:`~cryptolab.api.metrics` (``/metrics``, and the
outermost middleware, which counts every request). In front of them, :class:`~cryptolab.api.guard.Guard` (rate
limit, bearer token) and, with ``cors``, CORS; behind them, the one JSON error shape
(:mod:`~cryptolab.api.errors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool

from cryptolab.api import alerts, candles, health, rules, streams, webhooks
from cryptolab.api import metrics as api_metrics
from cryptolab.api.errors import install_error_handlers
from cryptolab.api.fanout import DEFAULT_QUEUE, Hub
from cryptolab.api.guard import OPEN_PATHS, Guard
from cryptolab.api.ratelimit import DEFAULT_RATE_LIMIT, RateLimit, RateLimiter
from cryptolab.api.state import ApiState
from cryptolab.cache import Cache, RedisCache, open_cache
from cryptolab.config import Settings
from cryptolab.errors import CryptolabError
from cryptolab.store import Store

__all__ = ["API_PREFIX", "DOCS_STATIC", "create_app"]

log = logging.getLogger(__name__)

#: Where the versioned REST routes live.
API_PREFIX = "/api/v1"
#: Where ``/docs`` takes Swagger UI's script, style sheet and icon from.
DOCS_STATIC = "/docs/static"


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    cache: Cache | None = None,
    token: str | None = None,
    cors: Sequence[str] | None = None,
    rate_limit: RateLimit | None = DEFAULT_RATE_LIMIT,
    ws_queue: int = DEFAULT_QUEUE,
) -> FastAPI:
    """The cryptolab HTTP API as an ASGI application (FastAPI).

    Parameters
    ----------
    settings
        Where the store and the cache are (default ``Settings.from_env()``).
    store, cache
        Open ones to serve instead (left open on shutdown); by default the application opens
        those of ``settings`` (and closes them on shutdown).
    token
        Bearer token required on every route but ``/health`` (``None``: no authentication).
    cors
        Origins allowed to call the API from a browser (``["*"]`` for any).
    rate_limit
        Per-client token bucket (``None``: no limit); the buckets live in this process.
    ws_queue
        Updates queued per WebSocket client before it is dropped as too slow.

    Examples
    --------
    >>> from starlette.testclient import TestClient
    >>> app = create_app(store=Store("sqlite://"), token="s3cret")
    >>> with TestClient(app) as http:
    ...     http.get("/health").json()["status"], http.get("/api/v1/symbols").status_code
    ...     http.get("/api/v1/symbols", headers={"Authorization": "Bearer s3cret"}).json()
    ('ok', 401)
    {'series': []}
    """
    settings = settings or Settings.from_env()
    owns_store, owns_cache = store is None, cache is None
    if store is None:
        store = Store.from_settings(settings)
    if cache is None:
        cache = open_cache(settings)
    state = ApiState(settings=settings, store=store, cache=cache,
                     hub=Hub(cache, queue_size=ws_queue), owns_store=owns_store,
                     owns_cache=owns_cache)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.hub.start(asyncio.get_running_loop())
        try:
            await run_in_threadpool(state.store.init)
        except CryptolabError as exc:  # /health says so; reads answer 503 until it is back
            log.warning("the store is not ready: %s", exc)
        try:
            yield
        finally:
            if isinstance(state.cache, RedisCache):  # the event loop's client of /latest
                await state.cache.aclose()
            state.close()

    app = FastAPIOffline(  # /docs from Swagger UI's files in the package (no CDN: it works offline)
        title="cryptolab",
        version=_version(),
        summary="Candles, alerts and live updates of cryptolab's store and cache.",
        docs_url="/docs",
        redoc_url=None,
        static_url=DOCS_STATIC,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.api = state
    install_error_handlers(app)
    routers = [module.router for module in (candles, alerts, rules, webhooks, streams, health,
                                             api_metrics)]
    for router in routers:
        app.include_router(router)
    app.add_middleware(Guard, token=token,  # type: ignore[arg-type]
                       limiter=None if rate_limit is None else RateLimiter(rate_limit))
    if cors:
        app.add_middleware(CORSMiddleware, allow_origins=list(cors),  # type: ignore[arg-type]
                           allow_methods=["GET", "POST", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
    api_metrics.install_metrics(app, state, routers)  # outermost: it counts the guard's refusals too
    if token:
        _document_bearer(app)
    return app


def _version() -> str:
    try:
        return importlib.metadata.version("cryptolab")
    except importlib.metadata.PackageNotFoundError:  # a source tree that is not installed
        return "0+unknown"


def _document_bearer(app: FastAPI) -> None:
    """Say in ``/openapi.json`` that every route but the open ones takes a bearer token."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary,
                                 routes=app.routes)
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"}}
            for path, ops in schema.get("paths", {}).items():
                for op in ops.values():
                    op["security"] = [] if path in OPEN_PATHS else [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
