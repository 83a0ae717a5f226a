"""Exactly-once effect against the real broker and PostgreSQL.

200,000 ticks are replayed while real ``cryptolab consume`` processes are
killed with SIGKILL at random moments (at least 20 times) and then run to
completion; the candles table must equal, row for row, an uninterrupted run
and the batch reference, and the alerts must equal the uninterrupted run's.
User alert rules are in both stores and their alerts are part of the comparison: each rule
fires once per window, the same as in the uninterrupted run, and every one of its alerts has
exactly one webhook delivery in the outbox, which reaches a local endpoint under its
idempotency key. The same is repeated with a second consumer joining and leaving mid-stream. Each final
``--stop-at-end`` run starts at once after the last kill, while the killed member may still be in
the group: it must cover the whole topic, not only the partitions it is given first.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from dataclasses import replace

import pandas as pd
import pytest
from fakes.webhook import WebhookReceiver
from faults.harness import (
    ROOT,
    FaultFigures,
    alert_rows,
    candles_frame,
    child_env,
    committed,
    compare,
    consume_cmd,
    wait_progress,
)

from cryptolab.batch import candles_from_ticks
from cryptolab.config import Settings
from cryptolab.kafka import ensure_topics
from cryptolab.models.rules import Rule
from cryptolab.pipeline import CandlePipeline
from cryptolab.pipeline.webhooks import WebhookSender
from cryptolab.producer import TickProducer
from cryptolab.sources.synthetic import Injection, SyntheticMarket
from cryptolab.store import Store
from cryptolab.webhooks import alert_id

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

N_TICKS = 200_000
START = 1_700_000_040_000


def _market() -> SyntheticMarket:
    # 20 symbols, ~56 simulated minutes at 60 ticks/s -> ~200k ticks, with spikes to alert on
    return SyntheticMarket(
        symbols=20, seed=42, start_ms=START, duration_ms=3_340_000, ticks_per_second=60.0,
        injections=[Injection(symbol="BTC-USD", at_ms=START + 1_200_000, kind="spike", magnitude=0.08),
                    Injection(symbol="ETH-USD", at_ms=START + 2_400_000, kind="crash", magnitude=0.06)],
    )


def _consume_cmd(settings: Settings, group: str, *, batch_size: int = 1_000,
                 instance_id: str | None = None) -> list[str]:
    cmd = consume_cmd(settings, group, batch_size=batch_size)
    if instance_id:
        cmd += ["--instance-id", instance_id]  # a restart takes the partitions back at once
    return cmd


@pytest.fixture(autouse=True)
def _no_stray_consumers():
    """Kill any consumer process a failing test left behind."""
    before = set(_PROCS)
    yield
    for proc in set(_PROCS) - before:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


_PROCS: list[subprocess.Popen] = []


#: Short webhook timeouts: a killed consumer's leased deliveries come due again within 20 s.
_HOOK_ENV = {"CRYPTOLAB_WEBHOOK_TIMEOUT": "1s", "CRYPTOLAB_WEBHOOK_BACKOFF": "100ms"}


def _spawn(cmd: list[str]) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env=child_env(**_HOOK_ENV), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _PROCS.append(proc)
    return proc


@pytest.fixture(scope="module")
def loaded_topic(request, kafka_bootstrap):
    """A 3-partition topic holding the 200k ticks, plus the batch reference."""
    topic = f"eo_{random.getrandbits(40):x}"
    settings = Settings.from_env(kafka_bootstrap=kafka_bootstrap, topic=topic, partitions=3)
    ensure_topics(settings, {topic: 3, topic + ".dlq": 1, topic + ".late": 1, "alerts": 1})
    market = _market()
    frame = market.to_frame()
    assert len(frame) >= N_TICKS
    with TickProducer(settings, topic=topic) as producer:
        producer.send_many(market.iter_ticks())
        producer.flush()
        assert producer.stats.delivered == len(frame)
        assert producer.stats.failed == 0
    reference = candles_from_ticks(frame, "1m,5m,15m")
    return settings, reference, len(frame)


def _rules(reference: pd.DataFrame, webhook: str) -> list[Rule]:
    """Rules that fire on the injected spike and crash, and now and then on the synthetic noise."""
    btc = reference[(reference["symbol"] == "BTC-USD") & (reference["interval"] == "1m")]
    first = float(btc["close"].iloc[0])
    return [
        Rule(id="btc-up", kind="cross_above", params={"level": first * 1.04}, symbol="BTC-USD", webhook=webhook),
        Rule(id="btc-down", kind="cross_below", params={"level": first * 0.998}, symbol="BTC-USD",
             webhook=webhook),
        Rule(id="move3", kind="move", params={"pct": 3, "candles": 3}, webhook=webhook, severity="HIGH"),
        Rule(id="vol", kind="volume_spike", params={"factor": 1.3, "lookback": 5}, webhook=webhook),
    ]


def _rule_alert_ids(store: Store) -> set[str]:
    return {alert_id(a) for a in store.alert_list() if a.detector.startswith("rule:")}


@pytest.mark.timeout(1200)
def test_sigkill_twenty_times_then_complete_equals_uninterrupted_and_batch(loaded_topic, pg_url, second_pg_url):
    settings, reference, n = loaded_topic
    hook = WebhookReceiver()
    # the uninterrupted run, in-process
    unint = Store(pg_url)
    unint.init()
    for rule in _rules(reference, "http://127.0.0.1:9/unused"):
        unint.rules.add(rule)
    stats = CandlePipeline(replace(settings, store_url=pg_url), store=unint, group="uninterrupted").run(
        stop_at_end=True)
    assert stats.ticks == n and stats.dead_letters == 0 and stats.late_ticks == 0
    expected = candles_frame(unint)
    pd.testing.assert_frame_equal(expected, reference, check_exact=True)
    expected_alerts = alert_rows(unint)
    assert expected_alerts, "the injected moves should raise alerts"
    rule_hits = {d for _s, _i, _w, d, *_ in expected_alerts if d.startswith("rule:")}
    assert rule_hits == {"rule:btc-up", "rule:btc-down", "rule:move3", "rule:vol"}, rule_hits

    # the crashing runs write to a second database on the same server
    crash_url = second_pg_url
    crash_store = Store(crash_url)
    crash_store.init()
    hook.__enter__()
    for rule in _rules(reference, hook.url):
        crash_store.rules.add(rule)
    s = replace(settings, store_url=crash_url)
    group = "crashy"
    rng = random.Random(2024)
    kills = 0
    progress_at_kill = []
    recoveries = []  # restart -> first commit beyond the progress at the kill (s)
    for i in range(22):
        before = committed(crash_store, group, s.topic)
        spawned = time.monotonic()
        proc = _spawn(_consume_cmd(s, group, instance_id="crashy-1"))
        target = n * (i + rng.random()) / 24
        deadline = time.monotonic() + 90
        recovered = None
        while proc.poll() is None and time.monotonic() < deadline:
            done = committed(crash_store, group, s.topic)
            if recovered is None and done > before:
                recovered = round(time.monotonic() - spawned, 2)
                recoveries.append(recovered)
            if done >= target:
                break
            time.sleep(0.01)
        time.sleep(rng.random() * 0.05)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
            progress_at_kill.append(committed(crash_store, group, s.topic))
        proc.wait(30)
    assert kills >= 20
    # kills landed mid-stream, at increasing points
    assert sum(0 < p < n for p in progress_at_kill) >= 15
    final = subprocess.run(_consume_cmd(s, group, instance_id="crashy-1"), env=child_env(**_HOOK_ENV), cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    got = candles_frame(crash_store)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert alert_rows(crash_store) == expected_alerts
    assert committed(crash_store, group, s.topic) == n
    # one delivery per rule alert, whatever the kills; each reaches the endpoint under its id
    ids = _rule_alert_ids(crash_store)
    outbox = crash_store.webhooks.list()
    assert sorted(d.alert_id for d in outbox) == sorted(ids)
    sender = WebhookSender(crash_store.webhooks, replace(s, webhook_timeout_ms=1_000))
    deadline = time.monotonic() + 180
    while crash_store.webhooks.counts() != {"delivered": len(ids)} and time.monotonic() < deadline:
        sender.drain(5)  # deliveries leased by a killed process come due when their lease runs out
        time.sleep(0.5)
    hook.__exit__(None, None, None)
    assert crash_store.webhooks.counts() == {"delivered": len(ids)}
    assert set(hook.accepted) == ids
    _record("sigkill", {"kills": kills, "ticks": n, "candles_compared": len(got),
                        "alerts_compared": len(expected_alerts), "committed_at_kills": progress_at_kill})
    fig = FaultFigures(fault="consumer killed with SIGKILL (repeatedly)",
                       test="tests/integration/test_exactly_once.py::"
                            "test_sigkill_twenty_times_then_complete_equals_uninterrupted_and_batch",
                       injected=kills, ticks=n, recovery_s=recoveries,
                       extra={"committed_at_kills": progress_at_kill, "static_membership": True,
                              "recovery_note": "process start -> first commit beyond the progress at the kill"})
    fig.add(compare(got, expected, alert_rows(crash_store), expected_alerts))
    fig.record()


@pytest.mark.timeout(900)
def test_second_consumer_joining_and_leaving_mid_stream(loaded_topic, pg_url):
    settings, reference, n = loaded_topic
    store = Store(pg_url)
    store.init()
    s = replace(settings, store_url=pg_url)
    group = "rebalancing"
    first = _spawn(_consume_cmd(s, group, batch_size=500))
    wait_progress(store, group, s.topic, n * 0.15, first)
    second = _spawn(_consume_cmd(s, group, batch_size=500))
    wait_progress(store, group, s.topic, n * 0.5, first)
    second.send_signal(signal.SIGKILL)  # leaves abruptly, mid-stream
    second.wait(30)
    # --stop-at-end covers the whole topic: the first member does not stop at the end of its own
    # partitions, it waits for the dead member's session to expire, takes its partitions over and
    # drains and closes them too
    assert first.wait(300) == 0
    pd.testing.assert_frame_equal(candles_frame(store), reference, check_exact=True)
    assert committed(store, group, s.topic) == n
    # a fresh member started at once finds the topic done (and changes nothing)
    final = subprocess.run(_consume_cmd(s, group), env=child_env(), cwd=ROOT, capture_output=True, text=True,
                           timeout=300)
    assert final.returncode == 0, final.stderr
    got = candles_frame(store)
    pd.testing.assert_frame_equal(got, reference, check_exact=True)
    assert committed(store, group, s.topic) == n
    _record("rebalance", {"ticks": n, "candles_compared": len(got)})


def _record(name: str, figures: dict) -> None:
    """Keep the figures of a run in test-artifacts/ (for reports; never asserted on)."""
    import json

    out = ROOT / "test-artifacts" / "exactly_once.json"
    out.parent.mkdir(exist_ok=True)
    data = json.loads(out.read_text()) if out.exists() else {}
    data[name] = figures
    out.write_text(json.dumps(data, indent=1))


@pytest.fixture
def second_pg_url(pg_url):
    """A sibling database next to the fixture's, dropped afterwards."""
    import sqlalchemy as sa

    u = sa.engine.make_url(pg_url)
    name = f"{u.database}_2"
    admin = sa.create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield u.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
