"""Live trades through ccxt.pro against a local exchange replaying the real captures.

The stand-in (tests/fakes/exchange.py) speaks Binance's and Coinbase Exchange's
websocket protocols as ccxt.pro uses them and their REST shapes (markets, trade
history) on the same port, from one tape of trades: what the websocket misses, REST
has. Tests poll with generous deadlines and assert invariants, never timings.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from fakes.exchange import StandInExchange, TapeTrade, tape_from_frames
from fakes.ws import exchange_frames

from cryptolab.candles.batch import candles_from_ticks
from cryptolab.errors import ValidationError
from cryptolab.models import Tick
from cryptolab.sources import Rejected, make_source, source_class
from cryptolab.sources.ccxt_trades import CcxtTrades
from cryptolab.sources.exchanges import parse_binance_frame, parse_coinbase_frame
from cryptolab.sources.trade_gaps import TradeGap

FAST = {"backoff_base": 0.01, "max_backoff": 0.05, "repair_wait": 0.3}


@pytest.fixture(scope="module")
def ws_dir(request) -> Path:
    return request.getfixturevalue("shared_data") / "ws"


def wait_for(cond, timeout=120.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class Consumer:
    """Iterate a source on a thread of its own, as the producer does."""

    def __init__(self, src):
        self.src, self.got, self.errors = src, [], []
        self.rejected: list[Rejected] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for tick in self.src.iter_ticks(on_reject=self.rejected.append):
                self.got.append(tick)
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)

    def stop(self):
        self.src.stop()
        self.thread.join(60)
        assert not self.thread.is_alive(), "iter_ticks() did not return after stop()"


def run_until(src, server, n, *, timeout=120.0):
    """Consume until ``n`` ticks arrived and the stand-in published its whole tape; stop."""
    c = Consumer(src)
    ok = wait_for(lambda: (server.done and len(c.got) >= n) or c.errors or not c.thread.is_alive(), timeout)
    c.stop()
    assert ok, f"only {len(c.got)} of {n} ticks arrived (published {len(server.published)})"
    assert c.errors == []
    return c


def handwritten(frames, parse, venue):
    """What the hand-written parser makes of the capture, renamed to the venue's symbols."""
    out = []
    for f in frames:
        t = parse(f)
        if t is not None and (parse is not parse_coinbase_frame or '"type":"match"' in f):
            out.append((f"{venue}:{t.symbol.rpartition(':')[2]}", t.ts_ms, t.price, t.size, t.trade_id.lstrip("a")))
    return out


def as_rows(ticks):
    return [(t.symbol, t.ts_ms, t.price, t.size, t.trade_id) for t in ticks]


def per_symbol(rows):
    out: dict[str, list] = {}
    for r in rows:
        out.setdefault(r[0], []).append(r)
    return out


def tape_ticks(tape: list[TapeTrade], venue: str, exchange: str) -> list[Tick]:
    """The batch reference: every trade of the tape as a tick."""
    def pair(mid):
        if "-" in mid:
            return mid
        for q in ("USDT", "BTC", "ETH", "EUR"):
            if mid.endswith(q):
                return f"{mid[:-len(q)]}-{q}"
        raise AssertionError(mid)
    return [Tick(symbol=f"{venue}:{pair(t.market_id)}", ts_ms=t.ts_ms, price=float(t.price),
                 size=float(t.size), source=exchange, trade_id=str(t.trade_id)) for t in tape]


# -- the captures through ccxt ---------------------------------------------------------------


def test_binance_spot_combined_capture_through_ccxt(ws_dir):
    frames = exchange_frames(ws_dir / "binance_combined_stream_capture.txt")
    tape = tape_from_frames(frames, "binance")
    expected = handwritten(frames, parse_binance_frame, "BINANCE")
    assert len(expected) == len(tape) == 2  # the capture's two aggTrades, among depth/kline frames
    with StandInExchange("binance", tape, expect=4, markets=["BLZETH", "RUNEEUR"]) as server:
        src = CcxtTrades("binance", "NKN/USDT,BLZ/ETH,LRC/BTC,RUNE/EUR", api_url=server.api_url,
                         ws_url=server.spot_ws_url, **FAST)
        c = run_until(src, server, len(expected))
    assert as_rows(c.got) == expected
    assert all(t.source == "binance" for t in c.got)
    # ccxt speaks Binance's protocol: raw streams, one SUBSCRIBE per market, acknowledged
    subs = sorted(json.loads(m)["params"][0] for cl in server.clients for m in cl.received)
    assert subs == ["blzeth@aggTrade", "lrcbtc@aggTrade", "nknusdt@aggTrade", "runeeur@aggTrade"]
    assert all(cl.path.startswith("/stream/ws/") for cl in server.clients)
    assert all(json.loads(m)["method"] == "SUBSCRIBE" for cl in server.clients for m in cl.received)


