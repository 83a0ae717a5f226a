"""Forgetting what runs wrote: the candles, alerts and late ticks of symbols over a period.

Examples
--------
>>> from cryptolab.store.database import Database
>>> from cryptolab.store.schema import init_schema
>>> db = Database("sqlite://", pool_size=5); _ = init_schema(db)
>>> forget(db, ["BTC-USD"], 0, 60_000, group_prefix="demo-")
0
>>> db.close()
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa

from cryptolab.store.schema import (
    alerts_table,
    candles_table,
    late_ticks_table,
    progress_table,
    trade_gaps_table,
)
from cryptolab.store.times import TimeLike, to_ms

if TYPE_CHECKING:
    from cryptolab.store.database import Database

__all__ = ["forget"]


def forget(
    db: Database, symbols: Sequence[str], start: TimeLike, end: TimeLike, *, group_prefix: str | None = None
) -> int:
    """Delete what runs wrote for ``symbols`` in ``[start, end)``; return the candles deleted.

    See :meth:`cryptolab.store.Store.forget`.
    """
    lo, hi = to_ms(start, "start"), to_ms(end, "end")
    names = list(symbols)
    deleted = 0
    with db.errors("forget"), db.write() as conn:
        for table, col in ((candles_table, "window_start"), (alerts_table, "window_start"),
                           (late_ticks_table, "ts_ms"), (trade_gaps_table, "start_ms")):
            t = table.c[col]
            result = conn.execute(sa.delete(table).where(
                table.c.symbol.in_(names), t >= lo, t < hi))
            if table is candles_table:
                deleted = int(result.rowcount or 0)
        if group_prefix:
            conn.execute(sa.delete(progress_table).where(
                progress_table.c.group_id.startswith(group_prefix, autoescape=True)))
    return deleted
