"""``GET /metrics``: the API's Prometheus metrics, and the middleware that counts requests.

One registry per application (``app.state.metrics``): requests by route template, method and
status, their latency, and the WebSocket hub's clients and dropped slow clients, read from
the hub when scraped (:mod:`cryptolab.metrics.api`), plus the process's own metrics. Behind
the token like every route but ``/health``; left out of ``/openapi.json`` (it is not JSON).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from cryptolab.api.state import ApiState
from cryptolab.metrics import ApiMetrics, MetricsMiddleware, registry

__all__ = ["install_metrics", "router"]

router = APIRouter(tags=["metrics"])


def install_metrics(app: FastAPI, state: ApiState, routers: Sequence[APIRouter]) -> CollectorRegistry:
    """Give ``app`` a registry of its own and the middleware that counts its requests (call it
    after every other middleware is added: it must see their answers too).

    ``routers`` are those included in ``app`` (without a prefix): their routes name the
    requests a middleware answered before routing (401, 429) by their template too.
    """
    reg = registry()
    app.state.metrics = reg
    routes = [r for router in routers for r in router.routes]
    app.add_middleware(MetricsMiddleware, metrics=ApiMetrics(reg, hub=lambda: state.hub),  # type: ignore[arg-type]
                       routes=routes)
    return reg


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """The application's metrics in Prometheus' text format."""
    reg: CollectorRegistry = request.app.state.metrics
    body = await run_in_threadpool(generate_latest, reg)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