def test_binance_futures_capture_through_ccxt(ws_dir):
    frames = exchange_frames(ws_dir / "binance_futures_stream_capture.txt")
    tape = tape_from_frames(frames, "binance")
    expected = handwritten(frames, parse_binance_frame, "BINANCEUSDM")
    assert len(expected) == len(tape) == 91
    with StandInExchange("binance", tape, expect=4, futures=True) as server:
        src = CcxtTrades("binanceusdm", ["SUSHI-USDT", "AKRO/USDT", "BINANCEUSDM:KEEP-USDT", "CTK/USDT"],
                         api_url=server.api_url, ws_url=server.url, **FAST)
        c = run_until(src, server, len(expected))
    # one connection per market, so the order holds per symbol; the trades are exactly the capture's
    assert per_symbol(as_rows(c.got)) == per_symbol(expected)
    assert src.stats.ticks == 91 and src.stats.reconnects == 0 and src.gaps == []


def test_coinbase_capture_through_ccxt(ws_dir):
    frames = exchange_frames(ws_dir / "coinbase_ws_feed_capture.txt")
    tape = tape_from_frames(frames, "coinbase")
    products = ["SKL-USD", "DASH-BTC", "BAND-GBP"]
    expected = [r for r in handwritten(frames, parse_coinbase_frame, "COINBASE")
                if r[0].split(":")[1] in products]
    assert len(expected) >= 70
    with StandInExchange("coinbase", tape, expect=3) as server:
        src = CcxtTrades("coinbaseexchange", products, api_url=server.api_url, ws_url=server.url, **FAST)
        c = run_until(src, server, len(expected))
    assert per_symbol(as_rows(c.got)) == per_symbol(expected)
    band = [t for t in c.got if t.symbol == "COINBASE:BAND-GBP"]
    # the subscription's ``last_match`` (881613, which the hand-written client delivers) is
    # not a trade of the stream for ccxt; the matches after it are
    assert band[0].trade_id == "881614" and "881613" not in {t.trade_id for t in c.got}
    sub = json.loads(server.clients[0].received[0])
    assert sub["type"] == "subscribe" and sub["channels"] == ["matches"]


# -- reconnection, duplicates, repair ----------------------------------------------------------


def burst_index(tape, start=10):
    """A tape position inside a burst: the trade after it comes within 50 ms."""
    return next(i for i in range(start, len(tape) - 1) if tape[i + 1].ts_ms - tape[i].ts_ms <= 50)


def test_reconnect_drops_the_duplicates_the_stream_repeats(ws_dir):
    tape = tape_from_frames(exchange_frames(ws_dir / "binance_futures_stream_capture.txt"), "binance")
    cut = burst_index(tape, 30)
    gaps: list[TradeGap] = []
    with StandInExchange("binance", tape, expect=4, futures=True, drop_after=cut, overlap=8) as server:
        src = CcxtTrades("binanceusdm", "SUSHI/USDT,AKRO/USDT,KEEP/USDT,CTK/USDT", api_url=server.api_url,
                         ws_url=server.url, repair=False, on_gap=gaps.append, **FAST)
        c = run_until(src, server, len(tape))
    assert len(server.published) == len(tape) + 8  # eight trades were sent twice
    assert per_symbol(as_rows(c.got)) == per_symbol(as_rows(tape_ticks(tape, "BINANCEUSDM", "binanceusdm")))
    assert src.stats.skipped >= 8 and src.stats.reconnects >= 1
    # without repair every reconnection of a market that had traded is an honest gap record
    assert gaps and gaps == src.gaps and src.stats.gaps == len(gaps)
    assert all(g.reason == "repair is off" for g in gaps)


@pytest.mark.parametrize("protocol,exchange,venue,capture", [
    ("binance", "binanceusdm", "BINANCEUSDM", "binance_futures_stream_capture.txt"),
    ("coinbase", "coinbaseexchange", "COINBASE", "coinbase_ws_feed_capture.txt"),
])
def test_disconnect_mid_burst_loses_no_trade_and_doubles_none(ws_dir, protocol, exchange, venue, capture):
    tape = tape_from_frames(exchange_frames(ws_dir / capture), protocol)
    markets = sorted({t.market_id for t in tape})
    cut = burst_index(tape)
    with StandInExchange(protocol, tape, expect=len(markets), futures=protocol == "binance", drop_after=cut,
                         missed=12, overlap=3) as server:
        symbols = [m if "-" in m else m.replace("USDT", "/USDT") for m in markets]
        src = CcxtTrades(exchange, symbols, api_url=server.api_url, ws_url=server.url, **FAST)
        c = run_until(src, server, len(tape))
    assert len(server.missed_trades) == 12  # traded while no websocket was connected
    reference = tape_ticks(tape, venue, exchange)
    assert len(c.got) == len(reference) == len(tape)
    assert per_symbol(as_rows(c.got)) == per_symbol(as_rows(reference))
    assert src.stats.repaired >= 12 and src.gaps == [] and src.stats.gaps == 0
    # the candles equal the batch reference over the full tape
    got = candles_from_ticks(c.got, "1m,5m")
    ref = candles_from_ticks(reference, "1m,5m")
    pd.testing.assert_frame_equal(got, ref)


