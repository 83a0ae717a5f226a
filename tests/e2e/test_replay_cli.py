"""`cryptolab replay` reports this run's own figures, and an empty file replays nothing."""

from __future__ import annotations

import re

import pytest

from cryptolab.cli import main
from cryptolab.models import Candle
from cryptolab.store import Store

T0 = 1_700_000_040_000  # a whole minute (and a whole 5 and 15 minutes: 2023-11-14 22:15 UTC)


def _other_candles(url: str, n: int) -> None:
    """Candles of another run already in the store."""
    with Store(url) as s:
        s.init()
        s.commit_batch(group="earlier", topic="ticks", candles=[
            Candle(symbol="ETH-USD", interval=iv, window_start=T0 + i * 900_000,
                   window_end=T0 + (i + 1) * 900_000, open=1.0, high=1.0, low=1.0, close=1.0,
                   volume=1.0, vwap=1.0, trades=1, first_ts=T0, last_ts=T0, high_ts=T0, low_ts=T0,
                   final=True)
            for iv in ("1m", "5m", "15m") for i in range(n)])


def test_replay_prints_its_own_candles_not_the_stores(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 's.db'}"
    _other_candles(url, 40)
    trades = tmp_path / "trades.csv"  # 3 minutes of BTC-USD trades, inside one 5m and one 15m window
    trades.write_text("ts_ms,price,size\n" + "".join(
        f"{T0 + 60_000 + k * 20_000},{100 + k},1\n" for k in range(9)))
    assert main(["replay", str(trades), "--symbol", "BTC-USD", "--store", url, "--no-score"]) == 0
    out = capsys.readouterr().out
    assert "9 ticks produced" in out
    assert re.search(r"consumed 9 ticks in [0-9.]+s: 1m 3, 5m 1, 15m 1 candles, 0 alerts", out), out
    with Store(url) as s:
        assert len(s.candles()) == 3 * 40 + 5  # the store holds both runs


@pytest.mark.parametrize("content", ["", "ts,price,size\n"])
def test_an_empty_file_replays_nothing_creates_nothing_and_exits_1(content, tmp_path, capsys,
                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "empty.csv"
    empty.write_text(content)
    assert main(["replay", str(empty), "--symbol", "BTC-USD"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [f"cryptolab replay: nothing replayed: {empty} holds no ticks"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.csv"]  # no store, no data dir


def test_a_file_whose_every_row_is_rejected_replays_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("ts,price,size\n1700000000,-1,1\n1700000001,oops,1\n")
    url = f"sqlite:///{tmp_path / 's.db'}"
    args = ["replay", str(bad), "--symbol", "BTC-USD", "--store", url, "--errors", "skip"]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "0 ticks produced, 2 rejected" in captured.out
    assert captured.err.splitlines()[-1] == (
        f"cryptolab replay: nothing replayed: every record of {bad} was rejected")
