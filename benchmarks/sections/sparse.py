"""``sparse``: the streaming aggregator on sparse and real data shapes, fed as the pipeline feeds it.

- ``stream_sparse_vs_dense``: :meth:`~cryptolab.candles.CandleAggregator.add_columns` in
  consumer-sized batches (20,000 ticks, one partition, a drain after each) on a sparse stream
  (one symbol, a tick every 40 minutes: an illiquid pair, a backfill) vs a dense one of the
  same tick count (the batch section's shape: ``symbols`` symbols, about 1,000 ticks/s of
  event time).
- ``stream_vs_batch_bitstamp`` / ``_mtgox``: the same feed of the recorded Bitstamp
  (10k trades over 8 months) and Mt.Gox (one day) files vs
  :func:`~cryptolab.candles.candles_from_ticks` on the same ticks (checked equal).
- ``replay_bitstamp_ticks_per_s`` / ``replay_dense_ticks_per_s``: ``cryptolab replay`` end to
  end (producer, Kafka, consumer, store, cache; scoring off) of the Bitstamp file and of a
  dense file of as many ticks (one symbol, 20 ticks/s), on the suite's services when they
  are configured, else on the embedded ones (mock Kafka, SQLite, in-process cache).

The recorded files are read from ``../shared/data`` (:func:`cryptolab.evaluation.shared_data_dir`);
when they are missing the section fails (the suite then exits 1).
"""

from __future__ import annotations

import contextlib
import gc
import io
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.results import rnd
from benchmarks.sections.batch import batch_ticks
from benchmarks.services import Services
from benchmarks.spec import INTERVALS, START_MS, BenchConfig, Progress

__all__ = ["REAL_FILES", "feed_stream", "run", "sparse_ticks"]

#: The recorded files, under the shared data folder, and their result key's suffix.
REAL_FILES = {"bitstamp": "trades/bitstamp_btcusd_2011-09_2012-05.csv", "mtgox": "trades/mtgox_btcusd_2013-01-01.csv"}
#: Ticks per add_columns call: a consumer batch (``CandlePipeline(batch_size=20_000)``) of one partition.
FEED_BATCH = 20_000
_SPARSE_GAP_MS = 40 * 60_000


def sparse_ticks(n: int, seed: int = 0) -> Any:
    """``n`` ticks of one symbol, one every 40 minutes.

    Examples
    --------
    >>> ticks = sparse_ticks(3)
    >>> ticks.symbol.tolist(), int(ticks.ts_ms.diff().iloc[1])
    (['BTC-USD', 'BTC-USD', 'BTC-USD'], 2400000)
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    ts = START_MS + np.arange(n, dtype=np.int64) * _SPARSE_GAP_MS
    price = np.round(100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n))), 2)
    size = np.round(rng.exponential(0.5, n), 4)
    return pd.DataFrame({"symbol": "BTC-USD", "ts_ms": ts, "price": price, "size": size})


def feed_stream(ticks: Any, batch: int = FEED_BATCH, *, keep: bool = True) -> tuple[float, list[Any]]:
    """Fold ``ticks`` (a frame: symbol, ts_ms, price, size) with ``add_columns`` in batches of
    ``batch``, a drain after each, every window closed at the end; the seconds it took and the
    final candles (the latest version of each window; none unless ``keep``: like the consumer,
    which hands them on, a feed that keeps them pays the garbage collector for them).

    A drain's sealed windows are columns (:class:`~cryptolab.models.blocks.CandleBlock`): their
    candle objects are built when they are read (here only with ``keep``). In the consumer the
    store's upsert binds the columns, and the cache's publish, on the commit thread, builds the
    candles while the consumer folds the next batch."""
    from cryptolab.candles import CandleAggregator

    codes, names = ticks.symbol.factorize()
    symbols = [str(s) for s in names]
    c = np.ascontiguousarray(codes, dtype=np.int64)
    t = ticks.ts_ms.to_numpy(np.int64)
    p = ticks.price.to_numpy(np.float64)
    s = ticks["size"].to_numpy(np.float64) if "size" in ticks else np.full(len(t), np.nan)
    finals: dict[tuple[str, str, int], Any] = {}
    gc.collect()
    t0 = time.perf_counter()
    agg = CandleAggregator(intervals=INTERVALS)
    for a in range(0, len(t), batch):
        agg.add_columns(c[a:a + batch], symbols, t[a:a + batch], p[a:a + batch], s[a:a + batch])
        out = agg.drain().finals
        if keep:
            for cd in out:
                finals[cd.key] = cd
    agg.close_all()
    for cd in agg.drain().finals:
        finals[cd.key] = cd
    return time.perf_counter() - t0, list(finals.values())


def _batch(ticks: Any) -> tuple[float, Any]:
    from cryptolab.candles import candles_from_ticks

    gc.collect()
    t0 = time.perf_counter()
    out = candles_from_ticks(ticks, INTERVALS)
    return time.perf_counter() - t0, out


def _best(fn: Any, repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(max(1, repeat)):
        s, out = fn()
        best = min(best, s)
    return best, out


def _equal(stream_finals: list[Any], batch: Any) -> bool:
    """The stream's final candles equal the batch's, bit for bit (window starts in epoch ms)."""
    from cryptolab.candles import with_ms_windows

    cols = ["open", "high", "low", "close", "volume", "trades", "first_ts", "last_ts", "high_ts", "low_ts"]
    b = with_ms_windows(batch).set_index(["symbol", "interval", "window_start"]).sort_index()
    rows = {(c.symbol, c.interval, c.window_start): [getattr(c, k) for k in cols] for c in stream_finals}
    if len(rows) != len(b):
        return False
    for key, values in zip(b.index, b[cols].itertuples(index=False), strict=True):
        mine = rows.get(tuple(key))  # type: ignore[arg-type]
        if mine is None or [float(x) for x in mine] != [float(x) for x in values]:
            return False
    return True


def _load(path: Path) -> Any:
    import pandas as pd

    from cryptolab.sources.replay import Replay

    ticks = list(Replay(path).iter_ticks())
    return pd.DataFrame({"symbol": [t.symbol for t in ticks], "ts_ms": [t.ts_ms for t in ticks],
                         "price": [t.price for t in ticks],
                         "size": [np.nan if t.size is None else t.size for t in ticks]})


def _replay(svc: Services, path: Path, tmp: Path, extra: list[str]) -> float:
    """Seconds of one ``cryptolab replay`` of ``path`` (scoring off), on the suite's services when
    configured, else the embedded ones."""
    from cryptolab.cli import main as cryptolab_main

    argv = ["replay", str(path), "--no-score", *extra]
    if svc.kafka:
        argv += ["--kafka", svc.kafka]
    argv += ["--store", svc.database() if svc.pg else f"sqlite:///{tmp / f'replay_{time.monotonic_ns()}.db'}"]
    if svc.redis:
        argv += ["--redis", svc.redis]
    gc.collect()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = cryptolab_main(argv)
    seconds = time.perf_counter() - t0
    if code != 0:
        raise RuntimeError(f"cryptolab replay {path.name} exited {code}")
    return seconds


def _replays(svc: Services, bitstamp: Path, n: int, repeat: int, progress: Progress) -> dict[str, Any]:
    """``cryptolab replay`` of the Bitstamp file and of a dense file of ``n`` ticks (best of ``repeat``)."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        dense = tmp / "dense_btcusd.csv"
        rng = np.random.default_rng(1)
        prices = np.round(100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0005, n))), 2)
        lines = [f"{START_MS + 50 * i},{prices[i]},{rng.exponential(0.5):.4f}" for i in range(n)]
        dense.write_text("ts_ms,price,amount\n" + "\n".join(lines) + "\n")
        best = {"bitstamp": float("inf"), "dense": float("inf")}
        for _ in range(max(1, repeat)):  # alternating, the best of each kept
            best["bitstamp"] = min(best["bitstamp"], _replay(svc, bitstamp, tmp, []))
            best["dense"] = min(best["dense"], _replay(svc, dense, tmp, ["--symbol", "BTC-USD"]))
    out = {k: round(n / s) for k, s in best.items()}
    progress(f"sparse: cryptolab replay bitstamp {out['bitstamp']:,} ticks/s, dense {out['dense']:,} ticks/s")
    return {"replay_bitstamp_ticks_per_s": out["bitstamp"], "replay_dense_ticks_per_s": out["dense"],
            "seconds": {k: rnd(s) for k, s in best.items()},
            "services": "kafka+postgresql+redis" if svc.kafka and svc.pg and svc.redis else
            "partly embedded" if svc.kafka or svc.pg or svc.redis else "embedded"}


