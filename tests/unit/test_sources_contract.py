"""One contract, every source: the same checks run against each registered source.

Each source is built against its fake (CoinGecko API, capture-replaying websocket) or a
real file, with one hostile record slipped in, and must: be a ``Source``; be registered
under its name; yield only valid ticks stamped with its name, in a stable order; route
the hostile record to ``on_reject`` with a field and a reason instead of raising; keep
counters; and feed a producer sink end to end.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fakes.coingecko import FakeCoinGecko
from fakes.exchange import StandInExchange, TapeTrade, tape_from_frames
from fakes.ws import FakeExchange, exchange_frames

from cryptolab.config import Settings
from cryptolab.models import decode_tick, validate_tick
from cryptolab.producer import JsonlSink
from cryptolab.sources import Rejected, Source, SourceStats, source_class, source_names
from cryptolab.sources.ccxt_trades import CcxtTrades
from cryptolab.sources.coingecko import CoinGeckoPoller
from cryptolab.sources.exchanges import BinanceTrades, CoinbaseMatches
from cryptolab.sources.replay import Replay
from cryptolab.sources.synthetic import SyntheticMarket

FAST = {"backoff_base": 0.01, "max_backoff": 0.05}


@contextmanager
def synthetic(shared_data, tmp_path) -> Iterator[tuple[Any, bool]]:
    yield SyntheticMarket(symbols=3, seed=1, duration_ms=60_000), False


@contextmanager
def replay(shared_data, tmp_path) -> Iterator[tuple[Any, bool]]:
    rows = (shared_data / "trades" / "bitstamp_btcusd_2011-09_2012-05.csv").read_text().splitlines()
    path = tmp_path / "bitstamp_btcusd_sample.csv"
    path.write_text("\n".join(rows[:100] + ["1338453678,-5.1,1.0"] + rows[100:200]) + "\n")
    yield Replay(path, errors="skip"), True


@contextmanager
def coingecko(shared_data, tmp_path) -> Iterator[tuple[Any, bool]]:
    with FakeCoinGecko() as fake:
        fake.script("ok", "bad-quote", "ok")
        yield CoinGeckoPoller("bitcoin", base_url=fake.url, settings=Settings.from_env({}),
                              max_polls=3, poll_interval=0.01), True


@contextmanager
def binance(shared_data, tmp_path) -> Iterator[tuple[Any, bool]]:
    frames = exchange_frames(shared_data / "ws" / "binance_futures_stream_capture.txt")
    bad = '{"stream":"x@aggTrade","data":{"e":"aggTrade","s":"SUSHIUSDT","a":1,"p":"inf","q":"1","T":1626992741421}}'
    with FakeExchange([bad, *frames]) as server:
        yield BinanceTrades("SUSHI-USDT", streams="aggTrade", url=server.url, max_reconnects=0, **FAST), True


@contextmanager
def coinbase(shared_data, tmp_path) -> Iterator[tuple[Any, bool]]:
    frames = exchange_frames(shared_data / "ws" / "coinbase_ws_feed_capture.txt")[:3000]
    bad = '{"type":"match","trade_id":1,"product_id":"BTC-USD","size":"1","price":"0","time":"2021-04-17T16:43:30Z"}'
    with FakeExchange([*frames[:10], bad, *frames[10:]]) as server:
        yield CoinbaseMatches("SKL-USD", url=server.url, max_reconnects=0, **FAST), True


@contextmanager
def ccxt(shared_data, tmp_path) -> Iterator[tuple[Any, bool]]:
    frames = exchange_frames(shared_data / "ws" / "coinbase_ws_feed_capture.txt")
    tape = [t for t in tape_from_frames(frames, "coinbase") if t.market_id == "SKL-USD"]
    bad = TapeTrade("SKL-USD", 1, tape[3].ts_ms, "0", "1",
                    payload=dict(tape[3].payload or {}, price="0", trade_id=1))
    with StandInExchange("coinbase", [*tape[:5], bad, *tape[5:]], hold_open=False) as server:
        yield CcxtTrades("coinbaseexchange", "SKL-USD", api_url=server.api_url, ws_url=server.url,
                         max_reconnects=0, **FAST), True


FACTORIES: dict[str, Callable[..., Any]] = {
    "synthetic": synthetic, "replay": replay, "coingecko": coingecko, "binance": binance, "coinbase": coinbase,
    "ccxt": ccxt,
}


def test_every_registered_source_is_covered():
    assert sorted(FACTORIES) == source_names()


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_source_contract(name, shared_data, tmp_path):
    with FACTORIES[name](shared_data, tmp_path) as (src, has_bad_record):
        assert isinstance(src, Source)
        assert src.name == name and src.validated is True
        stamp = getattr(src, "exchange", name)  # ccxt's ticks carry the exchange id
        assert isinstance(source_class(name), type) and isinstance(src, source_class(name))
        rejected: list[Rejected] = []
        ticks = list(src.iter_ticks(on_reject=rejected.append))
    assert ticks, "the source yielded nothing"
    for t in ticks:
        assert validate_tick(t) is t
        assert t.source == stamp
    if has_bad_record:
        assert len(rejected) == 1
        r = rejected[0]
        assert r.field and r.reason and r.source == stamp and r.raw
    else:
        assert rejected == []
    stats = getattr(src, "stats", None)
    if stats is not None:
        assert isinstance(stats, SourceStats)
        assert stats.rejected == len(rejected)
        assert isinstance(stats.as_dict(), dict)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_source_feeds_a_sink_with_dead_letters(name, shared_data, tmp_path):
    buf = io.BytesIO()
    with FACTORIES[name](shared_data, tmp_path) as (src, has_bad_record):
        sink = JsonlSink(buf, dead_letters=tmp_path / "dead.jsonl")
        sent = sink.send_many(src)
        sink.close()
    lines = buf.getvalue().splitlines()
    assert sent == len(lines) > 0
    assert all(decode_tick(line).source == getattr(src, "exchange", name) for line in lines)
    assert sink.stats.rejected == (1 if has_bad_record else 0)
    if has_bad_record:
        assert (tmp_path / "dead.jsonl").read_text().count("\n") == 1
