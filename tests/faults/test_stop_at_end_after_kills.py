"""``consume --stop-at-end`` started at once after members were SIGKILLed: the whole topic, not just
the partitions it is given first.

A SIGKILLed member stays in the group until its session expires (10 s, ``session.timeout.ms`` in
:func:`cryptolab.kafka.consumer_config`), and so do members killed while their JoinGroup was
waiting at the coordinator: they are given partitions in the next generation. A ``--stop-at-end``
member started right after such kills may own only some partitions at first. It must not exit when
*those* are at their end: it waits for the others, takes them over when the dead members' sessions
expire, drains them to the end offsets it read at start and closes every window, and exits 0 only
once the group's stored progress covers every partition.

Two ways to get there, each followed at once by the ``--stop-at-end`` run:

* the reported reproduction: 15 members, each SIGKILLed 0.8-2.8 s after it starts (most of them
  while joining a group whose previous members are dead but not expired yet);
* static membership, where the outcome does not depend on who leads the next rebalance: members
  ``a`` (the leader) and ``b`` (``--instance-id``) split the partitions and are both SIGKILLed; the
  finishing run comes back as ``b`` and is given b's partitions at once, without a rebalance, while
  a's stay with the dead ``a`` until its session expires.

Checked: the candles equal, bit for bit, the batch reference and the uninterrupted run, the alerts
equal the uninterrupted run's, and the group's progress reaches the end of every partition.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest
from harness import (
    ConsumerProcess,
    FaultFigures,
    FaultRun,
    assert_same_results,
    committed,
    consumers,
    finish,
    wait_until,
)

from cryptolab.store import Store

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

#: Members killed in the reported reproduction, and when (s after each one starts).
KILLS = 15
KILL_AFTER_S = (0.8, 2.8)
#: The finishing member logs its assignments (INFO) so the figures say what it was given first.
INFO = {"CRYPTOLAB_LOG_LEVEL": "INFO"}


def _finish_and_check(fault_run: FaultRun, pg_url: str, group: str, log_dir: Path, fig: FaultFigures,
                      *, instance_id: str | None = None) -> ConsumerProcess:
    s = fault_run.for_store(pg_url)
    store = Store(pg_url)
    t0 = time.monotonic()
    final = finish(s, group, log_dir=log_dir, instance_id=instance_id, env=INFO)
    fig.add(assert_same_results(store, fault_run.reference, fault_run.uninterrupted,
                                fault_run.uninterrupted_alerts))
    assert committed(store, group, s.topic) == fault_run.stream.n
    fig.recovery_s = [round(time.monotonic() - t0, 2)]
    fig.extra.update(
        finishing_member_assignments=final.assignments(),
        finishing_member_waited="held by other members" in final.output,
        finishing_member_summary=final.summary(),
        recovery_note="the --stop-at-end run, from its start to its exit",
    )
    return final


def test_stop_at_end_right_after_sigkills_drains_and_closes_every_partition(
    fault_run: FaultRun, pg_url: str, log_dir: Path
) -> None:
    s = fault_run.for_store(pg_url)
    store = Store(pg_url)
    store.init()
    group = "killed_while_joining"
    rng = random.Random(11)
    fig = FaultFigures(fault="--stop-at-end at once after 15 members were SIGKILLed 0.8-2.8 s after start",
                       test="test_stop_at_end_right_after_sigkills_drains_and_closes_every_partition",
                       ticks=len(fault_run.stream.ticks))
    at_kills = []
    with consumers() as procs:
        for _ in range(KILLS):
            c = ConsumerProcess(s, group, log_dir=log_dir, name="killed", stop_at_end=False)
            procs.append(c)
            time.sleep(rng.uniform(*KILL_AFTER_S))
            c.signal(signal.SIGKILL)
            c.wait(30)
            fig.injected += 1
            at_kills.append(committed(store, group, s.topic))
    fig.extra["committed_at_kills"] = at_kills
    _finish_and_check(fault_run, pg_url, group, log_dir, fig)
    fig.record()


def test_static_member_back_with_stop_at_end_waits_for_the_partitions_of_a_killed_peer(
    fault_run: FaultRun, pg_url: str, log_dir: Path
) -> None:
    s = fault_run.for_store(pg_url)
    store = Store(pg_url)
    store.init()
    group = "static_killed"
    fig = FaultFigures(fault="--stop-at-end at once as one of two SIGKILLed static members",
                       test="test_static_member_back_with_stop_at_end_waits_for_the_partitions_of_a_killed_peer",
                       ticks=len(fault_run.stream.ticks))
    with consumers() as procs:
        a = ConsumerProcess(s, group, log_dir=log_dir, name="a", stop_at_end=False, instance_id="a", env=INFO)
        procs.append(a)
        assert wait_until(lambda: bool(a.assignments()), 60, 0.1), a.output[-3000:]
        b = ConsumerProcess(s, group, log_dir=log_dir, name="b", stop_at_end=False, instance_id="b", env=INFO)
        procs.append(b)

        def split() -> bool:  # one generation: a and b each own some partitions, all three in all
            la, lb = a.assignments(), b.assignments()
            return bool(la and lb and la[-1] and lb[-1]) and sorted(la[-1] + lb[-1]) == [0, 1, 2]

        assert wait_until(split, 60, 0.1), (a.output[-3000:], b.output[-3000:])
        fig.extra["killed_assignments"] = {"a": a.assignments()[-1], "b": b.assignments()[-1]}
        for c in (a, b):
            c.signal(signal.SIGKILL)
            c.wait(30)
            fig.injected += 1
    fig.extra["committed_at_kills"] = committed(store, group, s.topic)
    final = _finish_and_check(fault_run, pg_url, group, log_dir, fig, instance_id="b")
    # back as "b" (a follower: no rebalance), given b's partitions at once; a's came only once the
    # dead a's session had expired
    assert final.assignments()[0] == fig.extra["killed_assignments"]["b"], final.output[-3000:]
    fig.record()
