"""Evaluate user alert rules on closed candles (pure: no I/O).

:func:`evaluate` says whether one :class:`~cryptolab.models.rules.Rule` fires on a candle,
given the previous candles of its stream. :class:`RuleEvaluator` is what the consumer runs on
the candles that just became final: per (symbol, interval) stream it keeps the last candles the
rules look back over, and the first time a stream shows up in a process it reads them from
``history`` (the store), so state after a restart is the state of an uninterrupted run.

Semantics, shared with the anomaly detectors (:class:`~cryptolab.anomaly.AnomalyScorer`):

* Only the *first final* version of each window is evaluated, in window order per stream;
  gap-fill candles, candles that are not final and windows at or before the last one
  evaluated (a replay) are skipped. A later *revision* of a window (late ticks) never fires a
  rule that did not fire on its first final version, and never withdraws an alert.
* An alert's key is ``(symbol, interval, window_start, "rule:<id>")`` and the store keeps at
  most one per key, in the transaction that stores the candles: at most one alert per (rule,
  symbol, interval, window), whatever crashes and replays happen.
* The previous candles are those of the stream's final, non-gap candles. After a restart they
  come from the store, which keeps each window's latest revision: a window revised by late
  ticks before a restart is looked back on as revised (as the detectors re-learn it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice

from cryptolab.anomaly.base import forget_streams
from cryptolab.models import Alert, Candle
from cryptolab.models.rules import Rule

__all__ = ["HistoryFn", "RuleEvaluator", "evaluate"]

#: ``history(symbol, interval, before_ms, limit) -> list[Candle]``: the last ``limit`` final,
#: non-gap candles with ``window_start < before_ms``, ascending.
HistoryFn = Callable[[str, str, int, int], Sequence[Candle]]


def evaluate(rule: Rule, candle: Candle, previous: Sequence[Candle]) -> Alert | None:
    """The alert ``rule`` raises on ``candle``, or ``None``.

    Parameters
    ----------
    rule
        The rule (its symbol, interval and ``enabled`` are not looked at here).
    candle
        A final candle.
    previous
        The stream's previous final, non-gap candles, oldest first (only the last
        ``rule.lookback`` are used; too few and a rule that needs them stays silent).

    Returns
    -------
    Alert or None
        ``detector="rule:<id>"``, the rule's severity, ``ts_ms = window_end`` (event time, so
        alerts are reproducible), ``score`` the measured value (the close for a crossing, the
        move in percent, the volume ratio) and ``features`` what it was compared with.

    Examples
    --------
    >>> from cryptolab.models import Candle
    >>> def c(i, o, cl, v=1.0):
    ...     return Candle(symbol="BTC-USD", interval="1m", window_start=60_000 * i,
    ...                   window_end=60_000 * (i + 1), open=o, high=max(o, cl), low=min(o, cl),
    ...                   close=cl, volume=v, vwap=None, trades=1, first_ts=0, last_ts=0,
    ...                   high_ts=0, low_ts=0, final=True)
    >>> up = Rule(id="up", kind="cross_above", params={"level": 100})
    >>> evaluate(up, c(1, 99, 101), [c(0, 98, 99)]).features
    {'level': 100.0, 'close': 101.0, 'previous_close': 99.0}
    >>> evaluate(up, c(1, 99, 101), [c(0, 98, 100)]) is None  # was not below the level
    True
    >>> evaluate(Rule(id="m", kind="move", params={"pct": 2, "candles": 2}), c(1, 101, 103),
    ...          [c(0, 100, 101)]).features["pct"]
    3.0000000000000027
    >>> evaluate(Rule(id="v", kind="volume_spike", params={"factor": 3, "lookback": 2}),
    ...          c(2, 1, 1, v=7.0), [c(0, 1, 1, v=1.0), c(1, 1, 1, v=3.0)]).score
    3.5
    """
    p = rule.params
    need = rule.lookback
    if need > len(previous):
        return None
    feats: dict[str, float]
    if rule.kind in ("cross_above", "cross_below"):
        level, prev, close = float(p["level"]), float(previous[-1].close), float(candle.close)
        above = rule.kind == "cross_above"
        if not (prev < level <= close if above else prev > level >= close):
            return None
        score = close
        feats = {"level": level, "close": close, "previous_close": prev}
    elif rule.kind == "move":
        first = previous[len(previous) - need] if need else candle
        if first.open <= 0:
            return None
        pct = (candle.close / first.open - 1.0) * 100.0
        direction = p["direction"]
        size = pct if direction == "up" else -pct if direction == "down" else abs(pct)
        if not size > p["pct"]:
            return None
        score = pct
        feats = {"pct": pct, "from_open": float(first.open), "close": float(candle.close),
                 "candles": float(p["candles"])}
    else:
        level = float(sum(c.volume for c in islice(previous, len(previous) - need, None))) / need
        if level <= 0:
            return None
        ratio = float(candle.volume) / level
        if not ratio > p["factor"]:
            return None
        score = ratio
        feats = {"ratio": ratio, "volume": float(candle.volume), "mean_volume": level}
    return Alert(symbol=candle.symbol, interval=candle.interval, window_start=candle.window_start,
                 detector=rule.detector, severity=rule.severity, score=float(score), ts_ms=candle.window_end,
                 features=feats)


@dataclass(slots=True)
class _Stream:
    """Per (symbol, interval): the last candles evaluated, and the last window."""

    previous: deque[Candle]
    last_start: int | None = None
    rules: list[Rule] = field(default_factory=list)


class RuleEvaluator:
    """Evaluate a set of rules on final candles, per (symbol, interval) stream.

    Parameters
    ----------
    rules
        The rules (disabled ones are ignored); :meth:`set_rules` replaces them.
    history
        ``history(symbol, interval, before_ms, limit)``: the stream's last ``limit`` final,
        non-gap candles before ``before_ms``, ascending; called once per stream, the first
        time it shows up (``None``: start cold).

    Examples
    --------
    >>> from cryptolab.models import Candle
    >>> def c(i, close):
    ...     return Candle(symbol="ETH-USD", interval="1m", window_start=60_000 * i,
    ...                   window_end=60_000 * (i + 1), open=close, high=close, low=close,
    ...                   close=close, volume=1.0, vwap=None, trades=1, first_ts=0, last_ts=0,
    ...                   high_ts=0, low_ts=0, final=True)
    >>> stored = [c(0, 1990.0)]
    >>> ev = RuleEvaluator([Rule(id="eth2k", kind="cross_above", params={"level": 2000})],
    ...                    history=lambda s, i, before, n: [x for x in stored if x.window_start < before][-n:])
    >>> [a.window_start for a in ev.score([c(1, 2001.0), c(2, 1999.0), c(3, 2000.0)])]
    [60000, 180000]
    >>> ev.score([c(3, 2000.0)])  # a replayed window: already evaluated
    []
    """

    def __init__(self, rules: Iterable[Rule] = (), *, history: HistoryFn | None = None) -> None:
        self.history = history
        self._streams: dict[tuple[str, str], _Stream] = {}
        self.rules: list[Rule] = []
        self.set_rules(rules)

    def set_rules(self, rules: Iterable[Rule]) -> None:
        """Evaluate ``rules`` from now on (the enabled ones).

        When they differ from the current ones, every stream is dropped and reads its history
        again on its next candle: a new rule looks back over the same candles after a restart
        as in a process that was running when it was added.
        """
        new = [r for r in rules if r.enabled]
        if new != self.rules:
            self._streams.clear()
        self.rules = new

    def forget(self, symbols: Iterable[str] | None = None) -> int:
        """Drop the state of some streams (all with ``None``); returns how many were dropped.

        Call it when the process stops owning a symbol, or when evaluated candles were not
        committed: the stream then reads its history again.
        """
        return forget_streams(self._streams, symbols)

    def _stream(self, candle: Candle) -> _Stream:
        key = (candle.symbol, candle.interval)
        st = self._streams.get(key)
        if st is None:
            mine = [r for r in self.rules if r.matches(candle.symbol, candle.interval)]
            depth = max((r.lookback for r in mine), default=0)
            st = _Stream(deque(maxlen=max(depth, 1)), rules=mine)
            if self.history is not None and depth:
                for c in self.history(candle.symbol, candle.interval, candle.window_start, depth):
                    if not c.gap and c.window_start < candle.window_start:
                        st.previous.append(c)
            self._streams[key] = st
        return st

    def score(self, candles: Iterable[Candle]) -> list[Alert]:
        """Evaluate the candles that just became final (first final version of each window, in
        window order per stream); return the alerts raised."""
        alerts: list[Alert] = []
        if not self.rules:
            return alerts
        for c in candles:
            if c.gap or not c.final:
                continue
            st = self._stream(c)
            if st.last_start is not None and c.window_start <= st.last_start:
                continue
            previous = st.previous
            for rule in st.rules:
                alert = evaluate(rule, c, previous)
                if alert is not None:
                    alerts.append(alert)
            previous.append(c)
            st.last_start = c.window_start
        return alerts

    def __repr__(self) -> str:
        return f"RuleEvaluator(rules={len(self.rules)}, streams={len(self._streams)})"

