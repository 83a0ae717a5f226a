"""schemathesis against a real ``cryptolab serve``'s ``/openapi.json`` (PostgreSQL and Redis): for
every operation, valid and invalid requests generated from the schema get no 5xx and no answer
that the schema does not describe (status, content type, headers, body)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from api_harness import candle, serve

from cryptolab.store import Store

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
#: Examples per operation and mode: 5 operations x 2 modes x 30 stays well under a minute.
EXAMPLES = 30


def test_every_answer_keeps_to_the_schema(pg_url: str, redis_url: str, tmp_path: Path) -> None:
    store = Store(pg_url)
    store.init()
    store.commit_batch(group="g", topic="t", candles=[candle("BTC-USD", i) for i in range(5)])
    store.close()
    with serve(tmp_path, "--store", pg_url, "--redis", redis_url, "--rate-limit", "0") as server:
        schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.path for op in operations} == {
            "/api/v1/symbols", "/api/v1/candles/{symbol}/{interval}",
            "/api/v1/latest/{symbol}/{interval}", "/api/v1/alerts", "/health"}
        calls = 0
        for op in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @given(case=op.as_strategy(mode))
                @settings(max_examples=EXAMPLES, deadline=None, database=None,
                          phases=[Phase.explicit, Phase.generate],
                          suppress_health_check=list(HealthCheck))
                def check(case: Any) -> None:
                    nonlocal calls
                    calls += 1
                    case.call_and_validate(checks=CHECKS, timeout=60)

                try:
                    check()
                except Unsatisfiable:  # no parameter to make invalid (symbols, health)
                    assert mode is GenerationMode.NEGATIVE and op.path in ("/api/v1/symbols", "/health")
        assert calls >= len(operations)
        assert "Traceback" not in server.stderr()
