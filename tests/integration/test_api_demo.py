"""``cryptolab serve --demo``: a live synthetic session in the same process, served as it runs
(embedded Kafka, SQLite and the in-process cache: no services needed)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from api_harness import health, serve, wait_until
from websockets.asyncio.client import connect

pytest.importorskip("fastapi", reason="the API needs the api extra")


def test_serve_demo_serves_a_live_market(tmp_path: Path) -> None:
    with serve(tmp_path, "--demo", "--demo-symbols", "2", "--speed", "120") as server:
        series = wait_until(lambda: server.get("/api/v1/symbols").json()["series"], 180,
                            "the demo's first candles in the store")
        symbol = series[0]["symbol"]
        latest = server.get(f"/api/v1/latest/{symbol}/1m")
        assert latest.status_code == 200 and latest.json()["symbol"] == symbol
        assert health(server)["cache"]["backend"] == "MemoryCache"

        async def first_update() -> dict[str, object]:
            async with connect(f"{server.ws}/ws/candles?symbols={symbol}&interval=1m",
                               open_timeout=60) as ws:
                return dict(orjson.loads(await asyncio.wait_for(ws.recv(), 120)))

        update = asyncio.run(first_update())
        assert (update["symbol"], update["interval"], update["v"]) == (symbol, "1m", 1)
