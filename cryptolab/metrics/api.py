"""The HTTP API's metrics: requests by route template and status, latency, WebSocket clients.

:class:`ApiMetrics` holds the per-request counter and histogram (one observation per
request, never per candle) in a given registry, and reads the WebSocket hub's counters at
scrape time; :class:`MetricsMiddleware` is the ASGI middleware that observes each request.
The ``route`` label is the route's template (``/api/v1/candles/{symbol}/{interval}``), never
the raw path, and ``<unmatched>`` for a path no route matches: its values are bounded by
the routes the application has, whatever clients ask for.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:  # pragma: no cover
    from prometheus_client import Metric

__all__ = ["UNMATCHED", "ApiMetrics", "MetricsMiddleware"]

#: The ``route`` label of requests no route matched.
UNMATCHED = "<unmatched>"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Hub(Protocol):
    """What the WebSocket fan-out offers: its client count and the slow clients it dropped."""

    @property
    def clients(self) -> int: ...

    dropped_slow: int


class _HubCollector(Collector):
    def __init__(self, hub: Callable[[], _Hub | None]) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        hub = self.hub()
        clients = GaugeMetricFamily("cryptolab_api_websocket_clients",
                                    "WebSocket clients connected now")
        dropped = CounterMetricFamily("cryptolab_api_websocket_dropped_slow_clients",
                                      "WebSocket clients dropped for being too slow")
        if hub is not None:
            clients.add_metric([], float(hub.clients))
            dropped.add_metric([], float(hub.dropped_slow))
        yield clients
        yield dropped


class ApiMetrics:
    """The API's metrics in ``registry``.

    Parameters
    ----------
    registry
        Where they are registered (one registry per application).
    hub
        ``f()`` returning the WebSocket hub (or ``None`` while there is none), read at scrape
        time for ``cryptolab_api_websocket_clients`` and ``..._dropped_slow_clients_total``.

    Examples
    --------
    >>> from cryptolab.metrics import registry
    >>> reg = registry(process=False)
    >>> metrics = ApiMetrics(reg)
    >>> metrics.observe("/api/v1/latest/{symbol}/{interval}", "GET", 404, 0.002)
    >>> reg.get_sample_value("cryptolab_api_requests_total",
    ...     {"route": "/api/v1/latest/{symbol}/{interval}", "method": "GET", "status": "404"})
    1.0
    """

    def __init__(self, registry: CollectorRegistry, hub: Callable[[], _Hub | None] | None = None) -> None:
        self.requests = Counter("cryptolab_api_requests", "HTTP requests answered, by route "
                                "template, method and status", ["route", "method", "status"],
                                registry=registry)
        self.latency = Histogram("cryptolab_api_request_duration_seconds",
                                 "Seconds from a request's arrival to its answer's end, by route "
                                 "template and method", ["route", "method"], registry=registry)
        if hub is not None:
            registry.register(_HubCollector(hub))

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)


class MetricsMiddleware:
    """ASGI middleware: every HTTP request counted in ``metrics`` by route template and status.

    WebSockets pass through (the hub counts them). A request whose application raised
    counts as status 500.

    Parameters
    ----------
    app
        The application (or the next middleware).
    metrics
        Where requests are counted.
    routes
        The application's routes (Starlette's ``app.routes``), to name the route of a request
        answered before routing (a middleware's 401 or 429): the template of the first route
        that matches it fully. Without them, such requests count as ``<unmatched>``.
    """

    def __init__(self, app: ASGIApp, metrics: ApiMetrics, routes: Sequence[Any] = ()) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    def _template(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:
            for candidate in self.routes:
                match, _child = candidate.matches(scope)
                if match.name == "FULL":  # starlette.routing.Match.FULL
                    route = candidate
                    break
        return getattr(route, "path", None) or UNMATCHED

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.observe(self._template(scope), str(scope.get("method", "GET")), status,
                                 time.perf_counter() - started)
