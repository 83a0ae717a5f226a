"""Real recorded trades through `cryptolab replay` (producer -> embedded Kafka -> consumer -> store)
give exactly the candles of the batch reference; real bar files give candles only at multiples of
their bar interval, and those are the bars."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from cryptolab.batch import candles_from_ticks, candles_to_frame, epoch_ms, ticks_to_frame
from cryptolab.cli import main
from cryptolab.sources.replay import Replay
from cryptolab.store import Store

FILES = [  # and the candle intervals each gives with the default 1m,5m,15m
    ("trades/bitstamp_btcusd_2011-09_2012-05.csv", "1m,5m,15m"),
    ("trades/mtgox_btcusd_2013-01-01.csv", "1m,5m,15m"),
    ("bars/binance_ethusd_5m_2023-03-13_2023-03-15.json", "5m,15m"),  # 5m bars: nothing finer
]


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    o = df["interval"].map({"1m": 1, "5m": 5, "15m": 15})
    return df.assign(_o=o).sort_values(["symbol", "_o", "window_start"]).drop(columns="_o").reset_index(drop=True)


@pytest.mark.parametrize(("name", "intervals"), FILES)
def test_replay_cli_equals_batch_reference(name, intervals, shared_data, tmp_path, capsys):
    path = shared_data / name
    db = tmp_path / "replay.db"
    code = main(["replay", str(path), "--store", f"sqlite:///{db}", "--no-score"])
    assert code == 0
    out = capsys.readouterr().out
    ticks = list(Replay(path).iter_ticks())
    assert f"{len(ticks):,} ticks produced" in out
    expected = candles_from_ticks(ticks_to_frame(ticks), intervals)
    with Store(f"sqlite:///{db}") as store:
        got = _sorted(candles_to_frame(store.candles()))
        assert store.late_tick_count() == 0
    assert len(got) > 0
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_replay_reports_bad_rows_with_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("ts,price,size\n1700000000,100,1\n1700000001,-3,1\n")
    code = main(["replay", str(bad), "--symbol", "BTC-USD", "--store", f"sqlite:///{tmp_path / 'x.db'}"])
    assert code == 2
    err = capsys.readouterr().err
    assert "bad.csv:3" in err and "price" in err


def _bars_as_frame(bars: list[dict], start_key: str, interval_ms: int) -> pd.DataFrame:
    """The file's own bars: window_start, open, high, low, close, volume (floats as in the file)."""
    suffix = "" if start_key == "start" else "Price"
    rows = []
    for b in bars:
        start = int(b["start"]) * 1000 if start_key == "start" else int(b["endTime"]) + 1 - interval_ms
        rows.append({"window_start": start, "volume": float(b["volume"]),
                     **{k: float(b[k + suffix]) for k in ("open", "high", "low", "close")}})
    return pd.DataFrame(rows)


def test_5m_bars_give_the_bars_back_at_5m_and_nothing_finer(shared_data, tmp_path, capsys):
    path = shared_data / "bars/binance_ethusd_5m_2023-03-13_2023-03-15.json"
    url = f"sqlite:///{tmp_path / 'bars.db'}"
    assert main(["replay", str(path), "--store", url]) == 0  # detectors on
    captured = capsys.readouterr()
    assert "5m bars: candles at 5m, 15m only" in captured.err
    bars = json.loads(path.read_text())["ohlc"]
    assert f"5m {len(bars):,}, 15m " in captured.out
    with Store(url) as store:
        got = candles_to_frame(store.candles())
        alerts = store.alert_list()
    assert set(got["interval"]) == {"5m", "15m"}
    assert {a.interval for a in alerts} <= {"5m", "15m"}
    five = got[got["interval"] == "5m"].sort_values("window_start").reset_index(drop=True)
    want = _bars_as_frame(bars, "endTime", 300_000)
    assert epoch_ms(five["window_start"]).tolist() == want["window_start"].tolist()
    for col in ("open", "high", "low", "close"):
        assert five[col].tolist() == want[col].tolist()
    assert five["volume"].to_numpy() == pytest.approx(want["volume"].to_numpy(), rel=1e-12)


def test_4h_bars_give_4h_candles_only(shared_data, tmp_path, capsys):
    bars = json.loads((shared_data / "bars/coinbase_btcusd_4h_2016-05-18_2025-10-28.json").read_text())
    part = tmp_path / "coinbase_btcusd_4h.json"  # the first 60 bars of the real file
    part.write_text(json.dumps({"candles": bars["candles"][:60]}))
    url = f"sqlite:///{tmp_path / 'bars.db'}"
    assert main(["replay", str(part), "--store", url]) == 0
    out = capsys.readouterr().out
    assert re.search(r"consumed 240 ticks in [0-9.]+s: 4h 60 candles,", out)
    with Store(url) as store:
        got = candles_to_frame(store.candles())
    assert set(got["interval"]) == {"4h"}
    want = _bars_as_frame(bars["candles"][:60], "start", 4 * 3_600_000)
    got = got.sort_values("window_start").reset_index(drop=True)
    assert epoch_ms(got["window_start"]).tolist() == want["window_start"].tolist()
    assert got["close"].tolist() == want["close"].tolist()
    assert got["high"].tolist() == want["high"].tolist()


def test_asking_for_candles_finer_than_the_bars_is_an_error(shared_data, tmp_path, capsys):
    path = shared_data / "bars/binance_ethusd_5m_2023-03-13_2023-03-15.json"
    db = tmp_path / "bars.db"
    assert main(["replay", str(path), "--store", f"sqlite:///{db}", "--intervals", "1m,5m"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "cryptolab replay: error: invalid 'intervals': 1m is not a multiple of the file's 5m bars"]
    assert not db.exists()
