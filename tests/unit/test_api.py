"""The HTTP API in process (SQLite, in-process cache): the CLI's one-line refusals, and the
WebSocket fan-out over the in-process cache's pub/sub."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

from cryptolab.cache import MemoryCache
from cryptolab.cli import main
from cryptolab.models import Candle, encode_candle
from cryptolab.store import Store

pytest.importorskip("fastapi", reason="the API needs the api extra")


@pytest.mark.parametrize("blocked", ["fastapi", "uvicorn"])
def test_serve_without_the_api_extra_says_which_to_install(
        blocked: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, blocked, None)
    for name in [m for m in sys.modules if m.startswith("cryptolab.api")]:
        monkeypatch.delitem(sys.modules, name)
    assert main(["serve", "--store", "sqlite:///x.db"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "cryptolab serve needs the \"api\" extra: pip install 'cryptolab[api]'\n"
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize(("argv", "says"), [
    (["--port", "70000"], "--port must be 0..65535"),
    (["--token", ""], "bearer token must be non-empty"),
    (["--token", "two words"], "without spaces"),
    (["--token", "a", "--token-file", "t"], "not both"),
    (["--token-file", "missing"], "cannot read --token-file missing"),
    (["--rate-limit", "-1"], "--rate-limit must be >= 0"),
    (["--ws-queue", "0"], "--ws-queue >= 1"),
    (["--store", "mysql://nope"], "cryptolab serve: error:"),
])
def test_bad_serve_flags_are_one_line_and_exit_2(
        argv: list[str], says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["serve", *argv]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1
    assert err.startswith("cryptolab serve: error:")


def test_websocket_clients_follow_the_in_process_cache(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from cryptolab.api import create_app

    cache = MemoryCache("test-api-ws")
    c = Candle(symbol="COINBASE:ETH-USD", interval="1m", window_start=1_700_000_040_000,
               window_end=1_700_000_100_000, open=1.0, high=2.0, low=0.5, close=1.5, volume=3.0,
               vwap=1.2, trades=3, first_ts=1_700_000_041_000, last_ts=1_700_000_099_000,
               high_ts=1_700_000_050_000, low_ts=1_700_000_060_000, final=True)
    other = Candle(**{**c.to_dict(), "symbol": "BTC-USD"})
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # starlette's testclient on httpx
        with TestClient(create_app(store=store, cache=cache)) as http:
            with http.websocket_connect("/ws/candles?symbols=COINBASE%3AETH-USD&interval=60s") as a, \
                    http.websocket_connect("/ws/candles?symbols=COINBASE:ETH-USD,BTC-USD") as b:
                health = http.get("/health").json()
                assert health["stream"] == {"subscribed": True, "clients": 2, "dropped_slow": 0}
                cache.publish([other, c])
                assert a.receive_text() == encode_candle(c).decode()
                assert [b.receive_text(), b.receive_text()] == [
                    encode_candle(other).decode(), encode_candle(c).decode()]
            assert http.get("/api/v1/latest/COINBASE:ETH-USD/1m").json()["close"] == 1.5
    cache.clear()
    store.close()
