"""``cryptolab run --api``: the HTTP API of a live session served from the same process, as a real
subprocess on the embedded defaults (mock Kafka, SQLite, the in-process cache, which the API
reaches because the pipeline publishes in the same process); and bad input costs nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from cryptolab.models import encode_candle
from cryptolab.store import Store

pytest.importorskip("fastapi", reason="the API needs the api extra")

REPO = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOLAB_")}
    env["CRYPTOLAB_DATA_DIR"] = str(tmp_path / "data")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _api_url(out: Path, proc: subprocess.Popen[str], err: Path, timeout: float = 240.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in out.read_text(errors="replace").splitlines():
            if line.startswith("cryptolab run: API http://"):
                return line.split()[3]
        if proc.poll() is not None:
            pytest.fail(f"cryptolab run exited {proc.returncode}: {err.read_text()[-3000:]}")
        time.sleep(0.2)
    pytest.fail("cryptolab run --api never said where its API listens")


async def _updates(ws_url: str, n: int) -> list[dict[str, Any]]:
    from websockets.asyncio.client import connect

    async with connect(ws_url, open_timeout=60) as ws:
        return [orjson.loads(await asyncio.wait_for(ws.recv(), 120)) for _ in range(n)]


def test_run_api_serves_the_sessions_candles_and_pushes_live_updates(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen([sys.executable, "-m", "cryptolab", "run", "--source", "synthetic",
                                 "--symbols", "BTC-USD,ETH-USD", "--tps", "20", "--backfill", "10m",
                                 "--intervals", "1m", "--store", f"sqlite:///{db}", "--api", "--api-port", "0",
                                 "--quiet"], cwd=tmp_path, env=_env(tmp_path), stdout=o, stderr=e, text=True)
    try:
        url = _api_url(out, proc, err)
        with httpx.Client(base_url=url, timeout=60) as http:
            series = {(s["symbol"], s["interval"]) for s in http.get("/api/v1/symbols").json()["series"]}
            assert series == {("BTC-USD", "1m"), ("ETH-USD", "1m")}
            history = http.get("/api/v1/candles/BTC-USD/1m").json()["candles"]
            assert len(history) >= 10  # the backfilled 10 minutes
            latest = http.get("/api/v1/latest/BTC-USD/1m")
            assert latest.status_code == 200, latest.text
            snapshot = latest.json()
            assert snapshot["symbol"] == "BTC-USD" and snapshot["window_start"] >= history[-2]["window_start"]
            assert http.get("/health").json()["cache"]["backend"] == "MemoryCache"
        ws_url = "ws" + url[len("http"):] + "/ws/candles?symbols=BTC-USD&interval=1m"
        updates = asyncio.run(_updates(ws_url, 5))
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert proc.returncode == 0, err.read_text()[-3000:]
    assert all((u["symbol"], u["interval"]) == ("BTC-USD", "1m") for u in updates)
    # live: the pushed updates are newer than the candle /latest answered before
    assert max(u["last_ts"] for u in updates) > snapshot["last_ts"]
    assert [u["last_ts"] for u in updates] == sorted(u["last_ts"] for u in updates)
    with Store(f"sqlite:///{db}") as store:
        stored = {c.window_start: orjson.loads(encode_candle(c)) for c in store.candles("BTC-USD", "1m")}
    # what the API answered is what the session stored (closed windows do not change)
    finals = [c for c in history if c["final"]]
    assert finals and all(stored[c["window_start"]] == c for c in finals)
    assert updates[-1]["window_start"] in stored


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cryptolab", "run", "--source", "synthetic", "--quiet", *args],
                          cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=120)


def test_a_bad_or_busy_api_port_is_one_line_exit_2_before_anything_starts(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        cases = [
            (["--api", "--api-port", str(port)], f"cannot listen on 127.0.0.1:{port}"),
            (["--api", "--api-port", "70000"], "the API port must be 0..65535"),
            (["--api-port", "8001"], "--api-port and --api-host need --api"),
        ]
        for args, message in cases:
            done = _run(tmp_path, *args)
            lines = done.stderr.strip().splitlines()
            assert done.returncode == 2, (args, done.stderr[-2000:])
            assert len(lines) == 1 and lines[0].startswith("cryptolab run: error:") and message in lines[0], lines
    assert not (tmp_path / "data").exists()  # no session was started
