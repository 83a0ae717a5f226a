"""Real recorded trades through `cryptolab replay` (producer -> embedded Kafka -> consumer -> store)
give exactly the candles of the batch reference."""

from __future__ import annotations

import pandas as pd
import pytest

from cryptolab.batch import candles_from_ticks, candles_to_frame, ticks_to_frame
from cryptolab.cli import main
from cryptolab.sources.replay import Replay
from cryptolab.store import Store

FILES = [
    "trades/bitstamp_btcusd_2011-09_2012-05.csv",
    "trades/mtgox_btcusd_2013-01-01.csv",
    "bars/binance_ethusd_5m_2023-03-13_2023-03-15.json",
]


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    o = df["interval"].map({"1m": 1, "5m": 5, "15m": 15})
    return df.assign(_o=o).sort_values(["symbol", "_o", "window_start"]).drop(columns="_o").reset_index(drop=True)


@pytest.mark.parametrize("name", FILES)
def test_replay_cli_equals_batch_reference(name, shared_data, tmp_path, capsys):
    path = shared_data / name
    db = tmp_path / "replay.db"
    code = main(["replay", str(path), "--store", f"sqlite:///{db}", "--no-score"])
    assert code == 0
    out = capsys.readouterr().out
    ticks = list(Replay(path).iter_ticks())
    assert f"{len(ticks):,} ticks produced" in out
    expected = candles_from_ticks(ticks_to_frame(ticks), "1m,5m,15m")
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
