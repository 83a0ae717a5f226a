"""Faults injected into the adapters of an in-process pipeline (no services needed).

A real :class:`CandlePipeline` runs on librdkafka's embedded mock cluster with
a SQLite store and the in-process cache, and one adapter misbehaves:

* the store raises :class:`StoreError` (connection lost) on the first calls of
  every kind: loading progress, the scorer's history and committing;
* the cache is down for a while, then comes back; or is still down at the end;
* dead letters cannot be delivered for a while (Kafka unreachable).

The run must end with the same candles and alerts as a clean run (and the
batch reference), and say in its log what it retried.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from confluent_kafka import Producer
from harness import alert_rows, candles_frame, embedded_topic, market

import cryptolab.pipeline.consumer as consumer_module
from cryptolab.batch import candles_from_ticks, epoch_ms
from cryptolab.cache import MemoryCache
from cryptolab.config import Settings
from cryptolab.errors import CacheError, FencedError, KafkaServiceError, StoreError
from cryptolab.models import encode_tick
from cryptolab.pipeline import CandlePipeline
from cryptolab.store import Store

pytestmark = [pytest.mark.faults, pytest.mark.slow]

BAD = [b"not json", b'{"v":1,"symbol":"BTC-USD","ts":1700000100000,"price":-1.0}']


@pytest.fixture(scope="module")
def stream() -> tuple[list[tuple[bytes, bytes]], pd.DataFrame]:
    m = market(12_000, seed=7)
    records = [(t.symbol.encode(), encode_tick(t)) for t in m.iter_ticks()]
    records.insert(len(records) // 3, (b"BTC-USD", BAD[0]))
    records.insert(2 * len(records) // 3, (b"ETH-USD", BAD[1]))
    return records, candles_from_ticks(m.to_frame(), "1m,5m,15m")


def _topic(tmp: Path, records: list[tuple[bytes, bytes]]) -> Settings:
    return embedded_topic(tmp, records, "flaky")


class FlakyStore(Store):
    """A SQLite store whose first calls of each kind fail like a lost connection."""

    def __init__(self, url: str, failures: int) -> None:
        super().__init__(url)
        self.left = {"load_progress": failures, "final_candles_since": failures, "commit_batch": failures}
        self.failed = 0

    def _maybe_fail(self, what: str) -> None:
        if self.left[what] > 0:
            self.left[what] -= 1
            self.failed += 1
            raise StoreError(f"{what} failed: server closed the connection unexpectedly (injected)")

    def load_progress(self, *a: Any, **k: Any) -> Any:
        self._maybe_fail("load_progress")
        return super().load_progress(*a, **k)

    def final_candles_since(self, *a: Any, **k: Any) -> Any:
        self._maybe_fail("final_candles_since")
        return super().final_candles_since(*a, **k)

    def commit_batch(self, **k: Any) -> Any:
        self._maybe_fail("commit_batch")
        return super().commit_batch(**k)


class FlakyCache(MemoryCache):
    """An in-process cache that is down for its first ``down_for`` publish attempts (or for ever)."""

    def __init__(self, down_for: int | None) -> None:
        super().__init__(f"flaky-{uuid.uuid4().hex[:8]}", clock=lambda: 0.0)
        self.down_for = down_for
        self.attempts = 0

    def publish(self, candles: Any) -> None:
        self.attempts += 1
        if self.down_for is None or self.attempts <= self.down_for:
            raise CacheError("publish on FlakyCache failed: ConnectionError (injected)")
        super().publish(candles)


def _run(s: Settings, store: Store, cache: Any) -> Any:
    return CandlePipeline(s, store=store, cache=cache, batch_size=500, batch_timeout=0.05).run(
        stop_at_end=True)


@pytest.fixture(scope="module")
def clean(stream: tuple[list[tuple[bytes, bytes]], pd.DataFrame],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[pd.DataFrame, list[Any]]]:
    """The clean run's candles and alerts (equal to the batch reference)."""
    records, reference = stream
    tmp_path = tmp_path_factory.mktemp("clean")
    s = _topic(tmp_path, records)
    store = Store(f"sqlite:///{(tmp_path / 'clean.db').as_posix()}")
    store.init()
    stats = _run(s, store, MemoryCache(f"clean-{uuid.uuid4().hex[:8]}"))
    assert stats.dead_letters == len(BAD)
    frame = candles_frame(store)
    pd.testing.assert_frame_equal(frame, reference, check_exact=True)
    yield frame, alert_rows(store)
    store.close()


