"""The fenced commit: a consumer batch and its progress in ONE transaction.

Candles, alerts, late ticks, the webhook deliveries of the new alerts *and* the consumer's progress (next offset, watermark,
windowing state) are written together, and the progress rows are fenced: a consumer
whose idea of the stored offset is stale (because another member of the group
committed past it after a rebalance) gets :class:`~cryptolab.errors.FencedError` and
nothing of its batch is written. The rows are locked while checked (``SELECT ... FOR
UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite); on PostgreSQL, when every
partition has stored progress, one compare-and-set ``UPDATE`` is both the check and
the write.

Examples
--------
>>> _fence_message("g", "t", 0, 10, 12)
"group 'g' topic 't' partition 0: expected offset 10, store has offset 12 (another consumer committed; re-read progress)"
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cryptolab.errors import FencedError
from cryptolab.models import Alert, Candle
from cryptolab.store.outbox import insert_deliveries
from cryptolab.store.records import LateTick, PartitionProgress, WebhookDelivery
from cryptolab.store.rows import alert_row, candle_columns_by_key, late_row
from cryptolab.store.schema import progress_table

if TYPE_CHECKING:
    from cryptolab.store.database import Database

__all__ = ["commit_batch"]

_PC = progress_table.c
_INSERT_PROGRESS: Final = sa.insert(progress_table)
_UPDATE_PROGRESS: Final = (
    sa.update(progress_table)
    .where(
        _PC.group_id == sa.bindparam("b_group"),
        _PC.topic == sa.bindparam("b_topic"),
        _PC.partition == sa.bindparam("b_partition"),
        _PC.offset == sa.bindparam("b_expected"),
    )
    .values(
        offset=sa.bindparam("offset"),
        watermark_ms=sa.bindparam("watermark_ms"),
        state=sa.bindparam("state"),
        updated_at=sa.bindparam("updated_at"),
    )
)


def commit_batch(
    db: Database,
    *,
    group: str,
    topic: str,
    candles: Sequence[Candle] = (),
    alerts: Sequence[Alert] = (),
    late_ticks: Sequence[LateTick] = (),
    progress: Mapping[int, PartitionProgress] | None = None,
    expected_offsets: Mapping[int, int | None] | None = None,
    deliveries: Sequence[WebhookDelivery] = (),
) -> list[Alert]:
    """Write one consumer batch atomically, fenced by the consumer's progress.

    See :meth:`cryptolab.store.Store.commit_batch`, which this implements.
    """
    progress = progress or {}
    expected = dict(expected_offsets or {})
    missing = [p for p in progress if p not in expected]
    if missing:
        raise ValueError(
            f"expected_offsets has no entry for partition(s) {sorted(missing)}: pass the "
            "offset read by load_progress() (None when there was none)"
        )
    for p, prog in progress.items():
        if prog.partition != p:
            raise ValueError(f"progress[{p}] is for partition {prog.partition}")
    candle_columns = candle_columns_by_key(candles)  # one upsert may not touch a row twice
    unique_alerts: dict[tuple[str, str, int, str], Alert] = {}
    for a in alerts:
        unique_alerts.setdefault(a.key, a)
    now = int(time.time() * 1000)
    late_rows = [late_row(t, now) for t in late_ticks]
    dialect = db.dialect
    with db.errors("commit_batch"), db.write() as conn:
        # None: not compared-and-set in one statement; checked here, written at the end
        failed = dialect.compare_and_set(conn, group, topic, progress, expected, now)
        if failed:
            # those rows were not updated: the check reads what the other consumer stored
            _check_fence(db, conn, group, topic, {p: expected[p] for p in failed})
            raise FencedError(_fence_message(group, topic, failed[0], expected[failed[0]], None, lost=True))
        if failed is None and expected:
            _check_fence(db, conn, group, topic, expected)
        if candle_columns[0]:
            dialect.write_candles(conn, candle_columns)
        inserted_keys: set[tuple[Any, ...]] = set()
        if unique_alerts:
            result = conn.execute(dialect.insert_alerts, [alert_row(a) for a in unique_alerts.values()])
            inserted_keys = {(s, i, int(w), d) for s, i, w, d in result.all()}
        if deliveries and inserted_keys:
            insert_deliveries(db, conn, deliveries, now_ms=now, inserted=inserted_keys)
        if late_rows:
            conn.execute(dialect.insert_late, late_rows)
        if progress and failed is None:
            _write_progress(conn, group, topic, progress, expected, now)
    return [a for k, a in unique_alerts.items() if k in inserted_keys]


def _check_fence(
    db: Database, conn: Connection, group: str, topic: str, expected: Mapping[int, int | None]
) -> None:
    """Raise :class:`FencedError` unless each partition's stored offset is the expected one."""
    stmt = (
        sa.select(_PC.partition, _PC.offset)
        .where(_PC.group_id == group, _PC.topic == topic, _PC.partition.in_(sorted(expected)))
        .order_by(_PC.partition)
    )
    stored = {int(p): int(o) for p, o in conn.execute(db.dialect.lock_rows(stmt)).all()}
    for p in sorted(expected):
        want, have = expected[p], stored.get(p)
        if want != have:
            raise FencedError(_fence_message(group, topic, p, want, have))


def _write_progress(
    conn: Connection,
    group: str,
    topic: str,
    progress: Mapping[int, PartitionProgress],
    expected: Mapping[int, int | None],
    now: int,
) -> None:
    """Move stored progress on (each UPDATE compares the old offset) and insert the new."""
    updates: list[dict[str, Any]] = []
    inserts: list[dict[str, Any]] = []
    for p, prog in sorted(progress.items()):
        row = {
            "offset": prog.offset,
            "watermark_ms": prog.watermark_ms,
            "state": bytes(prog.state),
            "updated_at": now,
        }
        want = expected[p]
        if want is None:
            inserts.append({"group_id": group, "topic": topic, "partition": p, **row})
        else:
            updates.append(
                {"b_group": group, "b_topic": topic, "b_partition": p, "b_expected": want, **row}
            )
    for u in updates:
        # Rows are locked by the fence check; the WHERE on the old offset makes the
        # update safe even without that lock.
        if conn.execute(_UPDATE_PROGRESS, u).rowcount != 1:
            raise FencedError(
                _fence_message(group, topic, u["b_partition"], u["b_expected"], None, lost=True)
            )
    if inserts:
        try:
            with conn.begin_nested():
                conn.execute(_INSERT_PROGRESS, inserts)
        except sa.exc.IntegrityError:
            parts = [r["partition"] for r in inserts]
            raise FencedError(
                f"group {group!r} topic {topic!r} partition(s) {parts}: another consumer "
                "stored progress first (re-read progress)"
            ) from None


def _fence_message(
    group: str, topic: str, partition: int, want: int | None, have: int | None, *, lost: bool = False
) -> str:
    """The message of a lost fence: what was expected, what the store has (or that it moved)."""
    where = f"group {group!r} topic {topic!r} partition {partition}"
    if lost:
        return f"{where}: stored offset moved away from {want} (another consumer committed; re-read progress)"
    want_s = "no stored progress" if want is None else f"offset {want}"
    have_s = "no progress" if have is None else f"offset {have}"
    return f"{where}: expected {want_s}, store has {have_s} (another consumer committed; re-read progress)"
