"""``run(stop_at_end=True)`` never reports an unfinished topic as done (no services needed).

In-process pipelines on librdkafka's embedded mock cluster with SQLite stores:

* a run with ``stop_at_end`` that ends on a limit first (``count``, ``timeout``, :meth:`stop`)
  raises :class:`EndNotReachedError` naming the partitions not done, leaves their windows open
  in the stored progress, and the next ``stop_at_end`` run completes them;
* a member with ``stop_at_end`` next to a live member that keeps its partitions (and their open
  windows) drains and closes only its own, waits ``end_wait`` without progress, and raises naming
  exactly the live member's partitions: it never closes a partition another member consumes.

Each ends with a complete run whose candles equal the batch reference.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from harness import candles_frame, embedded_topic, market, wait_until

from cryptolab.batch import candles_from_ticks
from cryptolab.cache import MemoryCache
from cryptolab.config import Settings
from cryptolab.errors import EndNotReachedError
from cryptolab.models import encode_tick
from cryptolab.pipeline import CandlePipeline
from cryptolab.store import Store

pytestmark = [pytest.mark.faults, pytest.mark.slow]


@pytest.fixture(scope="module")
def stream() -> tuple[list[tuple[bytes, bytes]], pd.DataFrame]:
    m = market(12_000, seed=5)
    return [(t.symbol.encode(), encode_tick(t)) for t in m.iter_ticks()], candles_from_ticks(m.to_frame(), "1m,5m,15m")


def _topic(tmp: Path, records: list[tuple[bytes, bytes]]) -> Settings:
    return embedded_topic(tmp, records, "end")


def _pipeline(s: Settings, store: Store) -> CandlePipeline:
    return CandlePipeline(s, store=store, cache=MemoryCache(f"end-{uuid.uuid4().hex[:8]}"), scorer=None,
                          batch_size=500, batch_timeout=0.05)


def _complete(s: Settings, store: Store, reference: pd.DataFrame) -> None:
    _pipeline(s, store).run(stop_at_end=True)
    pd.testing.assert_frame_equal(candles_frame(store), reference, check_exact=True)


@pytest.mark.parametrize("limit", ["count", "timeout", "stop"])
def test_a_stop_at_end_run_cut_short_raises_and_the_next_one_completes(
    stream: tuple[list[tuple[bytes, bytes]], pd.DataFrame], tmp_path: Path, limit: str
) -> None:
    records, reference = stream
    s = _topic(tmp_path, records)
    store = Store(f"sqlite:///{(tmp_path / 'end.db').as_posix()}")
    store.init()
    pipe = _pipeline(s, store)
    kwargs: dict[str, float] = {"count": 1_000} if limit == "count" else {}
    if limit == "timeout":
        kwargs["timeout"] = 0.0
    elif limit == "stop":
        pipe.stop()
    with pytest.raises(EndNotReachedError) as err:
        pipe.run(stop_at_end=True, **kwargs)
    assert err.value.partitions, err.value
    assert "not drained to the end offsets at start and closed" in str(err.value)
    _complete(s, store, reference)


def test_a_member_never_closes_the_partitions_a_live_member_holds(
    stream: tuple[list[tuple[bytes, bytes]], pd.DataFrame], tmp_path: Path
) -> None:
    records, reference = stream
    s = _topic(tmp_path, records)
    store = Store(f"sqlite:///{(tmp_path / 'end.db').as_posix()}")
    store.init()
    live = _pipeline(s, store)  # no stop_at_end: keeps its partitions and their open windows
    thread = threading.Thread(target=live.run, name="live-member", daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: len(live.assignment) > 0 and live.stats.commits > 0, 60, 0.05)
        with pytest.raises(EndNotReachedError) as err:
            _pipeline(replace(s, end_wait_ms=2_000), store).run(stop_at_end=True)
        held = live.assignment
    finally:
        live.stop()
        thread.join(60)
    assert held and err.value.partitions == held, (err.value, held)
    assert "held by other members" in str(err.value)
    _complete(s, store, reference)


def test_a_member_not_yet_assigned_does_not_say_others_hold_partitions(
    stream: tuple[list[tuple[bytes, bytes]], pd.DataFrame], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """While the group is still assigning, no member holds anything yet: a lone ``stop_at_end``
    run must not report partitions "held by other members" (it used to, on every run)."""
    records, reference = stream
    s = _topic(tmp_path, records)
    store = Store(f"sqlite:///{tmp_path / 'alone.db'}")
    store.init()
    with caplog.at_level("INFO", logger="cryptolab.pipeline"):
        _complete(s, store, reference)
    said = [r.getMessage() for r in caplog.records]
    assert any("assigned partitions" in m for m in said), said  # the run did join the group
    assert not [m for m in said if "held by other members" in m], said
