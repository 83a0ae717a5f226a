"""REST route of the alerts: ``/api/v1/alerts`` (stored alerts, filtered)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from cryptolab.api.encode import json_array
from cryptolab.api.errors import ERROR_RESPONSES
from cryptolab.api.params import (
    MAX_LIMIT,
    DetectorQuery,
    IntervalQuery,
    SymbolQuery,
    detector_param,
    interval_param,
    no_unknown_query,
    symbol_param,
    time_param,
)
from cryptolab.api.schemas import AlertsOut
from cryptolab.api.state import State
from cryptolab.models import encode_alert

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["alerts"], responses=ERROR_RESPONSES,
                   dependencies=[Depends(no_unknown_query)])


@router.get("/alerts", response_model=AlertsOut, summary="Stored alerts")
def alerts(
    state: State,
    symbol: SymbolQuery = None,
    interval: IntervalQuery = None,
    detector: DetectorQuery = None,
    start: str | None = Query(None, description="first window_start: ISO-8601 or epoch ms"),
    end: str | None = Query(None, description="end (exclusive) of window_start: ISO-8601 or epoch ms"),
    limit: int = Query(1000, ge=1, le=MAX_LIMIT, description="the most recent N"),
) -> Response:
    """Alerts with ``window_start`` in ``[start, end)``, ascending by ``(window_start, symbol,
    interval, detector)``; the most recent ``limit`` (default 1,000, at most 10,000)."""
    found = state.store.alert_list(
        None if symbol is None else symbol_param(symbol),
        None if interval is None else interval_param(interval),
        time_param(start, "start"), time_param(end, "end"),
        detector=detector_param(detector), limit=limit,
    )
    items = [encode_alert(a) for a in found]
    body = b'{"count":%d,"alerts":' % len(items) + json_array(items) + b"}"
    return Response(body, media_type="application/json")
