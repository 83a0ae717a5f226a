"""The ``rules`` table: user alert rules kept in the store (``store.rules``).

Examples
--------
>>> from cryptolab.models.rules import Rule
>>> from cryptolab.store import Store
>>> s = Store("sqlite://"); s.init()
>>> _ = s.rules.add(Rule(id="btc-40k", kind="cross_above", params={"level": 40_000},
...                      symbol="BTC-USD", interval="1m", created=0))
>>> [r.describe() for r in s.rules.list()]
['BTC-USD 1m: close crosses above 40000']
>>> s.rules.add(Rule(id="btc-40k", kind="move", params={"pct": 1}))
Traceback (most recent call last):
...
cryptolab.errors.ValidationError: invalid 'id': a rule with id 'btc-40k' exists already
>>> s.rules.set_enabled("btc-40k", False), s.rules.get("btc-40k").enabled
(True, False)
>>> s.rules.remove("btc-40k"), s.rules.remove("btc-40k"), s.rules.list()
(True, False, [])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from cryptolab.errors import StoreError, ValidationError
from cryptolab.models.rules import Rule
from cryptolab.store.schema import rules_table

if TYPE_CHECKING:
    from cryptolab.store.database import Database

__all__ = ["RuleTable"]

_C = rules_table.c


def _rule(r: Any) -> Rule:
    return Rule(id=r.id, kind=r.kind, params=dict(r.params), symbol=r.symbol, interval=r.interval,
                enabled=bool(r.enabled), created=int(r.created), severity=r.severity, webhook=r.webhook,
                webhook_format=r.webhook_format)


class RuleTable:
    """Add, list and remove the store's rules (``store.rules``).

    Parameters
    ----------
    db
        The store's database.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, rule: Rule) -> Rule:
        """Store ``rule`` and return it.

        Raises
        ------
        ValidationError
            A rule with its id exists already.
        StoreError
            The store failed.
        """
        row = rule.to_dict()
        try:
            with self.db.errors("add rule"), self.db.write() as conn:
                if conn.execute(sa.select(_C.id).where(_C.id == rule.id)).first() is not None:
                    raise ValidationError("id", f"a rule with id {rule.id!r} exists already")
                conn.execute(sa.insert(rules_table), row)
        except StoreError as exc:  # a racing add of the same id
            if isinstance(exc.__cause__, sa.exc.IntegrityError):
                raise ValidationError("id", f"a rule with id {rule.id!r} exists already") from None
            raise
        return rule

    def list(self, *, enabled: bool | None = None) -> list[Rule]:
        """The rules (all, or only the enabled or disabled ones), by creation time then id."""
        stmt = sa.select(rules_table).order_by(_C.created, _C.id)
        if enabled is not None:
            stmt = stmt.where(_C.enabled == enabled)
        with self.db.errors("list rules"), self.db.read() as conn:
            return [_rule(r) for r in conn.execute(stmt).all()]

    def get(self, rule_id: str) -> Rule | None:
        """The rule with id ``rule_id``, or ``None``."""
        with self.db.errors("get rule"), self.db.read() as conn:
            r = conn.execute(sa.select(rules_table).where(_C.id == rule_id)).first()
        return None if r is None else _rule(r)

    def remove(self, rule_id: str) -> bool:
        """Delete a rule (its alerts and deliveries stay); return whether it existed."""
        with self.db.errors("remove rule"), self.db.write() as conn:
            return bool(conn.execute(sa.delete(rules_table).where(_C.id == rule_id)).rowcount)

    def set_enabled(self, rule_id: str, enabled: bool) -> bool:
        """Enable or disable a rule; return whether it exists."""
        with self.db.errors("enable rule"), self.db.write() as conn:
            res = conn.execute(sa.update(rules_table).where(_C.id == rule_id).values(enabled=enabled))
            return bool(res.rowcount)
