"""Replay of recorded files: every format, real data, bad rows, pacing."""

from __future__ import annotations

import csv
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cryptolab.batch import candles_from_ticks, with_ms_windows
from cryptolab.errors import ValidationError
from cryptolab.models import Tick
from cryptolab.producer import JsonlSink
from cryptolab.sources import Rejected
from cryptolab.sources.replay import Replay, bar_to_ticks, detect_format, parse_ts
from cryptolab.sources.synthetic import SyntheticMarket


def frame(ticks) -> pd.DataFrame:
    return pd.DataFrame([{"symbol": t.symbol, "ts_ms": t.ts_ms, "price": t.price, "size": t.size}
                         for t in ticks])


# --------------------------------------------------------------------------- real files


def test_bitstamp_headerless_seconds(shared_data):
    path = shared_data / "trades" / "bitstamp_btcusd_2011-09_2012-05.csv"
    r = Replay(path)
    ticks = list(r.iter_ticks())
    rows = list(csv.reader(path.open()))
    assert r.format == "csv" and len(ticks) == len(rows) == 9999
    assert ticks[0] == Tick(symbol="BTC-USD", ts_ms=int(rows[0][0]) * 1000, price=float(rows[0][1]),
                            size=float(rows[0][2]), source="replay")
    assert [t.price for t in ticks] == [float(r[1]) for r in rows]


