"""``GET /metrics`` of a real ``cryptolab serve`` process on PostgreSQL and Redis: requests counted
by route template (never the raw path, so hostile paths add no series), the guard's refusals
included, and the WebSocket clients connected, read from the hub when scraped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from api_harness import serve, unique_symbol, wait_until
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

pytest.importorskip("fastapi", reason="the API needs the api extra")

TOKEN = "metrics-s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _requests(text: str) -> dict[tuple[str, str], float]:
    """``(route, status) -> count`` of ``cryptolab_api_requests_total`` in a scrape."""
    return {(s.labels["route"], s.labels["status"]): s.value
            for f in text_string_to_metric_families(text) for s in f.samples
            if s.name == "cryptolab_api_requests_total"}


def _gauge(text: str, name: str) -> float | None:
    return next((s.value for f in text_string_to_metric_families(text) for s in f.samples
                 if s.name == name), None)


def test_serve_metrics_count_requests_by_route_template_and_websocket_clients(
        pg_url: str, redis_url: str, tmp_path: Path) -> None:
    with serve(tmp_path, "--store", pg_url, "--redis", redis_url, "--token", TOKEN) as server:
        assert server.get("/metrics").status_code == 401  # behind the token like the API
        symbols = [unique_symbol() for _ in range(3)]
        for sym in symbols:
            assert server.get(f"/api/v1/latest/{sym}/1m", headers=AUTH).status_code == 404
        assert server.get("/api/v1/symbols", headers=AUTH).status_code == 200
        assert server.get("/api/v1/symbols").status_code == 401
        assert server.get("/" + "x" * 5_000, headers=AUTH).status_code in (404, 414)
        assert server.get("/api/v1/latest/BTC';DROP TABLE candles;--/1m", headers=AUTH).status_code // 100 == 4

        async def scrape_with_clients() -> str:
            async with connect(f"{server.ws}/ws/candles?symbols={symbols[0]}&interval=1m&token={TOKEN}"), \
                       connect(f"{server.ws}/ws/alerts?token={TOKEN}"):
                def two() -> str | None:
                    text = server.get("/metrics", headers=AUTH).text
                    return text if _gauge(text, "cryptolab_api_websocket_clients") == 2 else None
                return await asyncio.to_thread(wait_until, two, 60, "two WebSocket clients in /metrics")

        text = asyncio.run(scrape_with_clients())
        counts = _requests(text)
        latest = "/api/v1/latest/{symbol:path}/{interval}"
        assert counts[(latest, "404")] == 3  # three symbols, one series
        assert counts[("/api/v1/symbols", "200")] == 1
        assert counts[("/api/v1/symbols", "401")] == 1  # refused before routing, named all the same
        assert ("/metrics", "401") in counts
        routes = {route for route, _status in counts}
        assert not any(sym in route for route in routes for sym in symbols)
        assert all(len(route) < 100 for route in routes), routes  # templates, never raw paths
        assert _gauge(text, "cryptolab_api_websocket_dropped_slow_clients_total") == 0
        assert _gauge(text, "cryptolab_api_request_duration_seconds_count") is not None
