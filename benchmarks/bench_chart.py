"""Soak benchmark of the live chart: data path + Bokeh document updates over minutes.

A publisher thread (standing in for the pipeline) publishes candle updates for
``--symbols`` series to the in-process cache at ``--rate`` updates per second in
total: each update either moves a series' open candle (a patch), opens the next
window (a stream), or, now and then, revises an older candle still on the chart
(a late revision, a patch at an index). Simulated event time advances
``--step`` seconds per update of a series, so windows roll over quickly and
every chart's buffer fills up and rolls over during the run.

One :class:`~cryptolab.viz.CandleChart` per series lives in a Bokeh
``Document`` (as in a notebook with one widget per symbol), attached to the
cache and polled by its asyncio task on the main event loop, exactly as in
JupyterLab. Every document event is serialised the way jupyter_bokeh ships it
to the browser (a ``PATCH-DOC`` protocol message), so that cost is measured too.

Recorded every ``--sample`` seconds: update lag (publish -> applied to the
document: p50, p95, max), updates applied, document messages and bytes, bars
held, process RSS. At the end it compares the first and last thirds of the run
(after a warm-up) and says whether lag or memory grows.

Usage::

    python benchmarks/bench_chart.py [--minutes 10] [--rate 50] [--symbols 10]
        [--maxlen 200] [--json benchmarks/results/bench_chart.json]

Not a test: it prints figures and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import psutil
from bokeh.document import Document
from bokeh.protocol import Protocol

from cryptolab.cache import MemoryCache
from cryptolab.models import Candle
from cryptolab.viz import CandleChart

REPO = Path(__file__).resolve().parents[1]
T0 = 1_700_000_040_000
MINUTE = 60_000


class TimedChart(CandleChart):
    """A chart that records, for every applied candle, how long ago it was published."""

    published: dict[tuple[str, int, int, int], float]
    lags: list[float]

    def update_many(self, candles: Any) -> int:
        batch = list(candles)
        changed = super().update_many(batch)
        now = time.perf_counter()
        for c in batch:
            at = self.published.pop((c.symbol, c.window_start, c.revision, c.trades), None)
            if at is not None:
                self.lags.append(now - at)
        return changed


class Publisher(threading.Thread):
    """Publishes candle updates at a fixed total rate from a background thread."""

    def __init__(self, cache: MemoryCache, symbols: list[str], rate: float, step_s: float,
                 published: dict[tuple[str, int, int, int], float], seed: int = 0) -> None:
        super().__init__(name="bench-publisher", daemon=True)
        self.cache, self.symbols, self.rate = cache, symbols, rate
        self.step_ms = int(step_s * 1000)
        self.published = published
        self.rng = random.Random(seed)
        self.stop_event = threading.Event()
        self.sent = 0
        self.revisions = 0
        # per symbol: event time, open candle state, closes of recent finals
        self.t = {s: T0 for s in symbols}
        self.open: dict[str, Candle | None] = {s: None for s in symbols}
        self.finals: dict[str, list[Candle]] = {s: [] for s in symbols}
        self.price = {s: 100.0 * (k + 1) for k, s in enumerate(symbols)}

    def _next(self, sym: str) -> Candle:
        t = self.t[sym] = self.t[sym] + self.step_ms
        ws = t // MINUTE * MINUTE
        p = self.price[sym] = self.price[sym] * (1 + self.rng.gauss(0, 0.001))
        cur = self.open[sym]
        if cur is not None and cur.window_start != ws:  # close it
            final = Candle(**{**cur.to_dict(), "final": True})
            self.finals[sym] = [*self.finals[sym][-50:], final]
            self.cache.publish([final])
            cur = None
        if cur is None:
            cur = Candle(symbol=sym, interval="1m", window_start=ws, window_end=ws + MINUTE,
                         open=p, high=p, low=p, close=p, volume=1.0, vwap=p, trades=1,
                         first_ts=t, last_ts=t, high_ts=t, low_ts=t)
        else:
            cur = Candle(**{**cur.to_dict(), "high": max(cur.high, p), "low": min(cur.low, p),
                            "close": p, "volume": cur.volume + 1.0, "trades": cur.trades + 1,
                            "last_ts": t})
        self.open[sym] = cur
        return cur

    def _revision(self, sym: str) -> Candle | None:
        finals = self.finals[sym]
        if len(finals) < 5:
            return None
        k = self.rng.randrange(len(finals) - 5, len(finals))
        old = finals[k]
        p = old.close * (1 + self.rng.gauss(0, 0.002))
        rev = Candle(**{**old.to_dict(), "close": p, "high": max(old.high, p), "low": min(old.low, p),
                        "trades": old.trades + 1, "revision": old.revision + 1})
        finals[k] = rev
        self.revisions += 1
        return rev

    def run(self) -> None:
        period = 1.0 / self.rate
        start = time.perf_counter()
        i = 0
        while not self.stop_event.is_set():
            due = start + i * period
            delay = due - time.perf_counter()
            if delay > 0:
                self.stop_event.wait(delay)
            sym = self.symbols[i % len(self.symbols)]
            candle = self._revision(sym) if self.rng.random() < 0.02 else None
            candle = candle or self._next(sym)
            self.published[(candle.symbol, candle.window_start, candle.revision, candle.trades)] = time.perf_counter()
            self.cache.publish([candle])
            self.sent += 1
            i += 1


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    symbols = [f"SYM{k:02d}-USD" for k in range(args.symbols)]
    # The cache's own recent-finals lists would fill up during the first minutes and blur the
    # chart's memory profile; the charts do not read them here (no backfill), so keep them small.
    cache = MemoryCache(f"bench-chart-{os.getpid()}", recent_cap=20)
    published: dict[tuple[str, int, int, int], float] = {}
    doc = Document()
    wire = {"messages": 0, "bytes": 0}
    proto = Protocol()

    def ship(event: Any) -> None:  # what jupyter_bokeh's BokehModel does per document event
        msg = proto.create("PATCH-DOC", [event])
        wire["messages"] += 1
        wire["bytes"] += len(msg.header_json) + len(msg.metadata_json) + len(msg.content_json)
        wire["bytes"] += sum(len(b.to_bytes()) for b in msg.buffers)

    charts: list[TimedChart] = []
    for sym in symbols:
        chart = TimedChart(symbol=sym, interval="1m", maxlen=args.maxlen, height=200)
        chart.published, chart.lags = published, []
        doc.add_root(chart.layout)
        chart.attach(cache, backfill=False, poll_interval=args.poll)
        charts.append(chart)
    doc.on_change(ship)
    proc = psutil.Process()
    pub = Publisher(cache, symbols, args.rate, args.step, published)
    samples: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    pub.start()
    duration = args.minutes * 60.0
    last_sent, last_msgs, last_bytes = 0, 0, 0
    cpu0 = proc.cpu_times()
    while time.perf_counter() - t_start < duration:
        await asyncio.sleep(args.sample)
        lags = [x for c in charts for x in c.lags]
        for c in charts:
            c.lags.clear()
        elapsed = time.perf_counter() - t_start
        sample = {
            "t_s": round(elapsed, 1),
            "published_per_s": round((pub.sent - last_sent) / args.sample, 1),
            "applied": len(lags),
            "lag_p50_ms": round(1000 * percentile(lags, 0.5), 1),
            "lag_p95_ms": round(1000 * percentile(lags, 0.95), 1),
            "lag_max_ms": round(1000 * max(lags, default=float("nan")), 1),
            "doc_messages_per_s": round((wire["messages"] - last_msgs) / args.sample, 1),
            "doc_kb_per_s": round((wire["bytes"] - last_bytes) / 1024 / args.sample, 1),
            "bars": sum(len(c) for c in charts),
            "pending_lag_keys": len(published),
            "rss_mb": round(proc.memory_info().rss / 2**20, 1),
        }
        last_sent, last_msgs, last_bytes = pub.sent, wire["messages"], wire["bytes"]
        samples.append(sample)
        print(" ".join(f"{k}={v}" for k, v in sample.items()), flush=True)
    pub.stop_event.set()
    pub.join(5)
    cpu1 = proc.cpu_times()
    for c in charts:
        c.detach()
    cache.clear()
    total_s = time.perf_counter() - t_start
    stats = [c.buffer.stats for c in charts]
    return {
        "samples": samples,
        "published": pub.sent,
        "revisions_published": pub.revisions,
        "streamed": sum(s.streamed for s in stats),
        "patched": sum(s.patched for s in stats),
        "ignored": sum(s.ignored for s in stats),
        "rolled_over": sum(s.rolled_over for s in stats),
        "doc_messages": wire["messages"],
        "doc_mb": round(wire["bytes"] / 2**20, 2),
        "cpu_percent_of_one_core": round(
            100 * ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / total_s, 1),
        "duration_s": round(total_s, 1),
    }


def trend(samples: list[dict[str, Any]], key: str, warmup: int) -> dict[str, float]:
    values = [s[key] for s in samples[warmup:] if s[key] == s[key]]
    if len(values) < 3:
        return {"first_third": float("nan"), "last_third": float("nan"), "slope_per_min": float("nan")}
    third = max(1, len(values) // 3)
    first, last = statistics.median(values[:third]), statistics.median(values[-third:])
    ts = [s["t_s"] / 60 for s in samples[warmup:] if s[key] == s[key]]
    slope = statistics.linear_regression(ts, values).slope if len(set(ts)) > 1 else 0.0
    return {"first_third": round(first, 2), "last_third": round(last, 2),
            "slope_per_min": round(slope, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="soak duration (default 10)")
    ap.add_argument("--rate", type=float, default=50.0, help="candle updates per second, all symbols (default 50)")
    ap.add_argument("--symbols", type=int, default=10, help="series, one chart each (default 10)")
    ap.add_argument("--maxlen", type=int, default=200, help="bars kept per chart (default 200)")
    ap.add_argument("--step", type=float, default=20.0,
                    help="simulated seconds per update of a series (default 20: a new bar every 3 updates)")
    ap.add_argument("--poll", type=float, default=0.1, help="chart poll interval in seconds (default 0.1)")
    ap.add_argument("--sample", type=float, default=5.0, help="seconds between samples (default 5)")
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "bench_chart.json")
    args = ap.parse_args()
    if args.rate < 20:
        ap.error("--rate must be at least 20 updates/s")
    print(f"bench_chart: {args.symbols} charts, {args.rate:g} updates/s, {args.minutes:g} min, "
          f"maxlen {args.maxlen}, poll {args.poll:g}s", flush=True)
    result = asyncio.run(soak(args))
    samples = result["samples"]
    capacity = args.symbols * args.maxlen
    full = [i for i, x in enumerate(samples) if x["bars"] >= capacity]
    # judge growth only once every chart holds maxlen bars (rollover in steady state)
    warmup = full[0] if full else max(1, len(samples) // 10)
    if not full:
        print("note: the charts never filled up (run longer, or lower --maxlen); "
              "memory growth below includes the buffers filling", flush=True)
    lag = trend(samples, "lag_p95_ms", warmup)
    rss = trend(samples, "rss_mb", warmup)
    lag_grows = lag["last_third"] > 1.5 * lag["first_third"] + 50
    rss_grows = rss["last_third"] > rss["first_third"] * 1.10 + 20
    applied = sum(s["applied"] for s in samples)
    summary = {
        "benchmark": "bench_chart",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "updates_per_s_published": round(result["published"] / result["duration_s"], 1),
        "updates_per_s_applied": round(applied / result["duration_s"], 1),
        "lag_p95_ms": lag,
        "lag_p50_ms_overall": round(statistics.median([s["lag_p50_ms"] for s in samples if s["applied"]]), 1),
        "lag_max_ms_overall": max((s["lag_max_ms"] for s in samples if s["applied"]), default=None),
        "rss_mb": rss,
        "steady_state_from_s": samples[warmup]["t_s"] if full else None,
        "lag_grows": lag_grows,
        "memory_grows": rss_grows,
        **{k: v for k, v in result.items() if k != "samples"},
        "samples": samples,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    print()
    for k in ("updates_per_s_published", "updates_per_s_applied", "lag_p50_ms_overall",
              "lag_max_ms_overall", "lag_p95_ms", "rss_mb", "steady_state_from_s", "lag_grows",
              "memory_grows",
              "streamed", "patched", "ignored", "rolled_over", "revisions_published",
              "doc_messages", "doc_mb", "cpu_percent_of_one_core"):
        print(f"{k:<26} {summary[k]}")
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
