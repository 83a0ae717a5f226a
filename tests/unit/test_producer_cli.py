"""``cryptolab produce`` without services: JSON lines output, the embedded cluster, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes.coingecko import FakeCoinGecko

from cryptolab.cli import main
from cryptolab.models import decode_tick, encode_tick
from cryptolab.sources.synthetic import SyntheticMarket

REPO = Path(__file__).resolve().parents[2]


def produce(*args: str) -> int:
    return main(["produce", *args])


def test_synthetic_to_jsonl_is_the_seeded_market(tmp_path, capsys):
    out = tmp_path / "ticks.jsonl"
    code = produce("--source", "synthetic", "--seed", "4", "--symbols", "3", "--span", "5m",
                   "--to", f"jsonl:{out}", "--quiet", "--labels", "--random-injections", "0")
    assert code == 0
    market = SyntheticMarket(symbols=3, seed=4, duration_ms=300_000)
    assert out.read_bytes().splitlines() == [encode_tick(t) for t in market.iter_ticks()]
    assert json.loads((tmp_path / "ticks.labels.json").read_text()) == []
    err = capsys.readouterr().err
    assert f"produced {len(market.to_frame()):,}" in err and "labels:" in err


def test_ticks_limit_and_symbol_list(tmp_path):
    out = tmp_path / "t.jsonl"
    assert produce("--source", "synthetic", "--symbols", "ETH-USD,DOGE-USD", "--ticks", "777",
                   "--to", f"jsonl:{out}", "--quiet") == 0
    ticks = [decode_tick(line) for line in out.read_bytes().splitlines()]
    assert len(ticks) == 777 and {t.symbol for t in ticks} == {"ETH-USD", "DOGE-USD"}


def test_labels_with_random_injections_to_a_given_path(tmp_path):
    labels = tmp_path / "truth.json"
    assert produce("--source", "synthetic", "--span", "1h", "--random-injections", "4", "--labels", str(labels),
                   "--to", f"jsonl:{tmp_path / 'x.jsonl'}", "--quiet") == 0
    got = json.loads(labels.read_text())
    assert got == SyntheticMarket(duration_ms=3_600_000, random_injections=4).labels and len(got) == 4


def test_embedded_kafka_is_announced_as_a_smoke_test(capsys):
    assert produce("--source", "synthetic", "--ticks", "2000", "--topic", "cli-smoke", "--quiet") == 0
    err = capsys.readouterr().err
    assert "embedded in-process mock cluster" in err and "smoke test" in err
    assert "produced 2,000  delivered 2,000  failed 0" in err


def test_replay_bad_rows_go_to_the_dead_letter_file(tmp_path, capsys):
    src = tmp_path / "in.csv"
    src.write_text("ts,price,size\n1700000000,100,1\n1700000001,abc,1\n1700000002,101,1\n")
    out = tmp_path / "out.jsonl"
    assert produce("--source", "replay", "--path", str(src), "--symbol", "BTC-USD", "--errors", "skip",
                   "--to", f"jsonl:{out}", "--quiet") == 0
    assert [decode_tick(x).price for x in out.read_bytes().splitlines()] == [100.0, 101.0]
    dead = [json.loads(x) for x in (tmp_path / "out.jsonl.dlq.jsonl").read_text().splitlines()]
    assert dead == [{"reason": "not a number: 'abc'", "field": "price", "stage": "produce",
                     "raw": "1700000001,abc,1", "source": "replay", "where": f"{src}:3"}]
    assert "rejected by field: price 1" in capsys.readouterr().err


def test_replay_bad_row_raise_mode_exits_with_the_line(tmp_path, capsys):
    src = tmp_path / "in.csv"
    src.write_text("ts,price,size\n1700000000,100,1\n1700000001,abc,1\n")
    code = produce("--source", "replay", "--path", str(src), "--symbol", "BTC-USD",
                   "--to", f"jsonl:{tmp_path / 'o.jsonl'}", "--quiet")
    assert code == 2
    assert f"{src}:3" in capsys.readouterr().err
    assert (tmp_path / "o.jsonl").read_bytes().count(b"\n") == 1  # what came before was flushed


def test_coingecko_through_the_cli(tmp_path):
    with FakeCoinGecko() as fake:
        out = tmp_path / "cg.jsonl"
        assert produce("--source", "coingecko", "--coins", "bitcoin,solana=SOL-USDT", "--coingecko-url", fake.url,
                       "--poll-interval", "0.2", "--ticks", "4", "--to", f"jsonl:{out}", "--quiet") == 0
    ticks = [decode_tick(x) for x in out.read_bytes().splitlines()]
    assert [t.symbol for t in ticks] == ["BTC-USD", "SOL-USDT"] * 2
    assert ticks[2].ts_ms - ticks[0].ts_ms == fake.step_s * 1000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "replay"], "--path"),
        (["--source", "synthetic", "--to", "parquet:x"], "--to must be"),
        (["--source", "coingecko", "--labels"], "--labels is only"),
        (["--source", "synthetic", "--ticks", "0"], "--ticks must be > 0"),
    ],
)
def test_usage_errors(args, message, capsys):
    assert produce(*args, "--quiet") == 2
    assert message in capsys.readouterr().err


def test_sigint_flushes_and_exits_cleanly(tmp_path):
    out = tmp_path / "t.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOLAB_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cryptolab", "produce", "--source", "synthetic", "--span", "0", "--rate", "3000",
         "--to", f"jsonl:{out}", "--quiet"], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.stat().st_size < 50_000):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines = out.read_bytes().splitlines()
    assert len(lines) > 100 and f"produced {len(lines):,}" in err
    assert all(decode_tick(x) for x in lines)  # every line complete and valid
    assert "stopped by signal" in err
