"""Venue symbols end to end on the embedded defaults, and the cross-venue composite.

* Names: every per-series key and channel parses back to its symbol and interval, venue
  or not; file names hold no character Windows refuses and map back to the symbol.
* The pipeline (embedded Kafka -> windowing consumer -> SQLite and the in-process cache):
  ``BINANCE:BTC-USDT``, ``COINBASE:BTC-USDT`` and ``BTC-USDT`` are three candle series,
  each equal to the batch reference of its own ticks.
* The composite: its candles are :func:`candles_from_ticks` of the members' ticks merged,
  its VWAP the volume-weighted price of those trades; the venue series are unchanged.
* ``cryptolab db info`` lists the venues; ``cryptolab export --out '{symbol}...'`` writes
  one safely named file per series; ``produce --composite`` checks its argument.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from faults.harness import candles_frame, embedded_topic

from cryptolab.batch import candles_from_ticks
from cryptolab.cache import (
    MemoryCache,
    finals_channel,
    glob_to_regex,
    latest_key,
    recent_key,
    series_of,
    series_pattern,
    updates_channel,
)
from cryptolab.cli import main
from cryptolab.errors import ValidationError
from cryptolab.models import SYMBOL_RE, Tick, encode_tick
from cryptolab.models.venues import file_symbol, symbol_from_file
from cryptolab.pipeline import CandlePipeline
from cryptolab.sources import RejectHandler
from cryptolab.sources.composite import parse_composites, with_composite
from cryptolab.store import Store
from cryptolab.viz.dashboard import DashboardConfig, dashboard_app, symbol_options

T0 = 1_700_000_040_000
INTERVALS = "1m,5m,15m"
VENUES = ["BINANCE:BTC-USDT", "COINBASE:BTC-USDT", "BTC-USDT"]
NAMES = [*VENUES, "COINBASE:BTC-USD", "KRAKEN:ETH-EUR.X", "A:B/C_D.E", "X"]


# ---------------------------------------------------------------------------- names


@pytest.mark.parametrize("symbol", NAMES)
@pytest.mark.parametrize("interval", ["1m", "15m", "4h", "1d"])
def test_every_key_and_channel_parses_back_to_its_series(symbol: str, interval: str) -> None:
    for kind, name in (("latest", latest_key), ("recent", recent_key), ("candles", updates_channel),
                       ("finals", finals_channel)):
        assert series_of(name(symbol, interval)) == (kind, symbol, interval)
        assert series_of(name(symbol, interval).encode()) == (kind, symbol, interval)


def test_series_patterns_match_one_venue_or_all() -> None:
    binance = glob_to_regex(series_pattern(venue="BINANCE", interval="1m"))
    every = glob_to_regex(series_pattern(interval="1m"))
    names = {s: updates_channel(s, "1m") for s in NAMES}
    assert [s for s, ch in names.items() if binance.fullmatch(ch)] == ["BINANCE:BTC-USDT"]
    assert all(every.fullmatch(ch) for ch in names.values())
    assert not every.fullmatch(updates_channel("BTC-USDT", "5m"))
    with pytest.raises(ValidationError):
        series_pattern("nope")
    for bad in ("cryptolab:alerts", "cryptolab:alerts:recent", "cryptolab:latest:BTC-USD", "other:x:1m"):
        with pytest.raises(ValidationError):
            series_of(bad)


def test_file_names_are_legal_everywhere_and_map_back() -> None:
    alphabet = string.ascii_uppercase + string.digits + "._/:-"
    symbols = [*NAMES, alphabet[:32], "0" + alphabet[-6:]]
    for symbol in symbols:
        assert SYMBOL_RE.fullmatch(symbol)
        name = file_symbol(symbol)
        assert not set(name) & set('<>:"/\\|?*'), name
        assert symbol_from_file(name) == symbol
    assert len({file_symbol(s) for s in symbols}) == len(symbols)  # one to one
    with pytest.raises(ValidationError):
        file_symbol("bad symbol")


# ---------------------------------------------------------------------------- pipeline


class ListSource:
    """A source replaying a fixed list of ticks."""

    name = "list"
    validated = True

    def __init__(self, ticks: list[Tick]) -> None:
        self.ticks = ticks

    def iter_ticks(self, *, on_reject: RejectHandler | None = None) -> Iterator[Tick]:
        yield from self.ticks


def venue_ticks(symbols: list[str], n: int, *, step_ms: int = 700) -> list[Tick]:
    """``n`` trades in event-time order, taking turns among ``symbols``; each venue has its price level."""
    return [Tick(symbol=symbols[i % len(symbols)], ts_ms=T0 + i * step_ms,
                 price=100.0 * (1 + i % len(symbols)) + (i * 7) % 13, size=0.5 + (i * 3) % 5,
                 source="test", trade_id=f"t{i}") for i in range(n)]


def run_pipeline(tmp: Path, ticks: list[Tick]) -> Store:
    store = Store(f"sqlite:///{(tmp / 'venues.db').as_posix()}")
    store.init()
    s = embedded_topic(tmp, [(t.symbol.encode(), encode_tick(t)) for t in ticks], "venues")
    s = replace(s, intervals=tuple(INTERVALS.split(",")))
    pipe = CandlePipeline(s, store=store, cache=MemoryCache(f"venues-{tmp.name}"), scorer=None,
                          batch_size=64, batch_timeout=0.05)
    stats = pipe.run(stop_at_end=True)
    assert stats.ticks == len(ticks) and stats.dead_letters == 0 and stats.late_ticks == 0, stats
    return store


def frame(ticks: list[Tick]) -> pd.DataFrame:
    return pd.DataFrame([t.to_dict() for t in ticks]).rename(columns={"ts": "ts_ms"})


def test_the_same_pair_from_two_venues_and_none_is_three_series(tmp_path: Path) -> None:
    ticks = venue_ticks(VENUES, 1_500)
    store = run_pipeline(tmp_path, ticks)
    got = candles_frame(store)
    assert sorted(got["symbol"].unique()) == sorted(VENUES)
    pd.testing.assert_frame_equal(got.drop(columns="revision"),
                                  candles_from_ticks(frame(ticks), INTERVALS).drop(columns="revision"),
                                  check_exact=True)
    for k, symbol in enumerate(VENUES):  # each series holds only its venue's trades
        own = [t for t in ticks if t.symbol == symbol]
        mine = got[(got.symbol == symbol) & (got.interval == "1m")]
        assert mine.trades.sum() == len(own)
        assert mine.low.min() >= 100.0 * (k + 1) and mine.high.max() < 100.0 * (k + 1) + 13
    store.close()


def test_composite_candles_are_the_candles_of_the_merged_venue_trades(tmp_path: Path) -> None:
    members = ["BINANCE:BTC-USD", "COINBASE:BTC-USD", "KRAKEN:BTC-USD"]
    ticks = venue_ticks([*members, "BINANCE:BTC-USDT", "BTC-USD.X"], 2_000)
    source = with_composite(ListSource(ticks), {"BTC-USD": None, "BTC-ANY": ["BINANCE:BTC-USDT", members[0]]})
    sent = list(source.iter_ticks())
    assert source.composite_ticks == len(sent) - len(ticks)
    store = run_pipeline(tmp_path, sent)
    got = candles_frame(store)

    merged = [replace(t, symbol="BTC-USD") for t in ticks if t.symbol in members]
    merged += [replace(t, symbol="BTC-ANY") for t in ticks if t.symbol in ("BINANCE:BTC-USDT", members[0])]
    want = candles_from_ticks(frame(ticks + merged), INTERVALS)
    pd.testing.assert_frame_equal(got.drop(columns="revision"), want.drop(columns="revision"),
                                  check_exact=True)
    # BTC-USDT is another market: only its explicit composite holds it; no composite has BTC-USD.X
    usd = got[(got.symbol == "BTC-USD") & (got.interval == "5m")]
    assert usd.trades.sum() == sum(t.symbol in members for t in ticks)
    for row in usd.itertuples():  # the VWAP is the volume-weighted price of the venues' trades
        start = int(row.window_start.timestamp() * 1000)
        window = [t for t in ticks if t.symbol in members and start <= t.ts_ms < start + 300_000]
        assert row.vwap == pytest.approx(sum(t.price * (t.size or 0) for t in window)
                                         / sum(t.size or 0 for t in window), rel=1e-12)
        assert row.volume == pytest.approx(sum(t.size or 0 for t in window), rel=1e-12)
    store.close()


def test_composite_arguments_are_checked() -> None:
    assert parse_composites(["btc-usd"]) == {"BTC-USD": None}
    for bad in (["BTC-USD", "BTC-USD"], ["KRAKEN:BTC-USD"], ["BTC-USD="], ["bad name"], ["X=bad one"]):
        with pytest.raises(ValidationError):
            with_composite(ListSource([]), bad)
    with pytest.raises(ValidationError):
        with_composite(ListSource([]), {"BTC-USD": ["BTC-USD"]})
    wrapped = with_composite(ListSource([]), ["BTC-USD"])
    assert not hasattr(wrapped, "iter_wire") and wrapped.ticks == []  # other attributes are the source's


# ---------------------------------------------------------------------------- CLI and charts


@pytest.fixture
def venue_store(tmp_path: Path) -> str:
    return run_pipeline(tmp_path, venue_ticks(VENUES, 600)).url


def test_db_info_lists_the_venues(venue_store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "info", "--store", venue_store]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("venues"))
    assert lines[start].split() == ["venues", "2", "(and", "venue-less", "symbols)"]
    rows = [line.split() for line in lines[start + 1:start + 4]]
    assert [r[0] for r in rows] == ["BINANCE", "COINBASE", "(no"]
    assert all(r[-1] == "BTC-USDT" for r in rows)
    assert main(["db", "info", "--store", venue_store, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [(v["venue"], v["symbols"], v["series"]) for v in info["venues"]] == [
        ("BINANCE", ["BINANCE:BTC-USDT"], 3), ("COINBASE", ["COINBASE:BTC-USDT"], 3), (None, ["BTC-USDT"], 3)]
    assert sum(v["candles"] for v in info["venues"]) == info["candles"]


def test_export_per_series_and_a_bad_template(venue_store: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["export", "candles", "--store", venue_store, "--interval", "1m",
                 "--out", str(out / "{symbol}_{interval}.csv")]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "BINANCE~BTC-USDT_1m.csv", "BTC-USDT_1m.csv", "COINBASE~BTC-USDT_1m.csv"]
    assert "to 3 file(s)" in capsys.readouterr().err
    for bad in ("{symbol}_{when}.csv", "{symbol", "plain_{0}.csv"):
        assert main(["export", "candles", "--store", venue_store, "--out", str(tmp_path / bad)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "invalid 'out'" in err[0], err
    written = {p.name for p in tmp_path.iterdir()} - {"venues.db-wal", "venues.db-shm"}  # SQLite's own journal
    assert sorted(written) == ["out", "venues.db"]  # nothing else written


def test_produce_composite_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ticks.jsonl"
    assert main(["produce", "--source", "synthetic", "--symbols", "BTC-USD,ETH-USD", "--ticks", "40",
                 "--composite", "ANY-USD=BTC-USD,ETH-USD", "--to", f"jsonl:{out}", "--quiet"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    copies = [r for r in rows if r["symbol"] == "ANY-USD"]
    assert len(rows) == 40 and copies
    originals = {(r["symbol"], r["trade_id"]): r for r in rows if r["symbol"] != "ANY-USD"}
    for c in copies:  # each copy follows its original, same trade
        o = originals.get((c["source"], c["trade_id"]))
        assert o is not None and (o["ts"], o["price"], o["size"]) == (c["ts"], c["price"], c["size"])
    capsys.readouterr()
    assert main(["produce", "--source", "synthetic", "--ticks", "5", "--composite", "KRAKEN:BTC-USD",
                 "--to", f"jsonl:{tmp_path / 'no.jsonl'}", "--quiet"]) == 2
    assert "has a venue" in capsys.readouterr().err
    assert not (tmp_path / "no.jsonl").exists()


def test_the_dashboard_picker_groups_symbols_by_venue() -> None:
    assert symbol_options(["BTC-USD", "ETH-USD"]) == ["BTC-USD", "ETH-USD"]
    cache = MemoryCache("venue-dashboard")
    try:
        app = dashboard_app(cache, config=DashboardConfig(symbols=("COINBASE:BTC-USDT", "BINANCE:BTC-USDT",
                                                                   "BTC-USDT")))
        doc = app.create_document()
        select: Any = doc.get_model_by_name("symbol_select")
        assert select.options == {"BINANCE": [("BINANCE:BTC-USDT", "BTC-USDT")],
                                  "COINBASE": [("COINBASE:BTC-USDT", "BTC-USDT")],
                                  "no venue": [("BTC-USDT", "BTC-USDT")]}
        price: Any = doc.get_model_by_name("price")
        assert price.title.text == "COINBASE:BTC-USDT · 1m"
        select.value = "BINANCE:BTC-USDT"
        assert price.title.text == "BINANCE:BTC-USDT · 1m"
    finally:
        cache.clear()
        cache.close()


@pytest.mark.parametrize("given", ["BINANCE:BTC-USDT,COINBASE:BTC-USD,BTC-USD",
                                   "[BINANCE:BTC-USDT, COINBASE:BTC-USD, BTC-USD]",
                                   '["BINANCE:BTC-USDT", "COINBASE:BTC-USD", "BTC-USD"]',
                                   ["BINANCE:BTC-USDT", "COINBASE:BTC-USD", "BTC-USD"]])
def test_report_parameters_take_venue_symbols(given: Any) -> None:
    from cryptolab.reports.market import report_parameters

    got = report_parameters(symbols=given, start="2024-01-01", end="2024-01-02")
    assert got["symbols"] == ["BINANCE:BTC-USDT", "COINBASE:BTC-USD", "BTC-USD"]
    with pytest.raises(ValidationError):
        report_parameters(symbols="BINANCE:BTC USDT", start="2024-01-01", end="2024-01-02")
