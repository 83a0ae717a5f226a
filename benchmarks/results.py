"""The result document: targets checked, JSON written, and the rounding every figure goes through."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from benchmarks.spec import TARGETS

__all__ = ["check_targets", "percentile", "ratio", "rnd", "write_json"]


def check_targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target key: its value, the target and whether it holds (``None``: not measured).

    Examples
    --------
    >>> check_targets({"consumer_vs_quix": 42.5})["consumer_vs_quix"]
    {'value': 42.5, 'target': '>= 30', 'ok': True}
    >>> check_targets({"consumer_vs_quix": 12.5})["consumer_vs_quix"]["ok"]
    False
    >>> check_targets({})["consumer_rss_mb"]["ok"] is None
    True
    """
    out: dict[str, dict[str, Any]] = {}
    for key, (op, bound) in TARGETS.items():
        value = result.get(key)
        ok: bool | None = None
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            ok = value >= bound if op == ">=" else value <= bound
        out[key] = {"value": value, "target": f"{op} {bound:g}", "ok": ok}
    return out


def write_json(result: dict[str, Any], path: str | Path) -> Path:
    """Write a suite result as indented JSON (creating the folder); return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n")
    return out


def rnd(x: float | None, nd: int = 3) -> float | None:
    """``x`` rounded to ``nd`` places; ``None`` when it is missing or not finite.

    Examples
    --------
    >>> rnd(1.23456), rnd(float("nan")), rnd(None)
    (1.235, None, None)
    """
    return None if x is None or not math.isfinite(x) else round(float(x), nd)


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` rounded to 3 places (``None`` when either is missing or ``b`` is 0).

    Examples
    --------
    >>> ratio(3.0, 2.0), ratio(1.0, 0.0), ratio(None, 2.0)
    (1.5, None, None)
    """
    return rnd(a / b) if a is not None and b else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile of ``values`` (``None`` when there are none)."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else None
