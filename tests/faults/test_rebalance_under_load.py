"""Consumer-group rebalances while the feed is live: members join, leave gracefully and crash.

A live feed produces the stream over 25 s while the group changes under it:
A starts alone, B joins at 15 %, C joins at 35 %, B leaves with SIGTERM at 55 %
(it finishes and commits its batch, then leaves the group) and C is killed with
SIGKILL at 70 % (its partitions come back only once its session expires). A
runs to the end. Every change moves partitions with their stored windows; the
result must equal the uninterrupted run and the batch reference.

Recovery after each change is the longest time any partition went without a
commit until the next change (the feed keeps every partition busy), measured
by :class:`harness.ProgressMonitor`.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import (
    RECOVERY_LIMIT_S,
    ConsumerProcess,
    FaultFigures,
    FaultRun,
    LiveFeed,
    ProgressMonitor,
    assert_same_results,
    consumers,
    finish,
    new_topic,
    wait_progress,
)

from cryptolab.store import Store

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

FEED_S = 25.0


def test_members_join_leave_and_crash_while_the_feed_is_live(
    fault_run: FaultRun, pg_url: str, log_dir: Path
) -> None:
    s = new_topic(fault_run.for_store(pg_url), prefix="faults_rebalance")
    n = fault_run.stream.n
    store = Store(pg_url)
    store.init()
    group = "rebalance"
    fig = FaultFigures(fault="consumer group rebalance under load (join, leave, crash)",
                       test="test_members_join_leave_and_crash_while_the_feed_is_live",
                       ticks=len(fault_run.stream.ticks))
    marks: list[tuple[str, float]] = []
    members: dict[str, ConsumerProcess] = {}

    with consumers() as procs, ProgressMonitor(store, group, s.topic) as monitor:
        a = ConsumerProcess(s, group, log_dir=log_dir, name="a", batch_size=300, stop_at_end=False)
        procs.append(a)
        feed = LiveFeed(s, fault_run.stream.records, seconds=FEED_S).start()

        def change(name: str, at: float, act: Callable[[], object]) -> None:
            assert wait_progress(store, group, s.topic, n * at, a.proc, timeout=120), a.output[-3000:]
            act()
            fig.injected += 1
            marks.append((name, time.monotonic()))

        def join(name: str) -> None:
            members[name] = ConsumerProcess(s, group, log_dir=log_dir, name=name, batch_size=300,
                                            stop_at_end=False)
            procs.append(members[name])

        change("b joins", 0.15, lambda: join("b"))
        change("c joins", 0.35, lambda: join("c"))
        change("b leaves (SIGTERM)", 0.55, lambda: members["b"].stop(60))
        change("c crashes (SIGKILL)", 0.70, lambda: members["c"].signal(signal.SIGKILL))
        assert feed.join() == n
        assert wait_progress(store, group, s.topic, n, a.proc, timeout=300), a.output[-3000:]
        done = time.monotonic()  # every partition is committed to its end
        assert a.stop(60) == 0, a.output[-3000:]
        assert members["b"].wait(5) == 0, members["b"].output[-3000:]
        assert members["c"].wait(5) == -signal.SIGKILL
    sa, sb = a.summary(), members["b"].summary()
    assert sa is not None and sb is not None and sb["ticks"] > 0, (sa, sb)
    finish(s, group, log_dir=log_dir)
    fig.add(assert_same_results(store, fault_run.reference, fault_run.uninterrupted,
                                fault_run.uninterrupted_alerts))
    ends = [t for _, t in marks[1:]] + [done]
    stalls = {name: monitor.longest_stall(t, end) for (name, t), end in zip(marks, ends, strict=True)}
    fig.recovery_s = list(stalls.values())
    fig.extra["longest_partition_stall_s"] = stalls
    fig.record()
    assert max(fig.recovery_s) <= RECOVERY_LIMIT_S, stalls
