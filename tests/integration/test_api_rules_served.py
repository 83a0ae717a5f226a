"""Rules written through a real ``cryptolab serve`` (PostgreSQL, Redis) fire through a real pipeline
(a Kafka topic on the real broker, the windowing consumer on the same store and cache): the rule's
alert is on ``GET /api/v1/alerts`` and pushed on ``WS /ws/alerts``, its webhook delivery on
``GET /api/v1/webhooks/deliveries``; a rule disabled or removed through the API does not fire."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from api_harness import health, serve, unique_symbol, wait_until
from fakes.webhook import WebhookReceiver
from websockets.asyncio.client import connect

from cryptolab.config import Settings
from cryptolab.kafka import ensure_topics
from cryptolab.models import Tick, encode_alert
from cryptolab.pipeline import CandlePipeline
from cryptolab.pipeline.webhooks import WebhookSender
from cryptolab.producer import TickProducer
from cryptolab.store import Store
from cryptolab.webhooks import alert_id

pytest.importorskip("fastapi", reason="the API needs the api extra")

T0 = 1_700_000_100_000
MIN = 60_000
#: Upper bound for any wait below (a bound, not a timing assertion).
DEADLINE_S = 120.0


def _ticks(symbol: str) -> list[Tick]:
    """20 minutes of ``symbol``, a trade a second: flat at 100, at 110 from the middle of minute 10."""
    return [Tick(symbol=symbol, ts_ms=T0 + i * 1_000, price=(100.0 if i < 630 else 110.0) + (i % 3) * 0.01,
                 size=1.0, source="t", trade_id=str(i)) for i in range(20 * 60)]


def _feed(kafka_bootstrap: str, topic: str, pg_url: str, redis_url: str, symbol: str) -> Settings:
    s = Settings.from_env({}, kafka_bootstrap=kafka_bootstrap, topic=topic, store_url=pg_url,
                          redis_url=redis_url, intervals="1m", webhook_backoff="50ms")
    ensure_topics(s, {topic: 2, topic + ".dlq": 1, topic + ".late": 1, "alerts": 1})
    with TickProducer(s) as producer:
        producer.send_many(_ticks(symbol))
    return s


async def _alerts_of(ws: Any, symbol: str, n: int) -> list[str]:
    """The first ``n`` alert frames of ``symbol`` (the alert channel is shared with other tests)."""
    got: list[str] = []
    while len(got) < n:
        frame = await asyncio.wait_for(ws.recv(), DEADLINE_S)
        if orjson.loads(frame)["symbol"] == symbol:
            got.append(str(frame))
    return got


def test_a_rule_posted_to_the_api_fires_through_the_pipeline_and_its_alert_is_served(
        kafka_bootstrap: str, unique_topic: str, pg_url: str, redis_url: str, tmp_path: Path) -> None:
    sym = unique_symbol()
    settings = _feed(kafka_bootstrap, unique_topic, pg_url, redis_url, sym)
    token = "tok-" + unique_symbol()
    auth = {"Authorization": f"Bearer {token}"}
    with WebhookReceiver() as hook, serve(tmp_path, "--store", pg_url, "--redis", redis_url,
                                          "--token", token, "--rate-limit", "0") as server:
        def post(body: dict[str, Any]) -> httpx.Response:
            return httpx.post(server.url + "/api/v1/rules", json=body, headers=auth, timeout=30)

        made = post({"id": "cross105", "kind": "cross_above", "params": {"level": 105}, "symbol": sym,
                     "interval": "1m", "severity": "HIGH", "webhook": hook.url})
        assert made.status_code == 201, made.text
        assert made.json()["webhook"].endswith("/***")
        # would fire on the same window, but is disabled, then removed, through the API
        assert post({"id": "jump", "kind": "move", "params": {"pct": 5}, "symbol": sym}).status_code == 201
        assert post({"id": "jump2", "kind": "move", "params": {"pct": 5}, "symbol": sym}).status_code == 201
        off = httpx.patch(server.url + "/api/v1/rules/jump", json={"enabled": False}, headers=auth, timeout=30)
        assert (off.status_code, off.json()["enabled"]) == (200, False)
        gone = httpx.delete(server.url + "/api/v1/rules/jump2", headers=auth, timeout=30)
        assert gone.status_code == 204
        listed = server.get("/api/v1/rules", headers=auth).json()
        assert [(r["id"], r["enabled"]) for r in listed["rules"]] == [("cross105", True), ("jump", False)]
        wait_until(lambda: health(server)["stream"]["subscribed"], 60, "the hub to subscribe")

        async def run() -> list[str]:
            async with connect(f"{server.ws}/ws/alerts", additional_headers=auth, open_timeout=60) as ws:
                pipeline = CandlePipeline(settings, scorer=None, group="api-rules", batch_size=500,
                                          batch_timeout=0.05)
                ran = asyncio.create_task(asyncio.to_thread(pipeline.run, stop_at_end=True))
                frames = await _alerts_of(ws, sym, 1)
                await ran
                return frames

        frames = asyncio.run(run())
        with Store(pg_url) as store:
            stored = store.alert_list(sym)
            assert [(a.detector, a.interval, a.window_start, a.severity) for a in stored] == [
                ("rule:cross105", "1m", T0 + 10 * MIN, "HIGH")]
            (alert,) = stored
            # the pushed frame is the alert as published (the store keeps features in its own key order)
            assert [orjson.loads(f) for f in frames] == [orjson.loads(encode_alert(alert))]
            served = server.get("/api/v1/alerts", params={"symbol": sym}, headers=auth).json()
            assert served["alerts"] == [orjson.loads(encode_alert(alert))]
            by_rule = server.get("/api/v1/alerts", params={"detector": "rule:cross105"}, headers=auth).json()
            assert by_rule["alerts"] == served["alerts"]

            def delivered() -> list[dict[str, Any]] | None:
                WebhookSender(store.webhooks, settings).drain(5)  # what the pipeline left due, if any
                body = server.get("/api/v1/webhooks/deliveries", headers=auth).json()
                rows = [d for d in body["deliveries"] if d["symbol"] == sym]
                return rows if rows and all(d["status"] == "delivered" for d in rows) else None

            (d,) = wait_until(delivered, DEADLINE_S, "the webhook delivery")
            assert (d["alert_id"], d["detector"], d["last_status"]) == (alert_id(alert), "rule:cross105", 200)
            assert d["url"].endswith("/***")
            assert set(hook.accepted) == {alert_id(alert)}
        assert "Traceback" not in server.stderr()
