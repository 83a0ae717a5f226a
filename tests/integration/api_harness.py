"""A real ``cryptolab serve`` process for the API tests, and what they check it with."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from cryptolab.models import Alert, Candle

REPO_ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


@dataclass
class Server:
    """A running ``cryptolab serve`` subprocess."""

    proc: subprocess.Popen[bytes]
    url: str
    err: Path

    @property
    def ws(self) -> str:
        return "ws" + self.url[len("http"):]

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kwargs)

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")


@contextlib.contextmanager
def serve(tmp_path: Path, *args: str, timeout: float = 90.0) -> Iterator[Server]:
    """Start ``cryptolab serve --port 0 ARGS`` and yield it once it listens; stop it after."""
    run = tmp_path / f"serve-{uuid.uuid4().hex[:6]}"
    run.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOLAB_")}
    env.update(PYTHONPATH=str(REPO_ROOT), CRYPTOLAB_DATA_DIR=str(run / "data"))
    out, err = run / "stdout", run / "stderr"
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen([sys.executable, "-m", "cryptolab", "serve", "--port", "0", *args],
                                cwd=run, stdout=o, stderr=e, env=env)
    try:
        url = wait_until(lambda: _listening(out, proc, err), timeout, "cryptolab serve to listen")
        yield Server(proc, url, err)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(30)


def _listening(out: Path, proc: subprocess.Popen[bytes], err: Path) -> str | None:
    for line in out.read_text(errors="replace").splitlines():
        if line.startswith("cryptolab serve: http://"):
            return line.split()[2]
    if proc.poll() is not None:
        raise AssertionError(f"cryptolab serve exited {proc.returncode}: {err.read_text()}")
    return None


def wait_until(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``probe`` until it returns something other than None/False (generous deadlines)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def health(server: Server) -> dict[str, Any]:
    body: dict[str, Any] = server.get("/health").json()
    return body


def redis_subscribers_of(pid: int, redis_url: str) -> list[dict[str, Any]]:
    """The Redis connections of process ``pid`` that hold a (pattern) subscription (CLIENT LIST)."""
    import psutil
    import redis

    port = urlsplit(redis_url).port or 6379
    mine = {c.laddr.port for c in psutil.Process(pid).net_connections(kind="tcp")
            if c.raddr and c.raddr.port == port}
    client = redis.Redis.from_url(redis_url)
    try:
        listed = client.client_list()
    finally:
        client.close()
    return [c for c in listed if int(str(c["addr"]).rsplit(":", 1)[1]) in mine
            and int(c.get("sub", 0)) + int(c.get("psub", 0)) > 0]


def unique_symbol(prefix: str = "T") -> str:
    """A symbol no other test (or worker sharing the Redis server) publishes."""
    return f"{prefix}{uuid.uuid4().hex[:8].upper()}-USD"


T0 = 1_700_000_040_000


def candle(symbol: str, i: int, *, interval: str = "1m", final: bool = True, revision: int = 0,
           price: float = 100.0) -> Candle:
    """The ``i``-th candle of a series (1m windows from :data:`T0`)."""
    step = 60_000 if interval == "1m" else 300_000
    ws = T0 + i * step
    return Candle(symbol=symbol, interval=interval, window_start=ws, window_end=ws + step,
                  open=price + i, high=price + i + 1.5, low=price + i - 0.5, close=price + i + 0.25,
                  volume=1.0 + i / 8, vwap=None if i % 3 == 0 else price + i + 0.125, trades=3 + i,
                  first_ts=ws + 1, last_ts=ws + 59_000, high_ts=ws + 10, low_ts=ws + 20,
                  revision=revision, final=final)


def alert(symbol: str, i: int, detector: str = "rule") -> Alert:
    ws = T0 + i * 60_000
    return Alert(symbol=symbol, interval="1m", window_start=ws, detector=detector, severity="HIGH",
                 score=0.5 + i, ts_ms=ws + 60_000, features={"ret": 0.01 * i})
