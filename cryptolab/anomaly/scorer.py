"""Score closed candles with every detector and raise alerts; score a history DataFrame.

:class:`AnomalyScorer` is what the consumer pipeline runs on the candles that
just became final. Each (symbol, interval) stream gets its own
:class:`~cryptolab.anomaly.features.FeatureExtractor` and its own clone of
every detector, seeded with :func:`~cryptolab.anomaly.base.stream_seed`.
The first time a stream shows up in a process, the scorer asks ``history``
for the final candles already stored before that window and learns them
(learn only, no alerts): the models then hold exactly the state they would
have after an uninterrupted run, so alerts after a restart are the same.

:func:`score_history` runs the same per-stream logic over a DataFrame (for
notebooks): a row's ``score_<name>``, ``flag_<name>`` and
``severity_<name>`` are exactly what the scorer would have produced for that
candle.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cryptolab.anomaly.base import BaseDetector, Severity, forget_streams, stream_seed
from cryptolab.anomaly.ensemble import EnsembleDetector
from cryptolab.anomaly.features import FEATURE_NAMES, FeatureExtractor, Features
from cryptolab.anomaly.registry import make_detectors
from cryptolab.anomaly.zscore import RobustZScoreDetector
from cryptolab.errors import ValidationError
from cryptolab.models import Alert, Candle

if TYPE_CHECKING:  # imported where a DataFrame is handled: a consumer never loads pandas
    import pandas as pd

__all__ = ["AnomalyScorer", "HistoryFn", "score_history"]

log = logging.getLogger(__name__)

#: ``history(symbol, interval, before_ms) -> list[Candle]``: final candles with
#: ``window_start < before_ms``, ascending.
HistoryFn = Callable[[str, str, int], Sequence[Candle]]


@dataclass(slots=True)
class _Stream:
    """Per (symbol, interval) state: features, detector clones, last window scored."""

    features: FeatureExtractor
    detectors: list[BaseDetector]
    last_start: int | None = None
    learned: int = 0
    alerts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def learn(self, candle: Candle) -> None:
        f = self.features.update(candle)
        for d in self.detectors:
            d.learn_one(f)
        self.last_start = candle.window_start
        self.learned += 1

    def step(self, candle: Candle) -> tuple[Features, list[tuple[float, Severity | None]]]:
        """Prequential step: features; every detector scores and flags; then every one learns."""
        f = self.features.update(candle)
        out: list[tuple[float, Severity | None]] = []
        for d in self.detectors:
            score = d.score_one(f)
            out.append((score, d.flag(score)))
        for d in self.detectors:
            d.learn_one(f)
        self.last_start = candle.window_start
        self.learned += 1
        return f, out


def _explain(det: BaseDetector, f: Features) -> dict[str, float]:
    feats = dict(f)
    if isinstance(det, RobustZScoreDetector):
        feats.update({f"z_{k}": v for k, v in det.zscores(f).items()})
    return feats


class AnomalyScorer:
    """Score final candles with a set of detectors, per (symbol, interval) stream.

    Parameters
    ----------
    detectors
        Prototype detectors (default :func:`~cryptolab.anomaly.default_detectors`),
        or names. Each stream gets ``d.clone(seed=stream_seed(d.seed, symbol,
        interval, d.name))`` of each.
    history
        ``history(symbol, interval, before_ms) -> list[Candle]`` (ascending,
        final candles with ``window_start < before_ms``), called once per
        stream, the first time the scorer sees it; ``None`` to start cold.
    level_span
        Span of the feature extractor's volume and trade-count levels.

    Notes
    -----
    Per candle: its features; every detector scores it and flags it; then
    every detector learns it (prequential: nothing has learnt a candle when it
    is scored). An :class:`~cryptolab.anomaly.EnsembleDetector` whose members
    match other detectors of the list is bound to them, so each model runs
    once per candle.

    :meth:`score` expects, per stream, the *first final* version of each
    window in window order. Gap-fill candles are skipped (no features, no
    learning), and so are candles that are not final and windows at or
    before the last one scored (a replay after a restart): so at most one
    alert exists per (symbol, interval, window, detector). Alerts carry
    ``ts_ms = window_end`` (event time), so they are reproducible.

    Restarts are exact when ``history`` returns every final candle of the
    stream: the store keeps the latest *revision* of a window, so a window
    revised by late ticks is re-learnt as revised (a difference only for
    windows that were revised before the restart). When this process stops
    owning a symbol, or a scored batch is rolled back, call :meth:`forget`.

    Examples
    --------
    >>> from cryptolab.models import Candle
    >>> def candle(i, o, c):
    ...     ws = 1_700_000_040_000 + 60_000 * i
    ...     return Candle(symbol="BTC-USD", interval="1m", window_start=ws, window_end=ws + 60_000,
    ...                   open=o, high=max(o, c), low=min(o, c), close=c, volume=1.0, vwap=None,
    ...                   trades=5, first_ts=ws, last_ts=ws + 59_000, high_ts=ws, low_ts=ws,
    ...                   final=True)
    >>> scorer = AnomalyScorer(detectors=["rule"])
    >>> scorer.score([candle(0, 100.0, 100.5), candle(1, 100.5, 93.0)], now_ms=1_700_000_160_000)
    [Alert(symbol='BTC-USD', interval='1m', window_start=1700000100000, detector='rule', severity='MEDIUM', score=0.07462686567164178, ts_ms=1700000160000, features={...})]
    >>> scorer.score([candle(1, 100.5, 93.0)])  # the same window again: ignored
    []
    """

    def __init__(
        self,
        *,
        detectors: None | str | Iterable[str | BaseDetector] = None,
        history: HistoryFn | None = None,
        level_span: int = 30,
    ) -> None:
        self.detectors: list[BaseDetector] = make_detectors(detectors)
        self.history = history
        self.level_span = level_span
        FeatureExtractor(level_span=level_span)  # validate early
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._warned_open = False

    @property
    def streams(self) -> list[tuple[str, str]]:
        """The (symbol, interval) streams seen so far."""
        return list(self._streams)

    def _new_stream(self, symbol: str, interval: str) -> _Stream:
        dets = [
            d.clone(seed=stream_seed(d.seed, symbol, interval, d.name)) for d in self.detectors
        ]
        for d in dets:
            if isinstance(d, EnsembleDetector):
                d.bind(dets)  # reuse the stream's own zscore/hst instead of private copies
        return _Stream(FeatureExtractor(level_span=self.level_span), dets)

    def _stream(self, symbol: str, interval: str, before_ms: int) -> _Stream:
        key = (symbol, interval)
        st = self._streams.get(key)
        if st is not None:
            return st
        st = self._new_stream(symbol, interval)
        if self.history is not None:
            replayed = 0
            for c in self.history(symbol, interval, before_ms):
                if c.gap or c.window_start >= before_ms:
                    continue
                if st.last_start is not None and c.window_start <= st.last_start:
                    continue
                st.learn(c)
                replayed += 1
            log.info("anomaly: %s %s re-learnt %d stored candles before %d", symbol, interval,
                     replayed, before_ms)
        self._streams[key] = st
        return st

    def forget(self, symbols: Iterable[str] | None = None) -> int:
        """Drop the state of some streams (all with ``None``); returns how many were dropped.

        The next candle of a forgotten stream re-learns from ``history``, as
        after a restart. Call it when this process stops owning a symbol
        (partition revoked) or when a batch whose candles were scored is
        rolled back instead of committed.
        """
        return forget_streams(self._streams, symbols)

    def learn(self, candles: Iterable[Candle]) -> int:
        """Learn candles without scoring them (warm up); returns how many were learnt."""
        n = 0
        for c in candles:
            if c.gap:
                continue
            st = self._stream(c.symbol, c.interval, c.window_start)
            if st.last_start is not None and c.window_start <= st.last_start:
                continue
            st.learn(c)
            n += 1
        return n

    def score(self, candles: Iterable[Candle], now_ms: int | None = None) -> list[Alert]:
        """Score candles that just became final; return the alerts they raise.

        Parameters
        ----------
        candles
            First final version of each window, in window order per stream.
        now_ms
            Processing time, only used to log the scoring lag (alerts use event time).

        Returns
        -------
        list[Alert]
            At most one per (symbol, interval, window_start, detector).
        """
        alerts: list[Alert] = []
        for c in candles:
            if c.gap:
                continue
            if not c.final:
                if not self._warned_open:
                    log.warning("anomaly: skipping candles that are not final (first: %s)", c.key)
                    self._warned_open = True
                continue
            st = self._stream(c.symbol, c.interval, c.window_start)
            if st.last_start is not None and c.window_start <= st.last_start:
                log.debug("anomaly: %s already scored, skipped", c.key)
                continue
            f, results = st.step(c)
            for det, (score, sev) in zip(st.detectors, results, strict=True):
                if sev is None:
                    continue
                st.alerts += 1
                alerts.append(
                    Alert(
                        symbol=c.symbol,
                        interval=c.interval,
                        window_start=c.window_start,
                        detector=det.name,
                        severity=sev,
                        score=float(score),
                        ts_ms=c.window_end,
                        features=_explain(det, f),
                    )
                )
        if alerts and now_ms is not None:
            log.info("anomaly: %d alerts, lag %d ms after the last window end", len(alerts),
                     now_ms - max(a.ts_ms for a in alerts))
        return alerts

    def __repr__(self) -> str:
        names = ", ".join(d.name for d in self.detectors)
        return f"AnomalyScorer(detectors=[{names}], streams={len(self._streams)})"


_REQUIRED = ("open", "high", "low", "close", "volume")


def score_history(
    df: pd.DataFrame,
    detectors: None | str | Iterable[str | BaseDetector] = None,
    *,
    seed: int = 0,
    include_open: bool = False,
    features: bool = False,
) -> pd.DataFrame:
    """Score a history of candles with any detectors; scores and flags come back as columns.

    Each (symbol, interval) stream is scored in ``window_start`` order,
    prequentially (score, then learn), with the per-stream seeds of
    :class:`AnomalyScorer`: a candle's flags here are the alerts the pipeline
    raises for it.

    Parameters
    ----------
    df
        Candles, as returned by :func:`cryptolab.history` or
        :func:`cryptolab.candles_from_ticks` (columns ``symbol, interval,
        window_start, window_end, open, high, low, close, volume``; ``vwap``,
        ``trades``, ``gap``, ``final`` when present).
    detectors
        ``None`` (the defaults), names (``"rule,zscore"`` or a list) or
        detector objects (used as prototypes, never mutated).
    seed
        Seed of the detectors made from names.
    include_open
        Also score rows with ``final=False`` (by default they are left
        unscored, like the pipeline does).
    features
        Also return the feature columns (``f_ret``, ``f_body``...).

    Returns
    -------
    pandas.DataFrame
        A copy of ``df`` (same index and row order) plus, per detector
        ``<name>``: ``score_<name>`` (float, NaN when unscored),
        ``flag_<name>`` (bool) and ``severity_<name>`` (``"LOW"``,
        ``"MEDIUM"``, ``"HIGH"`` or ``None``). ``window_start`` and
        ``window_end`` are tz-aware UTC datetimes, as in :func:`cryptolab.history`
        (epoch-ms integers in ``df`` are converted).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"symbol": "BTC-USD", "interval": "1m",
    ...                    "window_start": [0, 60_000, 120_000],
    ...                    "window_end": [60_000, 120_000, 180_000],
    ...                    "open": [100.0, 100.0, 101.0], "high": [100.5, 101.0, 101.0],
    ...                    "low": [99.5, 100.0, 90.0], "close": [100.0, 101.0, 92.0],
    ...                    "volume": [1.0, 1.0, 3.0]})
    >>> out = score_history(df, "rule")
    >>> out[["window_start", "score_rule", "flag_rule", "severity_rule"]]
                   window_start  score_rule  flag_rule severity_rule
    0 1970-01-01 00:00:00+00:00    0.000000      False          None
    1 1970-01-01 00:01:00+00:00    0.010000      False          None
    2 1970-01-01 00:02:00+00:00    0.089109       True        MEDIUM
    """
    from cryptolab.candles.frames import with_ms_windows, with_utc_windows

    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        raise ValidationError("df", f"missing candle columns: {', '.join(missing)}")
    protos = make_detectors(detectors, seed=seed)
    columns = _Columns(protos, len(df), features=features)
    scorer = AnomalyScorer(detectors=protos)
    for i, candle in _history_candles(with_ms_windows(df.reset_index(drop=True)), include_open):
        st = scorer._stream(candle.symbol, candle.interval, candle.window_start)
        if st.last_start is not None and candle.window_start <= st.last_start:
            continue  # duplicate window
        f, results = st.step(candle)
        columns.put(i, st.detectors, results, f)
    return columns.join(with_utc_windows(df.copy()), df.index)


def _history_candles(work: pd.DataFrame, include_open: bool) -> Iterator[tuple[int, Candle]]:
    """The rows of ``work`` to score, as (row position, final candle), stream by stream in window order.

    Gap rows are skipped, and open rows unless ``include_open``. Missing
    optional columns get defaults (symbol and interval ``"-"``, the row
    position as ``window_start``, no VWAP, no trades).
    """
    n = len(work)
    order = list(range(n))
    sort_keys = [k for k in ("symbol", "interval", "window_start") if k in work.columns]
    if sort_keys:
        order = work.sort_values(sort_keys, kind="stable").index.tolist()
    rows = work.to_numpy(dtype=object)
    pos = {c: i for i, c in enumerate(work.columns)}

    def get(row: Any, name: str, default: Any) -> Any:
        i = pos.get(name)
        if i is None:
            return default
        v = row[i]
        return default if v is None or (isinstance(v, float) and np.isnan(v)) else v

    for i in order:
        row = rows[i]
        if bool(get(row, "gap", False)):
            continue
        if not include_open and not bool(get(row, "final", True)):
            continue
        ws = int(get(row, "window_start", i))
        yield i, Candle(
            symbol=str(get(row, "symbol", "-")), interval=str(get(row, "interval", "-")),
            window_start=ws, window_end=int(get(row, "window_end", ws)),
            open=float(row[pos["open"]]), high=float(row[pos["high"]]),
            low=float(row[pos["low"]]), close=float(row[pos["close"]]),
            volume=float(row[pos["volume"]]), vwap=_opt_float(get(row, "vwap", None)),
            trades=int(get(row, "trades", 0)), first_ts=ws, last_ts=ws, high_ts=ws, low_ts=ws,
            final=True,
        )


class _Columns:
    """The columns :func:`score_history` adds, filled row by row."""

    def __init__(self, detectors: Sequence[BaseDetector], n: int, *, features: bool) -> None:
        self.names = [d.name for d in detectors]
        self.scores = {name: np.full(n, np.nan) for name in self.names}
        self.sevs: dict[str, list[Severity | None]] = {name: [None] * n for name in self.names}
        self.feats = {k: np.full(n, np.nan) for k in FEATURE_NAMES} if features else {}

    def put(self, i: int, detectors: Sequence[BaseDetector],
            results: Sequence[tuple[float, Severity | None]], f: Features) -> None:
        """Row ``i``: each detector's score and severity, and the features when asked for."""
        for det, (score, sev) in zip(detectors, results, strict=True):
            self.scores[det.name][i] = score
            self.sevs[det.name][i] = sev
        if self.feats:
            for k, v in f.items():
                self.feats[k][i] = v

    def join(self, out: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
        """``out`` (indexed by ``index``) with ``score_<name>``, ``flag_<name>``, ``severity_<name>`` (and ``f_<feature>``)."""
        import pandas as pd

        for name in self.names:
            out[f"score_{name}"] = self.scores[name]
            out[f"flag_{name}"] = np.array([s is not None for s in self.sevs[name]], dtype=bool)
            out[f"severity_{name}"] = pd.Series(self.sevs[name], index=index, dtype=object)
        for k, arr in self.feats.items():
            out[f"f_{k}"] = arr
        return out


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)
