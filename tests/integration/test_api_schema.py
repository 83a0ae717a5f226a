"""schemathesis against a real ``cryptolab serve``'s ``/openapi.json`` (PostgreSQL and Redis): for
every operation (the rule routes' writes included), valid and invalid requests generated from the
schema get no 5xx and no answer that the schema does not describe (status, content type, headers,
body)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from api_harness import candle, serve

from cryptolab.models.rules import Rule
from cryptolab.store import Store
from cryptolab.store.outbox import insert_deliveries
from cryptolab.store.records import WebhookDelivery

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi", reason="the API needs the api extra")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
#: Examples per operation and mode: 10 operations x 2 modes x 30 stays about a minute; it also
#: bounds what POST /api/v1/rules writes (at most 30 rules a run, in the test's own database).
EXAMPLES = 30


def test_every_answer_keeps_to_the_schema(pg_url: str, redis_url: str, tmp_path: Path) -> None:
    store = Store(pg_url)
    store.init()
    store.commit_batch(group="g", topic="t", candles=[candle("BTC-USD", i) for i in range(5)])
    store.rules.add(Rule(id="btc-40k", kind="cross_above", params={"level": 40_000}, symbol="BTC-USD",
                         webhook="https://hooks.slack.com/services/T/B/x", webhook_format="slack"))
    with store._write() as conn:  # one delivery of each status for the deliveries' answers
        insert_deliveries(store.webhooks.db, conn, [WebhookDelivery(
            alert_id=f"a{i}", symbol="BTC-USD", interval="1m", window_start=i * 60_000,
            detector="rule:btc-40k", url="http://127.0.0.1:9/hook", format="json", body="{}")
            for i in range(3)], now_ms=1_000)
    store.webhooks.settle(1, ok=True, status=200, error=None, next_attempt_ms=None, now_ms=1_100)
    store.webhooks.settle(2, ok=False, status=500, error="HTTP 500", next_attempt_ms=None, now_ms=1_200)
    store.close()
    with serve(tmp_path, "--store", pg_url, "--redis", redis_url, "--rate-limit", "0") as server:
        schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {(op.method.upper(), op.path) for op in operations} == {
            ("GET", "/api/v1/symbols"), ("GET", "/api/v1/candles/{symbol}/{interval}"),
            ("GET", "/api/v1/latest/{symbol}/{interval}"), ("GET", "/api/v1/alerts"),
            ("GET", "/api/v1/rules"), ("POST", "/api/v1/rules"), ("PATCH", "/api/v1/rules/{id}"),
            ("DELETE", "/api/v1/rules/{id}"), ("GET", "/api/v1/webhooks/deliveries"), ("GET", "/health")}
        calls = 0
        statuses: dict[tuple[str, str], set[int]] = {}
        for op in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @given(case=op.as_strategy(mode))
                @settings(max_examples=EXAMPLES, deadline=None, database=None,
                          phases=[Phase.explicit, Phase.generate],
                          suppress_health_check=list(HealthCheck))
                def check(case: Any) -> None:
                    nonlocal calls
                    calls += 1
                    response = case.call_and_validate(checks=CHECKS, timeout=60)
                    key = (case.operation.method.upper(), case.operation.path)
                    statuses.setdefault(key, set()).add(response.status_code)

                try:
                    check()
                except Unsatisfiable:  # no parameter to make invalid (symbols, health)
                    assert mode is GenerationMode.NEGATIVE and op.path in ("/api/v1/symbols", "/health")
        assert calls >= len(operations)
        # a random body is seldom a valid rule (a kind's parameters, an interval dividing a day):
        # the schema's example rules are posted too, so the 201 answer is checked on every run
        post = next(op for op in operations if (op.method.upper(), op.path) == ("POST", "/api/v1/rules"))
        examples = post.definition.raw["requestBody"]["content"]["application/json"]["examples"]
        assert len(examples) >= 3
        for example in examples.values():
            created = post.Case(body=example["value"], media_type="application/json")
            assert created.call_and_validate(checks=CHECKS, timeout=60).status_code == 201
        assert "Traceback" not in server.stderr()
    assert 422 in statuses[("POST", "/api/v1/rules")]
    with Store(pg_url) as store:  # what the generated bodies wrote is bounded by the examples
        assert len(examples) + 1 <= len(store.rules.list()) <= len(examples) + 1 + 2 * EXAMPLES
