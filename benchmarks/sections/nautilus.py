"""``nautilus``: the streaming aggregator vs NautilusTrader's ``TimeBarAggregator`` (historical
mode, ``TradeTick`` s) on the same streams: the synthetic stream and the real Bitstamp and
Mt.Gox trade files; their bars checked equal on NautilusTrader's convention.

NautilusTrader runs in a virtualenv of its own (it needs Python 3.12+, see
:mod:`benchmarks.peers.venv`); when it cannot be created the section is skipped with the
reason. A missing real data file skips that stream, or fails the section under ``CI=true``.
"""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path
from typing import Any, Final

import numpy as np

from benchmarks.peers.nautilus import (
    Stream,
    closing_side_ts,
    compare_bars,
    feed,
    nautilus_python,
    run_nautilus,
)
from benchmarks.results import ratio, rnd
from benchmarks.sections.batch import batch_ticks
from benchmarks.services import Services
from benchmarks.spec import BenchConfig, Progress
from cryptolab.models import parse_interval

__all__ = ["INTERVALS", "REAL_FILES", "load_streams", "run"]

#: The bars both sides build (NautilusTrader: one aggregator per symbol and interval).
INTERVALS: Final = "1m,5m,15m"
#: The real streams: name -> file under the shared data folder.
REAL_FILES: Final = {"bitstamp": "trades/bitstamp_btcusd_2011-09_2012-05.csv",
                     "mtgox": "trades/mtgox_btcusd_2013-01-01.csv"}
#: The pipeline's consumer batch (``CandlePipeline(batch_size=...)``'s default).
BATCH: Final = 20_000

_HOW = ("both sides get their native input prepared before the clock starts (cryptolab: numpy columns; "
        "NautilusTrader: TradeTick objects, built by TradeTick.from_raw_arrays_to_list, timed apart as "
        "tick_build_seconds) and fold every tick into 1m, 5m and 15m bars; the best of nautilus_repeat "
        "runs each (more, up to 50, until a side's runs add up to 0.5 s: the real files are small). "
        "cryptolab: CandleAggregator.add_columns per 20,000-tick batch as the pipeline's consumer feeds "
        "it (one partition, drain() after each batch, close_all() at the end; no store). "
        "NautilusTrader: one TimeBarAggregator per symbol and interval, each with its own TestClock, in "
        "historical mode, handle_trade_tick per tick, build_with_no_updates=False (no empty bars, like "
        "cryptolab's)")
_CONVENTION = ("NautilusTrader's bars are (start, end], stamped at the close, and the first tick stamped "
               "exactly on a boundary closes the bar while later ones with the same stamp open the next: "
               "cryptolab's candles are rebuilt (per interval) with exactly those closing ticks moved 1 ms "
               "earlier, then compared window by window (OHLC exact, volume to 1e-9: NautilusTrader sums "
               "fixed-point quantities); without the move, the windows differing are counted too")


def _real_stream(name: str, path: Path) -> tuple[Stream, int]:
    """A real trade file as a stream (ticks without a size dropped: NautilusTrader refuses them)."""
    from cryptolab.sources.replay import Replay

    ticks = [t for t in Replay(path).iter_ticks()]
    kept = [t for t in ticks if t.size]
    symbols = sorted({t.symbol for t in kept})
    index = {s: i for i, s in enumerate(symbols)}
    stream = Stream(name, np.array([index[t.symbol] for t in kept], dtype=np.int64), symbols,
                    np.array([t.ts_ms for t in kept], dtype=np.int64),
                    np.array([t.price for t in kept], dtype=np.float64),
                    np.array([t.size for t in kept], dtype=np.float64))
    return stream, len(ticks) - len(kept)


def load_streams(cfg: BenchConfig, data_dir: Path, progress: Progress) -> tuple[list[Stream], dict[str, Any]]:
    """The synthetic stream and the real ones found under ``data_dir``; and what was left out.

    Raises
    ------
    FileNotFoundError
        Under ``CI=true``, when a real data file is missing.
    """
    frame = batch_ticks(cfg.nautilus_ticks, cfg.symbols)
    codes, symbols = np.unique(frame.symbol.to_numpy(), return_inverse=True)
    size = np.maximum(frame["size"].to_numpy(dtype=np.float64), 1e-4)  # NautilusTrader refuses 0
    streams = [Stream("synthetic", symbols.astype(np.int64), [str(s) for s in codes],
                      frame.ts_ms.to_numpy(dtype=np.int64), frame.price.to_numpy(dtype=np.float64), size)]
    notes: dict[str, Any] = {}
    for name, rel in REAL_FILES.items():
        path = data_dir / rel
        if not path.is_file():
            if os.environ.get("CI") == "true":
                raise FileNotFoundError(f"real data set missing under CI=true: {path}")
            notes[name] = f"skipped: {path} not found"
            progress(f"nautilus: {name} skipped ({path} not found)")
            continue
        stream, dropped = _real_stream(name, path)
        streams.append(stream)
        notes[name] = {"file": str(path), "ticks": len(stream), "dropped_without_size": dropped}
    return streams, notes


