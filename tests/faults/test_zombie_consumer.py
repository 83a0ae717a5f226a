"""A consumer frozen with SIGSTOP in the middle of a commit, past the session timeout: a zombie.

Member A is frozen *inside* a store transaction, the worst moment: it holds
the drained windows of a batch and the row locks of its fence check. (The test
makes that moment certain: it briefly locks A's progress rows, so that A's
next commit waits in its fence check, freezes A there, then lets go.)

While A is frozen, Kafka's coordinator expires its session (10 s,
``session.timeout.ms`` in :func:`cryptolab.kafka.consumer_config`) and hands
its partitions to member B, and PostgreSQL ends A's silent transaction
(``idle_in_transaction_session_timeout``, set by :class:`cryptolab.store.Store`),
which releases the rows B's commits need. (A stays frozen until PostgreSQL has ended that
transaction: B may move partitions A's transaction never locked sooner, and an A woken
before the timeout would simply finish a commit whose fence had passed, fencing B instead:
correct too, but not the mechanism this test is about.) When A is resumed it still believes
it owns the partitions: its commit is retried and must be refused by the fence
(the stored offset is B's, not the one A expects), A drops its state and
re-reads progress, and nothing it computed before the freeze reaches the store.

Checked: the run ends equal to the uninterrupted run and the batch reference (the
invariant), and A's summary line reports the fenced commit (``1 fenced``, the mechanism).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import psycopg
import pytest
from harness import (
    RECOVERY_LIMIT_S,
    ConsumerProcess,
    FaultFigures,
    FaultRun,
    assert_same_results,
    committed,
    consumers,
    finish,
    time_to_progress,
    wait_progress,
    wait_until,
)
from sqlalchemy.engine import make_url

from cryptolab.store import Store, progress_table

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

#: Kafka's consumer session timeout in cryptolab.kafka.consumer_config (s).
SESSION_TIMEOUT_S = 10.0
#: PostgreSQL's idle_in_transaction_session_timeout set by cryptolab.store.Store (s).
IDLE_IN_TXN_S = 15.0


def _conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _waiting_on_a_lock(conninfo: str, pid: int) -> int | None:
    """The backend pid of the session of this database that the holder ``pid`` blocks (A's
    fence check waiting for the progress rows it holds), if any."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND %s = ANY(pg_blocking_pids(pid)) LIMIT 1", (pid,)).fetchone()
    return int(row[0]) if row else None


def _sessions(conninfo: str) -> list[tuple[object, ...]]:
    """This database's other sessions: pid, state, what they wait for, their last statement."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return conn.execute(
            "SELECT pid, state, wait_event_type, wait_event, left(query, 60) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall()


def _backend_alive(conninfo: str, pid: int) -> bool:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return bool(row and row[0])


def test_consumer_frozen_mid_commit_is_fenced_when_it_wakes_up(
    fault_run: FaultRun, pg_url: str, log_dir: Path
) -> None:
    s = fault_run.for_store(pg_url)
    n = fault_run.stream.n
    store = Store(pg_url)
    store.init()
    group = "zombie"
    conninfo = _conninfo(pg_url)
    fig = FaultFigures(fault="consumer frozen (SIGSTOP) mid-commit past the session timeout, then resumed",
                       test="test_consumer_frozen_mid_commit_is_fenced_when_it_wakes_up",
                       ticks=len(fault_run.stream.ticks))
    with consumers() as procs:
        zombie = ConsumerProcess(s, group, log_dir=log_dir, name="zombie", batch_size=100)
        procs.append(zombie)
        assert wait_progress(store, group, s.topic, n * 0.2, zombie.proc), zombie.output[-3000:]
        # hold A's progress rows so that its next commit waits inside its fence check
        with psycopg.connect(conninfo) as holder:
            me = holder.info.backend_pid
            holder.execute(
                f"SELECT 1 FROM {progress_table.name} WHERE group_id = %s FOR UPDATE", (group,))
            assert wait_until(lambda: _waiting_on_a_lock(conninfo, me) is not None, 30), \
                "A never waited on the lock"
            a_backend = _waiting_on_a_lock(conninfo, me)
            assert a_backend is not None
            seen = _sessions(conninfo)
            zombie.signal(signal.SIGSTOP)
            fig.injected += 1
            frozen_at = committed(store, group, s.topic)
            holder.rollback()  # A's SELECT ... FOR UPDATE now succeeds, inside a frozen process
        t_frozen = time.monotonic()
        heir = ConsumerProcess(s, group, log_dir=log_dir, name="heir", batch_size=100)
        procs.append(heir)
        takeover = time_to_progress(store, group, s.topic, beyond=frozen_at,
                                    timeout=IDLE_IN_TXN_S + 3 * RECOVERY_LIMIT_S)
        assert takeover is not None, f"nobody took over from the frozen member:\n{heir.output[-3000:]}"
        takeover = round(time.monotonic() - t_frozen, 2)
        assert wait_progress(store, group, s.topic, committed(store, group, s.topic) + n * 0.05,
                             heir.proc, timeout=60), heir.output[-3000:]
        # The heir can move partitions A's frozen transaction has not locked before PostgreSQL
        # ends that transaction: A stays frozen until it has, so that A wakes up to a commit that
        # is gone, not to one it may still finish (its fence passed before the freeze).
        assert wait_until(lambda: not _backend_alive(conninfo, a_backend),
                          IDLE_IN_TXN_S + RECOVERY_LIMIT_S), \
            f"PostgreSQL never ended A's silent transaction ({a_backend}): at the freeze {seen}, now {_sessions(conninfo)}"
        zombie.signal(signal.SIGCONT)  # wakes up mid-stream, mid-commit, holding stale windows
        assert (heir.wait(300), zombie.wait(300)) == (0, 0), (heir.output[-3000:], zombie.output[-3000:])
    zs, hs = zombie.summary(), heir.summary()
    assert zs is not None and hs is not None, (zombie.output[-2000:], heir.output[-2000:])
    finish(s, group, log_dir=log_dir)
    # The invariant first: nothing A held when it froze reached the store ...
    fig.add(assert_same_results(store, fault_run.reference, fault_run.uninterrupted,
                                fault_run.uninterrupted_alerts))
    # ... and the mechanism: A's retried commit met the heir's offsets at the fence.
    assert zs["fenced"] >= 1, f"the zombie's stale commit was not refused:\n{zombie.output[-3000:]}"
    fig.recovery_s = [takeover]
    fig.extra.update(
        zombie_fenced_commits=zs["fenced"], heir_fenced_commits=hs["fenced"],
        session_timeout_s=SESSION_TIMEOUT_S, idle_in_transaction_timeout_s=IDLE_IN_TXN_S,
        recovery_note="freeze -> first commit by the heir (includes the session and idle-in-transaction timeouts)",
    )
    fig.record()
    assert takeover <= IDLE_IN_TXN_S + RECOVERY_LIMIT_S, takeover


def test_store_write_sessions_end_silent_transactions(pg_url: str) -> None:
    """The write engine's sessions carry the idle-in-transaction timeout the zombie test relies on."""
    store = Store(pg_url)
    store.init()
    with store._engine.connect() as conn:  # the write engine (the read engine is autocommit)
        value = conn.exec_driver_sql("SHOW idle_in_transaction_session_timeout").scalar()
    store.close()
    assert value == f"{int(IDLE_IN_TXN_S)}s"