@pytest.mark.parametrize("fault,reason", [
    ({"rest_history": 0}, "the trade history does not reach back"),
    ({"rest_fail": True}, "fetch_trades failed"),
])
def test_unrepairable_gaps_are_marked_and_counted(ws_dir, fault, reason):
    tape = tape_from_frames(exchange_frames(ws_dir / "coinbase_ws_feed_capture.txt"), "coinbase")
    tape = [t for t in tape if t.market_id == "SKL-USD"]
    cut = burst_index(tape)
    with StandInExchange("coinbase", tape, drop_after=cut, missed=6, **fault) as server:
        src = CcxtTrades("coinbaseexchange", "SKL-USD", api_url=server.api_url, ws_url=server.url, **FAST)
        c = run_until(src, server, len(tape) - 6)
    missed = server.missed_trades
    assert len(missed) == 6
    lost = {str(t.trade_id) for t in missed}
    assert {t.trade_id for t in c.got}.isdisjoint(lost)
    assert len(c.got) == len(tape) - 6
    assert src.stats.gaps == len(src.gaps) == 1
    gap = src.gaps[0]
    assert gap.symbol == "COINBASE:SKL-USD" and gap.reason.startswith(reason)
    # the gap spans the missed trades: the windows they fall in are marked
    assert all(gap.start_ms <= t.ts_ms <= gap.end_ms for t in missed)
    marked = set(gap.windows(60_000))
    assert {t.ts_ms - t.ts_ms % 60_000 for t in missed} <= marked


# -- control and errors --------------------------------------------------------------------------


def test_stop_from_another_thread_ends_an_idle_stream(ws_dir):
    tape = tape_from_frames(exchange_frames(ws_dir / "coinbase_ws_feed_capture.txt"), "coinbase")
    tape = [t for t in tape if t.market_id == "DASH-BTC"]
    with StandInExchange("coinbase", tape, hold_open=True) as server:
        src = CcxtTrades("coinbaseexchange", "DASH/BTC", api_url=server.api_url, ws_url=server.url, **FAST)
        c = Consumer(src)
        assert wait_for(lambda: len(c.got) == len(tape))
        c.stop()  # while ccxt waits for a trade that never comes
    assert c.errors == [] and len(c.got) == len(tape)
    assert src.stats.reconnects == 0


def test_the_stream_ends_when_the_exchange_closes_and_reconnects_are_spent(ws_dir):
    tape = tape_from_frames(exchange_frames(ws_dir / "coinbase_ws_feed_capture.txt"), "coinbase")
    tape = [t for t in tape if t.market_id == "DASH-BTC"]
    with StandInExchange("coinbase", tape, hold_open=False) as server:
        src = CcxtTrades("coinbaseexchange", "DASH/BTC", api_url=server.api_url, ws_url=server.url,
                         max_reconnects=0, **FAST)
        got = list(src.iter_ticks())  # returns by itself
    assert len(got) == len(tape)
    assert src.stats.failures["disconnect"] == 1


def test_a_malformed_trade_is_rejected_and_the_stream_goes_on(ws_dir):
    tape = tape_from_frames(exchange_frames(ws_dir / "coinbase_ws_feed_capture.txt"), "coinbase")
    tape = [t for t in tape if t.market_id == "DASH-BTC"]
    bad_payload = dict(tape[2].payload, price="-1", trade_id=1)
    bad = TapeTrade("DASH-BTC", 1, tape[2].ts_ms, "-1", "1", payload=bad_payload)
    with StandInExchange("coinbase", [*tape[:3], bad, *tape[3:]]) as server:
        src = CcxtTrades("coinbaseexchange", "DASH/BTC", api_url=server.api_url, ws_url=server.url, **FAST)
        c = run_until(src, server, len(tape))
    assert [r.field for r in c.rejected] == ["price"]
    assert c.rejected[0].source == "coinbaseexchange" and c.rejected[0].raw["trade_id"] == 1
    assert len(c.got) == len(tape) and src.stats.rejected == 1


def test_unknown_symbol_and_exchange_are_clear_errors(ws_dir):
    tape = tape_from_frames(exchange_frames(ws_dir / "coinbase_ws_feed_capture.txt"), "coinbase")
    with StandInExchange("coinbase", tape) as server:
        src = CcxtTrades("coinbaseexchange", "NOPE/USD", api_url=server.api_url, ws_url=server.url, **FAST)
        with pytest.raises(ValidationError, match="no market 'NOPE/USD'"):
            list(src.iter_ticks())
    with pytest.raises(ValidationError, match="unknown websocket exchange"):
        CcxtTrades("nosuchexchange", "BTC/USD")
    with pytest.raises(ValidationError, match="symbols"):
        CcxtTrades("binance", "")


def test_registered_as_ccxt():
    assert source_class("ccxt") is CcxtTrades
    src = make_source("ccxt", exchange="kraken", symbols="BTC/USD")
    assert isinstance(src, CcxtTrades) and src.markets == ["BTC/USD"]
