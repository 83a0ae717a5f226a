"""What a chart is given to draw: candles and alerts from DataFrames or model objects.

Accepts :func:`cryptolab.history` and :func:`cryptolab.candles_from_ticks` frames,
the store's alert table, :func:`cryptolab.score_history` output, and iterables of
:class:`~cryptolab.models.Candle` / :class:`~cryptolab.models.Alert`.
"""

from __future__ import annotations

import math
from typing import Any

from cryptolab.errors import ValidationError
from cryptolab.models import Alert, Candle

__all__ = ["as_alerts", "as_candles", "columns_to_candles"]


def _to_ms(value: Any) -> int:
    if isinstance(value, bool):
        raise ValidationError("timestamp", f"not a timestamp: {value!r}")
    if isinstance(value, int):
        return value
    ts = getattr(value, "timestamp", None)
    if callable(ts):
        return int(round(float(ts()) * 1000))
    return int(value)


def as_candles(data: Any) -> list[Candle]:
    """Candles from a DataFrame (history or batch output) or an iterable of :class:`Candle`."""
    if data is None:
        return []
    if hasattr(data, "columns") and hasattr(data, "to_dict"):
        from cryptolab.candles.frames import frame_to_candles

        if len(data) == 0:
            return []
        return frame_to_candles(data)
    out = list(data)
    for c in out:
        if not isinstance(c, Candle):
            raise ValidationError("candles", f"expected Candle objects, got {type(c).__name__}")
    return out


def as_alerts(data: Any, *, interval: str | None = None) -> list[Alert]:
    """Alerts from a DataFrame or an iterable of :class:`Alert`.

    Accepts the store's alert table (``symbol, interval, window_start, detector,
    severity, score, ts_ms``) and the output of
    :func:`cryptolab.score_history` (``severity_<detector>`` / ``score_<detector>``
    columns next to candle columns): every row with a severity becomes an alert.
    """
    if data is None:
        return []
    if not (hasattr(data, "columns") and hasattr(data, "to_dict")):
        out = list(data)
        for a in out:
            if not isinstance(a, Alert):
                raise ValidationError("alerts", f"expected Alert objects, got {type(a).__name__}")
        return out
    cols = set(data.columns)
    rows = data.to_dict("records")
    alerts: list[Alert] = []
    if {"detector", "severity", "score"} <= cols:
        for r in rows:
            alerts.append(
                Alert(
                    symbol=str(r["symbol"]), interval=str(r.get("interval", interval)),
                    window_start=_to_ms(r["window_start"]), detector=str(r["detector"]),
                    severity=str(r["severity"]), score=float(r["score"]),
                    ts_ms=_to_ms(r.get("ts_ms", r["window_start"])),
                )
            )
        return alerts
    detectors = [c[len("severity_"):] for c in data.columns if str(c).startswith("severity_")]
    for r in rows:
        for det in detectors:
            sev = r.get(f"severity_{det}")
            if sev is None or (isinstance(sev, float) and math.isnan(sev)) or sev == "":
                continue
            score = r.get(f"score_{det}", math.nan)
            alerts.append(
                Alert(
                    symbol=str(r["symbol"]), interval=str(r.get("interval", interval)),
                    window_start=_to_ms(r["window_start"]), detector=det, severity=str(sev),
                    score=float(score) if score is not None else math.nan,
                    ts_ms=_to_ms(r.get("window_end", r["window_start"])),
                )
            )
    return alerts


def columns_to_candles(data: dict[str, list[Any]], symbol: str, interval: str, interval_ms: int
                       ) -> list[Candle]:
    """Candles rebuilt from a chart buffer's columns (tick times are set to the window start)."""
    out = []
    for i in range(len(data["window_start"])):
        vw = data["vwap"][i]
        ws = data["window_start"][i]
        out.append(Candle(
            symbol=symbol, interval=interval, window_start=ws, window_end=ws + interval_ms,
            open=data["open"][i], high=data["high"][i], low=data["low"][i], close=data["close"][i],
            volume=data["volume"][i], vwap=None if math.isnan(vw) else vw, trades=data["trades"][i],
            first_ts=ws, last_ts=ws, high_ts=ws, low_ts=ws, revision=data["revision"][i],
            final=data["final"][i], gap=data["gap"][i],
        ))
    return out
