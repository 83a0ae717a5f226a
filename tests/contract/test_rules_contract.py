"""The rules table and the webhook outbox, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading

import pytest

from cryptolab.errors import FencedError, ValidationError
from cryptolab.models import Alert
from cryptolab.models.rules import Rule
from cryptolab.store import SCHEMA_VERSION, PartitionProgress, Store, WebhookDelivery

T0 = 1_700_000_040_000


def _alert(i: int, detector: str = "rule:r1") -> Alert:
    return Alert(symbol="BTC-USD", interval="1m", window_start=T0 + 60_000 * i, detector=detector,
                 severity="HIGH", score=1.0, ts_ms=T0 + 60_000 * (i + 1), features={"pct": 1.0})


def _delivery(a: Alert, url: str = "http://127.0.0.1:9/hook") -> WebhookDelivery:
    return WebhookDelivery(alert_id=f"id-{a.window_start}-{a.detector}", symbol=a.symbol, interval=a.interval,
                           window_start=a.window_start, detector=a.detector, url=url, format="json", body="{}")


def test_rules_are_stored_listed_toggled_and_removed(store: Store) -> None:
    a = store.rules.add(Rule(id="a", kind="cross_below", params={"level": 0.5}, symbol="ETH-USD",
                             interval="5m", created=2, webhook="https://hooks.example/x", webhook_format="discord"))
    b = store.rules.add(Rule(id="b", kind="volume_spike", params={"factor": 3}, created=1, severity="LOW"))
    assert store.rules.list() == [b, a]  # by creation time
    with pytest.raises(ValidationError, match="exists already"):
        store.rules.add(Rule(id="a", kind="move", params={"pct": 1}))
    assert store.rules.set_enabled("a", False) and not store.rules.set_enabled("zz", False)
    assert store.rules.list(enabled=True) == [b]
    assert store.rules.remove("b") and not store.rules.remove("b")
    assert [r.id for r in store.rules.list()] == ["a"]


def test_deliveries_are_written_with_new_alerts_only_and_once(store: Store) -> None:
    alerts = [_alert(0), _alert(1)]
    deliveries = [_delivery(a) for a in alerts] + [_delivery(alerts[0], "http://127.0.0.1:9/other")]
    progress = {0: PartitionProgress(partition=0, offset=5, watermark_ms=None)}
    inserted = store.commit_batch(group="g", topic="t", alerts=alerts[:1], deliveries=deliveries[:1] + deliveries[2:],
                                  progress=progress, expected_offsets={0: None})
    assert len(inserted) == 1 and len(store.webhooks.list()) == 2
    # a replay of the batch (another group) inserts no alert, so no delivery; the new alert's does
    store.commit_batch(group="g2", topic="t", alerts=alerts, deliveries=deliveries)
    got = store.webhooks.list()
    assert sorted((d.window_start, d.url) for d in got) == sorted((d.window_start, d.url) for d in deliveries)
    # a fenced batch writes none
    with pytest.raises(FencedError):
        store.commit_batch(group="g", topic="t", alerts=[_alert(2)], deliveries=[_delivery(_alert(2))],
                           progress=progress, expected_offsets={0: None})
    assert len(store.webhooks.list()) == 3


def test_two_senders_never_claim_the_same_delivery(store_backend) -> None:
    first, second = store_backend.make(), store_backend.make()
    alerts = [_alert(i) for i in range(40)]
    first.commit_batch(group="g", topic="t", alerts=alerts, deliveries=[_delivery(a) for a in alerts])
    claimed: list[list[int]] = [[], []]

    def claim(store: Store, out: list[int]) -> None:
        while batch := store.webhooks.claim(now_ms=T0 * 10, limit=3):
            out.extend(d.id for d in batch)

    threads = [threading.Thread(target=claim, args=(s, out)) for s, out in zip((first, second), claimed, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(claimed[0] + claimed[1]) == sorted(d.id for d in first.webhooks.list())
    assert not set(claimed[0]) & set(claimed[1])
    # leased: not due again until the lease runs out
    assert first.webhooks.claim(now_ms=T0 * 10 + 1) == []
    assert len(first.webhooks.claim(now_ms=T0 * 10 + 120_000, limit=100)) == 40


def test_settling_records_each_outcome(store: Store) -> None:
    store.commit_batch(group="g", topic="t", alerts=[_alert(0)], deliveries=[_delivery(_alert(0))])
    now = T0 * 10  # far after the commit
    (d,) = store.webhooks.claim(now_ms=now)
    store.webhooks.settle(d.id, ok=False, status=None, error="ConnectError: refused", next_attempt_ms=now + 10,
                          now_ms=now + 2)
    assert store.webhooks.claim(now_ms=now + 9) == [] and store.webhooks.next_due_ms() == now + 10
    (d,) = store.webhooks.claim(now_ms=now + 10)
    assert (d.attempts, d.last_error) == (1, "ConnectError: refused")
    store.webhooks.settle(d.id, ok=True, status=204, error=None, next_attempt_ms=None, now_ms=now + 11)
    (done,) = store.webhooks.list()
    assert (done.status, done.attempts, done.last_status, done.delivered_ms) == ("delivered", 2, 204, now + 11)
    assert store.webhooks.counts() == {"delivered": 1} and store.webhooks.next_due_ms() is None


def test_a_v1_store_is_upgraded_with_the_rules_and_outbox_tables(store_backend) -> None:
    import sqlalchemy as sa

    store = store_backend.make()
    with store._write() as conn:  # back to the layout of schema v1
        conn.exec_driver_sql("DROP TABLE webhook_deliveries")
        conn.exec_driver_sql("DROP TABLE rules")
        conn.exec_driver_sql("DROP TABLE trade_gaps")
        conn.exec_driver_sql("DELETE FROM schema_version")
        conn.exec_driver_sql("INSERT INTO schema_version (version, applied_at) VALUES (1, 0)")
    assert store.schema_version() == 1
    upgraded = store_backend.make()  # init() upgrades
    assert upgraded.schema_version() == SCHEMA_VERSION == 3
    upgraded.rules.add(Rule(id="after", kind="move", params={"pct": 1}))
    assert [r.id for r in upgraded.rules.list()] == ["after"] and upgraded.webhooks.counts() == {}
    with upgraded._read() as conn:
        assert {"rules", "webhook_deliveries", "trade_gaps"} <= set(sa.inspect(conn).get_table_names())
