"""Evaluate anomaly detectors on labelled candles: precision, recall and detection delay.

Pure: candles and labels in, a table out (no file, store or service is read;
:mod:`cryptolab.evaluation` builds the synthetic and recorded data sets).

Matching (:func:`evaluate`): a label covers the candles of its symbol whose
window overlaps ``[start_ms, end_ms)``, plus ``tolerance`` more candles after
it (default 1: an alert on the candle right after a move is a late detection,
not a false alarm). An alert on a covered candle is a true positive; a label is
detected when at least one alert covers it. Its delay runs from ``start_ms`` to
the first such alert, which is raised when its candle closes (the alert's
``ts_ms`` is the candle's window end): ``delay_ms`` in milliseconds and
``delay_candles`` in candle lengths, rounded up: the candles from the one the
move starts in to the alert's, both included (1 = alerted when the move's own
candle closes). So ``(delay_candles - 1) * interval < delay_ms <=
delay_candles * interval``, equal for a move that starts with its candle.

Examples
--------
>>> import pandas as pd
>>> candles = pd.DataFrame({"symbol": "X", "interval": "1m",
...     "window_start": [0, 60_000, 120_000, 180_000], "window_end": [60_000, 120_000, 180_000, 240_000],
...     "open": [100.0, 100.0, 100.0, 93.0], "high": [100.2, 100.1, 100.0, 93.0],
...     "low": [99.9, 99.9, 92.0, 92.5], "close": [100.0, 100.0, 93.0, 92.8],
...     "volume": 1.0})
>>> labels = [{"symbol": "X", "kind": "crash", "magnitude": 0.07, "start_ms": 120_000, "end_ms": 180_000}]
>>> res = evaluate(candles, labels, detectors="rule")
>>> res.table[["detector", "alerts", "precision", "recall", "delay_candles", "delay_ms"]].to_dict("records")
[{'detector': 'rule', 'alerts': 1, 'precision': 1.0, 'recall': 1.0, 'delay_candles': 1.0, 'delay_ms': 60000.0}]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd

from cryptolab.anomaly.base import BaseDetector
from cryptolab.anomaly.registry import make_detectors
from cryptolab.anomaly.scorer import score_history
from cryptolab.candles.frames import epoch_ms
from cryptolab.errors import ValidationError
from cryptolab.models import parse_interval

__all__ = [
    "TABLE_COLUMNS",
    "EvaluationResult",
    "evaluate",
    "evaluate_many",
    "format_table",
    "move_labels",
]

#: Columns of :attr:`EvaluationResult.table`, in order.
TABLE_COLUMNS: Final = (
    "detector", "candles", "alerts", "alert_rate", "true_alerts", "precision", "labels",
    "detected", "recall", "f1", "delay_candles", "delay_ms",
)


@dataclass(slots=True)
class EvaluationResult:
    """What :func:`evaluate` measured.

    Attributes
    ----------
    table
        One row per detector: ``candles`` scored, ``alerts``, ``alert_rate``
        (alerts per candle), ``true_alerts``, ``precision``, ``labels``,
        ``detected``, ``recall``, ``f1``, mean ``delay_candles`` and
        ``delay_ms`` of the detected labels (NaN when undefined; see the
        module's description of the delay).
    scored
        The candles with the :func:`~cryptolab.score_history` columns.
    labels
        The labels, with per detector ``detected_<name>``, ``delay_ms_<name>``
        and ``delay_candles_<name>``.
    name
        What was evaluated (shown by ``str()``).
    params
        The parameters of the run (for reports).
    """

    table: pd.DataFrame
    scored: pd.DataFrame
    labels: pd.DataFrame
    name: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: name, params and the table's records (NaN as ``None``)."""
        records = [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in self.table.to_dict("records")
        ]
        return {"name": self.name, "params": self.params, "table": records}

    def __str__(self) -> str:
        head = f"{self.name}\n" if self.name else ""
        return head + format_table(self.table)


def format_table(table: pd.DataFrame) -> str:
    """The evaluation table as aligned text (percentages for rates).

    Examples
    --------
    >>> t = pd.DataFrame([{"detector": "rule", "candles": 10, "alerts": 1, "alert_rate": 0.1,
    ...     "true_alerts": 1, "precision": 1.0, "labels": 2, "detected": 1, "recall": 0.5,
    ...     "f1": 2 / 3, "delay_candles": 1.0, "delay_ms": 60000.0}])
    >>> print(format_table(t))
    detector  candles  alerts alert_rate precision recall    f1 delay_candles delay_ms
        rule       10       1     10.00%    100.0%  50.0% 66.7%           1.0    60000
    """
    def pct(d: int) -> Any:
        return lambda v: "-" if pd.isna(v) else f"{100 * v:.{d}f}%"

    def num(d: int) -> Any:
        return lambda v: "-" if pd.isna(v) else f"{v:.{d}f}"

    cols = ["detector", "candles", "alerts", "alert_rate", "precision", "recall", "f1",
            "delay_candles", "delay_ms"]
    view = table[[c for c in cols if c in table.columns]]
    fmt = {"alert_rate": pct(2), "precision": pct(1), "recall": pct(1), "f1": pct(1),
           "delay_candles": num(1), "delay_ms": num(0)}
    return str(view.to_string(index=False, formatters={k: v for k, v in fmt.items() if k in view}))


def _labels_frame(labels: Iterable[Mapping[str, Any]] | pd.DataFrame | None) -> pd.DataFrame:
    cols = ["symbol", "kind", "magnitude", "start_ms", "end_ms"]
    if labels is None:
        return pd.DataFrame(columns=cols)
    df = labels.copy() if isinstance(labels, pd.DataFrame) else pd.DataFrame(list(labels))
    if df.empty:
        return pd.DataFrame(columns=cols)
    for c in ("symbol", "start_ms", "end_ms"):
        if c not in df.columns:
            raise ValidationError("labels", f"missing {c!r}")
    df["start_ms"] = df["start_ms"].astype("int64")
    df["end_ms"] = df["end_ms"].astype("int64")
    return df.reset_index(drop=True)


def evaluate(
    candles: pd.DataFrame,
    labels: Iterable[Mapping[str, Any]] | pd.DataFrame | None,
    detectors: None | str | Iterable[str | BaseDetector] = None,
    *,
    seed: int = 0,
    tolerance: int = 1,
    name: str = "",
    params: Mapping[str, Any] | None = None,
) -> EvaluationResult:
    """Score ``candles`` with ``detectors`` and compare the alerts with ``labels``.

    Parameters
    ----------
    candles
        One interval's candles (several symbols allowed), as from
        :func:`cryptolab.candles_from_ticks`.
    labels
        Ground truth: dicts (or a DataFrame) with ``symbol, start_ms, end_ms``
        (``kind``, ``magnitude`` kept when present); ``None`` for none (only
        alert rates are meaningful then).
    detectors
        As in :func:`cryptolab.score_history`.
    seed
        Seed of detectors made from names.
    tolerance
        Candles after a label's end that still count as detecting it.
    name, params
        Carried into the result for display.

    Returns
    -------
    EvaluationResult
    """
    if tolerance < 0:
        raise ValidationError("tolerance", f"must be >= 0, got {tolerance}")
    dets = make_detectors(detectors, seed=seed)
    names = [d.name for d in dets]
    lab = _labels_frame(labels)
    scored = score_history(candles, dets, seed=seed)
    if "interval" in scored.columns and scored["interval"].nunique() > 1:
        raise ValidationError("candles", "evaluate one interval at a time")
    iv_ms = _interval_ms(scored)

    scored_mask = scored[f"score_{names[0]}"].notna().to_numpy()
    n_candles = int(scored_mask.sum())
    sym = scored["symbol"].astype(str).to_numpy() if "symbol" in scored else np.full(len(scored), "-")
    ws = epoch_ms(scored["window_start"])
    covered, label_rows = _cover(lab, sym, ws, iv_ms, tolerance)
    rows = [
        _detector_row(d, scored[f"flag_{d}"].to_numpy(dtype=bool), lab, covered, label_rows,
                      ws, iv_ms, n_candles)
        for d in names
    ]
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    return EvaluationResult(table=table, scored=scored, labels=lab, name=name, params=dict(params or {}))


def _cover(
    lab: pd.DataFrame, sym: np.ndarray, ws: np.ndarray, iv_ms: int, tolerance: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Which candles each label covers: ``covered[i]``, the index of a label covering candle
    ``i`` (or -1), and per label the indices of its candles."""
    we = ws + iv_ms
    covered = np.full(len(ws), -1, dtype=np.int64)
    label_rows: list[np.ndarray] = []
    for j, lr in enumerate(lab.itertuples(index=False)):
        hit = (
            (sym == str(lr.symbol))
            & (we > int(lr.start_ms))
            & (ws < int(lr.end_ms) + tolerance * iv_ms)
        )
        idx = np.flatnonzero(hit)
        covered[idx] = np.where(covered[idx] < 0, j, covered[idx])
        label_rows.append(idx)
    return covered, label_rows


def _detector_row(
    d: str, flags: np.ndarray, lab: pd.DataFrame, covered: np.ndarray,
    label_rows: list[np.ndarray], ws: np.ndarray, iv_ms: int, n_candles: int,
) -> dict[str, Any]:
    """Detector ``d``'s row of the table, from its alert ``flags`` per candle; adds its
    ``detected_<d>``, ``delay_ms_<d>`` and ``delay_candles_<d>`` columns to ``lab``."""
    we = ws + iv_ms
    alerts = int(flags.sum())
    true_alerts = int((flags & (covered >= 0)).sum())
    detected = np.zeros(len(lab), dtype=bool)
    delay_ms = np.full(len(lab), np.nan)
    delay_c = np.full(len(lab), np.nan)
    for j, idx in enumerate(label_rows):
        hits = idx[flags[idx]]
        if hits.size == 0:
            continue
        first = hits[np.argmin(ws[hits])]
        start = int(lab.at[j, "start_ms"])
        detected[j] = True
        # the alert is raised when its candle closes: at we[first], not ws[first]
        delay_ms[j] = float(we[first] - start)
        delay_c[j] = float(-(-(we[first] - start) // iv_ms))  # whole candles, rounded up
    lab[f"detected_{d}"] = detected
    lab[f"delay_ms_{d}"] = delay_ms
    lab[f"delay_candles_{d}"] = delay_c
    precision = true_alerts / alerts if alerts else math.nan
    recall = float(detected.mean()) if len(lab) else math.nan
    f1 = (
        2 * precision * recall / (precision + recall)
        if alerts and len(lab) and precision + recall > 0
        else math.nan
    )
    return {
        "detector": d,
        "candles": n_candles,
        "alerts": alerts,
        "alert_rate": alerts / n_candles if n_candles else math.nan,
        "true_alerts": true_alerts,
        "precision": precision,
        "labels": len(lab),
        "detected": int(detected.sum()),
        "recall": recall,
        "f1": f1,
        "delay_candles": float(np.nanmean(delay_c)) if detected.any() else math.nan,
        "delay_ms": float(np.nanmean(delay_ms)) if detected.any() else math.nan,
    }


def _interval_ms(candles: pd.DataFrame) -> int:
    if "interval" in candles.columns and len(candles):
        return parse_interval(str(candles["interval"].iloc[0]))
    if "window_end" in candles.columns and len(candles):
        return int(np.median(epoch_ms(candles["window_end"]) - epoch_ms(candles["window_start"])))
    raise ValidationError("candles", "need an interval or window_end column")


def move_labels(candles: pd.DataFrame, threshold: float = 0.03) -> list[dict[str, Any]]:
    """Labels for the candles whose body ``|close - open| / open`` reaches ``threshold``.

    Examples
    --------
    >>> df = pd.DataFrame({"symbol": "X", "interval": "5m", "window_start": [0, 300_000],
    ...                    "window_end": [300_000, 600_000], "open": [100.0, 100.0],
    ...                    "close": [101.0, 96.5]})
    >>> move_labels(df)
    [{'symbol': 'X', 'kind': 'crash', 'magnitude': 0.035, 'start_ms': 300000, 'end_ms': 600000}]
    """
    body = (candles["close"] - candles["open"]) / candles["open"]
    mask = body.abs() >= threshold
    if "gap" in candles.columns:
        mask &= ~candles["gap"].astype(bool)
    iv = _interval_ms(candles)
    out = []
    starts = epoch_ms(candles["window_start"])[mask.to_numpy()]
    for r, b, ws in zip(candles[mask].itertuples(index=False), body[mask], starts.tolist(), strict=True):
        out.append({
            "symbol": str(getattr(r, "symbol", "-")),
            "kind": "spike" if b > 0 else "crash",
            "magnitude": round(abs(float(b)), 6),
            "start_ms": ws,
            "end_ms": ws + iv,
        })
    return out


def evaluate_many(results: Sequence[EvaluationResult]) -> pd.DataFrame:
    """Stack the tables of several results, with a ``dataset`` column first.

    Examples
    --------
    >>> r = EvaluationResult(table=pd.DataFrame([{"detector": "rule", "alerts": 0}]),
    ...                      scored=pd.DataFrame(), labels=pd.DataFrame(), name="x")
    >>> evaluate_many([r]).columns.tolist()
    ['dataset', 'detector', 'alerts']
    """
    frames = [r.table.assign(dataset=r.name) for r in results]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if "dataset" in out.columns:
        out = out[["dataset", *[c for c in out.columns if c != "dataset"]]]
    return out
