"""REST route of the webhook outbox: ``/api/v1/webhooks/deliveries`` (status of each POST).

What ``cryptolab rules deliveries --json`` prints: one row per (rule alert, URL), with its
status (``pending``, ``delivered``, ``failed``), attempts and last error; the URL shown as
``scheme://host/***`` and the body left out (the alert is on ``/api/v1/alerts``).

Examples
--------
>>> from starlette.testclient import TestClient
>>> from cryptolab.api import create_app
>>> from cryptolab.store import Store
>>> with TestClient(create_app(store=Store("sqlite://"))) as http:
...     http.get("/api/v1/webhooks/deliveries", params={"status": "failed"}).json()
...     http.get("/api/v1/webhooks/deliveries", params={"status": "lost"}).json()["field"]
{'count': 0, 'counts': {}, 'deliveries': []}
'status'
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query

from cryptolab.api.errors import ERROR_RESPONSES
from cryptolab.api.params import MAX_LIMIT, reject_unknown_query
from cryptolab.api.schemas import DeliveriesOut
from cryptolab.api.state import State
from cryptolab.config import redact_webhook

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["rules"], responses=ERROR_RESPONSES,
                   dependencies=[Depends(reject_unknown_query)])

_FIELDS = ("id", "alert_id", "symbol", "interval", "window_start", "detector", "format", "status",
           "attempts", "next_attempt_ms", "last_status", "last_error", "created_ms", "delivered_ms")


@router.get("/webhooks/deliveries", response_model=DeliveriesOut, summary="Webhook deliveries of rule alerts")
def deliveries(
    state: State,
    status: Literal["pending", "delivered", "failed"] | None = Query(None, description="only this status"),
    limit: int = Query(100, ge=1, le=MAX_LIMIT, description="the newest N"),
) -> dict[str, Any]:
    """The newest ``limit`` deliveries (of ``status``), oldest first, and the counts per status."""
    rows = state.store.webhooks.list(status=status, limit=limit)
    items = [{k: getattr(d, k) for k in _FIELDS} | {"url": redact_webhook(d.url)} for d in rows]
    return {"count": len(items), "counts": state.store.webhooks.counts(), "deliveries": items}
