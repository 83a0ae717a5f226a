"""The main job on embedded defaults: `cryptolab demo`."""

from __future__ import annotations

import pandas as pd

from cryptolab.batch import candles_from_ticks, candles_to_frame
from cryptolab.cli import main
from cryptolab.config import Settings
from cryptolab.demo import run_demo
from cryptolab.models import parse_interval
from cryptolab.sources.synthetic import Injection, SyntheticMarket
from cryptolab.store import Store


def test_run_demo_builds_reference_candles_and_alerts_on_the_injected_spike(tmp_path):
    settings = Settings.from_env({}, data_dir=str(tmp_path))
    result = run_demo(settings=settings, symbols=5, hours=0.5, seed=3, report=False)
    assert result.dead_letters == 3  # the three malformed records, sent to the DLQ
    (spike,) = result.injected
    # the demo's market, spike included, rebuilt from what the demo says it injected
    market = SyntheticMarket(symbols=5, seed=3, start_ms=1_700_000_040_000, duration_ms=1_800_000,
                             ticks_per_second=25.0,
                             injections=[Injection(symbol=spike["symbol"], at_ms=spike["start_ms"],
                                                   kind=spike["kind"], magnitude=spike["magnitude"],
                                                   duration_ms=spike["end_ms"] - spike["start_ms"])])
    assert market.labels == result.injected
    frame = market.to_frame()
    assert result.ticks == len(frame)
    with Store(result.store_url) as store:
        got = candles_to_frame(store.candles())
        alerts = store.alert_list()
    ref = candles_from_ticks(frame, "1m,5m,15m")
    assert result.candles == ref.groupby("interval", sort=False).size().to_dict()
    # the stored candles are the batch reference, row for row and bit for bit
    order = got["interval"].map(parse_interval)
    got = (got.assign(_o=order).sort_values(["symbol", "_o", "window_start"]).drop(columns="_o")
           .reset_index(drop=True))
    pd.testing.assert_frame_equal(got, ref, check_exact=True)
    hit = [a for a in alerts if a.symbol == spike["symbol"] and a.interval == "1m"
           and a.window_start == spike["start_ms"]]
    assert hit, f"no 1m alert on the injected spike at {spike['start_ms']}: {alerts}"
    assert result.outputs["candles csv"].read_text().splitlines()[0] == (
        "symbol,interval,window_start,window_end,open,high,low,close,volume,vwap,trades,revision,final")
    assert pd.notna(got["close"]).all()


def test_demo_cli_prints_summary(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--hours", "0.25", "--symbols", "5", "--no-report", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    for word in ("ticks", "candles", "1m:", "alerts", "throughput", "store", "candles csv"):
        assert word in out
