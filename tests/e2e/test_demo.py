"""The main job on embedded defaults: `cryptolab demo`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter

import pandas as pd

from cryptolab.batch import candles_from_ticks, candles_to_frame
from cryptolab.cli import main
from cryptolab.config import Settings
from cryptolab.demo import SHOWN_ALERTS, most_severe_first, run_demo
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
    # the summary's examples are the most severe of this run's alerts, and it counts them all
    assert result.alerts == len(alerts) > SHOWN_ALERTS
    assert result.alert_examples == most_severe_first(alerts)[:SHOWN_ALERTS]
    assert result.alert_severities == dict(Counter(a.severity for a in alerts))
    assert f"and {len(alerts) - SHOWN_ALERTS} more" in result.summary()
    assert result.outputs["candles csv"].read_text().splitlines()[0] == (
        "symbol,interval,window_start,window_end,open,high,low,close,volume,vwap,trades,revision,final")
    assert pd.notna(got["close"]).all()


def test_demo_cli_prints_summary(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--hours", "0.25", "--symbols", "5", "--no-report", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    for word in ("ticks", "candles", "1m:", "alerts", "throughput", "store", "candles csv"):
        assert word in out
    # every alert is listed or counted in "and N more"
    total = int(re.search(r"^alerts +(\d+)", out, re.M).group(1))
    listed = len(re.findall(r"^ +(?:HIGH|MEDIUM|LOW) ", out, re.M))
    more = re.search(r"^ +and (\d+) more .*`cryptolab export alerts --out -`$", out, re.M)
    assert listed == min(total, SHOWN_ALERTS)
    assert listed + (int(more.group(1)) if more else 0) == total


def _demo(*flags: str) -> None:
    assert main(["demo", "--hours", "0.25", "--no-report", *flags]) == 0


def test_after_the_demo_every_command_reads_its_candles_with_no_flags(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # one empty directory, no CRYPTOLAB_* variables
    _demo()
    summary = capsys.readouterr().out
    assert "store            sqlite:///.cryptolab/cryptolab.db" in summary

    assert main(["db", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    series = {(s["symbol"], s["interval"]): s["candles"] for s in info["series"]}
    demo_1m = int(re.search(r"1m: (\d+)", summary).group(1))
    assert sum(n for (_, i), n in series.items() if i == "1m") == demo_1m > 0
    assert info["candles"] == sum(int(n) for n in re.findall(r"\dm: (\d+)", summary))

    assert main(["export", "candles", "--out", "-"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("symbol,interval,window_start") and len(lines) == info["candles"] + 1
    assert lines[1].split(",")[0] in {s for s, _ in series}

    # the Python API, in a fresh interpreter in the same directory, with no arguments
    code = "import cryptolab; print(len(cryptolab.history('BTC-USD', '1m')))"
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(got.stdout) == series[("BTC-USD", "1m")] > 0


def test_the_demo_gives_the_same_store_run_after_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    export = tmp_path / "all.csv"

    def store_contents() -> tuple[str, str]:
        assert main(["export", "candles", "--out", str(export)]) == 0
        candles = export.read_text()
        assert main(["export", "alerts", "--out", str(export)]) == 0
        return candles, export.read_text()

    _demo()
    first_summary = capsys.readouterr().out
    first = store_contents()
    _demo("--hours", "0.5", "--seed", "3", "--symbols", "6")  # longer, other prices, one more symbol
    second = store_contents()
    _demo()
    capsys.readouterr()
    again = store_contents()
    assert second != first
    assert again == first
    assert main(["db", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert len({p["group"] for p in info["progress"]}) == 1  # the consumer progress of the last run only
    assert len(first[1].splitlines()) - 1 == int(re.search(r"alerts +(\d+)", first_summary).group(1))


def test_the_demo_refuses_a_store_holding_candles_it_did_not_write(tmp_path, capsys, monkeypatch):
    """Real BTC-USD candles in the demo's span (a replay, a backfill) are never replaced by
    synthetic ones: the demo says so in one line and leaves the store as it was."""
    from cryptolab.models import Candle

    monkeypatch.chdir(tmp_path)
    store = Store.from_settings(Settings.from_env({}))
    store.init()
    t = 1_700_000_040_000 // 60_000 * 60_000 + 30 * 60_000  # inside the demo's 2 hours
    real = [Candle(symbol="BTC-USD", interval="1m", window_start=t, window_end=t + 60_000, open=37_000.0,
                   high=37_010.0, low=36_990.0, close=37_005.0, volume=1.5, vwap=37_001.0, trades=3,
                   first_ts=t, last_ts=t + 59_000, high_ts=t + 1, low_ts=t + 2, final=True)]
    store.commit_batch(group="replay", topic="ticks", candles=real)
    before = store.history("BTC-USD", "1m")
    assert main(["demo", "--no-report"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    said = err.strip().splitlines()[-1]  # after the demo's banner line
    assert "holds 1 BTC-USD 1m candles" in said and "no demo run wrote" in said, err
    pd.testing.assert_frame_equal(store.history("BTC-USD", "1m"), before)
    assert len(store.history("ETH-USD", "1m")) == 0  # and it wrote nothing
