"""``GET /health``: each dependency's state; 503 when the store does not answer.

Open to all (no token, no rate limit), for load balancers and orchestrators. The cache being
down degrades the API (no live updates; ``latest`` falls back to the store) but does not fail
the check.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from cryptolab.api.errors import ERROR_RESPONSES
from cryptolab.api.params import reject_unknown_query
from cryptolab.api.schemas import HealthOut
from cryptolab.api.state import ApiState, State
from cryptolab.errors import CryptolabError

__all__ = ["health_report", "router"]

router = APIRouter(tags=["health"], dependencies=[Depends(reject_unknown_query)])


def health_report(state: ApiState) -> dict[str, Any]:
    """The health document (blocking: it asks the store and the cache)."""
    store: dict[str, Any] = {"ok": True, "backend": state.store.dialect, "detail": None}
    try:
        if state.store.schema_version() is None:
            store["detail"] = "no cryptolab tables yet"
    except CryptolabError as exc:
        store.update(ok=False, detail=str(exc))
    cache_ok = state.cache.ping()
    cache = {"ok": cache_ok, "backend": type(state.cache).__name__,
             "detail": None if cache_ok else "does not answer PING"}
    hub = state.hub
    status = "down" if not store["ok"] else "ok" if cache_ok and hub.subscribed else "degraded"
    return {"status": status, "store": store, "cache": cache,
            "stream": {"subscribed": hub.subscribed, "clients": hub.clients,
                       "dropped_slow": hub.dropped_slow}}


@router.get("/health", response_model=HealthOut, summary="Health of the API and its dependencies",
            responses={503: {"model": HealthOut, "description": "the store does not answer"},
                       422: ERROR_RESPONSES[422]})
async def health(state: State) -> Response:
    """200 with each dependency's state, or 503 (same body) when the store does not answer."""
    report = await run_in_threadpool(health_report, state)
    return Response(orjson.dumps(report), status_code=503 if report["status"] == "down" else 200,
                    media_type="application/json")
