"""Rules through a real pipeline (embedded mock cluster, SQLite) and webhooks to a local endpoint.

* each rule fires once per window it holds on, in the batch that stores the candle; a replay of
  the topic by another group adds no alert and no delivery;
* an endpoint that fails then succeeds gets each alert once (per idempotency key), signed;
* an endpoint that never answers does not hold the consumer up: its deliveries wait in the outbox;
* a delivery whose attempts run out is marked failed.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from fakes.webhook import WebhookReceiver
from faults.harness import embedded_topic, wait_until

from cryptolab.config import Settings
from cryptolab.models import Tick, encode_tick
from cryptolab.models.rules import Rule
from cryptolab.pipeline import CandlePipeline
from cryptolab.pipeline.webhooks import WebhookSender
from cryptolab.store import Store
from cryptolab.webhooks import SIGNATURE_HEADER, alert_id, verify

T0 = 1_700_000_100_000  # a 5-minute boundary
MIN = 60_000
SECRET = "whsec-test"


def _ticks() -> list[Tick]:
    """20 minutes of BTC-USD, a trade a second: flat at 100, +10% in the middle of minute 10,
    ten times the volume in minute 15."""
    out = []
    for i in range(20 * 60):
        price = 100.0 + (i % 3) * 0.01 if i < 630 else 110.0 + (i % 3) * 0.01
        size = 10.0 if 900 <= i < 960 else 1.0
        out.append(Tick(symbol="BTC-USD", ts_ms=T0 + i * 1_000, price=price, size=size, source="t", trade_id=str(i)))
    return out


RULES = [
    Rule(id="cross105", kind="cross_above", params={"level": 105}, symbol="BTC-USD", interval="1m"),
    Rule(id="jump", kind="move", params={"pct": 5, "direction": "up"}, interval="1m", severity="HIGH"),
    Rule(id="jump5m", kind="move", params={"pct": 5}, interval="5m"),
    Rule(id="vol", kind="volume_spike", params={"factor": 5, "lookback": 5}, interval="1m"),
    Rule(id="eth", kind="move", params={"pct": 0.001}, symbol="ETH-USD"),  # another symbol: silent
]
EXPECTED = {("rule:cross105", "1m", T0 + 10 * MIN), ("rule:jump", "1m", T0 + 10 * MIN),
            ("rule:jump5m", "5m", T0 + 10 * MIN), ("rule:vol", "1m", T0 + 15 * MIN)}


def _setup(tmp: Path, **settings: Any) -> tuple[Settings, Store]:
    s = embedded_topic(tmp, [(t.symbol.encode(), encode_tick(t)) for t in _ticks()], "rules")
    s = replace(s, intervals=("1m", "5m"), webhook_secret=SECRET, webhook_backoff_ms=20, **settings)
    store = Store(f"sqlite:///{(tmp / 'rules.db').as_posix()}")
    store.init()
    for r in RULES:
        store.rules.add(r)
    return s, store


def _run(s: Settings, store: Store, group: str = "g1") -> None:
    CandlePipeline(s, store=store, scorer=None, group=group, batch_size=200, batch_timeout=0.05).run(
        stop_at_end=True)


def _rule_alerts(store: Store) -> set[tuple[str, str, int]]:
    return {(a.detector, a.interval, a.window_start) for a in store.alert_list() if a.detector.startswith("rule:")}


def test_rules_fire_once_per_window_and_a_replay_adds_nothing(tmp_path: Path) -> None:
    with WebhookReceiver() as hook:
        s, store = _setup(tmp_path, webhook_urls=(hook.url,))
        _run(s, store)
        assert _rule_alerts(store) == EXPECTED
        jump = next(a for a in store.alert_list() if a.detector == "rule:jump")
        assert jump.severity == "HIGH" and jump.score > 5
        assert len(store.webhooks.list()) == len(EXPECTED)
        _run(s, store, group="replay")  # the same ticks again, from offset 0
        assert _rule_alerts(store) == EXPECTED
        assert len(store.webhooks.list()) == len(EXPECTED)
        sender = WebhookSender(store.webhooks, s)
        assert wait_until(lambda: sender.drain(5) >= 0 and store.webhooks.counts() == {"delivered": 4}, 60)
        assert set(hook.accepted) == {alert_id(a) for a in store.alert_list()}


def test_a_failing_endpoint_gets_each_alert_once_signed_after_retries(tmp_path: Path) -> None:
    with WebhookReceiver(fail_first=2) as hook:
        s, store = _setup(tmp_path, webhook_urls=(hook.url,), webhook_attempts=5)
        _run(s, store)
        sender = WebhookSender(store.webhooks, s)
        assert wait_until(lambda: sender.drain(5) >= 0 and store.webhooks.counts() == {"delivered": 4}, 60), \
            store.webhooks.counts()
        alerts = {alert_id(a): a for a in store.alert_list()}
        assert set(hook.accepted) == set(alerts) and all(len(v) == 1 for v in hook.accepted.values())
        assert len(hook.requests) == 3 * len(alerts)  # two 503s, then one 200, per alert
        assert all(d.attempts == 3 and d.last_status == 200 for d in store.webhooks.list())
        for req in hook.requests:
            assert verify(SECRET, req.body, req.headers[SIGNATURE_HEADER])
            doc = json.loads(req.body)
            a = alerts[doc["id"]]
            assert doc["id"] == req.headers["Idempotency-Key"] and doc["alert"]["detector"] == a.detector
            assert doc["rule"] == a.detector.removeprefix("rule:") and doc["alert"]["window_start"] == a.window_start


def test_a_rules_own_slack_webhook_gets_a_text_body(tmp_path: Path) -> None:
    with WebhookReceiver() as hook:
        s, store = _setup(tmp_path)
        store.rules.remove("vol")
        store.rules.add(Rule(id="vol", kind="volume_spike", params={"factor": 5, "lookback": 5},
                             webhook=hook.url, webhook_format="slack"))
        _run(s, store)
        (d,) = store.webhooks.list()  # only the rule with a webhook, no configured URL
        sender = WebhookSender(store.webhooks, s)
        assert wait_until(lambda: sender.drain(5) >= 0 and store.webhooks.counts() == {"delivered": 1}, 60)
        (req,) = hook.requests
        assert set(json.loads(req.body)) == {"text"} and "BTC-USD 1m" in json.loads(req.body)["text"]
        assert req.headers["Idempotency-Key"] == d.alert_id


def test_a_dead_endpoint_does_not_hold_the_consumer(tmp_path: Path) -> None:
    with WebhookReceiver(hang=True) as hook:
        s, store = _setup(tmp_path, webhook_urls=(hook.url,), webhook_timeout_ms=3_600_000)
        done = threading.Event()
        errors: list[BaseException] = []

        def consume() -> None:
            try:
                _run(s, store)
            except BaseException as exc:  # reported below
                errors.append(exc)
            finally:
                done.set()

        threading.Thread(target=consume, daemon=True).start()
        # the endpoint holds each POST for an hour: a consumer that waited for it would not be done
        assert done.wait(300) and not errors, errors
        assert _rule_alerts(store) == EXPECTED
        assert store.webhooks.counts() == {"pending": 4}  # kept for the next sender, none lost


def test_a_delivery_whose_attempts_run_out_is_failed(tmp_path: Path) -> None:
    with WebhookReceiver(status=500) as hook:
        s, store = _setup(tmp_path, webhook_urls=(hook.url,), webhook_attempts=2)
        _run(s, store)
        sender = WebhookSender(store.webhooks, s)
        assert wait_until(lambda: sender.drain(5) >= 0 and store.webhooks.counts() == {"failed": 4}, 60)
        assert len(hook.requests) == 8 and not hook.accepted
        assert all(d.last_error and d.last_error.startswith("HTTP 500") for d in store.webhooks.list())
