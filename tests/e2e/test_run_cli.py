"""`cryptolab run`: the whole live job in one process, as a real subprocess, against a local
CoinGecko stand-in that misbehaves first; and bad input costs nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from fakes.coingecko import FakeCoinGecko

from cryptolab.candles.batch import candles_from_ticks
from cryptolab.store import Store

REPO = Path(__file__).resolve().parents[2]
SYMBOLS = {"bitcoin": "BTC-USD", "ethereum": "ETH-USD"}


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOLAB_")}
    env["CRYPTOLAB_DATA_DIR"] = str(tmp_path / "data")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _cryptolab(*args: str, tmp_path: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cryptolab", *args], cwd=tmp_path, env=_env(tmp_path),
                          capture_output=True, text=True, timeout=timeout)


def test_run_coingecko_stores_exactly_the_quotes_served_every_window_final(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    with FakeCoinGecko(retry_after_s=2) as fake:
        fake.script("429", "503-html", "malformed")  # then quotes
        done = _cryptolab("run", "--source", "coingecko", "--coins", "bitcoin,ethereum",
                          "--coingecko-url", fake.url, "--poll-interval", "1", "--duration", "15",
                          "--store", f"sqlite:///{db}", "--intervals", "1m", tmp_path=tmp_path)
        served = list(fake.served)
        answers = list(fake.requests)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "every open window closed and committed" in done.stderr
    # the stand-in misbehaved three times, then served quotes
    assert len(answers) >= 4 and len(served) >= 2 * 2
    expected = candles_from_ticks(pd.DataFrame({
        "symbol": [SYMBOLS[c] for c, _, _ in served], "ts_ms": [ts * 1000 for _, ts, _ in served],
        "price": [p for _, _, p in served], "size": [None] * len(served)}), intervals="1m")
    with Store(f"sqlite:///{db}") as store:
        stored = pd.concat([store.history(s, "1m") for s in SYMBOLS.values()], ignore_index=True)
    cols = ["symbol", "window_start", "open", "high", "low", "close", "trades", "first_ts", "last_ts"]
    key = ["symbol", "window_start"]
    got = stored[cols].sort_values(key).reset_index(drop=True)
    want = expected[cols].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    assert stored["final"].all(), stored[~stored["final"]]
    assert int(stored["trades"].sum()) == len(served)


def test_run_synthetic_backfills_then_stops_at_duration_with_every_window_final(tmp_path: Path) -> None:
    db = tmp_path / "syn.db"
    done = _cryptolab("run", "--source", "synthetic", "--symbols", "BTC-USD,ETH-USD", "--tps", "5",
                      "--backfill", "20m", "--duration", "3", "--store", f"sqlite:///{db}",
                      "--intervals", "1m,5m", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    with Store(f"sqlite:///{db}") as store:
        for interval, at_least in (("1m", 19), ("5m", 4)):
            frame = store.history("BTC-USD", interval)
            assert len(frame) >= at_least and frame["final"].all(), (interval, frame)


def _sigterm_when(tmp_path: Path, args: list[str], shown: str) -> tuple[int, str]:
    """Start ``cryptolab run ARGS``, send SIGTERM once its stderr shows ``shown``; its exit code
    and stderr (read in a thread: the progress bar ends its lines with carriage returns)."""
    proc = subprocess.Popen([sys.executable, "-m", "cryptolab", "run", *args], cwd=tmp_path, env=_env(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    chunks: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        while chunk := proc.stderr.read(1):
            chunks.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 180
        while shown not in "".join(chunks):
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"{shown!r} never shown: " + "".join(chunks)[-3000:])
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        reader.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, "".join(chunks)


def test_sigterm_while_backfilling_stops_the_start_and_exits_0(tmp_path: Path) -> None:
    db = tmp_path / "early.db"
    # "backfilling" is printed once the signal handlers are in place
    code, err = _sigterm_when(tmp_path, ["--source", "synthetic", "--symbols", "3", "--backfill", "24h",
                                         "--store", f"sqlite:///{db}", "--intervals", "1m"], "backfilling")
    assert code == 0, err[-3000:]
    assert "stopped while starting" in err or "stopped after" in err, err[-3000:]
    if db.exists():  # whatever was stored is final and whole
        with Store(f"sqlite:///{db}") as store:
            assert store.history("BTC-USD", "1m")["final"].all()


def test_sigterm_stops_drains_and_exits_0(tmp_path: Path) -> None:
    db = tmp_path / "sig.db"
    # "run synthetic" starts the progress line: the session is live
    code, err = _sigterm_when(tmp_path, ["--source", "synthetic", "--symbols", "1", "--backfill", "10m",
                                         "--store", f"sqlite:///{db}", "--intervals", "1m"], "run synthetic")
    assert code == 0, err[-3000:]
    assert "stopped after" in err
    with Store(f"sqlite:///{db}") as store:
        frame = store.history("BTC-USD", "1m")
        assert len(frame) >= 10 and frame["final"].all()


@pytest.mark.parametrize(("args", "message"), [
    (["--source", "nowhere-exchange"], "unknown source 'nowhere-exchange'"),
    (["--source", "synthetic", "--backfill", "soon"], "'soon' is not a duration"),
    (["--source", "synthetic", "--intervals", "7m"], "7m"),
    (["--source", "replay"], "--source replay needs --path FILE"),
    (["--source", "synthetic", "--duration", "0"], "--duration must be > 0"),
])
def test_bad_input_is_one_line_exit_2_and_creates_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    done = _cryptolab("run", *args, "--quiet", tmp_path=tmp_path, timeout=120)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cryptolab run: error:") and message in lines[0], lines
    assert not (tmp_path / "data").exists()
