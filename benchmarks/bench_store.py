"""Benchmark the read paths of the sinks against their raw drivers, side by side.

* ``Store.history`` of 100 and 1,000 candles into a DataFrame vs a raw psycopg
  (or sqlite3) fetch of the same rows with the same SQL (``history_vs_raw``);
* ``RedisCache.latest`` vs a raw redis-py ``GET`` of the same key (``latest_vs_raw``);
* ``Store.commit_batch`` upsert throughput (candles/s), for context.

Calls of the two sides are interleaved so both see the same machine noise.
The candles are real: Coinbase BTC/USD 4-hour bars from ``../shared/data``
(synthetic ones when the folder is absent). Benchmark rows are written under a
dedicated symbol and removed afterwards.

Usage::

    python benchmarks/bench_store.py --store postgresql+psycopg://... --redis redis://... \
        [--repeat 500] [--json results/bench_store.json]

Not a test: it prints figures and (with ``--json``) saves them; nothing asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from cryptolab.cache import RedisCache, latest_key
from cryptolab.models import Candle, interval_name
from cryptolab.store import Store

REPO = Path(__file__).resolve().parents[1]
BARS = REPO.parent / "shared" / "data" / "bars" / "coinbase_btcusd_4h_2016-05-18_2025-10-28.json"
INTERVAL_MS = 4 * 3_600_000


def load_candles(symbol: str, n: int) -> tuple[list[Candle], str]:
    """``n`` consecutive 4h candles: real Coinbase bars when available, else synthetic."""
    interval = interval_name(INTERVAL_MS)
    out = []
    if BARS.is_file():
        # Coinbase's shape: {"candles": [{"start": unix seconds, "open", "high", "low", "close", "volume"}]}
        bars = orjson.loads(BARS.read_bytes())["candles"][:n]
        source = f"real: {BARS.name}"
        rows = [(int(b["start"]) * 1000, float(b["open"]), float(b["high"]), float(b["low"]),
                 float(b["close"]), float(b["volume"])) for b in bars]
    else:
        t0 = 1_600_000_000_000 - 1_600_000_000_000 % INTERVAL_MS
        rows = [(t0 + i * INTERVAL_MS, 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, 10.0) for i in range(n)]
        source = "synthetic (../shared/data absent)"
    for start, o, h, lo, c, v in rows:
        out.append(Candle(symbol=symbol, interval=interval, window_start=start,
                          window_end=start + INTERVAL_MS, open=o, high=h, low=lo, close=c, volume=v,
                          vwap=(h + lo + c) / 3, trades=1, first_ts=start,
                          last_ts=start + INTERVAL_MS - 1, high_ts=start, low_ts=start, final=True))
    return out, source


def stats(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    q = statistics.quantiles(s, n=100, method="inclusive")
    return {"p50_ms": round(q[49] * 1e3, 4), "p99_ms": round(q[98] * 1e3, 4),
            "mean_ms": round(statistics.fmean(s) * 1e3, 4), "n": len(s)}


def interleave(a: Callable[[], Any], b: Callable[[], Any], repeat: int, warmup: int) -> tuple[list[float], list[float]]:
    for _ in range(warmup):
        a()
        b()
    ta: list[float] = []
    tb: list[float] = []
    clock = time.perf_counter
    for i in range(repeat):
        first, second, t_first, t_second = (a, b, ta, tb) if i % 2 == 0 else (b, a, tb, ta)
        t = clock()
        first()
        t_first.append(clock() - t)
        t = clock()
        second()
        t_second.append(clock() - t)
    return ta, tb


_RAW_SQL = (
    'SELECT symbol, "interval", window_start, window_end, open, high, low, close, volume, vwap, '
    "trades, first_ts, last_ts, high_ts, low_ts, revision, final, gap FROM candles "
    'WHERE symbol = {p} AND "interval" = {p} AND window_start >= {p} AND window_start < {p} '
    "ORDER BY window_start"
)


def raw_fetcher(url: str) -> tuple[Callable[[tuple[Any, ...]], list[Any]], Callable[[], None], str]:
    """A raw-driver fetch of the same rows: psycopg (autocommit) or sqlite3."""
    import sqlalchemy as sa

    u = sa.make_url(url)
    if u.get_backend_name() == "postgresql":
        import psycopg

        conn = psycopg.connect(u.set(drivername="postgresql").render_as_string(hide_password=False),
                               autocommit=True)
        sql = _RAW_SQL.format(p="%s")

        def fetch_pg(params: tuple[Any, ...]) -> list[Any]:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()

        return fetch_pg, conn.close, f"psycopg {psycopg.__version__}"
    lite = sqlite3.connect(u.database or ":memory:", isolation_level=None)
    sql = _RAW_SQL.format(p="?")

    def fetch_sqlite(params: tuple[Any, ...]) -> list[Any]:
        return lite.execute(sql, params).fetchall()

    return fetch_sqlite, lite.close, f"sqlite3 {sqlite3.sqlite_version}"


def bench_history(url: str, repeat: int, warmup: int) -> dict[str, Any]:
    symbol = f"BENCH-{uuid.uuid4().hex[:8].upper()}"
    candles, source = load_candles(symbol, 5000)
    store = Store(url)
    store.init()
    out: dict[str, Any] = {"store": store.url, "dialect": store.dialect, "data": source}
    try:
        t = time.perf_counter()
        store.commit_batch(group="bench", topic="bench", candles=candles)
        first = time.perf_counter() - t
        t = time.perf_counter()
        store.commit_batch(group="bench", topic="bench", candles=candles)
        again = time.perf_counter() - t
        out["commit_batch"] = {"candles": len(candles), "insert_s": round(first, 4),
                               "upsert_s": round(again, 4),
                               "insert_candles_per_s": round(len(candles) / first),
                               "upsert_candles_per_s": round(len(candles) / again)}
        fetch, close, driver = raw_fetcher(url)
        out["raw_driver"] = driver
        try:
            interval = candles[0].interval
            for n in (100, 1000):
                start = candles[1000].window_start
                end = candles[1000 + n].window_start
                params = (symbol, interval, start, end)
                assert len(fetch(params)) == n
                assert len(store.history(symbol, interval, start, end)) == n

                def ours_call(s: int = start, e: int = end) -> Any:
                    return store.history(symbol, interval, s, e)

                def raw_call(p: tuple[Any, ...] = params) -> Any:
                    return fetch(p)

                ours, raw = interleave(ours_call, raw_call, repeat, warmup)
                h, r = stats(ours), stats(raw)
                out[f"history_{n}"] = {
                    "history": h, "raw_fetch": r,
                    "history_vs_raw_p50": round(h["p50_ms"] / r["p50_ms"], 3),
                    "history_vs_raw_p99": round(h["p99_ms"] / r["p99_ms"], 3),
                }
        finally:
            close()
    finally:
        import sqlalchemy as sa

        from cryptolab.store import candles_table

        with store._engine.begin() as conn:
            conn.execute(sa.delete(candles_table).where(candles_table.c.symbol == symbol))
        store.close()
    return out


def bench_latest(url: str, repeat: int, warmup: int) -> dict[str, Any]:
    import redis

    symbol = f"BENCH-{uuid.uuid4().hex[:8].upper()}"
    candles, _ = load_candles(symbol, 1)
    cache = RedisCache(url)
    raw = redis.Redis.from_url(url)
    key = latest_key(symbol, candles[0].interval)
    try:
        cache.publish(candles)
        assert cache.latest(symbol, candles[0].interval) == candles[0]
        assert raw.get(key) is not None
        ours, base = interleave(lambda: cache.latest(symbol, "4h"), lambda: raw.get(key), repeat, warmup)
        lat, r = stats(ours), stats(base)
        return {"redis": cache.url, "latest": lat, "raw_get": r,
                "latest_vs_raw_p50": round(lat["p50_ms"] / r["p50_ms"], 3),
                "latest_vs_raw_p99": round(lat["p99_ms"] / r["p99_ms"], 3)}
    finally:
        raw.delete(key, f"cryptolab:recent:{symbol}:4h")
        raw.close()
        cache.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=os.environ.get("CRYPTOLAB_STORE_URL"),
                        help="store URL (default: env CRYPTOLAB_STORE_URL, else a temporary SQLite file)")
    parser.add_argument("--redis", default=os.environ.get("CRYPTOLAB_REDIS_URL"),
                        help="Redis URL (default: env CRYPTOLAB_REDIS_URL; latest() is skipped without one)")
    parser.add_argument("--repeat", type=int, default=1000, help="timed calls per side (default 1000)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed calls per side first")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON here")
    args = parser.parse_args(argv)

    results: dict[str, Any] = {
        "benchmark": "bench_store", "python": platform.python_version(),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu", "repeat": args.repeat,
        "loadavg_before": list(os.getloadavg()),
    }
    tmp = None
    store_url = args.store
    if not store_url:
        tmp = tempfile.TemporaryDirectory()
        store_url = f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    results["history"] = bench_history(store_url, args.repeat, args.warmup)
    if args.redis:
        # latest() is ~100x cheaper than history: take more samples so p99 is not one outlier
        results["latest"] = bench_latest(args.redis, args.repeat * 5, args.warmup * 5)
    results["loadavg_after"] = list(os.getloadavg())
    if tmp is not None:
        tmp.cleanup()

    h = results["history"]
    print(f"store {h['store']} ({h['data']}); raw driver {h['raw_driver']}")
    cb = h["commit_batch"]
    print(f"commit_batch: {cb['candles']} candles insert {cb['insert_candles_per_s']:,}/s, "
          f"upsert {cb['upsert_candles_per_s']:,}/s")
    for n in (100, 1000):
        row = h[f"history_{n}"]
        print(f"history {n:>5} candles: p50 {row['history']['p50_ms']:.3f} ms  p99 {row['history']['p99_ms']:.3f} ms"
              f" | raw p50 {row['raw_fetch']['p50_ms']:.3f} ms  p99 {row['raw_fetch']['p99_ms']:.3f} ms"
              f" | history_vs_raw p50 {row['history_vs_raw_p50']:.2f}x  p99 {row['history_vs_raw_p99']:.2f}x")
    if "latest" in results:
        lt = results["latest"]
        print(f"latest(): p50 {lt['latest']['p50_ms']:.3f} ms  p99 {lt['latest']['p99_ms']:.3f} ms"
              f" | raw GET p50 {lt['raw_get']['p50_ms']:.3f} ms  p99 {lt['raw_get']['p99_ms']:.3f} ms"
              f" | latest_vs_raw p50 {lt['latest_vs_raw_p50']:.2f}x  p99 {lt['latest_vs_raw_p99']:.2f}x")
    print(f"load average before {results['loadavg_before'][0]:.2f}, after {results['loadavg_after'][0]:.2f}")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
