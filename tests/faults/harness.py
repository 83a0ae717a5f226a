"""Fault-injection harness: consumer processes, service stops, result comparison, figures.

Shared by the fault suite (``tests/faults``) and the exactly-once tests
(``tests/integration/test_exactly_once.py``). Everything here drives the real
product: ``cryptolab consume`` child processes against the real Kafka,
PostgreSQL and Redis of ``scripts/services.sh``.

The invariant every fault test checks (:func:`compare`): the candles table
equals, row for row and bit for bit, both the batch reference
(:func:`cryptolab.batch.candles_from_ticks`) and an uninterrupted run, and
the alerts equal the uninterrupted run's. ``losses`` and ``duplicates``
count what differs (missing or extra candles, and trades missing from or
counted twice into a candle), so the figures recorded in
``test-artifacts/faults.json`` are measured, not asserted constants.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any, NoReturn

import pandas as pd

from cryptolab.batch import candles_to_frame
from cryptolab.config import Settings
from cryptolab.kafka import ensure_topics
from cryptolab.models import parse_interval
from cryptolab.sources.synthetic import Injection, SyntheticMarket
from cryptolab.store import Store

ROOT = Path(__file__).resolve().parents[2]
SERVICES_SH = ROOT / "scripts" / "services.sh"
ARTIFACTS = ROOT / "test-artifacts"
FAULTS_JSON = ARTIFACTS / "faults.json"
#: A whole minute (2023-11-14 22:14 UTC): windows of every interval align to it.
START_MS = 1_700_000_040_000
#: How long a pipeline may take to make progress again once a fault has cleared.
RECOVERY_LIMIT_S = 30.0

_SUMMARY = re.compile(
    r"consumed (?P<ticks>[\d,]+) ticks in .*?: (?P<candles>[\d,]+) candles, (?P<alerts>\d+) alerts, "
    r"(?P<dead>\d+) dead letters, (?P<late>\d+) too-late ticks, (?P<commits>\d+) commits, "
    r"(?P<fenced>\d+) fenced"
)
_ASSIGNED = re.compile(r"assigned partitions \[([\d, ]*)\]")


# --------------------------------------------------------------------------- the stream


def market(n_ticks: int, *, seed: int = 42, symbols: int = 20, rate: float = 60.0) -> SyntheticMarket:
    """A seeded synthetic market of about ``n_ticks`` ticks, with a spike and a crash to alert on."""
    duration = int(n_ticks / rate * 1000) // 60_000 * 60_000 + 40_000
    return SyntheticMarket(
        symbols=symbols, seed=seed, start_ms=START_MS, duration_ms=duration, ticks_per_second=rate,
        random_injections=0,
        injections=[
            Injection(symbol="BTC-USD", at_ms=START_MS + duration * 2 // 5 // 60_000 * 60_000,
                      kind="spike", magnitude=0.08),
            Injection(symbol="ETH-USD", at_ms=START_MS + duration * 4 // 5 // 60_000 * 60_000,
                      kind="crash", magnitude=0.06),
        ],
    )


#: Records a broken or hostile producer might write mid-stream (each one must be dead-lettered).
BAD_VALUES: tuple[bytes | None, ...] = (
    b"not json",
    b'{"v":1,"symbol":"BTC-USD","ts":1700000100000,"price":-1.0}',
    b'{"v":1,"symbol":"BTC\'; DROP TABLE candles;--","ts":1700000100000,"price":1.0}',
    b'{"v":1,"symbol":"ETH-USD","ts":1700000100000,"price":1e400}',
    b'{"v":2,"symbol":"ETH-USD","ts":1700000100000,"price":1.0}',
    b"[]",
    None,
)


@dataclass
class Stream:
    """A tick stream as Kafka records, with its ticks and batch reference."""

    records: list[tuple[bytes, bytes | None, int]]  # (key, value, timestamp ms), in produce order
    ticks: pd.DataFrame
    reference: pd.DataFrame
    bad: int

    @property
    def n(self) -> int:
        """Records in the stream (ticks and bad records): the offsets a group must commit."""
        return len(self.records)


def build_stream(n_ticks: int, *, seed: int = 42, bad_every: int = 9_973,
                 intervals: str = "1m,5m,15m") -> Stream:
    """The records of :func:`market`, with a bad record after every ``bad_every`` ticks."""
    from cryptolab.batch import candles_from_ticks
    from cryptolab.models import encode_tick

    m = market(n_ticks, seed=seed)
    records: list[tuple[bytes, bytes | None, int]] = []
    bad = 0
    for i, t in enumerate(m.iter_ticks()):
        records.append((t.symbol.encode(), encode_tick(t), t.ts_ms))
        if i % bad_every == bad_every - 1:
            records.append((t.symbol.encode(), BAD_VALUES[bad % len(BAD_VALUES)], t.ts_ms))
            bad += 1
    frame = m.to_frame()
    return Stream(records=records, ticks=frame, reference=candles_from_ticks(frame, intervals), bad=bad)


def produce(settings: Settings, topic: str, records: Sequence[tuple[bytes, bytes | None, int]], *,
            rate: float | None = None, flush_timeout: float = 300.0) -> int:
    """Produce ``records`` with an idempotent producer (optionally at ``rate`` records/s).

    Returns the number delivered; raises when any record failed to be delivered.
    """
    from confluent_kafka import Producer

    from cryptolab.kafka import producer_config

    failed: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    p = Producer(producer_config(settings, **{"linger.ms": 5}))
    t0 = time.monotonic()
    for i, (key, value, ts) in enumerate(records):
        while True:
            try:
                p.produce(topic, value=value, key=key, timestamp=ts, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.1)
        if i % 500 == 0:
            p.poll(0)
            if rate is not None:
                ahead = i / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
    left = p.flush(flush_timeout)
    assert left == 0 and not failed, f"{left} records not delivered; failures: {failed[:5]}"
    return len(records)


class LiveFeed:
    """Produce a stream's records at a steady rate from a background thread (a live market).

    A consumer started before the feed tails the log as it is written, so a
    fault injected mid-feed hits a consumer that needs the service right now.
    """

    def __init__(self, settings: Settings, records: Sequence[tuple[bytes, bytes | None, int]], *,
                 seconds: float) -> None:
        self.settings = settings
        self.records = records
        self.rate = len(records) / seconds
        self.delivered: int | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="live-feed", daemon=True)

    def _run(self) -> None:
        try:
            self.delivered = produce(self.settings, self.settings.topic, self.records, rate=self.rate)
        except BaseException as exc:  # reported by join()
            self.error = exc

    def start(self) -> LiveFeed:
        self._thread.start()
        return self

    def join(self, timeout: float = 300.0) -> int:
        """Wait for the feed to end; return how many records were delivered."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the feed did not finish within {timeout}s"
        if self.error is not None:
            raise self.error
        assert self.delivered == len(self.records)
        return self.delivered