def _time_stream(stream: Stream, repeat: int, min_seconds: float) -> tuple[float, int, list[Any]]:
    """The best of ``repeat`` runs of :func:`~benchmarks.peers.nautilus.feed` (more, up to 50,
    until they add up to ``min_seconds``), the number of runs, and the candles."""
    runs: list[float] = []
    candles: list[Any] = []
    while len(runs) < repeat or (sum(runs) < min_seconds and len(runs) < 50):
        gc.collect()
        t0 = time.perf_counter()
        candles = feed(stream, INTERVALS, BATCH)
        runs.append(time.perf_counter() - t0)
    return min(runs), len(runs), candles


def _check(stream: Stream, own: list[Any], bars: list[list[Any]]) -> dict[str, Any]:
    """cryptolab's candles on NautilusTrader's convention vs its bars (and without the move)."""
    moved: list[Any] = []
    for name in INTERVALS.split(","):
        shifted = closing_side_ts(stream.codes, stream.ts, parse_interval(name))
        moved += feed(stream, name, BATCH, ts=shifted)
    cmp = compare_bars(moved, bars)
    cmp["differing_without_the_move"] = compare_bars(own, bars)["differing"]
    return cmp


def run(svc: Services, cfg: BenchConfig, progress: Progress) -> dict[str, Any]:
    """The streaming aggregator vs NautilusTrader on each stream; ``stream_vs_nautilus`` is the
    minimum ratio over the streams."""
    from cryptolab.evaluation import shared_data_dir

    python = nautilus_python()  # PeerUnavailable: the suite records the section as skipped
    streams, notes = load_streams(cfg, shared_data_dir(), progress)
    minutes = [parse_interval(n) // 60_000 for n in INTERVALS.split(",")]
    per: dict[str, Any] = {}
    peer: dict[str, Any] = {}
    equal = True
    for stream in streams:
        ours_s, ours_runs, own = _time_stream(stream, cfg.nautilus_repeat, cfg.nautilus_min_s)
        theirs, bars = run_nautilus(python, stream, minutes, cfg.nautilus_repeat, timeout=600 + len(stream) / 1_000,
                                    min_seconds=cfg.nautilus_min_s)
        peer = theirs
        n = len(stream)
        ours_tps = n / ours_s
        cmp = _check(stream, own, bars)
        equal = equal and bool(cmp["match"])
        per[stream.name] = {"ticks": n, "symbols": len(stream.symbols), "cryptolab_ticks_per_s": round(ours_tps),
                            "cryptolab_seconds": rnd(ours_s, 5), "cryptolab_runs": ours_runs,
                            "nautilus_runs": len(theirs["runs_seconds"]), "nautilus_ticks_per_s": rnd(theirs["ticks_per_s"], 0),
                            "nautilus_seconds": rnd(theirs["seconds"], 5),
                            "nautilus_tick_build_seconds": rnd(theirs["tick_build_seconds"], 5),
                            "ratio": ratio(ours_tps, theirs["ticks_per_s"]), "candles": len(own),
                            "nautilus_bars": theirs["bars"], "price_precision": theirs["price_precision"],
                            "size_precision": theirs["size_precision"], "bars_vs_cryptolab": cmp}
        progress(f"nautilus: {stream.name} cryptolab {ours_tps:,.0f} ticks/s, NautilusTrader "
                 f"{theirs['ticks_per_s']:,.0f} ticks/s, {cmp['differing']} windows differ of {cmp['compared']}")
    ratios = [v["ratio"] for v in per.values() if v["ratio"] is not None]
    return {
        "stream_vs_nautilus": min(ratios) if ratios else None,
        "details": {"streams": per, "real_data": notes, "intervals": INTERVALS, "batch": BATCH,
                    "repeat": cfg.nautilus_repeat, "nautilus_version": peer.get("version"),
                    "nautilus_python": peer.get("python"), "how": _HOW, "convention": _CONVENTION},
        "checks": {"stream_bars_equal_nautilus": equal},
    }
