"""``cryptolab db init|info`` and ``cryptolab export`` on an embedded SQLite store."""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cryptolab.cli import EXIT_BROKEN_PIPE, main
from cryptolab.models import Alert, Candle
from cryptolab.store import ALERT_CSV_COLUMNS, CANDLE_CSV_COLUMNS, PartitionProgress, Store

T0 = 1_700_000_040_000


def _fill(url: str) -> None:
    with Store(url) as s:
        s.init()
        s.commit_batch(
            group="cryptolab-candles", topic="ticks",
            candles=[
                Candle(symbol=sym, interval="1m", window_start=T0 + i * 60_000,
                       window_end=T0 + (i + 1) * 60_000, open=1.0, high=2.0, low=0.5, close=1.5,
                       volume=1.0, vwap=1.25, trades=2, first_ts=T0, last_ts=T0, high_ts=T0,
                       low_ts=T0, final=True)
                for sym in ("BTC-USD", "ETH-USD") for i in range(3)
            ],
            alerts=[Alert(symbol="ETH-USD", interval="1m", window_start=T0, detector="rule",
                          severity="HIGH", score=5.0, ts_ms=T0 + 60_000)],
            progress={0: PartitionProgress(partition=0, offset=17, watermark_ms=T0, state=b"")},
            expected_offsets={0: None},
        )


def test_db_init_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'c.db'}"
    assert main(["db", "init", "--store", url]) == 0
    assert main(["db", "init", "--store", url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and all("schema v2" in line for line in out)
    with Store(url) as s:
        assert s.schema_version() == 2


def test_db_init_uses_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRYPTOLAB_DATA_DIR", str(tmp_path / "data"))
    assert main(["db", "init"]) == 0
    assert (tmp_path / "data" / "cryptolab.db").is_file()


def test_db_info_text_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    _fill(url)
    assert main(["db", "info", "--store", url]) == 0
    text = capsys.readouterr().out
    assert "schema      v2" in text
    assert "candles 6  alerts 1  late ticks 0" in text
    assert "ETH-USD" in text and "2023-11-14T22:14:00Z .. 2023-11-14T22:16:00Z" in text
    assert "partition 0: next offset 17" in text
    assert main(["db", "info", "--store", url, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["candles"] == 6 and info["progress"][0]["offset"] == 17
    assert [s["symbol"] for s in info["series"]] == ["BTC-USD", "ETH-USD"]


def test_db_info_without_a_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "missing.db"
    assert main(["db", "info", "--store", f"sqlite:///{path}"]) == 1
    err = capsys.readouterr().err
    assert f"no database at {path}" in err
    assert "`cryptolab demo`" in err and "`cryptolab db init` creates an empty one" in err
    assert not path.exists()


def test_export_in_an_empty_directory_creates_nothing_and_says_how_to_get_data(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["export", "candles", "--out", "-"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "cryptolab export: error: no data: no database at .cryptolab/cryptolab.db (`cryptolab demo` "
        "or `cryptolab replay FILE` writes one there; or pass --store URL)"]
    assert list(tmp_path.iterdir()) == []


def test_export_from_a_database_without_tables_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()  # an existing, empty SQLite file
    out = tmp_path / "c.csv"
    assert main(["export", "alerts", "--store", f"sqlite:///{empty}", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "has no cryptolab tables" in err and "cryptolab demo" in err
    assert not out.exists()


@pytest.mark.parametrize("args", [["db", "info"], ["db", "info", "--json"], ["db", "init"],
                                  ["export", "candles", "--out", "-"]])
def test_a_malformed_store_url_is_one_line_and_exit_2(
        args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([*args, "--store", "notaurl"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"cryptolab {args[0]}: error: invalid store URL 'notaurl': "
        "Could not parse SQLAlchemy URL from given URL string"]
    assert list(tmp_path.iterdir()) == []


def test_export_into_a_pipe_closed_early_ends_quietly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    with Store(url) as s:
        s.init()
        s.commit_batch(group="g", topic="t", candles=[
            Candle(symbol="BTC-USD", interval="1m", window_start=T0 + i * 60_000,
                   window_end=T0 + (i + 1) * 60_000, open=1.0, high=2.0, low=0.5, close=1.5,
                   volume=1.0, vwap=1.25, trades=2, first_ts=T0, last_ts=T0, high_ts=T0, low_ts=T0,
                   final=True)
            for i in range(5000)])  # ~0.5 MB of CSV: far more than a pipe holds
    proc = subprocess.Popen([sys.executable, "-m", "cryptolab", "export", "candles", "--store", url,
                             "--out", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().decode().startswith("symbol,interval,window_start")
    proc.stdout.close()  # as `| head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == EXIT_BROKEN_PIPE == 141
    assert err == ""


def test_export_candles_and_alerts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    _fill(url)
    out = tmp_path / "out" / "eth.csv"
    code = main(["export", "candles", "--store", url, "--symbol", "ETH-USD", "--interval", "1m",
                 "--start", "2023-11-14T22:15:00Z", "--end", "2023-11-14T22:16:00Z",
                 "--out", str(out)])
    assert code == 0
    assert "wrote 1 candles" in capsys.readouterr().err
    with out.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == list(CANDLE_CSV_COLUMNS)
    assert rows[1][:4] == ["ETH-USD", "1m", "2023-11-14T22:15:00Z", "2023-11-14T22:16:00Z"]
    assert len(rows) == 2

    assert main(["export", "alerts", "--store", url, "--out", "-"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines == [",".join(ALERT_CSV_COLUMNS), "ETH-USD,1m,2023-11-14T22:14:00Z,rule,HIGH,5.0"]
    assert "wrote 1 alerts to standard output" in captured.err


def test_export_rejects_a_bad_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    _fill(url)
    out = tmp_path / "x.csv"
    assert main(["export", "candles", "--store", url, "--start", "last tuesday", "--out", str(out)]) == 2
    assert "invalid 'start'" in capsys.readouterr().err
    assert not out.exists()