def run(svc: Services, cfg: BenchConfig, progress: Progress) -> dict[str, Any]:
    """Sparse vs dense, real files vs the batch engine, and the Bitstamp replay end to end."""
    from cryptolab.evaluation import shared_data_dir

    n = cfg.sparse_ticks
    repeat = cfg.sparse_repeat
    sparse, dense = sparse_ticks(n), batch_ticks(n, cfg.symbols)
    sparse_s, _ = _best(lambda: feed_stream(sparse, keep=False), repeat)
    dense_s, _ = _best(lambda: feed_stream(dense, keep=False), repeat)
    result: dict[str, Any] = {"stream_sparse_vs_dense": rnd(dense_s / sparse_s, 4)}
    details: dict[str, Any] = {
        "ticks": n, "feed_batch": FEED_BATCH, "sparse_gap_minutes": _SPARSE_GAP_MS // 60_000,
        "dense_symbols": cfg.symbols, "intervals": INTERVALS,
        "sparse_ticks_per_s": round(n / sparse_s), "dense_ticks_per_s": round(n / dense_s),
    }
    progress(f"sparse: stream sparse {n / sparse_s:,.0f} ticks/s, dense {n / dense_s:,.0f} ticks/s")
    checks: dict[str, bool] = {}
    root = shared_data_dir()
    missing = [str(root / rel) for rel in REAL_FILES.values() if not (root / rel).is_file()]
    if missing:
        raise FileNotFoundError(f"recorded data not found: {', '.join(missing)}")
    for name, rel in REAL_FILES.items():
        ticks = _load(root / rel)
        stream_s, finals = _best(lambda t=ticks: feed_stream(t), repeat)
        batch_s, candles = _best(lambda t=ticks: _batch(t), repeat)
        result[f"stream_vs_batch_{name}"] = rnd(batch_s / stream_s, 4)
        details[name] = {"ticks": len(ticks), "stream_ticks_per_s": round(len(ticks) / stream_s),
                         "batch_ticks_per_s": round(len(ticks) / batch_s), "candles": len(candles)}
        checks[f"stream_candles_equal_batch_{name}"] = _equal(finals, candles)
        progress(f"sparse: {name} stream {len(ticks) / stream_s:,.0f} ticks/s, "
                 f"candles_from_ticks {len(ticks) / batch_s:,.0f} ticks/s")
    bitstamp = root / REAL_FILES["bitstamp"]
    replay = _replays(svc, bitstamp, details["bitstamp"]["ticks"], repeat, progress)
    result["replay_bitstamp_ticks_per_s"] = replay.pop("replay_bitstamp_ticks_per_s")
    result["replay_dense_ticks_per_s"] = replay.pop("replay_dense_ticks_per_s")
    details["replay"] = replay
    return {**result, "details": details, "checks": checks}
