"""Prometheus metrics of a real ``cryptolab consume --metrics-port`` process, and ``cryptolab status``,
on the real Kafka, PostgreSQL and Redis.

A known topic is planted: 60 ticks of two symbols over ten whole minutes (20 one-minute candles),
three records that are not ticks (dead letters) and one tick far behind the watermark (too late).
The consumer's scrape must count exactly those, and ``cryptolab status`` must see the same
topic fully consumed (lag 0), its last commit and the three dead letters. With one service at
an unused port, ``status`` exits 1 naming it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cryptolab.config import Settings
from cryptolab.kafka import ensure_topics, producer_config
from cryptolab.models import Tick, encode_tick
from cryptolab.store import Store

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
START = 1_700_000_040_000 - 1_700_000_040_000 % 60_000  # a whole minute
SYMBOLS = ("MTA-USD", "MTB-USD")
MINUTES = 10
TICKS_PER_MINUTE = 3
BAD = [b"not json at all", b'{"v": 1, "symbol": "MTA-USD"}', b"\xff\xfe"]
N_TICKS = len(SYMBOLS) * MINUTES * TICKS_PER_MINUTE + 1  # and the late one
N_CANDLES = len(SYMBOLS) * MINUTES


def _records() -> list[tuple[bytes, bytes, int]]:
    out: list[tuple[bytes, bytes, int]] = []
    for minute in range(MINUTES):
        for k in range(TICKS_PER_MINUTE):
            ts = START + minute * 60_000 + k * 15_000
            for i, sym in enumerate(SYMBOLS):
                tick = Tick(symbol=sym, ts_ms=ts, price=100.0 + i + minute + k / 10, size=1.0)
                out.append((sym.encode(), encode_tick(tick), ts))
    last = START + MINUTES * 60_000
    for raw in BAD:
        out.append((b"MTA-USD", raw, last))
    # ten minutes behind the watermark, with one minute of allowed lateness: too late
    late = Tick(symbol="MTA-USD", ts_ms=START + 5_000, price=99.0, size=1.0)
    out.append((b"MTA-USD", encode_tick(late), START + 5_000))
    return out


def _produce(settings: Settings, records: list[tuple[bytes, bytes, int]]) -> None:
    from confluent_kafka import Producer

    failed: list[str] = []
    producer = Producer(producer_config(settings))
    for key, value, ts in records:
        producer.produce(settings.topic, value=value, key=key, timestamp=ts,
                         on_delivery=lambda err, _m: failed.append(str(err)) if err else None)
    assert producer.flush(60) == 0 and not failed, failed


def _child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOLAB_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, parsed by prometheus_client's own parser."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def planted(kafka_bootstrap: str, pg_url: str, redis_url: str, unique_topic: str) -> Settings:
    settings = Settings.from_env({}, kafka_bootstrap=kafka_bootstrap, topic=unique_topic,
                                 store_url=pg_url, redis_url=redis_url, intervals="1m")
    ensure_topics(settings, {unique_topic: 2, unique_topic + ".dlq": 1})
    _produce(settings, _records())
    return settings


@pytest.fixture
def consumer(planted: Settings, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, str]]:
    """A ``cryptolab consume --metrics-port 0`` process on the planted topic, and its metrics URL."""
    s = planted
    group = f"metrics-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "consume.log"
    cmd = [sys.executable, "-m", "cryptolab", "consume", "--kafka", s.kafka_bootstrap or "",
           "--topic", s.topic, "--store", s.store_url or "", "--redis", s.redis_url or "",
           "--group", group, "--intervals", "1m", "--no-score", "--batch-size", "7",
           "--metrics-port", "0", "--quiet"]
    with log.open("wb") as out:
        # idle partitions close their windows after 1 s: the last minute becomes final too
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env=_child_env(CRYPTOLAB_IDLE_TIMEOUT="1s"))
    try:
        def url() -> str | None:
            assert proc.poll() is None, log.read_text()
            found = re.search(r"metrics at (http://\S+)", log.read_text())
            return found.group(1) if found else None

        yield proc, _wait(url, 120, "the metrics address"), group
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _status(s: Settings, group: str, *more: str, kafka: str | None = None, store: str | None = None,
            redis: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "cryptolab", "status", "--kafka", kafka or s.kafka_bootstrap or "",
           "--topic", s.topic, "--store", store or s.store_url or "", "--redis", redis or s.redis_url or "",
           "--group", group, *more]
    return subprocess.run(cmd, cwd=ROOT, env=_child_env(), capture_output=True, text=True, timeout=120)


def test_a_consumers_scrape_counts_exactly_the_planted_topic_and_status_sees_it_done(
        planted: Settings, consumer: tuple[subprocess.Popen[bytes], str, str]) -> None:
    proc, url, group = consumer
    s = planted

    def done() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        samples = _samples(httpx.get(url, timeout=10).text)
        lags = [v for (name, _), v in samples.items() if name == "cryptolab_consumer_lag_messages"]
        finished = (samples.get(("cryptolab_consumer_candles_final_total", ())) == N_CANDLES
                    and samples.get(("cryptolab_consumer_ticks_consumed_total", ())) == N_TICKS
                    and len(lags) == 2 and all(v == 0 for v in lags))
        return samples if finished else None

    samples = _wait(done, 180, "the consumer to count the whole planted topic")
    assert samples[("cryptolab_consumer_dead_letters_total", ())] == len(BAD)
    assert samples[("cryptolab_consumer_late_ticks_total", ())] == 1
    assert samples[("cryptolab_consumer_fenced_commits_total", ())] == 0
    assert samples[("cryptolab_consumer_alerts_total", ())] == 0  # --no-score
    assert samples[("cryptolab_consumer_partitions_owned", ())] == 2
    commits = samples[("cryptolab_consumer_commits_total", ())]
    assert commits >= 1
    assert samples[("cryptolab_consumer_commit_latency_seconds_count", ())] == commits
    assert samples[("cryptolab_consumer_commit_latency_seconds_bucket", (("le", "+Inf"),))] == commits
    assert samples[("cryptolab_consumer_last_commit_timestamp_seconds", ())] > START / 1000
    for p in ("0", "1"):
        key = (("group", group), ("partition", p), ("topic", s.topic))
        assert samples[("cryptolab_consumer_lag_messages", key)] == 0
    with Store(s.store_url or "") as store:
        assert len(store.candles(interval="1m")) == N_CANDLES  # the scrape says what the store holds

    # status, while the consumer runs: every service up, nothing left to consume, 3 dead letters
    text = _status(s, group)
    assert text.returncode == 0, text.stderr
    assert re.search(r"^dead letters\s+3 ", text.stdout, re.M), text.stdout
    for name in ("kafka", "store", "cache"):
        assert re.search(rf"^{name}\s+up\s", text.stdout, re.M), text.stdout
    report = json.loads(_status(s, group, "--json").stdout)
    assert report["ok"] is True and report["down"] == []
    assert report["dead_letters"] == len(BAD) and report["lag"] == 0
    assert report["committed_from"] == "store"
    parts = report["partitions"]
    assert [p["partition"] for p in parts] == [0, 1]
    # a partition no record went to has nothing committed, and nothing to lag behind
    assert all(p["end"] == 0 and p["lag"] == 0 for p in parts if p["committed"] is None)
    assert sum(p["end"] for p in parts) == sum(p["committed"] or 0 for p in parts) == len(_records())
    assert report["last_commit_ms"] is not None
    assert report["last_commit_ms"] == max(p["committed_at_ms"] or 0 for p in parts)
    assert proc.poll() is None  # scraped and asked while running


@pytest.mark.parametrize("down", ["kafka", "store", "cache"])
def test_status_exits_1_naming_the_service_that_is_down(planted: Settings, down: str) -> None:
    port = _unused_port()
    where = {"kafka": {"kafka": f"127.0.0.1:{port}"},
             "store": {"store": f"postgresql+psycopg://cryptolab@127.0.0.1:{port}/cryptolab"},
             "cache": {"redis": f"redis://127.0.0.1:{port}/0"}}[down]
    done = _status(planted, "nobody", "--json", "--timeout", "3", **where)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == f"cryptolab status: down: {down}"
    report = json.loads(done.stdout)
    assert report["ok"] is False and report["down"] == [down]
    assert report["services"][down]["up"] is False and report["services"][down]["detail"]
    assert all(v["up"] for k, v in report["services"].items() if k != down)
    text = _status(planted, "nobody", "--timeout", "3", **where)
    assert text.returncode == 1
    assert re.search(rf"^{down}\s+DOWN\s", text.stdout, re.M), text.stdout


def test_run_metrics_show_the_sources_failures_by_kind_and_both_ends_of_the_pipeline(tmp_path: Path) -> None:
    """``cryptolab run --metrics-port 0`` against a CoinGecko stand-in that fails three ways first:
    the scrape counts each failure by kind once, and ticks through producer and consumer."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fakes.coingecko import FakeCoinGecko

    log = tmp_path / "run.log"
    with FakeCoinGecko(retry_after_s=1) as fake, log.open("wb") as out:
        fake.script("429", "500", "malformed")  # then quotes
        cmd = [sys.executable, "-m", "cryptolab", "run", "--source", "coingecko", "--coins", "bitcoin",
               "--coingecko-url", fake.url, "--poll-interval", "1", "--duration", "300",
               "--store", f"sqlite:///{tmp_path / 'run.db'}", "--intervals", "1m", "--quiet",
               "--metrics-port", "0"]
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                env=_child_env(CRYPTOLAB_DATA_DIR=str(tmp_path / "data"),
                                               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])))
        try:
            def url() -> str | None:
                assert proc.poll() is None, log.read_text()
                found = re.search(r"metrics at (http://\S+)", log.read_text())
                return found.group(1) if found else None

            where = _wait(url, 180, "the metrics address")

            def flowing() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
                samples = _samples(httpx.get(where, timeout=10).text)
                consumed = samples.get(("cryptolab_consumer_ticks_consumed_total", ()), 0)
                return samples if consumed >= 2 else None

            samples = _wait(flowing, 240, "two quotes through producer and consumer")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)
    assert proc.returncode == 0, log.read_text()[-3000:]
    failures = {dict(labels)["kind"]: v for (name, labels), v in samples.items()
                if name == "cryptolab_producer_source_failures_total"}
    # one failure each: the 429, the 500 and the truncated JSON (named by what was wrong with it)
    assert failures["http_429"] == 1 and failures["http_5xx"] == 1 and sum(failures.values()) == 3, failures
    produced = samples[("cryptolab_producer_ticks_produced_total", ())]
    assert produced >= samples[("cryptolab_consumer_ticks_consumed_total", ())] >= 2
    circuit = {dict(labels)["state"]: v for (name, labels), v in samples.items()
               if name == "cryptolab_producer_circuit_state"}
    assert sorted(circuit) == ["closed", "half_open", "open"] and sum(circuit.values()) == 1