def end_offsets(settings: Settings) -> dict[int, int]:
    """High watermark of every partition of the tick topic."""
    from confluent_kafka import Consumer

    from cryptolab.kafka import consumer_config
    from cryptolab.kafka import end_offsets as watermarks

    consumer = Consumer(consumer_config(settings, f"count-{uuid.uuid4().hex[:6]}"))
    try:
        return {p: high for p, (_low, high) in watermarks(consumer, settings.topic).items()}
    finally:
        consumer.close()


def records_in_topic(settings: Settings) -> int:
    """How many records the tick topic holds (its partitions start at offset 0: never compacted)."""
    return sum(end_offsets(settings).values())


def candles_frame(store: Store) -> pd.DataFrame:
    """Every stored candle as a frame, in the batch reference's row order."""
    df = candles_to_frame(store.candles())
    order = df["interval"].map(parse_interval)
    return (df.assign(_o=order).sort_values(["symbol", "_o", "window_start"]).drop(columns="_o")
            .reset_index(drop=True))


def alert_rows(store: Store) -> list[tuple[Any, ...]]:
    """Stored alerts as sorted, comparable tuples (scores rounded to 12 digits)."""
    return sorted((a.symbol, a.interval, a.window_start, a.detector, a.severity, round(a.score, 12))
                  for a in store.alert_list())


