"""NautilusTrader as a peer of the streaming aggregator: its run in its own virtualenv, the tick
streams handed to it, and its bars compared with cryptolab's candles on its own convention.

NautilusTrader's time bars are left-open ``(start, end]`` and stamped at the close; in
historical mode each aggregator's clock is advanced to every tick, and the bar ending at
``b`` is built right after the first tick stamped exactly ``b``: that tick closes the bar,
and later ticks with the same stamp open the next one (ties on a boundary are split).
:func:`closing_side_ts` moves exactly the ticks that close a bar 1 ms earlier, so that
cryptolab's ``[start, end)`` windows over the moved times are NautilusTrader's windows; the
candles are then compared window by window (:func:`compare_bars`).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from benchmarks.peers.venv import PeerUnavailable, ensure_venv, find_python
from benchmarks.workers import worker_result
from cryptolab.candles import CandleAggregator
from cryptolab.models import Candle, parse_interval

__all__ = [
    "NAUTILUS_PYTHONS",
    "NAUTILUS_REQUIREMENTS",
    "Stream",
    "closing_side_ts",
    "compare_bars",
    "decimals",
    "feed",
    "nautilus_python",
    "run_nautilus",
]

#: What the NautilusTrader virtualenv installs (the version the figures were measured with).
NAUTILUS_REQUIREMENTS: Final = ("nautilus-trader==1.231.0",)
#: Interpreters it can run on, the preferred first (it needs Python 3.12 or later).
NAUTILUS_PYTHONS: Final = ("3.12", "3.13")
#: The script the virtualenv's Python runs.
_SCRIPT: Final = Path(__file__).resolve().parent / "nautilus_bars.py"


@dataclass(frozen=True)
class Stream:
    """One tick stream, as columns in arrival order (one symbol per code)."""

    name: str
    codes: npt.NDArray[np.int64]
    symbols: list[str]
    ts: npt.NDArray[np.int64]
    price: npt.NDArray[np.float64]
    size: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.ts.shape[0])


def decimals(values: npt.NDArray[np.float64], most: int = 9) -> int:
    """The fewest decimals (up to ``most``) that write every value exactly.

    Examples
    --------
    >>> decimals(np.array([5.8, 13.51001, 2.0])), decimals(np.array([1.0]))
    (5, 0)
    """
    for d in range(most + 1):
        if np.array_equal(np.round(values, d), values):
            return d
    return most


def nautilus_python(*, cache_dir: Path | None = None, pythons: Sequence[str] = NAUTILUS_PYTHONS) -> Path:
    """The NautilusTrader virtualenv's Python (created and installed the first time).

    Raises
    ------
    PeerUnavailable
        When no Python 3.12+ is found or the install fails.
    """
    return ensure_venv("nautilus", NAUTILUS_REQUIREMENTS, interpreter=find_python(pythons), cache_dir=cache_dir)


def run_nautilus(python: Path, stream: Stream, minutes: Sequence[int], repeat: int,
                 timeout: float, min_seconds: float = 0.0) -> tuple[dict[str, Any], list[list[Any]]]:
    """Time NautilusTrader's bars over ``stream`` (the best of ``repeat`` runs, more until they
    add up to ``min_seconds``, in a fresh process of the virtualenv's ``python``); return its
    figures and its bars
    ``[symbol, minutes, close_ms, open, high, low, close, volume]``."""
    with tempfile.TemporaryDirectory(prefix="cryptolab-bench-nautilus-") as tmp:
        ticks, bars = Path(tmp) / "ticks.npz", Path(tmp) / "bars.json"
        np.savez(ticks, codes=stream.codes, symbols=np.array(stream.symbols), ts_ms=stream.ts,
                 price=stream.price, size=stream.size)
        params = {"ticks": str(ticks), "minutes": list(minutes), "repeat": repeat, "bars_out": str(bars),
                  "min_seconds": min_seconds,
                  "price_precision": decimals(stream.price), "size_precision": decimals(stream.size)}
        try:
            proc = subprocess.run([str(python), str(_SCRIPT), json.dumps(params)], capture_output=True,
                                  text=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PeerUnavailable(f"nautilus: the worker did not finish: {exc}") from exc
        out = worker_result("nautilus worker", proc.returncode, proc.stdout, proc.stderr)
        out["price_precision"], out["size_precision"] = params["price_precision"], params["size_precision"]
        rows: list[list[Any]] = json.loads(bars.read_text())
    return out, rows


def feed(stream: Stream, intervals: str, batch: int, ts: npt.NDArray[np.int64] | None = None) -> list[Candle]:
    """Fold ``stream`` into a fresh :class:`~cryptolab.candles.CandleAggregator` as the pipeline
    does (``add_columns`` per consumer batch of ``batch`` ticks, one partition, ``drain()``
    after each), then close every window; return the final candles (``ts`` replaces the
    stream's times)."""
    agg = CandleAggregator(intervals=intervals)
    t = stream.ts if ts is None else ts
    finals: list[Candle] = []
    for a in range(0, len(stream), batch):
        b = a + batch
        agg.add_columns(stream.codes[a:b], stream.symbols, t[a:b], stream.price[a:b], stream.size[a:b])
        finals += agg.drain().finals
    agg.close_all()
    finals += agg.drain().finals
    return finals


def closing_side_ts(codes: npt.NDArray[np.int64], ts: npt.NDArray[np.int64], interval_ms: int) -> npt.NDArray[np.int64]:
    """``ts`` with each tick that closes a NautilusTrader bar moved 1 ms earlier: per symbol,
    the first tick stamped exactly on a boundary of ``interval_ms``.

    Examples
    --------
    >>> closing_side_ts(np.array([0, 0, 1, 0]), np.array([59_000, 60_000, 60_000, 60_000]), 60_000).tolist()
    [59000, 59999, 59999, 60000]
    """
    out = ts.copy()
    on = np.flatnonzero(ts % interval_ms == 0)
    if on.size:
        key = ts[on] * (int(codes.max()) + 1) + codes[on]
        _, first = np.unique(key, return_index=True)
        out[on[first]] -= 1
    return out


def compare_bars(ours: list[Candle], theirs: list[list[Any]], rtol: float = 1e-9) -> dict[str, Any]:
    """cryptolab's candles vs NautilusTrader's bars, window by window: open, high, low and close
    exactly, volume to ``rtol`` (NautilusTrader sums fixed-point quantities, cryptolab floats in
    arrival order). NautilusTrader's last bar of each series is never built (no later tick fires
    its timer), so up to one candle per series is cryptolab's only.

    Examples
    --------
    >>> c = Candle(symbol="X", interval="1m", window_start=0, window_end=60_000, open=1.0, high=2.0,
    ...            low=0.5, close=1.5, volume=3.0, vwap=1.2, trades=3, first_ts=0, last_ts=59_000,
    ...            high_ts=1, low_ts=2)
    >>> compare_bars([c], [["X", 1, 60_000, 1.0, 2.0, 0.5, 1.5, 3.0]])["differing"]
    0
    >>> compare_bars([c], [["X", 1, 60_000, 1.0, 2.0, 0.5, 1.4, 3.0]])["differing"]
    1
    """
    mine = {(c.symbol, parse_interval(c.interval) // 60_000, c.window_end): c for c in ours}
    compared = differing = missing = 0
    examples: list[Any] = []
    for sym, minutes, close_ms, o, h, lo, cl, vol in theirs:
        c = mine.get((sym, minutes, close_ms))
        if c is None:
            missing += 1
            continue
        compared += 1
        if (c.open, c.high, c.low, c.close) != (o, h, lo, cl) or abs(c.volume - vol) > rtol * abs(vol):
            differing += 1
            if len(examples) < 3:
                examples.append({"key": [sym, minutes, close_ms], "cryptolab": [c.open, c.high, c.low, c.close, c.volume],
                                 "nautilus": [o, h, lo, cl, vol]})
    series = {(c.symbol, c.interval) for c in ours}
    only = len(ours) - compared
    return {"compared": compared, "differing": differing, "missing_in_cryptolab": missing,
            "cryptolab_only": only, "series": len(series),
            "match": compared > 0 and differing == 0 and missing == 0 and only <= len(series),
            "examples": examples}
