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

The matching itself, the metrics and the table are pure and live in
:mod:`cryptolab.anomaly.evaluation` (:func:`evaluate`, :class:`EvaluationResult`,
:func:`format_table`, :func:`move_labels`, :func:`evaluate_many`); they stay
importable from here.

Examples
--------
>>> from cryptolab.anomaly import evaluation
>>> evaluate is evaluation.evaluate
True
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from cryptolab.anomaly.base import BaseDetector
from cryptolab.anomaly.evaluation import TABLE_COLUMNS as TABLE_COLUMNS
from cryptolab.anomaly.evaluation import (
    EvaluationResult,
    evaluate,
    evaluate_many,
    format_table,
    move_labels,
)
from cryptolab.anomaly.evaluation import _interval_ms as _interval_ms
from cryptolab.anomaly.evaluation import _labels_frame as _labels_frame
from cryptolab.candles.frames import with_utc_windows
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


def shared_data_dir() -> Path:
    """``../shared/data`` relative to the repository root (may not exist)."""
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"


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
    from cryptolab.candles.batch import candles_from_ticks
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
        from cryptolab.candles.batch import candles_from_ticks

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
