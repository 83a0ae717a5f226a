"""``api``: the HTTP API under load, beside a bare endpoint of the same server; WebSocket push latency.

One real ``cryptolab serve`` process (uvicorn; on the suite's PostgreSQL and Redis when they are
configured, else on a SQLite file and the in-process cache), started through
:mod:`benchmarks.workers.api_server`, which adds the bench-only routes of
:mod:`benchmarks.peers.bare_api` (never part of the production routes). Its store holds
``api_candles + 200`` 1m candles of one series; its newest is published to the cache first, so
``/latest`` is served from the cache.

- ``api_latest_rps`` / ``_ms_p50`` / ``_ms_p99``: ``GET /api/v1/latest/{s}/1m`` at
  ``api_users`` concurrent clients (locust headless, no wait between requests, keep-alive).
- ``api_candles_rps`` / ``_ms_p50`` / ``_ms_p99``: ``GET /api/v1/candles/{s}/1m?limit=1000``
  (1,000 candles a response).
- ``api_bare_rps``: ``GET /bench/bare``, a FastAPI endpoint returning a constant, on the same
  server (uvicorn, FastAPI and the API's middleware; rate limit off, as for the others);
  ``api_latest_vs_bare`` = ``api_latest_rps / api_bare_rps``. Each path is run ``api_repeat``
  times, alternating, the best run kept.
- ``ws_push_ms_p99``: :mod:`benchmarks.sections.api_push` at ``ws_clients`` clients.

Checks: ``api_candles_returned_1000`` (the candles route answered the store's newest 1,000, and
``/latest`` its newest candle) and ``api_ws_every_update_received``.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import httpx
import orjson

from benchmarks.peers.bare_api import BARE_PATH, PUBLISH_PATH, bench_candle
from benchmarks.peers.locust import LOCUST_REQUIREMENT, locust_python, run_locust
from benchmarks.results import ratio, rnd
from benchmarks.sections.api_push import measure_push
from benchmarks.services import Services
from benchmarks.spec import BenchConfig, Progress
from benchmarks.workers import worker_env

__all__ = ["run", "seed_store", "serve_bench"]

#: Candles the store holds beyond the 1,000 a candles request asks for.
_EXTRA: Final = 200


def seed_store(url: str, symbol: str, n: int) -> None:
    """Write ``n`` final 1m candles of ``symbol`` (:func:`~benchmarks.peers.bare_api.bench_candle`)."""
    from cryptolab.store import Store

    with Store(url) as store:
        store.init()
        store.commit_batch(group="bench-api", topic="bench-api",
                           candles=[bench_candle(symbol, k) for k in range(n)], alerts=[])


@contextlib.contextmanager
def serve_bench(store_url: str, redis_url: str | None, folder: Path, timeout: float = 120.0) -> Iterator[tuple[str, int]]:
    """A ``cryptolab serve`` process with the bench routes, rate limit off; ``(url, pid)`` once it listens."""
    argv = [sys.executable, "-m", "benchmarks.workers.api_server", "--port", "0", "--store", store_url,
            "--rate-limit", "0"]
    if redis_url:
        argv += ["--redis", redis_url]
    env = {**worker_env(unbuffered=True), "CRYPTOLAB_DATA_DIR": str(folder / "data")}
    out, err = folder / "serve.out", folder / "serve.err"
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(argv, stdout=o, stderr=e, env=env, cwd=folder)
    try:
        deadline = time.monotonic() + timeout
        url = None
        while url is None:
            url = next((ln.split()[2] for ln in out.read_text(errors="replace").splitlines()
                        if ln.startswith("cryptolab serve: http://")), None)
            if url is None:
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = " | ".join(err.read_text(errors="replace").strip().splitlines()[-5:])
                    raise RuntimeError(f"cryptolab serve did not start (exit {proc.poll()}): {tail}")
                time.sleep(0.1)
        yield url, proc.pid
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(30)


def _cpu_seconds(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def _check_answers(url: str, symbol: str, n: int, wanted: int) -> dict[str, Any]:
    """The candles route's 1,000 are the store's newest; ``/latest`` is the newest candle."""
    from cryptolab.models import encode_candle

    with httpx.Client(base_url=url, timeout=60) as http:
        body = http.get(f"/api/v1/candles/{symbol}/1m", params={"limit": wanted}).json()
        latest = http.get(f"/api/v1/latest/{symbol}/1m").json()
        bare = http.get(BARE_PATH)
    want = [orjson.loads(encode_candle(bench_candle(symbol, k))) for k in range(n - wanted, n)]
    newest = orjson.loads(encode_candle(bench_candle(symbol, n - 1)))
    ok = body.get("count") == wanted and body.get("candles") == want and latest == newest and bare.status_code == 200
    return {"ok": ok, "candles_count": body.get("count"), "candles_bytes": len(orjson.dumps(body))}


def _load(python: Path, url: str, pid: int, paths: dict[str, str], cfg: BenchConfig,
          progress: Progress) -> dict[str, dict[str, Any]]:
    """Each path under locust, ``api_repeat`` rounds alternating; the best run of each (by requests/s)."""
    best: dict[str, dict[str, Any]] = {}
    runs: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(max(1, cfg.api_repeat)):
        for name, path in paths.items():
            cpu0 = _cpu_seconds(pid)
            out = run_locust(python, url, path, users=cfg.api_users, seconds=cfg.api_seconds)
            out["server_cpu_s"] = round(_cpu_seconds(pid) - cpu0, 2)
            runs[name].append(round(out["rps"], 1))
            progress(f"api: {name} {out['rps']:,.0f} req/s, p50 {out['ms_p50']:.2f} ms, p99 {out['ms_p99']:.2f} ms"
                     f" ({out['failures']} failures)")
            if name not in best or out["rps"] > best[name]["rps"]:
                best[name] = out
    for name, out in best.items():
        out["runs_rps"] = runs[name]
        for key in ("rps", "ms_p50", "ms_p99", "ms_max"):
            out[key] = rnd(out[key], 3)
    return best


def run(svc: Services, cfg: BenchConfig, progress: Progress) -> dict[str, Any]:
    """The REST routes under locust beside the bare endpoint, then the WebSocket push latency."""
    python = locust_python()  # PeerUnavailable: the suite records the section as skipped
    symbol = f"B{svc.run_id.upper()}-USD"  # a series no other user of the Redis server publishes
    n = cfg.api_candles + _EXTRA
    with tempfile.TemporaryDirectory(prefix="cl-bench-api-") as tmp_name:
        tmp = Path(tmp_name)
        store_url = svc.database() if svc.pg else f"sqlite:///{tmp / 'api.db'}"
        seed_store(store_url, symbol, n)
        with serve_bench(store_url, svc.redis, tmp) as (url, pid):
            with httpx.Client(base_url=url, timeout=30) as http:  # the newest candle into the cache
                http.post(PUBLISH_PATH, params={"symbol": symbol, "k": n - 1}).raise_for_status()
            answers = _check_answers(url, symbol, n, cfg.api_candles)
            paths = {"bare": BARE_PATH, "latest": f"/api/v1/latest/{symbol}/1m",
                     "candles": f"/api/v1/candles/{symbol}/1m?limit={cfg.api_candles}"}
            load = _load(python, url, pid, paths, cfg, progress)
            push = measure_push("ws" + url[len("http"):], url, svc.redis, symbol, clients=cfg.ws_clients,
                                seconds=cfg.ws_seconds, rate=cfg.ws_rate)
        progress(f"api: WebSocket push to {push['clients']} clients p50 {push['ms_p50']} ms, "
                 f"p99 {push['ms_p99']} ms ({push['received']:,} of {push['expected']:,} receipts)")
    latest, candles, bare = load["latest"], load["candles"], load["bare"]
    services = "postgresql" if svc.pg else "sqlite"
    services += "+redis" if svc.redis else "+in-process cache"
    return {
        "api_latest_rps": latest["rps"], "api_latest_ms_p50": latest["ms_p50"], "api_latest_ms_p99": latest["ms_p99"],
        "api_candles_rps": candles["rps"], "api_candles_ms_p50": candles["ms_p50"],
        "api_candles_ms_p99": candles["ms_p99"], "api_bare_rps": bare["rps"],
        "api_latest_vs_bare": ratio(latest["rps"], bare["rps"]), "ws_push_ms_p99": push["ms_p99"],
        "details": {"services": services, "candles_in_store": n, "users": cfg.api_users, "seconds": cfg.api_seconds,
                    "repeat": cfg.api_repeat, "load": load, "answers": answers, "ws_push": push,
                    "load_tool": LOCUST_REQUIREMENT + " (FastHttpUser, headless, no wait)",
                    "server": "cryptolab serve (uvicorn, one process) + bench-only routes, --rate-limit 0"},
        "checks": {"api_candles_returned_1000": bool(answers["ok"]),
                   "api_ws_every_update_received": push["received"] == push["expected"]},
    }
