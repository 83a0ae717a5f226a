"""The webhook outbox: deliveries written with their alerts, claimed and settled by a sender.

A batch's deliveries are inserted by :func:`insert_deliveries` inside the fenced commit
(:mod:`~cryptolab.store.commit`), only for the alerts that batch inserts, and at most once per
(alert, URL): a crash loses none and a replay adds none. :class:`WebhookOutbox`
(``store.webhooks``) is the sender's side: :meth:`~WebhookOutbox.claim` leases due deliveries
(so two consumer processes never POST the same one at once), :meth:`~WebhookOutbox.settle`
records each outcome.

Examples
--------
>>> from cryptolab.store import Store
>>> from cryptolab.store.records import WebhookDelivery
>>> s = Store("sqlite://"); s.init()
>>> with s._write() as conn:
...     insert_deliveries(s.webhooks.db, conn, [WebhookDelivery(
...         alert_id="a1", symbol="X", interval="1m", window_start=0, detector="rule:r",
...         url="http://127.0.0.1:9/hook", format="json", body="{}")], now_ms=1_000)
1
>>> [d.alert_id for d in s.webhooks.claim(now_ms=1_000)], s.webhooks.claim(now_ms=1_001)
(['a1'], [])
>>> s.webhooks.settle(1, ok=False, status=503, error="HTTP 503", next_attempt_ms=2_000, now_ms=1_002)
>>> d = s.webhooks.list()[0]; (d.status, d.attempts, d.last_status, d.next_attempt_ms)
('pending', 1, 503, 2000)
>>> s.webhooks.counts()
{'pending': 1}
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection

from cryptolab.store.records import WebhookDelivery
from cryptolab.store.schema import webhook_deliveries_table

if TYPE_CHECKING:
    from cryptolab.store.database import Database

__all__ = ["WebhookOutbox", "insert_deliveries", "url_hash"]

_T = webhook_deliveries_table
_C = _T.c
#: Longest error text kept per delivery.
MAX_ERROR: Final = 500


def url_hash(url: str) -> str:
    """The SHA-256 of a URL, hex (the outbox's unique key is ``(alert_id, url_hash)``).

    Examples
    --------
    >>> url_hash("http://x/")[:12]
    '37844e1d35c3'
    """
    return hashlib.sha256(url.encode()).hexdigest()


def _insert(db: Database) -> Any:
    mod = pg_dialect if db.dialect.name == "postgresql" else sqlite_dialect
    return mod.insert(_T).on_conflict_do_nothing(index_elements=["alert_id", "url_hash"])


def insert_deliveries(
    db: Database, conn: Connection, deliveries: Sequence[WebhookDelivery], *, now_ms: int,
    inserted: Collection[tuple[str, str, int, str]] | None = None,
) -> int:
    """Insert pending deliveries on ``conn`` (in the caller's transaction); return how many.

    Only those whose alert key is in ``inserted`` (all when ``None``); a delivery already in
    the outbox (same alert id and URL) is left as it is.
    """
    rows = [
        {"alert_id": d.alert_id, "symbol": d.symbol, "interval": d.interval, "window_start": d.window_start,
         "detector": d.detector, "url": d.url, "url_hash": url_hash(d.url), "format": d.format,
         "body": d.body, "status": "pending", "attempts": 0, "next_attempt_ms": now_ms,
         "lease_until_ms": None, "last_status": None, "last_error": None, "created_ms": now_ms,
         "delivered_ms": None}
        for d in deliveries if inserted is None or d.alert_key in inserted
    ]
    if not rows:
        return 0
    conn.execute(_insert(db), rows)
    return len(rows)


def _delivery(r: Any) -> WebhookDelivery:
    return WebhookDelivery(
        id=int(r.id), alert_id=r.alert_id, symbol=r.symbol, interval=r.interval,
        window_start=int(r.window_start), detector=r.detector, url=r.url, format=r.format, body=r.body,
        status=r.status, attempts=int(r.attempts), next_attempt_ms=int(r.next_attempt_ms),
        last_status=None if r.last_status is None else int(r.last_status), last_error=r.last_error,
        created_ms=int(r.created_ms), delivered_ms=None if r.delivered_ms is None else int(r.delivered_ms),
    )


class WebhookOutbox:
    """The sender's side of the outbox (``store.webhooks``).

    Parameters
    ----------
    db
        The store's database.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def _due(self, now_ms: int) -> Any:
        return sa.and_(_C.status == "pending", _C.next_attempt_ms <= now_ms,
                       sa.or_(_C.lease_until_ms.is_(None), _C.lease_until_ms <= now_ms))

    def claim(self, *, now_ms: int, limit: int = 50, lease_ms: int = 60_000) -> list[WebhookDelivery]:
        """Lease up to ``limit`` due deliveries for ``lease_ms`` and return them, oldest due first.

        A delivery is due when pending, its next attempt is not in the future and no lease on
        it is running: a sender that dies holding a lease delays its deliveries by at most
        ``lease_ms``, it loses none.
        """
        with self.db.errors("webhook claim"), self.db.read() as conn:  # no write lock while idle
            if conn.execute(sa.select(_C.id).where(self._due(now_ms)).limit(1)).first() is None:
                return []
        with self.db.errors("webhook claim"), self.db.write() as conn:
            ids = [int(i) for i in conn.execute(
                sa.select(_C.id).where(self._due(now_ms)).order_by(_C.next_attempt_ms, _C.id).limit(limit)
            ).scalars()]
            got = []
            for i in ids:  # the WHERE is checked again under the row lock: one sender wins each
                res = conn.execute(sa.update(_T).where(_C.id == i, self._due(now_ms))
                                   .values(lease_until_ms=now_ms + lease_ms))
                if res.rowcount == 1:
                    got.append(i)
            if not got:
                return []
            rows = conn.execute(sa.select(_T).where(_C.id.in_(got)).order_by(_C.next_attempt_ms, _C.id)).all()
        return [_delivery(r) for r in rows]

    def settle(self, delivery_id: int, *, ok: bool, status: int | None, error: str | None,
               next_attempt_ms: int | None, now_ms: int) -> None:
        """Record one attempt: delivered (``ok``), due again at ``next_attempt_ms``, or failed for good
        (``next_attempt_ms=None``); the lease ends."""
        values: dict[str, Any] = {
            "attempts": _C.attempts + 1, "lease_until_ms": None, "last_status": status,
            "last_error": None if error is None else error[:MAX_ERROR],
        }
        if ok:
            values.update(status="delivered", delivered_ms=now_ms)
        elif next_attempt_ms is None:
            values.update(status="failed")
        else:
            values.update(next_attempt_ms=next_attempt_ms)
        with self.db.errors("webhook settle"), self.db.write() as conn:
            conn.execute(sa.update(_T).where(_C.id == delivery_id).values(**values))

    def next_due_ms(self) -> int | None:
        """When the earliest pending delivery is due (epoch ms; a lease is not looked at), or ``None``."""
        with self.db.errors("webhook next due"), self.db.read() as conn:
            v = conn.execute(sa.select(sa.func.min(_C.next_attempt_ms)).where(_C.status == "pending")).scalar()
        return None if v is None else int(v)

    def list(self, *, status: str | None = None, detector: str | None = None,
             limit: int | None = None) -> list[WebhookDelivery]:
        """Deliveries (all, or of a status and/or an alert detector), oldest first; with ``limit``,
        the newest ``limit``."""
        stmt = sa.select(_T)
        if status is not None:
            stmt = stmt.where(_C.status == status)
        if detector is not None:
            stmt = stmt.where(_C.detector == detector)
        if limit is not None:
            stmt = stmt.order_by(_C.id.desc()).limit(limit)
        with self.db.errors("webhook deliveries"), self.db.read() as conn:
            rows = conn.execute(stmt).all()
        return sorted((_delivery(r) for r in rows), key=lambda d: d.id or 0)

    def counts(self) -> dict[str, int]:
        """How many deliveries there are per status."""
        with self.db.errors("webhook counts"), self.db.read() as conn:
            rows = conn.execute(sa.select(_C.status, sa.func.count()).group_by(_C.status)).all()
        return {str(s): int(n) for s, n in sorted(rows)}