def committed(store: Store, group: str, topic: str) -> int:
    """Sum over partitions of the next offset stored in the progress table (-1 while unreadable)."""
    from cryptolab.errors import StoreError

    try:
        return sum(p.offset for p in store.load_progress(group, topic).values())
    except StoreError:  # the database is down or restarting: the caller polls again
        return -1


def unavailable(message: str) -> NoReturn:
    """Skip the current test with ``message``, or fail it under ``CI=true`` (as tests/conftest.py)."""
    import pytest

    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: a fault test that cannot run is an error)", pytrace=False)
    pytest.skip(message)


def wait_until(cond: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``cond`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def wait_progress(store: Store, group: str, topic: str, target: float,
                  proc: subprocess.Popen[Any] | None = None, timeout: float = 120.0) -> bool:
    """Wait until ``group`` has committed ``target`` offsets (or ``proc`` exits)."""
    return wait_until(
        lambda: committed(store, group, topic) >= target or (proc is not None and proc.poll() is not None),
        timeout,
    ) and committed(store, group, topic) >= target


def time_to_progress(store: Store, group: str, topic: str, *, beyond: int,
                     timeout: float = 3 * RECOVERY_LIMIT_S) -> float | None:
    """Seconds until the committed offsets exceed ``beyond``; ``None`` when they do not in time."""
    t0 = time.monotonic()
    if wait_until(lambda: committed(store, group, topic) > beyond, timeout, interval=0.05):
        return round(time.monotonic() - t0, 2)
    return None


@dataclass
class FaultRun:
    """The shared stream on Kafka, its batch reference and its uninterrupted run."""

    settings: Settings  # Kafka, topic and the server's store URL (tests swap in their database)
    stream: Stream
    uninterrupted: pd.DataFrame
    uninterrupted_alerts: list[tuple[Any, ...]]
    uninterrupted_stats: dict[str, Any]

    @property
    def reference(self) -> pd.DataFrame:
        return self.stream.reference

    def for_store(self, store_url: str, **more: Any) -> Settings:
        return replace(self.settings, store_url=store_url, **more)


def embedded_topic(data_dir: Path, records: Sequence[tuple[bytes, bytes]], prefix: str) -> Settings:
    """Settings on the embedded broker for a fresh topic ``<prefix>_<hex>`` holding ``records``
    (``(key, value)`` pairs), with the idle close off."""
    from confluent_kafka import Producer

    from cryptolab.kafka import producer_config

    topic = f"{prefix}_{uuid.uuid4().hex[:10]}"
    s = Settings.from_env({}, topic=topic, data_dir=data_dir, idle_timeout="0s")
    p = Producer(producer_config(s))
    for key, value in records:
        p.produce(topic, value=value, key=key)
    assert p.flush(30) == 0
    return s


def new_topic(settings: Settings, prefix: str = "faults") -> Settings:
    """A fresh 3-partition tick topic (with its .dlq and .late) on the real broker."""
    topic = f"{prefix}_{secrets.token_hex(5)}"
    s = replace(settings, topic=topic, partitions=3)
    ensure_topics(s, {topic: 3, topic + ".dlq": 1, topic + ".late": 1, "alerts": 1})
    return s


def partition_offsets(store: Store, group: str, topic: str) -> dict[int, int] | None:
    """Stored next offset per partition (``None`` while the store is unreadable)."""
    from cryptolab.errors import StoreError

    try:
        return {p: pr.offset for p, pr in store.load_progress(group, topic).items()}
    except StoreError:
        return None


def time_to_progress_all(store: Store, group: str, topic: str, *, partitions: Sequence[int],
                         ends: dict[int, int] | None = None,
                         timeout: float = 3 * RECOVERY_LIMIT_S) -> float | None:
    """Seconds until *every* partition has committed again (or reached its end offset).

    This is the recovery time after a fault: the pipeline has recovered once all
    of its partitions move again, not when the first one does.
    """
    t0 = time.monotonic()
    start = partition_offsets(store, group, topic)
    while start is None and time.monotonic() - t0 < timeout:
        time.sleep(0.05)
        start = partition_offsets(store, group, topic)
    if start is None:
        return None
    waiting = {p for p in partitions if not (ends and start.get(p, 0) >= ends.get(p, 1 << 62))}

    def moved() -> bool:
        now = partition_offsets(store, group, topic)
        if now is None:
            return False
        for p in list(waiting):
            if now.get(p, 0) > start.get(p, 0) or (ends and now.get(p, 0) >= ends.get(p, 1 << 62)):
                waiting.discard(p)
        return not waiting

    if wait_until(moved, timeout - (time.monotonic() - t0), interval=0.05):
        return round(time.monotonic() - t0, 2)
    return None


class ProgressMonitor:
    """Samples a group's stored offsets per partition in a thread and measures stalls.

    While a live feed runs, every partition should commit again and again; the
    longest time one partition goes without a commit around a fault is how long
    the pipeline took to recover from it (rebalance pauses included).
    """

    def __init__(self, store: Store, group: str, topic: str, *, interval: float = 0.05) -> None:
        self.store, self.group, self.topic, self.interval = store, group, topic, interval
        self.changes: dict[int, list[float]] = {}
        self._last: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress-monitor", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            now = partition_offsets(self.store, self.group, self.topic)
            t = time.monotonic()
            for p, off in (now or {}).items():
                if off != self._last.get(p):
                    self._last[p] = off
                    self.changes.setdefault(p, []).append(t)

    def __enter__(self) -> ProgressMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def longest_stall(self, start: float, end: float) -> float:
        """Longest time (s) any partition went without a commit within ``[start, end]``."""
        worst = 0.0
        for times in self.changes.values():
            inside = [start] + [t for t in times if start < t < end] + [end]
            worst = max(worst, max(b - a for a, b in zip(inside, inside[1:], strict=False)))
        return round(worst, 2)


# --------------------------------------------------------------------------- consumers


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: no inherited CRYPTOLAB_* (hermetic), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOLAB_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def consume_cmd(settings: Settings, group: str, *, batch_size: int = 1_000, stop_at_end: bool = True,
                quiet: bool = True, redis: bool = False, instance_id: str | None = None) -> list[str]:
    """The ``cryptolab consume`` command line for ``settings`` (Kafka, topic, store, maybe Redis)."""
    cmd = [sys.executable, "-m", "cryptolab", "consume", "--kafka", settings.kafka_bootstrap or "",
           "--topic", settings.topic, "--store", settings.store_url or "", "--group", group,
           "--batch-size", str(batch_size)]
    if redis and settings.redis_url:
        cmd += ["--redis", settings.redis_url]
    if stop_at_end:
        cmd.append("--stop-at-end")
    if quiet:
        cmd.append("--quiet")
    if instance_id:
        cmd += ["--instance-id", instance_id]  # static membership
    return cmd


#: Environment of every faulted consumer. The idle timeout is wall-clock based: a partition
#: that receives nothing for that long (default 30 s) has its open windows closed, so an outage
#: longer than that emits (and scores) those candles before all their ticks arrived, and the
#: rest come as revisions: the same OHLCV values, but revision counts and alerts that differ from
#: an uninterrupted run (see test_idle_close.py). Faults here are about recovery, so the timeout
#: is set out of their reach, identically for every run compared.
CONSUMER_ENV = {"CRYPTOLAB_IDLE_TIMEOUT": "10m"}


class ConsumerProcess:
    """A ``cryptolab consume`` child process whose output is kept in a log file.

    Output goes to a file rather than a pipe, so a chatty child can never block
    on a full pipe while it is being frozen, killed or waited for.
    """

    def __init__(self, settings: Settings, group: str, *, log_dir: Path, name: str = "consumer",
                 batch_size: int = 1_000, stop_at_end: bool = True, redis: bool = False,
                 env: dict[str, str] | None = None, instance_id: str | None = None) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
        self.cmd = consume_cmd(settings, group, batch_size=batch_size, stop_at_end=stop_at_end,
                               quiet=False, redis=redis, instance_id=instance_id)
        self._log: IO[bytes] = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.cmd, env=child_env(**{**CONSUMER_ENV, **(env or {})}), cwd=ROOT,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """Wait for the exit code (raises ``subprocess.TimeoutExpired``)."""
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is not None:
                self._log.close()

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (graceful: the current batch is finished and committed), then wait."""
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        """SIGCONT (in case it is frozen) then SIGKILL, and reap it."""
        if self.alive():
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.wait(30)

    @property
    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def assignments(self) -> list[list[int]]:
        """The partitions of each assignment it logged, in order (needs ``CRYPTOLAB_LOG_LEVEL=INFO``)."""
        return [[int(p) for p in m[1].split(",") if p.strip()] for m in _ASSIGNED.finditer(self.output)]

    def summary(self) -> dict[str, int] | None:
        """The counters of the final ``consumed N ticks ... F fenced`` line, if printed."""
        m = _SUMMARY.search(self.output)
        return None if m is None else {k: int(v.replace(",", "")) for k, v in m.groupdict().items()}


@contextlib.contextmanager
def consumers() -> Iterator[list[ConsumerProcess]]:
    """A list to put consumer processes in; whatever is still running at exit is killed."""
    procs: list[ConsumerProcess] = []
    try:
        yield procs
    finally:
        for p in procs:
            with contextlib.suppress(Exception):
                p.kill()


def finish(settings: Settings, group: str, *, log_dir: Path, timeout: float = 300.0,
           redis: bool = False, instance_id: str | None = None,
           env: dict[str, str] | None = None) -> ConsumerProcess:
    """Run one more member with ``--stop-at-end`` to completion (closes the remaining windows).

    Start it at once after a fault: members killed a moment ago may still hold partitions (until
    their sessions expire), and ``--stop-at-end`` must wait for them, take them over and close
    them, not stop at the end of the partitions it happens to be given first.
    """
    p = ConsumerProcess(settings, group, log_dir=log_dir, name="finish", redis=redis, instance_id=instance_id,
                        env=env)
    rc = p.wait(timeout)
    assert rc == 0, f"the finishing consumer failed ({rc}):\n{p.output[-4000:]}"
    return p


# --------------------------------------------------------------------------- services


class ServiceControl:
    """Stop and start the shared services with ``scripts/services.sh stop|start NAME``.

    Only services that the script itself manages can be stopped: :meth:`check`
    says why not otherwise (an external URL, or a server someone else started).
    """

    def __init__(self) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOLAB_")}
        self.down: set[str] = set()

    def _run(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(SERVICES_SH), *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def local_urls(self) -> dict[str, str]:
        out = self._run("env", timeout=30).stdout
        urls = {}
        for line in out.splitlines():
            m = re.match(r"export (CRYPTOLAB_\w+)=(.*)$", line)
            if m:
                urls[m[1]] = m[2].strip("'\"")
        return urls

    def check(self, name: str, url: str) -> str | None:
        """``None`` when ``name`` at ``url`` can be stopped and started by the script, else why not."""
        var = {"kafka": "CRYPTOLAB_KAFKA_BOOTSTRAP", "postgres": "CRYPTOLAB_STORE_URL",
               "redis": "CRYPTOLAB_REDIS_URL"}[name]
        mine = self.local_urls().get(var, "")
        if name == "postgres":  # the fixture hands out per-test databases on the same server
            from sqlalchemy.engine import make_url

            a, b = make_url(url), make_url(mine) if mine else None
            same = b is not None and (a.host, a.port) == (b.host, b.port)
        elif name == "redis":
            same = url.rsplit("/", 1)[0] == mine.rsplit("/", 1)[0]
        else:
            same = url == mine
        if not same:
            return f"{name} at {url} is not the one scripts/services.sh manages ({mine or 'none'})"
        status = self._run("status", timeout=60).stdout
        line = next((ln for ln in status.splitlines() if ln.startswith(name)), "")
        if "pid" not in line and "docker" not in line:
            return f"{name} was not started by scripts/services.sh, so it cannot stop it: {line.strip()}"
        return None

    def stop(self, name: str) -> float:
        """Stop ``name``; return how long that took (s)."""
        t0 = time.monotonic()
        self.down.add(name)
        proc = self._run("stop", name)
        assert proc.returncode == 0, f"services.sh stop {name} failed:\n{proc.stderr}"
        return time.monotonic() - t0

    def start(self, name: str) -> float:
        """Start ``name`` and wait until it answers; return how long that took (s)."""
        t0 = time.monotonic()
        proc = self._run("start", name)
        assert proc.returncode == 0, f"services.sh start {name} failed:\n{proc.stderr}"
        self.down.discard(name)
        return time.monotonic() - t0

    def restore(self) -> None:
        """Start whatever this object stopped and did not start again (test teardown)."""
        for name in sorted(self.down):
            self.start(name)



# --------------------------------------------------------------------------- comparison


@dataclass
class Comparison:
    """How a run's candles and alerts differ from what was expected."""

    candles_compared: int
    alerts_compared: int
    missing_candles: int
    extra_candles: int
    trades_missing: int
    trades_extra: int
    differing_candles: int
    missing_alerts: int
    extra_alerts: int

    @property
    def losses(self) -> int:
        """Candles or trades (and alerts) that should be there and are not."""
        return self.missing_candles + self.trades_missing + self.missing_alerts

    @property
    def duplicates(self) -> int:
        """Candles or trades (and alerts) that are there more often than they should be."""
        return self.extra_candles + self.trades_extra + self.extra_alerts


def compare(got: pd.DataFrame, expected: pd.DataFrame, got_alerts: Sequence[tuple[Any, ...]] = (),
            expected_alerts: Sequence[tuple[Any, ...]] = ()) -> Comparison:
    """Count the differences between two candle frames (and alert lists)."""
    key = ["symbol", "interval", "window_start"]
    g = got.set_index(key)
    e = expected.set_index(key)
    both = g.index.intersection(e.index)
    dt = g.loc[both, "trades"].astype("int64") - e.loc[both, "trades"].astype("int64")
    cols = [c for c in expected.columns if c not in key]
    ge, ee = g.loc[both, cols], e.loc[both, cols]
    differing = int((~((ge == ee) | (ge.isna() & ee.isna()))).any(axis=1).sum())
    ga, ea = set(got_alerts), set(expected_alerts)
    return Comparison(
        candles_compared=len(e), alerts_compared=len(expected_alerts),
        missing_candles=len(e.index.difference(g.index)), extra_candles=len(g.index.difference(e.index)),
        trades_missing=int(-dt[dt < 0].sum()), trades_extra=int(dt[dt > 0].sum()),
        differing_candles=differing,
        missing_alerts=len(ea - ga), extra_alerts=len(ga - ea),
    )


def assert_same_results(store: Store, reference: pd.DataFrame, uninterrupted: pd.DataFrame,
                        uninterrupted_alerts: Sequence[tuple[Any, ...]]) -> Comparison:
    """The invariant: candles equal the batch reference and the uninterrupted run, alerts equal the
    uninterrupted run's. Returns the (all-zero) difference counts for the figures."""
    got = candles_frame(store)
    alerts = alert_rows(store)
    cmp = compare(got, reference, alerts, uninterrupted_alerts)
    assert (cmp.losses, cmp.duplicates, cmp.differing_candles) == (0, 0, 0), cmp
    pd.testing.assert_frame_equal(got, reference, check_exact=True)
    pd.testing.assert_frame_equal(got, uninterrupted, check_exact=True)
    assert alerts == list(uninterrupted_alerts)
    return cmp


# --------------------------------------------------------------------------- figures


@dataclass
class FaultFigures:
    """What one fault test measured (one entry of ``test-artifacts/faults.json``)."""

    fault: str
    test: str
    injected: int = 0
    ticks: int = 0
    candles_compared: int = 0
    alerts_compared: int = 0
    losses: int = 0
    duplicates: int = 0
    recovery_s: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, cmp: Comparison) -> None:
        self.candles_compared, self.alerts_compared = cmp.candles_compared, cmp.alerts_compared
        self.losses, self.duplicates = cmp.losses, cmp.duplicates

    def record(self) -> Path:
        """Merge this entry into ``test-artifacts/faults.json`` (keyed by fault) and return the path."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        try:
            data = json.loads(FAULTS_JSON.read_text())
        except (OSError, ValueError):
            data = {}
        entry = asdict(self)
        rec = self.recovery_s
        entry["recovery_max_s"] = max(rec) if rec else None
        entry["recorded_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        data[self.fault] = entry
        tmp = FAULTS_JSON.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        tmp.replace(FAULTS_JSON)
        print(f"\nfault figures: {json.dumps(entry, sort_keys=True)}")
        return FAULTS_JSON