def test_mtgox_id_is_epoch_microseconds(shared_data):
    path = shared_data / "trades" / "mtgox_btcusd_2013-01-01.csv"
    ticks = list(Replay(path, symbol="BTC-USD").iter_ticks())
    rows = list(csv.DictReader(path.open()))
    assert len(ticks) == len(rows)
    assert [t.ts_ms for t in ticks] == [int(r["id"]) // 1000 for r in rows]
    assert all(1_356_998_400_000 <= t.ts_ms < 1_357_084_800_000 + 3_600_000 for t in ticks)  # that day
    assert [t.size for t in ticks] == [float(r["amount"]) for r in rows]
    assert ticks[0].trade_id == rows[0]["id"]


@pytest.mark.parametrize("name", ["binance_ethusd_5m_2023-03-13_2023-03-15.json",
                                  "coinbase_ethusd_4h_2016-05-18_2025-10-28.json"])
def test_bars_reaggregate_to_the_same_bars(shared_data, name):
    path = shared_data / "bars" / name
    r = Replay(path)
    ticks = list(r.iter_ticks())
    data = json.loads(path.read_text())
    if "ohlc" in data:
        bars = [{"start": b["endTime"] + 1 - 300_000, "o": b["openPrice"], "h": b["highPrice"],
                 "l": b["lowPrice"], "c": b["closePrice"], "v": b["volume"]} for b in data["ohlc"]]
        interval = "5m"
    else:
        bars = [{"start": int(b["start"]) * 1000, "o": float(b["open"]), "h": float(b["high"]),
                 "l": float(b["low"]), "c": float(b["close"]), "v": float(b["volume"])}
                for b in data["candles"]]
        interval = "4h"
    assert len(ticks) == 4 * len(bars)
    assert {t.symbol for t in ticks} == {"ETH-USD"}
    candles = with_ms_windows(candles_from_ticks(frame(ticks), intervals=interval))  # bars: epoch ms
    assert len(candles) == len(bars)
    for c, b in zip(candles.itertuples(), bars, strict=True):
        assert (c.window_start, c.open, c.high, c.low, c.close) == (b["start"], b["o"], b["h"], b["l"], b["c"])
        assert c.volume == pytest.approx(b["v"], rel=1e-12, abs=1e-12)


# --------------------------------------------------------------------------- formats


def test_csv_with_header_symbol_iso_and_trade_id(tmp_path):
    p = tmp_path / "trades.csv"
    p.write_text("timestamp,symbol,price,qty,side,trade_id\n"
                 "2024-01-01T00:00:00.250Z,btc-usd,42000.5,0.1,buy,17\n"
                 "2024-01-01T00:00:01+00:00,ETH-USD,2300,2,sell,18\n")
    ticks = list(Replay(p).iter_ticks())
    assert ticks == [
        Tick(symbol="BTC-USD", ts_ms=1_704_067_200_250, price=42000.5, size=0.1, source="replay", trade_id="17"),
        Tick(symbol="ETH-USD", ts_ms=1_704_067_201_000, price=2300.0, size=2.0, source="replay", trade_id="18"),
    ]


@pytest.mark.parametrize(("unit", "scale"), [("s", 1), ("ms", 1_000), ("us", 1_000_000), ("ns", 1_000_000_000)])
def test_ts_units_detected_and_given(tmp_path, unit, scale):
    p = tmp_path / "t.csv"
    p.write_text(f"ts,price,amount\n{1_700_000_000 * scale},1.5,1\n{1_700_000_001 * scale},1.6,2\n")
    detected = [t.ts_ms for t in Replay(p, symbol="X").iter_ticks()]
    given = [t.ts_ms for t in Replay(p, symbol="X", ts_unit=unit).iter_ticks()]
    assert detected == given == [1_700_000_000_000, 1_700_000_001_000]


def test_ts_column_option(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("when,price,size\n1700000000000,1.5,1\n")
    with pytest.raises(ValidationError, match="ts_column"):
        list(Replay(p, symbol="X").iter_ticks())
    assert [t.ts_ms for t in Replay(p, symbol="X", ts_column="when").iter_ticks()] == [1_700_000_000_000]


def test_klines_json_and_csv(tmp_path):
    k = [[1_678_730_400_000, "10.0", "12.0", "9.0", "11.0", "8.0", 1_678_730_699_999, "80", 3, "4", "40", "0"],
         [1_678_730_700_000, "11.0", "11.5", "10.0", "10.5", "4.0", 1_678_730_999_999, "40", 2, "2", "20", "0"]]
    pj = tmp_path / "k.json"
    pj.write_text(json.dumps(k))
    pc = tmp_path / "k.csv"
    pc.write_text("\n".join(",".join(str(v) for v in row) for row in k) + "\n")
    assert detect_format(pj) == detect_format(pc) == "klines"
    a = list(Replay(pj, symbol="ETH-USDT").iter_ticks())
    b = list(Replay(pc, symbol="ETH-USDT").iter_ticks())
    assert a == b and len(a) == 8
    c = candles_from_ticks(frame(a), intervals="5m")
    assert c[["open", "high", "low", "close", "volume"]].values.tolist() == [
        [10.0, 12.0, 9.0, 11.0, 8.0], [11.0, 11.5, 10.0, 10.5, 4.0]]


def test_coingecko_market_chart(tmp_path):
    p = tmp_path / "bitcoin_market_chart.json"
    p.write_text(json.dumps({"prices": [[1_711_356_300_000, 67187.3], [1_711_356_600_123, 67200.1]],
                             "market_caps": [[1_711_356_300_000, 1.3e12]],
                             "total_volumes": [[1_711_356_300_000, 2.2e10]]}))
    ticks = list(Replay(p, symbol="BTC-USD").iter_ticks())
    assert [(t.ts_ms, t.price, t.size) for t in ticks] == [(1_711_356_300_000, 67187.3, None),
                                                          (1_711_356_600_123, 67200.1, None)]


def test_parquet(tmp_path):
    p = tmp_path / "t.parquet"
    table = pa.table({
        "ts": pa.array([1_700_000_000_000_000, 1_700_000_001_000_000], pa.timestamp("us", tz="UTC")),
        "symbol": ["BTC-USD", "ETH-USD"], "price": [37000.5, 2000.25], "size": [0.5, 1.0],
        "trade_id": ["a", "b"]})
    pq.write_table(table, p)
    ticks = list(Replay(p).iter_ticks())
    assert ticks == [
        Tick(symbol="BTC-USD", ts_ms=1_700_000_000_000, price=37000.5, size=0.5, source="replay", trade_id="a"),
        Tick(symbol="ETH-USD", ts_ms=1_700_000_001_000, price=2000.25, size=1.0, source="replay", trade_id="b"),
    ]


def test_jsonl_written_by_the_sink_replays_identically(tmp_path):
    ticks = list(SyntheticMarket(symbols=3, seed=4, duration_ms=60_000).iter_ticks())
    with JsonlSink(tmp_path / "t.jsonl") as sink:
        sink.send_many(ticks)
    assert list(Replay(tmp_path / "t.jsonl").iter_ticks()) == ticks


# --------------------------------------------------------------------------- bad rows


BAD_CSV = (
    "ts,price,size\n"
    "1700000000,100,1\n"
    "1700000001,abc,1\n"       # line 3: price not a number
    "1700000002,-5,1\n"        # line 4: negative price
    "99,100,1\n"               # line 5: far past
    "1700000004,100\n"         # line 6: missing column
    "1700000005,nan,1\n"       # line 7: NaN
    "1700000006,1e400,1\n"     # line 8: overflow
    "1700000007,101,2\n"
)


def test_bad_row_raises_naming_file_line_and_field(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text(BAD_CSV)
    r = Replay(p, symbol="BTC-USD")
    it = r.iter_ticks()
    assert next(it).price == 100.0
    with pytest.raises(ValidationError) as err:
        next(it)
    assert err.value.field == "price"
    assert f"{p}:3" in str(err.value)


def test_skip_counts_and_routes_every_bad_row(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text(BAD_CSV)
    r = Replay(p, symbol="BTC-USD", errors="skip")
    rejected: list[Rejected] = []
    ticks = list(r.iter_ticks(on_reject=rejected.append))
    assert [t.price for t in ticks] == [100.0, 101.0]
    assert [(rej.where.rsplit(":", 1)[1], rej.field) for rej in rejected] == [
        ("3", "price"), ("4", "price"), ("5", "ts"), ("6", "record"), ("7", "price"), ("8", "price")]
    assert rejected[0].raw == "1700000001,abc,1"
    assert r.stats.rejected == 6


def test_raise_mode_still_hands_the_row_to_on_reject(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text(BAD_CSV)
    rejected: list[Rejected] = []
    with pytest.raises(ValidationError):
        list(Replay(p, symbol="BTC-USD").iter_ticks(on_reject=rejected.append))
    assert len(rejected) == 1 and rejected[0].field == "price"


def test_inconsistent_bar_is_rejected(tmp_path):
    p = tmp_path / "bars.json"
    p.write_text(json.dumps({"name": "BTC/USD_PT1M@X", "ohlc": [
        {"endTime": 1_700_000_059_999, "openPrice": 10, "highPrice": 9, "lowPrice": 8, "closePrice": 9.5, "volume": 1},
        {"endTime": 1_700_000_119_999, "openPrice": 10, "highPrice": 11, "lowPrice": 9, "closePrice": 10.5, "volume": 1},
    ]}))
    rejected: list[Rejected] = []
    ticks = list(Replay(p, errors="skip").iter_ticks(on_reject=rejected.append))
    assert len(ticks) == 4 and rejected[0].field == "bar" and rejected[0].where.endswith("ohlc[0]")
    assert {t.symbol for t in ticks} == {"BTC-USD"}


def test_no_symbol_anywhere_is_a_clear_error(tmp_path):
    p = tmp_path / "trades.csv"
    p.write_text("ts,price\n1700000000,1\n")
    with pytest.raises(ValidationError, match="--symbol"):
        list(Replay(p).iter_ticks())


def test_unknown_header_is_a_clear_error(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("foo,bar\n1,2\n")
    with pytest.raises(ValidationError, match="unrecognised header"):
        list(Replay(p, symbol="X").iter_ticks())


def test_bar_to_ticks_rejects_bad_bars():
    with pytest.raises(ValidationError):
        bar_to_ticks(symbol="X", start_ms=1_700_000_000_000, interval_ms=60_000,
                     open=1.0, high=0.5, low=0.4, close=0.45, volume=1.0)
    with pytest.raises(ValidationError):
        bar_to_ticks(symbol="X", start_ms=1_700_000_000_000, interval_ms=60_000,
                     open=1.0, high=2.0, low=0.5, close=1.0, volume=-1.0)


def test_parse_ts_rejects_far_past_and_future():
    for bad in ("0", "4102444800", "-1", "1e30", "abc", "2200-01-01T00:00:00Z"):
        with pytest.raises(ValidationError):
            parse_ts(bad)


# --------------------------------------------------------------------------- pacing


def test_speed_paces_by_event_time(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("ts,price,size\n1700000000000,1,1\n1700000010000,1,1\n1700000005000,1,1\n1700000030000,1,1\n")
    now = [0.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    ticks = list(Replay(p, symbol="X", speed=10.0, clock=lambda: now[0], sleep=sleep).iter_ticks())
    assert len(ticks) == 4
    # 10 s of event time at 10x = 1 s; the out-of-order tick does not wait; 30 s = 3 s in total
    assert sleeps == [pytest.approx(1.0), pytest.approx(2.0)]