def test_store_failures_are_retried_with_backoff_and_change_nothing(
    stream: tuple[list[tuple[bytes, bytes]], pd.DataFrame], clean: tuple[pd.DataFrame, list[Any]],
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    records, _ = stream
    s = _topic(tmp_path, records)
    store = FlakyStore(f"sqlite:///{(tmp_path / 'flaky.db').as_posix()}", failures=2)
    store.init()
    with caplog.at_level(logging.WARNING, logger="cryptolab.pipeline"):
        stats = _run(s, store, MemoryCache(f"x-{uuid.uuid4().hex[:8]}"))
    assert store.failed == 6 and stats.store_retries == 6
    assert sum("store unavailable" in r.getMessage() for r in caplog.records) == 6
    pd.testing.assert_frame_equal(candles_frame(store), clean[0], check_exact=True)
    assert alert_rows(store) == clean[1]


def test_cache_outage_is_replayed_when_it_returns(
    stream: tuple[list[tuple[bytes, bytes]], pd.DataFrame], clean: tuple[pd.DataFrame, list[Any]],
    tmp_path: Path,
) -> None:
    records, _ = stream
    s = _topic(tmp_path, records)
    store = Store(f"sqlite:///{(tmp_path / 'c.db').as_posix()}")
    store.init()
    cache = FlakyCache(down_for=1)  # back for the next attempt (a retry, or the final flush)
    stats = _run(s, store, cache)
    assert stats.cache_failures >= 1
    pd.testing.assert_frame_equal(candles_frame(store), clean[0], check_exact=True)
    # everything final reached the cache after all: every series' recent set is its stored finals
    frame = clean[0]
    for (symbol, interval), rows in frame.groupby(["symbol", "interval"]):
        recent = cache.recent(symbol, interval, 10_000)
        assert [c.window_start for c in recent] == epoch_ms(rows["window_start"]).tolist(), (symbol, interval)
        assert cache.latest(symbol, interval) == recent[-1]


def test_cache_still_down_at_the_end_is_reported(
    stream: tuple[list[tuple[bytes, bytes]], pd.DataFrame], clean: tuple[pd.DataFrame, list[Any]],
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    records, _ = stream
    s = _topic(tmp_path, records)
    store = Store(f"sqlite:///{(tmp_path / 'd.db').as_posix()}")
    store.init()
    with caplog.at_level(logging.WARNING, logger="cryptolab.pipeline"):
        _run(s, store, FlakyCache(down_for=None))
    pd.testing.assert_frame_equal(candles_frame(store), clean[0], check_exact=True)
    messages = [r.getMessage() for r in caplog.records]
    assert any("not delivered to the cache" in m for m in messages), messages


class _SlowDlqProducer:
    """Wraps the pipeline's producer: flush() reports undelivered records a few times first."""

    stalls = 0

    def __init__(self, conf: dict[str, Any]) -> None:
        self._p = Producer(conf)
        self.conf = conf

    def flush(self, timeout: float = -1) -> int:
        left = self._p.flush(timeout if timeout >= 0 else 30)
        if _SlowDlqProducer.stalls > 0:
            _SlowDlqProducer.stalls -= 1
            return max(left, 1)
        return left

    def __getattr__(self, name: str) -> Any:
        return getattr(self._p, name)


def test_dead_letters_wait_for_kafka_instead_of_failing_the_batch(
    stream: tuple[list[tuple[bytes, bytes]], pd.DataFrame], clean: tuple[pd.DataFrame, list[Any]],
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    records, _ = stream
    s = _topic(tmp_path, records)
    store = Store(f"sqlite:///{(tmp_path / 'e.db').as_posix()}")
    store.init()
    monkeypatch.setattr(consumer_module, "Producer", _SlowDlqProducer)
    _SlowDlqProducer.stalls = 3
    with caplog.at_level(logging.WARNING, logger="cryptolab.pipeline"):
        stats = _run(s, store, MemoryCache(f"e-{uuid.uuid4().hex[:8]}"))
    assert stats.dead_letters == len(BAD)
    assert sum("dead-letter records not delivered" in r.getMessage() for r in caplog.records) == 3
    pd.testing.assert_frame_equal(candles_frame(store), clean[0], check_exact=True)


def test_stopping_while_dead_letters_are_undelivered_commits_nothing_of_that_batch(
    stream: tuple[list[tuple[bytes, bytes]], pd.DataFrame], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    records, _ = stream
    s = _topic(tmp_path, records[:2_000] + [(b"BTC-USD", BAD[0])])
    store = Store(f"sqlite:///{(tmp_path / 'f.db').as_posix()}")
    store.init()
    monkeypatch.setattr(consumer_module, "Producer", _SlowDlqProducer)
    _SlowDlqProducer.stalls = 10**9  # Kafka never comes back
    pipe = CandlePipeline(s, store=store, cache=MemoryCache(f"f-{uuid.uuid4().hex[:8]}"),
                          batch_size=5_000, batch_timeout=0.05)
    original = pipe._dead_letters.flush

    def stop_then_flush() -> None:
        pipe.stop()
        original()

    monkeypatch.setattr(pipe._dead_letters, "flush", stop_then_flush)
    with pytest.raises(KafkaServiceError, match="dead-letter records not delivered"):
        pipe.run(stop_at_end=True)
    _SlowDlqProducer.stalls = 0
    committed = sum(p.offset for p in store.load_progress(s.group, s.topic).values())
    assert committed < len(records[:2_000]) + 1, "the batch holding the dead letter was committed"


class AckLostStore(Store):
    """A store whose first commit with final candles goes through, but whose answer is lost."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.lost = 0

    def commit_batch(self, **k: Any) -> Any:
        result = super().commit_batch(**k)
        if self.lost == 0 and k.get("candles"):
            self.lost += 1
            raise StoreError("commit_batch failed: server closed the connection unexpectedly (injected "
                             "after COMMIT)")
        return result


def test_a_commit_whose_answer_was_lost_is_recognised_and_published(
    stream: tuple[list[tuple[bytes, bytes]], pd.DataFrame], clean: tuple[pd.DataFrame, list[Any]],
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """The retry meets the batch's own offsets at the fence: not another member, so the batch is
    committed and its candles still reach the cache (else the cache would miss them for good)."""
    records, _ = stream
    s = _topic(tmp_path, records)
    store = AckLostStore(f"sqlite:///{(tmp_path / 'g.db').as_posix()}")
    store.init()
    cache = MemoryCache(f"g-{uuid.uuid4().hex[:8]}", clock=lambda: 0.0)
    with caplog.at_level(logging.WARNING, logger="cryptolab.pipeline"):
        stats = _run(s, store, cache)
    assert store.lost == 1 and stats.store_retries == 1 and stats.fenced == 0
    assert any("outcome was unknown had succeeded" in r.getMessage() for r in caplog.records)
    pd.testing.assert_frame_equal(candles_frame(store), clean[0], check_exact=True)
    assert alert_rows(store) == clean[1]
    for (symbol, interval), rows in clean[0].groupby(["symbol", "interval"]):
        recent = cache.recent(symbol, interval, 10_000)
        assert [c.window_start for c in recent] == epoch_ms(rows["window_start"]).tolist(), (symbol, interval)


class FencedOnceStore(Store):
    """A store where, once, another member commits a batch just before this one does.

    The other member did the very same work (it read the same offsets), so after
    resyncing from what it stored, the run must end exactly as a clean one.
    """

    def __init__(self, url: str, at: int) -> None:
        super().__init__(url)
        self.calls = 0
        self.at = at
        self.finals: list[tuple[Any, ...]] = []  # (key, revision) of every final this member committed

    def commit_batch(self, **k: Any) -> Any:
        self.calls += 1
        if self.calls == self.at:
            super().commit_batch(**k)  # the other member's commit
            raise FencedError("partition 0: expected offset ..., store has offset ... (injected)")
        result = super().commit_batch(**k)
        self.finals += [(c.key, c.revision) for c in k.get("candles", ()) if c.final]
        return result


def test_a_fenced_commit_resyncs_and_refolds_what_was_folded_meanwhile(
    stream: tuple[list[tuple[bytes, bytes]], pd.DataFrame], clean: tuple[pd.DataFrame, list[Any]],
    tmp_path: Path,
) -> None:
    """Batch N+1 is folded while batch N is written; when N is fenced, N+1 is dropped and
    folded again from the stored offsets (not committed on top of the other member's state)."""
    records, _ = stream
    s = _topic(tmp_path, records)
    store = FencedOnceStore(f"sqlite:///{(tmp_path / 'h.db').as_posix()}", at=3)
    store.init()
    folded_during_commit = []
    pipe = CandlePipeline(s, store=store, cache=MemoryCache(f"h-{uuid.uuid4().hex[:8]}"),
                          batch_size=2_000, batch_timeout=0.05)
    process = pipe._process

    def watch(msgs: Any) -> None:
        inflight = pipe._committer.inflight
        folded_during_commit.append(inflight is not None and not inflight[1].done())
        process(msgs)

    pipe._process = watch  # type: ignore[method-assign]
    stats = pipe.run(stop_at_end=True)
    assert stats.fenced == 1 and store.calls > 4
    assert any(folded_during_commit), "no batch was folded while a commit was in flight"
    # what was folded meanwhile was dropped, not committed as well as folded again
    assert len(set(store.finals)) == len(store.finals)
    pd.testing.assert_frame_equal(candles_frame(store), clean[0], check_exact=True)
    assert alert_rows(store) == clean[1]


class SlowStore(Store):
    """A store whose commits take longer than folding a batch (a busy database)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.calls = 0

    def commit_batch(self, **k: Any) -> Any:
        self.calls += 1
        time.sleep(0.05)
        return super().commit_batch(**k)


def test_batches_folded_while_a_slow_commit_is_written_go_out_together(
    stream: tuple[list[tuple[bytes, bytes]], pd.DataFrame], clean: tuple[pd.DataFrame, list[Any]],
    tmp_path: Path,
) -> None:
    """The consumer does not wait for a commit in flight while it has batches to fold: those
    folded meanwhile are committed together (fewer commits than batches), with the same
    candles and alerts as a clean run."""
    records, _ = stream
    s = _topic(tmp_path, records)
    store = SlowStore(f"sqlite:///{(tmp_path / 's.db').as_posix()}")
    store.init()
    stats = _run(s, store, MemoryCache(f"s-{uuid.uuid4().hex[:8]}"))
    assert stats.fenced == 0 and stats.commits == store.calls
    assert stats.commits < stats.batches, (stats.commits, stats.batches)
    pd.testing.assert_frame_equal(candles_frame(store), clean[0], check_exact=True)
    assert alert_rows(store) == clean[1]
