"""Trade gaps in the store: spans of a symbol's trades a live source could not recover.

A live trade source reconnects after a network drop and fetches the trades it missed over
the exchange's REST history; what the history cannot give back (it does not reach back that
far, or it fails) is a gap record (:class:`cryptolab.sources.trade_gaps.TradeGap`). The
``trade_gaps`` table keeps them, so the candles of the windows a gap overlaps are known to
be possibly incomplete: :meth:`TradeGaps.mark` adds a ``gap_affected`` column to a history
frame, the same query as::

    SELECT c.* FROM candles c WHERE EXISTS (SELECT 1 FROM trade_gaps g WHERE g.symbol = c.symbol
        AND g.start_ms < c.window_end AND g.end_ms >= c.window_start)

Examples
--------
>>> from types import SimpleNamespace as Gap
>>> from cryptolab.store import Store
>>> with Store("sqlite://") as store:
...     store.init()
...     gap = Gap(symbol="BINANCE:BTC-USDT", start_ms=1_700_000_050_000, end_ms=1_700_000_130_000,
...               reason="the trade history does not reach back", source="binance")
...     new = store.gaps.record([gap, gap])
...     frame = store.gaps.frame()
...     counted = store.gaps.count(), store.gaps.count("COINBASE:BTC-USD")
>>> new, counted
(1, (1, 0))
>>> frame.loc[0, "start"], frame.loc[0, "end"]
(Timestamp('2023-11-14 22:14:10+0000', tz='UTC'), Timestamp('2023-11-14 22:15:30+0000', tz='UTC'))
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

import sqlalchemy as sa

from cryptolab.store.schema import stored_schema_version, trade_gaps_table
from cryptolab.store.times import TimeLike, to_ms

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from cryptolab.store.database import Database

__all__ = ["GAP_COLUMNS", "GapRecord", "TradeGaps"]

#: Columns of :meth:`TradeGaps.frame`, in order.
GAP_COLUMNS = ("symbol", "start", "end", "reason", "source", "recorded_at")
_G = trade_gaps_table.c


class GapRecord(Protocol):
    """What a gap record has (:class:`cryptolab.sources.trade_gaps.TradeGap` is one)."""

    @property
    def symbol(self) -> str: ...

    @property
    def start_ms(self) -> int: ...

    @property
    def end_ms(self) -> int: ...

    @property
    def reason(self) -> str: ...

    @property
    def source(self) -> str: ...


class TradeGaps:
    """The ``trade_gaps`` table of a store (``Store.gaps``); see the module docs."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, gaps: Iterable[GapRecord]) -> int:
        """Record ``gaps`` unless already recorded (same symbol and span); return how many were new."""
        now = int(time.time() * 1000)
        rows = [{"symbol": g.symbol, "start_ms": int(g.start_ms), "end_ms": int(g.end_ms),
                 "reason": str(g.reason)[:255] or "unknown", "source": str(g.source)[:255], "recorded_at": now}
                for g in gaps]
        if not rows:
            return 0
        with self._db.errors("record gaps"), self._db.write() as conn:
            return sum(len(conn.execute(self._db.dialect.insert_gap, row).all()) for row in rows)

    def _where(self, symbol: str | None, start: TimeLike | None, end: TimeLike | None) -> list[sa.ColumnElement[bool]]:
        cond: list[sa.ColumnElement[bool]] = []
        if symbol is not None:
            cond.append(_G.symbol == symbol)
        if start is not None:
            cond.append(_G.end_ms >= to_ms(start, "start"))
        if end is not None:
            cond.append(_G.start_ms < to_ms(end, "end"))
        return cond

    def _has_table(self) -> bool:
        version = stored_schema_version(self._db)
        return version is not None and version >= 2

    def count(self, symbol: str | None = None) -> int:
        """How many gaps are recorded (of ``symbol``)."""
        if not self._has_table():
            return 0
        with self._db.errors("gap count"), self._db.read() as conn:
            stmt = sa.select(sa.func.count()).select_from(trade_gaps_table).where(*self._where(symbol, None, None))
            return int(conn.execute(stmt).scalar_one())

    def rows(self, symbol: str | None = None, start: TimeLike | None = None,
             end: TimeLike | None = None) -> list[tuple[str, int, int, str, str, int]]:
        """``(symbol, start_ms, end_ms, reason, source, recorded_at)`` of the gaps overlapping
        ``[start, end)``, oldest first."""
        if not self._has_table():
            return []
        stmt = (sa.select(_G.symbol, _G.start_ms, _G.end_ms, _G.reason, _G.source, _G.recorded_at)
                .where(*self._where(symbol, start, end)).order_by(_G.start_ms, _G.symbol))
        with self._db.errors("gaps"), self._db.read() as conn:
            return [(s, int(a), int(b), r, src, int(at)) for s, a, b, r, src, at in conn.execute(stmt).all()]

    def frame(self, symbol: str | None = None, start: TimeLike | None = None,
              end: TimeLike | None = None) -> pd.DataFrame:
        """The gaps as a DataFrame (:data:`GAP_COLUMNS`; ``start``/``end``/``recorded_at`` UTC)."""
        import pandas as pd

        rows = self.rows(symbol, start, end)
        df = pd.DataFrame(rows, columns=["symbol", "start", "end", "reason", "source", "recorded_at"])
        for col in ("start", "end", "recorded_at"):
            df[col] = pd.to_datetime(df[col].astype("int64"), unit="ms", utc=True).astype("datetime64[ms, UTC]")
        return df[list(GAP_COLUMNS)]

    def mark(self, history: pd.DataFrame) -> pd.DataFrame:
        """``history`` (a :meth:`~cryptolab.store.Store.history` frame) with a boolean
        ``gap_affected`` column: whether a recorded gap of its symbol overlaps the window."""
        import numpy as np

        out = history.copy()
        affected = np.zeros(len(out), dtype=bool)
        if len(out):
            starts = out["window_start"].astype("datetime64[ms, UTC]").astype("int64").to_numpy()
            ends = out["window_end"].astype("datetime64[ms, UTC]").astype("int64").to_numpy()
            symbols = out["symbol"].to_numpy()
            for symbol in sorted(set(symbols.tolist())):
                for _s, g_start, g_end, *_ in self.rows(symbol, int(starts.min()), int(ends.max())):
                    affected |= (symbols == symbol) & (starts <= g_end) & (ends > g_start)
        out["gap_affected"] = affected
        return out
