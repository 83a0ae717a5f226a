"""cryptolab's HTTP API: REST and WebSocket access to the store and the cache (FastAPI).

``cryptolab serve`` runs it on uvicorn; :func:`create_app` builds the ASGI application for
any other server or for tests. Routes (README "HTTP API"): ``/api/v1/symbols``,
``/api/v1/candles/{symbol}/{interval}``, ``/api/v1/latest/{symbol}/{interval}``,
``/api/v1/alerts``, ``/api/v1/rules``, ``/api/v1/webhooks/deliveries``, ``/ws/candles``,
``/ws/alerts``, ``/health``, ``/docs``, ``/openapi.json``.

Modules: ``app`` (the factory), one router per concern (``candles``, ``alerts``, ``rules``,
``webhooks``, ``streams``, ``health``), ``fanout`` (the process's one cache subscription,
fanned out to WebSocket clients), ``guard`` (bearer token, rate limit), ``ratelimit`` (token buckets), ``params``
(what a request may name), ``errors`` (the one JSON error shape), ``schemas`` (the JSON
shapes), ``encode``, ``state``.

Needs the ``api`` extra (``pip install 'cryptolab[api]'``).
"""

from __future__ import annotations

from cryptolab.api.app import API_PREFIX, create_app
from cryptolab.api.fanout import SLOW_CLIENT_CLOSE
from cryptolab.api.ratelimit import DEFAULT_RATE_LIMIT, RateLimit

__all__ = ["API_PREFIX", "DEFAULT_RATE_LIMIT", "SLOW_CLIENT_CLOSE", "RateLimit", "create_app"]
