"""The rules routes of the HTTP API in process (SQLite): ``/api/v1/rules`` (list, add, enable,
remove) and ``/api/v1/webhooks/deliveries``, their refusals, and what they leave in the store."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cryptolab.models import Alert
from cryptolab.models.rules import Rule
from cryptolab.store import Store
from cryptolab.store.outbox import insert_deliveries
from cryptolab.store.records import WebhookDelivery

pytest.importorskip("fastapi", reason="the API needs the api extra")

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # starlette's testclient on httpx
    from starlette.testclient import TestClient

from cryptolab.api import create_app
from cryptolab.api.rules import rule_json

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SLACK = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{(tmp_path / 'api.db').as_posix()}")
    s.init()
    yield s
    s.close()


@pytest.fixture
def http(store: Store) -> Iterator[TestClient]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # starlette's testclient on httpx
        with TestClient(create_app(store=store, token=TOKEN, rate_limit=None), headers=AUTH,
                        raise_server_exceptions=False) as client:
            yield client


def test_a_posted_rule_is_stored_and_listed_as_the_rule_model_says(http: TestClient, store: Store) -> None:
    body = {"id": "btc-40k", "kind": "cross_above", "params": {"level": 40000}, "symbol": "BTC-USD",
            "interval": "60s", "severity": "HIGH", "created": 1_700_000_000_000}
    r = http.post("/api/v1/rules", json=body)
    assert r.status_code == 201, r.text
    stored = store.rules.get("btc-40k")
    assert stored == Rule.from_dict(body)  # the Rule model's reading: 60s is 1m, level a float
    assert r.json() == rule_json(stored)
    assert r.json()["interval"] == "1m" and r.json()["detector"] == "rule:btc-40k"

    default = http.post("/api/v1/rules", json={"kind": "move", "params": {"pct": 2.5, "candles": 3}})
    assert default.status_code == 201, default.text
    made = default.json()
    assert made["params"] == {"pct": 2.5, "candles": 3, "direction": "any"}
    assert (made["symbol"], made["interval"], made["enabled"], made["severity"]) == ("*", "1m", True, "MEDIUM")
    assert store.rules.get(made["id"]) is not None and made["created"] > 1_700_000_000_000

    off = http.post("/api/v1/rules", json={"id": "quiet", "kind": "volume_spike", "params": {"factor": 4},
                                           "enabled": False})
    assert off.status_code == 201
    listed = http.get("/api/v1/rules").json()
    assert listed == {"count": 3, "rules": [rule_json(x) for x in store.rules.list()]}
    assert [x["id"] for x in http.get("/api/v1/rules", params={"enabled": "false"}).json()["rules"]] == ["quiet"]
    assert {x["id"] for x in http.get("/api/v1/rules", params={"enabled": "true"}).json()["rules"]} == {
        "btc-40k", made["id"]}


def test_a_rules_webhook_is_kept_whole_and_answered_redacted(http: TestClient, store: Store) -> None:
    r = http.post("/api/v1/rules", json={"id": "hook", "kind": "move", "params": {"pct": 1},
                                         "webhook": SLACK, "webhook_format": "slack"})
    assert r.status_code == 201
    assert r.json()["webhook"] == "https://hooks.slack.com/***"
    assert "SECRET" not in http.get("/api/v1/rules").text
    stored = store.rules.get("hook")
    assert stored is not None and stored.webhook == SLACK and stored.webhook_format == "slack"


def test_an_id_in_use_is_409_and_changes_nothing(http: TestClient, store: Store) -> None:
    first = {"id": "dup", "kind": "cross_below", "params": {"level": 3}}
    assert http.post("/api/v1/rules", json=first).status_code == 201
    r = http.post("/api/v1/rules", json={"id": "dup", "kind": "move", "params": {"pct": 9}})
    assert r.status_code == 409
    assert r.json() == {"error": "conflict", "message": "a rule with id 'dup' exists already", "field": "id"}
    (only,) = store.rules.list()
    assert only.kind == "cross_below"


BAD_BODIES: list[tuple[Any, str]] = [
    # (body, field named)
    (None, "body"),
    ("not json", "body"),
    ([], "body"),
    ({"params": {"level": 1}}, "kind"),
    ({"kind": "fly", "params": {}}, "kind"),
    ({"kind": "move"}, "params"),
    ({"kind": "move", "params": {}}, "params.pct"),
    ({"kind": "move", "params": {"pct": -1}}, "params.pct"),
    ({"kind": "move", "params": {"pct": "5"}}, "params.pct"),
    ({"kind": "move", "params": {"pct": True}}, "params.pct"),
    ({"kind": "move", "params": {"pct": 5, "candles": 0}}, "params.candles"),
    ({"kind": "move", "params": {"pct": 5, "candles": 2.5}}, "params.candles"),
    ({"kind": "move", "params": {"pct": 5, "direction": "sideways"}}, "params.direction"),
    ({"kind": "move", "params": {"level": 5}}, "params"),
    ({"kind": "move", "params": {"pct": 5, "colour": "red"}}, "params.colour"),
    ({"kind": "cross_above", "params": {}}, "params.level"),
    ({"kind": "volume_spike", "params": {"factor": 2, "lookback": 5000}}, "params.lookback"),
    ({"kind": "move", "params": {"pct": 5}, "symbol": "BTC';DROP TABLE rules;--"}, "symbol"),
    ({"kind": "move", "params": {"pct": 5}, "symbol": "btc-usd"}, "symbol"),
    ({"kind": "move", "params": {"pct": 5}, "interval": "7x"}, "interval"),
    ({"kind": "move", "params": {"pct": 5}, "interval": "7m"}, "interval"),
    ({"kind": "move", "params": {"pct": 5}, "id": "x" * 41}, "id"),
    ({"kind": "move", "params": {"pct": 5}, "id": "a b"}, "id"),
    ({"kind": "move", "params": {"pct": 5}, "id": 7}, "id"),
    ({"kind": "move", "params": {"pct": 5}, "severity": "URGENT"}, "severity"),
    ({"kind": "move", "params": {"pct": 5}, "enabled": "yes"}, "enabled"),
    ({"kind": "move", "params": {"pct": 5}, "created": -1}, "created"),
    ({"kind": "move", "params": {"pct": 5}, "created": 10**30}, "created"),
    ({"kind": "move", "params": {"pct": 5}, "webhook": "file:///etc/passwd"}, "webhook"),
    ({"kind": "move", "params": {"pct": 5}, "webhook": "http://"}, "webhook"),
    ({"kind": "move", "params": {"pct": 5}, "webhook": "https://x/" + "a" * 5000}, "webhook"),
    ({"kind": "move", "params": {"pct": 5}, "webhook_format": "teams"}, "webhook_format"),
    ({"kind": "move", "params": {"pct": 5}, "colour": "red"}, "colour"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
def test_a_bad_rule_is_422_naming_the_field_and_writes_nothing(
        http: TestClient, store: Store, body: Any, field: str) -> None:
    if body is None:
        r = http.post("/api/v1/rules")
    elif isinstance(body, str):
        r = http.post("/api/v1/rules", content=body, headers={"Content-Type": "application/json"})
    else:
        r = http.post("/api/v1/rules", json=body)
    assert r.status_code == 422, r.text
    got = r.json()
    assert (got["error"], got["field"]) == ("bad_request", field)
    assert got["message"]
    assert store.rules.list() == []


def test_nan_and_infinite_parameters_are_refused(http: TestClient, store: Store) -> None:
    for number in ("NaN", "Infinity", "1e999"):
        r = http.post("/api/v1/rules", content='{"kind": "move", "params": {"pct": ' + number + "}}",
                      headers={"Content-Type": "application/json"})
        assert (r.status_code, r.json()["field"]) == (422, "params.pct"), number
    assert store.rules.list() == []


def test_patch_enables_and_disables_and_delete_removes(http: TestClient, store: Store) -> None:
    http.post("/api/v1/rules", json={"id": "r1", "kind": "move", "params": {"pct": 1}})
    r = http.patch("/api/v1/rules/r1", json={"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert r.json() == rule_json(store.rules.get("r1"))  # type: ignore[arg-type]
    assert store.rules.list(enabled=True) == []
    assert http.patch("/api/v1/rules/r1", json={"enabled": True}).json()["enabled"] is True
    assert store.rules.list(enabled=True)[0].id == "r1"
    bad = http.patch("/api/v1/rules/r1", json={"enabled": "off"})
    assert (bad.status_code, bad.json()["field"]) == (422, "enabled")
    extra = http.patch("/api/v1/rules/r1", json={"enabled": False, "kind": "move"})
    assert (extra.status_code, extra.json()["field"]) == (422, "kind")
    assert store.rules.get("r1").enabled is True  # type: ignore[union-attr]
    missing = http.patch("/api/v1/rules/nope", json={"enabled": True})
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")

    gone = http.delete("/api/v1/rules/r1")
    assert (gone.status_code, gone.content) == (204, b"")
    assert store.rules.list() == []
    again = http.delete("/api/v1/rules/r1")
    assert (again.status_code, again.json()["field"]) == (404, "id")


@pytest.mark.parametrize("path", ["x" * 5000, "%00", "a%20b", "BTC';DROP TABLE rules;--"])
def test_a_hostile_rule_id_in_the_path_is_422(http: TestClient, store: Store, path: str) -> None:
    http.post("/api/v1/rules", json={"id": "keep", "kind": "move", "params": {"pct": 1}})
    for r in (http.delete(f"/api/v1/rules/{path}"), http.patch(f"/api/v1/rules/{path}", json={"enabled": False})):
        assert (r.status_code, r.json()["field"]) == (422, "id"), r.text
    assert [x.id for x in store.rules.list(enabled=True)] == ["keep"]


def test_unknown_query_parameters_and_bad_filters_are_422(http: TestClient) -> None:
    for path, field in [("/api/v1/rules?enabled=maybe", "enabled"), ("/api/v1/rules?kind=move", "kind"),
                        ("/api/v1/webhooks/deliveries?status=lost", "status"),
                        ("/api/v1/webhooks/deliveries?limit=0", "limit"),
                        ("/api/v1/webhooks/deliveries?limit=10001", "limit"),
                        ("/api/v1/webhooks/deliveries?url=x", "url")]:
        r = http.get(path)
        assert (r.status_code, r.json()["field"]) == (422, field), path


def test_the_token_guards_the_rule_routes(store: Store) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with TestClient(create_app(store=store, token=TOKEN, rate_limit=None)) as anon:
            calls = [anon.get("/api/v1/rules"), anon.get("/api/v1/webhooks/deliveries"),
                     anon.post("/api/v1/rules", json={"id": "x", "kind": "move", "params": {"pct": 1}}),
                     anon.post("/api/v1/rules", json={"id": "y", "kind": "move", "params": {"pct": 1}},
                               headers={"Authorization": "Bearer wrong"}),
                     anon.delete("/api/v1/rules/x"), anon.patch("/api/v1/rules/x", json={"enabled": False})]
    assert [r.status_code for r in calls] == [401] * len(calls)
    assert store.rules.list() == []


def _delivery(i: int, url: str) -> WebhookDelivery:
    return WebhookDelivery(alert_id=f"a{i}", symbol="BTC-USD", interval="1m", window_start=i * 60_000,
                           detector="rule:r", url=url, format="json", body="{}")


def test_deliveries_are_listed_with_their_status_and_the_url_redacted(http: TestClient, store: Store) -> None:
    with store._write() as conn:
        insert_deliveries(store.webhooks.db, conn, [_delivery(i, SLACK) for i in range(3)], now_ms=1_000)
    store.webhooks.settle(1, ok=True, status=200, error=None, next_attempt_ms=None, now_ms=1_100)
    store.webhooks.settle(2, ok=False, status=500, error="HTTP 500", next_attempt_ms=None, now_ms=1_200)
    body = http.get("/api/v1/webhooks/deliveries").json()
    assert body["counts"] == store.webhooks.counts() == {"delivered": 1, "failed": 1, "pending": 1}
    assert [(d["id"], d["status"], d["attempts"]) for d in body["deliveries"]] == [
        (1, "delivered", 1), (2, "failed", 1), (3, "pending", 0)]
    assert {d["url"] for d in body["deliveries"]} == {"https://hooks.slack.com/***"}
    assert "SECRET" not in http.get("/api/v1/webhooks/deliveries").text
    failed = http.get("/api/v1/webhooks/deliveries", params={"status": "failed"}).json()
    assert failed["count"] == 1
    (d,) = failed["deliveries"]
    assert (d["alert_id"], d["last_status"], d["last_error"], d["delivered_ms"]) == ("a1", 500, "HTTP 500", None)
    newest = http.get("/api/v1/webhooks/deliveries", params={"limit": 2}).json()
    assert [x["id"] for x in newest["deliveries"]] == [2, 3] and newest["counts"]["pending"] == 1


def test_a_rules_alerts_can_be_filtered_by_its_detector(http: TestClient, store: Store) -> None:
    alerts = [Alert(symbol="BTC-USD", interval="1m", window_start=1_700_000_040_000 + i * 60_000,
                    detector=d, severity="HIGH", score=1.0, ts_ms=1_700_000_100_000 + i * 60_000,
                    features={}) for i, d in enumerate(["rule:btc-40k", "zscore", "rule:other"])]
    store.commit_batch(group="g", topic="t", candles=[], alerts=alerts)
    got = http.get("/api/v1/alerts", params={"detector": "rule:btc-40k"}).json()
    assert [a["detector"] for a in got["alerts"]] == ["rule:btc-40k"]


def test_the_schema_describes_the_rule_routes(http: TestClient) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    assert set(paths["/api/v1/rules"]) == {"get", "post"}
    assert set(paths["/api/v1/rules/{id}"]) == {"patch", "delete"}
    post = paths["/api/v1/rules"]["post"]
    assert {"201", "409", "422", "401"} <= set(post["responses"])
    assert post["requestBody"]["required"] is True
    assert "204" in paths["/api/v1/rules/{id}"]["delete"]["responses"]
    assert paths["/api/v1/webhooks/deliveries"]["get"]["security"] == [{"bearer": []}]


def test_a_body_that_is_not_utf8_is_422_body(http: TestClient, store: Store) -> None:
    r = http.post("/api/v1/rules", content=b'\xa3X"\xff', headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()["error"], r.json()["field"]) == (422, "bad_request", "body")
    assert store.rules.list() == []


def _rule_padded_to(size: int) -> bytes:
    """A valid rule's JSON, padded with spaces (still valid JSON) to ``size`` bytes."""
    body = b'{"id": "big", "kind": "cross_above", "params": {"level": 1}}'
    return body + b" " * (size - len(body))


def test_a_body_over_the_limit_is_413_and_writes_nothing(http: TestClient, store: Store) -> None:
    from cryptolab.api.guard import MAX_BODY_BYTES

    json_type = {"Content-Type": "application/json"}
    r = http.post("/api/v1/rules", content=_rule_padded_to(MAX_BODY_BYTES + 1), headers=json_type)
    assert r.status_code == 413 and r.json()["error"] == "too_large", r.text
    assert str(MAX_BODY_BYTES)[:2] in r.json()["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the size shows only while reading
        body = _rule_padded_to(2 * MAX_BODY_BYTES)
        yield from (body[i:i + 8192] for i in range(0, len(body), 8192))

    r = http.post("/api/v1/rules", content=chunks(), headers=json_type)
    assert r.status_code == 413 and r.json()["error"] == "too_large", r.text
    assert store.rules.list() == []
    at_limit = http.post("/api/v1/rules", content=_rule_padded_to(MAX_BODY_BYTES), headers=json_type)
    assert at_limit.status_code == 201, at_limit.text  # the limit itself is accepted
    assert [rule.id for rule in store.rules.list()] == ["big"]
