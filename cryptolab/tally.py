"""What one pipeline run wrote, as opposed to what the store holds in all.

A store is shared by runs (the embedded default by every command), so a
command's summary counts its own output: pass :meth:`RunTally.on_commit` to
:class:`~cryptolab.pipeline.CandlePipeline` as ``on_commit`` and read the
counts afterwards.

Examples
--------
>>> from cryptolab.models import Alert, Candle
>>> def candle(interval, start, final=True):
...     return Candle(symbol="BTC-USD", interval=interval, window_start=start, window_end=start + 60_000,
...                   open=1, high=1, low=1, close=1, volume=0, vwap=None, trades=1, first_ts=start,
...                   last_ts=start, high_ts=start, low_ts=start, final=final)
>>> tally = RunTally()
>>> tally.on_commit([candle("1m", 0, final=False)], [])   # an open candle: not counted
>>> tally.on_commit([candle("1m", 0), candle("5m", 0)], [])
>>> tally.on_commit([candle("1m", 0)], [Alert(symbol="BTC-USD", interval="1m", window_start=0,
...                                           detector="rule", severity="HIGH", score=9.0, ts_ms=0)])
>>> tally.candles(("1m", "5m", "15m")), len(tally.alerts)      # a revision is the same candle
({'1m': 1, '5m': 1}, 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptolab.models import Alert, Candle

__all__ = ["RunTally"]


@dataclass
class RunTally:
    """The final candles (per interval) and the new alerts of one run."""

    finals: dict[str, set[tuple[str, int]]] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)

    def on_commit(self, candles: list[Candle], alerts: list[Alert]) -> None:
        """Count a commit (``CandlePipeline``'s ``on_commit`` callback)."""
        for c in candles:
            if c.final:
                self.finals.setdefault(c.interval, set()).add((c.symbol, c.window_start))
        self.alerts.extend(alerts)

    def candles(self, order: Sequence[str] = ()) -> dict[str, int]:
        """Distinct final candles per interval, the intervals of ``order`` first, in that order."""
        names = [i for i in order if i in self.finals]
        names += sorted(i for i in self.finals if i not in names)
        return {i: len(self.finals[i]) for i in names}
