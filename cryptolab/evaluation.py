"""Evaluate anomaly detectors: precision, recall and detection delay, side by side.

Two kinds of ground truth:

* **Synthetic**: :func:`evaluate_synthetic` builds a seeded
  :class:`~cryptolab.sources.synthetic.SyntheticMarket` with labelled injected
  spikes and crashes (random size between ``min_magnitude`` and
  ``max_magnitude``), aggregates its ticks into candles and scores them.
* **Real recorded data**: :func:`evaluate_real` reads the files of
  ``../shared/data`` (bars JSON or trades CSV). There are no labels there, so
  the candles whose body ``|close - open| / open`` reaches ``label_move``
  (3% by default) are taken as the ground truth, and alert rates are reported.

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

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import orjson
import pandas as pd

from cryptolab.anomaly import BaseDetector, make_detectors, score_history
from cryptolab.batch import epoch_ms, with_utc_windows
from cryptolab.errors import ValidationError
from cryptolab.models import interval_name, parse_interval

__all__ = [
    "EvaluationResult",
    "evaluate",
    "evaluate_many",
    "evaluate_real",
    "evaluate_synthetic",
    "format_table",
    "load_real",
    "move_labels",
    "shared_data_dir",
]

log = logging.getLogger(__name__)

#: Columns of :attr:`EvaluationResult.table`, in order.
TABLE_COLUMNS: Final = (
    "detector", "candles", "alerts", "alert_rate", "true_alerts", "precision", "labels",
    "detected", "recall", "f1", "delay_candles", "delay_ms",
)


def shared_data_dir() -> Path:
    """``../shared/data`` relative to the repository root (may not exist)."""
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"


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
    we = ws + iv_ms

    # covered[i] = index of a label covering candle i (or -1); per label, its candles
    covered = np.full(len(scored), -1, dtype=np.int64)
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

    rows: list[dict[str, Any]] = []
    for d in names:
        flags = scored[f"flag_{d}"].to_numpy(dtype=bool)
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
        rows.append({
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
        })
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    return EvaluationResult(table=table, scored=scored, labels=lab, name=name, params=dict(params or {}))


def _interval_ms(candles: pd.DataFrame) -> int:
    if "interval" in candles.columns and len(candles):
        return parse_interval(str(candles["interval"].iloc[0]))
    if "window_end" in candles.columns and len(candles):
        return int(np.median(epoch_ms(candles["window_end"]) - epoch_ms(candles["window_start"])))
    raise ValidationError("candles", "need an interval or window_end column")


def evaluate_synthetic(
    *,
    symbols: int = 5,
    hours: float = 6.0,
    seed: int = 0,
    injections: int = 20,
    min_magnitude: float = 0.03,
    max_magnitude: float = 0.15,
    interval: str = "1m",
    ticks_per_second: float = 20.0,
    detectors: None | str | Iterable[str | BaseDetector] = None,
    tolerance: int = 1,
) -> EvaluationResult:
    """Evaluate detectors on a seeded synthetic market with labelled injections.

    ``injections`` random spikes and crashes of ``min_magnitude`` to
    ``max_magnitude`` are placed by the market (minute-aligned, one minute
    long, never in the first 10 minutes, at least 5 minutes apart per symbol).

    Examples
    --------
    >>> res = evaluate_synthetic(symbols=2, hours=1.0, injections=4, min_magnitude=0.08,
    ...                          detectors="rule")
    >>> int(res.table.loc[0, "labels"]), float(res.table.loc[0, "recall"])
    (4, 1.0)
    """
    from cryptolab.batch import candles_from_ticks
    from cryptolab.sources.synthetic import SyntheticMarket

    if not hours > 0:
        raise ValidationError("hours", f"must be > 0, got {hours}")
    name = interval_name(parse_interval(interval))
    market = SyntheticMarket(
        symbols=symbols, seed=seed, duration_ms=int(hours * 3_600_000),
        ticks_per_second=ticks_per_second, random_injections=injections,
        min_magnitude=min_magnitude, max_magnitude=max(max_magnitude, min_magnitude),
    )
    ticks = market.to_frame()
    candles = candles_from_ticks(ticks, intervals=name)
    log.info("synthetic: %d ticks -> %d %s candles, %d labels", len(ticks), len(candles), name,
             len(market.labels))
    params = {"symbols": symbols, "hours": hours, "seed": seed, "injections": injections,
              "min_magnitude": min_magnitude, "max_magnitude": max_magnitude, "interval": name,
              "ticks_per_second": ticks_per_second, "tolerance": tolerance}
    return evaluate(
        candles, market.labels, detectors, seed=seed, tolerance=tolerance,
        name=f"synthetic market: {symbols} symbols, {hours:g} h, {name} candles, "
             f"{len(market.labels)} injected moves of {min_magnitude:.0%}-{max_magnitude:.0%} (seed {seed})",
        params=params,
    )


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


def _symbol_from_path(p: Path, fallback: str = "BTC-USD") -> str:
    """``binance_ethusd_5m_...json`` -> ``ETH-USD``; ``fallback`` when the name says nothing.

    Examples
    --------
    >>> _symbol_from_path(Path("bars/coinbase_btcusd_4h_2016.json"))
    'BTC-USD'
    """
    for part in p.stem.lower().split("_"):
        for quote in ("usdt", "usd", "eur"):
            if part.endswith(quote) and 2 <= len(part) - len(quote) <= 6 and part.isalpha():
                return f"{part[: -len(quote)].upper()}-{quote.upper()}"
    return fallback


def _load_bars(p: Path) -> pd.DataFrame:
    """Bars JSON: ``{"ohlc": [{endTime, openPrice...}]}`` or ``{"candles": [{start, open...}]}``."""
    doc = orjson.loads(p.read_bytes())
    if isinstance(doc, dict) and isinstance(doc.get("ohlc"), list):
        raw = pd.DataFrame(doc["ohlc"])
        cols = {"openPrice": "open", "highPrice": "high", "lowPrice": "low", "closePrice": "close"}
        if not {"endTime", *cols} <= set(raw.columns):
            raise ValidationError("path", f"{p.name}: bars need endTime and {sorted(cols)}")
        raw = raw.rename(columns=cols)
        end = raw["endTime"].astype("int64") + 1  # endTime is the last ms of the bar
        start = None
    elif isinstance(doc, dict) and isinstance(doc.get("candles"), list):
        raw = pd.DataFrame(doc["candles"])
        if not {"start", "open", "high", "low", "close"} <= set(raw.columns):
            raise ValidationError("path", f"{p.name}: candles need start, open, high, low, close")
        start = pd.to_numeric(raw["start"]).astype("int64") * 1000  # unix seconds
        end = None
    else:
        raise ValidationError("path", f"{p.name}: expected an 'ohlc' or a 'candles' list")
    if raw.empty:
        raise ValidationError("path", f"{p.name}: no bars")
    ts = (end if end is not None else start).to_numpy(dtype=np.int64)  # type: ignore[union-attr]
    order = np.argsort(ts, kind="stable")
    ts = ts[order]
    step = int(np.median(np.diff(ts))) if len(ts) > 1 else 60_000
    keep = np.concatenate(([True], np.diff(ts) > 0))
    ts = ts[keep]
    raw = raw.iloc[order[keep]]
    window_start = ts - step if end is not None else ts
    num = {c: pd.to_numeric(raw[c]).to_numpy(dtype=float) for c in ("open", "high", "low", "close")}
    volume = pd.to_numeric(raw["volume"]).to_numpy(dtype=float) if "volume" in raw else 0.0
    return with_utc_windows(pd.DataFrame({
        "symbol": _symbol_from_path(p),
        "interval": interval_name(step),
        "window_start": window_start,
        "window_end": window_start + step,
        **num,
        "volume": volume,
        "vwap": np.nan,
        "trades": 0,
        "gap": False,
        "final": True,
    }))


def load_real(path: str | Path, *, interval: str = "1m") -> pd.DataFrame:
    """Candles from a recorded data file of ``../shared/data``.

    * ``bars/*.json``: Binance-style ``{"ohlc": [{endTime, openPrice,
      highPrice, lowPrice, closePrice, volume}]}`` (``window_end = endTime +
      1``) or Coinbase-style ``{"candles": [{start (unix seconds), open, high,
      low, close, volume}]}``; used as they are, the interval is the bars'
      spacing.
    * ``trades/*.csv``: Bitstamp (``unix_seconds,price,amount``, no header) or
      Mt.Gox (``id,price,amount,type`` with ``id`` in epoch microseconds);
      aggregated with :func:`cryptolab.candles_from_ticks` into ``interval``
      candles.

    Raises
    ------
    ValidationError
        When the file is not one of these shapes.
    """
    p = Path(path)
    if not p.exists():
        raise ValidationError("path", f"{p} does not exist")
    if p.suffix == ".json":
        return _load_bars(p)
    if p.suffix == ".csv":
        from cryptolab.batch import candles_from_ticks

        first = p.open().readline()
        if first.lower().startswith("id,"):
            raw = pd.read_csv(p)
            ticks = pd.DataFrame({"ts_ms": raw["id"].astype("int64") // 1000,
                                  "price": raw["price"], "size": raw["amount"]})
        else:
            raw = pd.read_csv(p, header=None, names=["ts", "price", "amount"])
            ticks = pd.DataFrame({"ts_ms": raw["ts"].astype("int64") * 1000,
                                  "price": raw["price"], "size": raw["amount"]})
        ticks.insert(0, "symbol", _symbol_from_path(p))
        ticks = ticks[(ticks["price"] > 0)].sort_values("ts_ms", kind="stable")
        return candles_from_ticks(ticks, intervals=interval)
    raise ValidationError("path", f"{p.name}: expected a bars .json or a trades .csv file")


def evaluate_real(
    path: str | Path,
    *,
    interval: str = "1m",
    label_move: float = 0.03,
    detectors: None | str | Iterable[str | BaseDetector] = None,
    seed: int = 0,
    tolerance: int = 0,
) -> EvaluationResult:
    """Evaluate detectors on a recorded file, with one-candle moves >= ``label_move`` as labels.

    There is no ground truth in recorded data: the labels are a convention
    (a move of 3% or more inside one candle), and ``alert_rate`` is the
    figure to read. ``tolerance`` defaults to 0 here since labels are whole
    candles.
    """
    candles = load_real(path, interval=interval)
    labels = move_labels(candles, label_move)
    iv = str(candles["interval"].iloc[0]) if len(candles) else interval
    return evaluate(
        candles, labels, detectors, seed=seed, tolerance=tolerance,
        name=f"{Path(path).name}: {len(candles)} {iv} candles, {len(labels)} moves >= {label_move:.0%}",
        params={"path": str(path), "interval": iv, "label_move": label_move, "tolerance": tolerance},
    )


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
