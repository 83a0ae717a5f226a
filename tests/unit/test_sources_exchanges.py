"""Binance and Coinbase trade websockets against a local server replaying the real captures."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from fakes.ws import FakeExchange, capture_url, exchange_frames, read_capture

from cryptolab.errors import ValidationError
from cryptolab.sources import Rejected
from cryptolab.sources.exchanges import (
    BinanceTrades,
    CoinbaseMatches,
    binance_symbol,
    parse_binance_frame,
    parse_coinbase_frame,
)

FAST = {"backoff_base": 0.01, "max_backoff": 0.05, "open_timeout": 5.0}


@pytest.fixture(scope="module")
def ws_dir(request) -> Path:
    shared = request.getfixturevalue("shared_data")
    return shared / "ws"


def expected_ticks(frames, parse):
    """Trades in the frames, with repeated trade ids (per symbol) dropped, as the source does."""
    last: dict[tuple[str, str], int] = {}
    out = []
    for f in frames:
        t = parse(f)
        if t is None:
            continue
        prefix = t.trade_id[:1] if t.trade_id[:1].isalpha() else ""
        n = int(t.trade_id[len(prefix):])
        key = (t.symbol, prefix)
        if key in last and n <= last[key]:
            continue
        last[key] = n
        out.append(t)
    return out


def test_capture_lines_parse(ws_dir):
    lines = read_capture(ws_dir / "coinbase_ws_feed_capture.txt")
    assert [c.direction for c in lines[:4]] == ["connect", "out", "out", "out"]
    assert '"channels":["matches"]' in lines[3].payload
    assert capture_url(ws_dir / "binance_futures_stream_capture.txt").startswith("wss://fstream.binance.com/stream?")


def test_binance_futures_aggtrades_from_the_capture(ws_dir):
    frames = exchange_frames(ws_dir / "binance_futures_stream_capture.txt")
    expected = expected_ticks(frames, parse_binance_frame)
    assert len(expected) >= 80  # the capture holds 91 aggTrade frames
    with FakeExchange(frames) as server:
        src = BinanceTrades(["SUSHI-USDT", "akrousdt", "KEEPUSDT", "ctk-usdt"], streams="aggTrade",
                            url=server.url, max_reconnects=0, **FAST)
        got = list(src.iter_ticks())
    assert got == expected
    assert server.connections[0].path == (
        "/stream?streams=sushiusdt@aggTrade/akrousdt@aggTrade/keepusdt@aggTrade/ctkusdt@aggTrade"
    )
    assert {t.symbol for t in got} == {"BINANCE:SUSHI-USDT", "BINANCE:AKRO-USDT", "BINANCE:KEEP-USDT",
                                      "BINANCE:CTK-USDT"}
    assert all(t.trade_id.startswith("a") and t.source == "binance" for t in got)
    # event time is the trade time T, not the event time E nor the receive time
    first = next(f for f in frames if '"aggTrade"' in f and '"e":"aggTrade"' in f)
    assert str(got[0].ts_ms) in first


def test_binance_spot_combined_stream(ws_dir):
    frames = exchange_frames(ws_dir / "binance_combined_stream_capture.txt")
    with FakeExchange(frames) as server:
        src = BinanceTrades("NKN-USDT,BLZ-ETH,LRC-BTC,RUNE-EUR", streams=["trade", "aggTrade"],
                            url=server.url, max_reconnects=0, **FAST)
        got = list(src.iter_ticks())
    assert [(t.symbol, t.price, t.size) for t in got] == [("BINANCE:NKN-USDT", 0.3528, 58.0),
                                                              ("BINANCE:LRC-BTC", 6.38e-06, 177.0)]
    assert src.frames == len(frames)  # depth, bookTicker and kline frames are read and skipped
    assert "nknusdt@trade/nknusdt@aggTrade" in server.connections[0].path


def test_coinbase_matches_from_the_capture(ws_dir):
    frames = exchange_frames(ws_dir / "coinbase_ws_feed_capture.txt")
    expected = expected_ticks(frames, parse_coinbase_frame)
    assert len(expected) >= 90
    with FakeExchange(frames) as server:
        src = CoinbaseMatches(["SKL-USD", "DASH-BTC"], url=server.url, max_reconnects=0, **FAST)
        got = list(src.iter_ticks())
    assert got == expected
    sub = server.connections[0].received[0]
    assert '"type":"subscribe"' in sub and '"matches"' in sub and '"heartbeat"' in sub
    assert '"SKL-USD"' in sub and '"DASH-BTC"' in sub
    band = [t for t in got if t.symbol == "COINBASE:BAND-GBP"]
    assert band[0].trade_id == "881613" and band[0].ts_ms == 1_618_677_810_244  # 16:43:30.244075Z


def test_reconnects_after_network_drops_without_losing_or_duplicating(ws_dir):
    frames = exchange_frames(ws_dir / "coinbase_ws_feed_capture.txt")
    expected = expected_ticks(frames, parse_coinbase_frame)
    drops, start = 0, 0
    while start + 2000 < len(frames):  # each connection resends the last 300 frames
        drops, start = drops + 1, start + 2000 - 300
    with FakeExchange(frames, drop_after=2000, overlap=300) as server:
        src = CoinbaseMatches(["SKL-USD"], url=server.url, max_reconnects=drops, **FAST)
        got = list(src.iter_ticks())
    assert len(server.connections) == drops + 1
    assert src.stats.reconnects == drops
    assert src.stats.failures["disconnect"] == drops  # aborted TCP connections
    assert src.stats.failures["closed"] == 1  # the normal close after the last frame
    assert got == expected
    assert src.stats.skipped > 0  # the overlapping frames were dropped as duplicates
    assert all(len(c.received) == 1 for c in server.connections)  # resubscribed every time


def test_answers_server_pings(ws_dir):
    frames = exchange_frames(ws_dir / "binance_futures_stream_capture.txt")[:200]
    with FakeExchange(frames, ping_interval=0.02, frame_delay=0.003) as server:
        src = BinanceTrades("SUSHI-USDT", streams="aggTrade", url=server.url, max_reconnects=0, **FAST)
        list(src.iter_ticks())
    assert server.pongs >= 3


def test_silent_connection_is_dropped_and_reconnected(ws_dir):
    frames = exchange_frames(ws_dir / "coinbase_ws_feed_capture.txt")[:50]
    with FakeExchange(frames, hold_open=True) as server:
        src = CoinbaseMatches("SKL-USD", url=server.url, stale_after=0.3, max_reconnects=1, **FAST)
        list(src.iter_ticks())
    assert src.stats.failures["stale"] == 2
    assert len(server.connections) == 2


def test_heartbeats_keep_the_connection(ws_dir):
    frames = exchange_frames(ws_dir / "coinbase_ws_feed_capture.txt")[:50]
    with FakeExchange(frames, hold_open=True, heartbeat_every=0.05) as server:
        src = CoinbaseMatches("SKL-USD", url=server.url, stale_after=0.4, duration=1.5, **FAST)
        list(src.iter_ticks())
    assert src.stats.failures["stale"] == 0
    assert len(server.connections) == 1
    assert src.frames > 50  # heartbeats arrived and were read


def test_connect_failures_back_off_then_succeed(ws_dir):
    frames = exchange_frames(ws_dir / "binance_futures_stream_capture.txt")
    sleeps: list[float] = []
    with FakeExchange(frames, refuse_first=3) as server:
        src = BinanceTrades("SUSHI-USDT", streams="aggTrade", url=server.url, max_reconnects=3,
                            backoff_base=0.01, max_backoff=10.0, sleep=sleeps.append, seed=3)
        got = list(src.iter_ticks())
    assert src.stats.failures["connect"] == 3
    assert len(got) == len(expected_ticks(frames, parse_binance_frame))
    assert len(sleeps) == 3
    for n, delay in enumerate(sleeps, start=1):
        full = 0.01 * 2 ** (n - 1)
        assert 0.5 * full <= delay <= full


def test_gives_up_when_nothing_listens():
    src = CoinbaseMatches("BTC-USD", url="ws://127.0.0.1:9", max_reconnects=2, **FAST)
    assert list(src.iter_ticks()) == []
    assert src.stats.failures["connect"] == 3
    assert src.last_error.startswith("connect")


def test_hostile_frames_are_rejected_and_the_stream_goes_on(ws_dir):
    good = exchange_frames(ws_dir / "coinbase_ws_feed_capture.txt")
    hostile = [
        "not json at all",
        '{"type":"match","trade_id":1,"product_id":"BTC-USD","size":"1","price":"NaN","time":"2021-04-17T16:43:30Z"}',
        '{"type":"match","trade_id":2,"product_id":"BTC-USD","size":"1","price":"-5","time":"2021-04-17T16:43:30Z"}',
        '{"type":"match","trade_id":3,"product_id":"BTC\'; DROP TABLE candles;--","size":"1","price":"5","time":"2021-04-17T16:43:30Z"}',
        '{"type":"match","trade_id":4,"product_id":"BTC-USD","size":"1","price":"5","time":"1970-01-01T00:00:00Z"}',
        '{"type":"error","message":"Failed to subscribe","reason":"ZZZ-USD is not a valid product"}',
        "[1,2,3]",
    ]
    frames = hostile + good[:400]
    rejected: list[Rejected] = []
    with FakeExchange(frames) as server:
        src = CoinbaseMatches("SKL-USD", url=server.url, max_reconnects=0, **FAST)
        got = list(src.iter_ticks(on_reject=rejected.append))
    assert [r.field for r in rejected] == ["record", "price", "price", "symbol", "ts", "record", "record"]
    assert all(r.where.startswith("frame ") and r.source == "coinbase" for r in rejected)
    assert got == expected_ticks(good[:400], parse_coinbase_frame)
    assert src.stats.rejected == len(hostile)


def _consume_in_thread(src, got, *, pause_after=None, reached=None, resume=None):
    """Iterate ``src`` on a thread of its own into ``got``; after ``pause_after`` ticks, set
    ``reached`` and wait for ``resume`` before asking the stream for more."""
    errors = []

    def run():
        try:
            for tick in src.iter_ticks():
                got.append(tick)
                if len(got) == pause_after:
                    reached.set()
                    assert resume.wait(60), "the test never resumed the consumer"
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run, name="ws-consumer", daemon=True)
    thread.start()
    return thread, errors


def wait_for(cond, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_stop_from_another_thread_ends_an_idle_stream(ws_dir):
    frames = exchange_frames(ws_dir / "coinbase_ws_feed_capture.txt")[:200]
    expected = expected_ticks(frames, parse_coinbase_frame)
    with FakeExchange(frames, hold_open=True) as server:  # every frame, then silence
        src = CoinbaseMatches("SKL-USD", url=server.url, stale_after=30.0, **FAST)
        got = []
        thread, errors = _consume_in_thread(src, got)
        assert wait_for(lambda: len(got) == len(expected)), (len(got), len(expected))
        src.stop()  # from this thread, while the consumer waits for a frame that never comes
        thread.join(60)
        assert not thread.is_alive(), "iter_ticks() did not return after stop()"
    assert errors == []
    assert got == expected
    assert src.stats.reconnects == 0 and sum(src.stats.failures.values()) == 0, src.stats
    assert len(server.connections) == 1


def test_stop_from_another_thread_delivers_nothing_after_it(ws_dir):
    frames = exchange_frames(ws_dir / "coinbase_ws_feed_capture.txt")[:200]
    expected = expected_ticks(frames, parse_coinbase_frame)
    k = 5
    assert len(expected) > 2 * k
    reached, resume = threading.Event(), threading.Event()
    with FakeExchange(frames, hold_open=True) as server:
        src = CoinbaseMatches("SKL-USD", url=server.url, stale_after=30.0, **FAST)
        got = []
        thread, errors = _consume_in_thread(src, got, pause_after=k, reached=reached, resume=resume)
        assert reached.wait(60), "the consumer never got its first ticks"
        # every frame is on its way to the client: the ticks after the k-th are there to be read
        assert wait_for(lambda: server.sent_total == len(frames))
        src.stop()
        resume.set()
        thread.join(60)
        assert not thread.is_alive(), "iter_ticks() did not return after stop()"
    assert errors == []
    assert got == expected[:k], f"{len(got) - k} ticks delivered after stop()"
    assert src.stats.ticks == k and src.stats.reconnects == 0, src.stats
    assert len(server.connections) == 1


def test_symbol_mapping_and_validation():
    assert binance_symbol("btcusdt") == "BTC-USDT"
    src = BinanceTrades(["btcusdt", "ETH/BTC"], url="ws://x")
    assert src.symbols == {"BTCUSDT": "BINANCE:BTC-USDT", "ETHBTC": "BINANCE:ETH-BTC"}
    assert BinanceTrades("BINANCE:BTC-USDT", url="ws://x").symbols == {"BTCUSDT": "BINANCE:BTC-USDT"}
    assert CoinbaseMatches("COINBASE:BTC-USD,ETH-USD").products == ["BTC-USD", "ETH-USD"]
    assert src.connect_url() == "ws://x/stream?streams=btcusdt@trade/ethbtc@trade"
    with pytest.raises(ValidationError):
        BinanceTrades("btcusdt", streams="depth")
    with pytest.raises(ValidationError):
        CoinbaseMatches("")
