"""CoinGecko poller against the local fake API: quotes, keys, rate limits, faults, circuit."""

from __future__ import annotations

import pytest
from fakes.coingecko import FakeCoinGecko

from cryptolab.config import Settings
from cryptolab.errors import ValidationError
from cryptolab.sources import Rejected
from cryptolab.sources.coingecko import CoinGeckoPoller, parse_coins, parse_simple_price


class FakeClock:
    """Monotonic and wall clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.t = 10_000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def wall(self) -> float:
        return 1_711_356_000.0 + self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


@pytest.fixture
def fake():
    with FakeCoinGecko() as f:
        yield f


@pytest.fixture
def clock():
    return FakeClock()


def make(fake: FakeCoinGecko, clock: FakeClock, coins="bitcoin,ethereum", **kw) -> CoinGeckoPoller:
    kw.setdefault("settings", Settings.from_env({}))
    kw.setdefault("seed", 1)
    return CoinGeckoPoller(coins, base_url=fake.url, clock=clock, sleep=clock.sleep,
                           wall_clock=clock.wall, **kw)


def test_polls_quotes_with_event_time_from_last_updated_at(fake, clock):
    with make(fake, clock, max_polls=3) as poller:
        ticks = list(poller.iter_ticks())
    assert [t.symbol for t in ticks] == ["BTC-USD", "ETH-USD"] * 3
    btc = [t for t in ticks if t.symbol == "BTC-USD"]
    assert [t.ts_ms for t in btc] == [(fake.start_updated_at + i * fake.step_s) * 1000 for i in range(3)]
    assert all(t.source == "coingecko" and t.size is None for t in ticks)
    assert clock.sleeps == [30.0, 30.0]  # default poll interval
    q = fake.requests[0].query
    assert q["ids"] == "bitcoin,ethereum" and q["vs_currencies"] == "usd"
    assert q["include_24hr_vol"] == "true" and q["include_last_updated_at"] == "true"
    assert fake.requests[0].path == "/api/v3/simple/price"
    assert poller.volumes_24h["BTC-USD"] > 0


def test_base_url_comes_from_settings(fake, clock):
    s = Settings.from_env({"CRYPTOLAB_COINGECKO_URL": fake.url})
    poller = CoinGeckoPoller("solana", settings=s, clock=clock, sleep=clock.sleep, max_polls=1)
    assert [t.symbol for t in poller.iter_ticks()] == ["SOL-USD"]


@pytest.mark.parametrize(("plan", "header"), [("demo", "x-cg-demo-api-key"), ("pro", "x-cg-pro-api-key")])
def test_api_key_header_by_plan(fake, clock, plan, header):
    s = Settings.from_env({"CRYPTOLAB_COINGECKO_API_KEY": "CG-secret", "CRYPTOLAB_COINGECKO_PLAN": plan})
    poller = make(fake, clock, settings=s, max_polls=1)
    list(poller.iter_ticks())
    other = "x-cg-pro-api-key" if plan == "demo" else "x-cg-demo-api-key"
    assert fake.requests[0].headers[header] == "CG-secret"
    assert other not in fake.requests[0].headers
    assert "CG-secret" not in repr(poller)


def test_no_key_no_header(fake, clock):
    list(make(fake, clock, max_polls=1).iter_ticks())
    assert not any(h.startswith("x-cg-") for h in fake.requests[0].headers)


def test_unchanged_last_updated_at_is_not_emitted_again(fake, clock):
    fake.script("ok", "stale", "stale", "ok")
    poller = make(fake, clock, coins="bitcoin", max_polls=4)
    ticks = list(poller.iter_ticks())
    assert len(ticks) == 2
    assert ticks[1].ts_ms - ticks[0].ts_ms == fake.step_s * 1000
    assert poller.stats.skipped == 2


def test_429_honours_retry_after_and_does_not_open_the_circuit(fake, clock):
    fake.retry_after_s = 42
    fake.script("429", "429", "429", "429", "429", "429", "ok")
    poller = make(fake, clock, coins="bitcoin", failure_threshold=3, max_polls=7)
    ticks = list(poller.iter_ticks())
    assert len(ticks) == 1
    assert clock.sleeps == [42.0] * 6
    assert poller.stats.failures["http_429"] == 6
    assert poller.circuit == "closed"


def test_429_without_retry_after_backs_off(fake, clock):
    fake.script("429-no-retry-after", "ok")
    poller = make(fake, clock, coins="bitcoin", backoff_base=4.0, max_polls=2)
    assert len(list(poller.iter_ticks())) == 1
    assert 2.0 <= clock.sleeps[0] <= 4.0


def test_retry_after_http_date(fake, clock):
    date = "Sun, 24 Mar 2024 08:50:00 GMT"  # epoch 1711270200
    fake.script((429, {"retry-after": date}, '{"status":{"error_code":429}}'), "ok")
    clock.t = (1_711_270_200.0 - 90.0) - 1_711_356_000.0  # the wall clock is 90 s before that date
    poller = make(fake, clock, coins="bitcoin", max_polls=2)
    list(poller.iter_ticks())
    assert clock.sleeps == [pytest.approx(90.0)]


def test_5xx_backs_off_exponentially_with_jitter(fake, clock):
    fake.script("500", "500", "500", "ok")
    poller = make(fake, clock, coins="bitcoin", backoff_base=2.0, failure_threshold=10, max_polls=4)
    assert len(list(poller.iter_ticks())) == 1
    assert poller.stats.failures["http_5xx"] == 3
    for n, delay in enumerate(clock.sleeps[:3], start=1):
        full = 2.0 * 2 ** (n - 1)
        assert 0.5 * full <= delay <= full
    assert poller.stats.retries == 3


def test_timeout_is_a_counted_failure(fake, clock):
    fake.slow_s = 0.8
    fake.script("timeout", "ok")
    poller = make(fake, clock, coins="bitcoin", timeout=0.2, max_polls=2)
    ticks = list(poller.iter_ticks())
    assert poller.stats.failures["timeout"] == 1
    assert len(ticks) == 1


@pytest.mark.parametrize(
    ("behaviour", "kind"),
    [("html", "html_body"), ("502-html", "http_5xx"), ("malformed", "malformed_json"), ("list", "bad_shape")],
)
def test_bad_bodies_never_crash(fake, clock, behaviour, kind):
    fake.script(behaviour, "ok")
    poller = make(fake, clock, coins="bitcoin", max_polls=2)
    ticks = list(poller.iter_ticks())
    assert poller.stats.failures[kind] == 1
    assert len(ticks) == 1
    assert poller.last_error is not None and poller.last_error.startswith(kind)


def test_connection_refused_is_counted(clock):
    poller = CoinGeckoPoller("bitcoin", base_url="http://127.0.0.1:9/api/v3", settings=Settings.from_env({}),
                             clock=clock, sleep=clock.sleep, max_polls=2, seed=0)
    assert list(poller.iter_ticks()) == []
    assert poller.stats.failures["connect"] == 2


def test_unknown_coin_is_counted_and_others_still_flow(fake, clock):
    poller = make(fake, clock, coins="bitcoin,no-such-coin-xyz", max_polls=2)
    ticks = list(poller.iter_ticks())
    assert {t.symbol for t in ticks} == {"BTC-USD"}
    assert poller.stats.failures["unknown_coin"] == 2


def test_bad_quote_goes_to_on_reject(fake, clock):
    fake.script("bad-quote")
    poller = make(fake, clock, coins="bitcoin", max_polls=1)
    rejected: list[Rejected] = []
    assert list(poller.iter_ticks(on_reject=rejected.append)) == []
    assert len(rejected) == 1 and rejected[0].field == "price"
    assert rejected[0].raw == {"bitcoin": {"usd": "NaN", "usd_24h_vol": 22_384_955_786.18,
                                           "last_updated_at": fake.start_updated_at}}
    assert poller.stats.failures["bad_quote"] == 1 and poller.stats.rejected == 1


def test_circuit_opens_then_probes_half_open(fake, clock):
    fake.script("500", "500", "500", "500", "ok", "ok")
    poller = make(fake, clock, coins="bitcoin", failure_threshold=3, reset_timeout=60.0,
                  backoff_base=1.0, max_backoff=1000.0)
    states = []
    poller.poll_once()
    poller.poll_once()
    states.append(poller.circuit)
    poller.poll_once()
    states.append(poller.circuit)
    assert poller.next_call_in() == pytest.approx(60.0)
    clock.sleep(60.0)
    poller.poll_once()  # the probe fails: open again, for twice as long
    states.append(poller.circuit)
    assert poller.next_call_in() == pytest.approx(120.0)
    clock.sleep(120.0)
    ticks = poller.poll_once()  # the probe succeeds
    states.append(poller.circuit)
    assert states == ["closed", "open", "open", "closed"]
    assert len(ticks) == 1
    assert poller.stats.failures["http_5xx"] == 4


def test_half_open_state_is_visible_during_the_probe(fake, clock):
    fake.script("500", "500")
    poller = make(fake, clock, coins="bitcoin", failure_threshold=2, reset_timeout=5.0)
    poller.poll_once()
    poller.poll_once()
    assert poller.circuit == "open" and poller.stats.circuit == "open"
    clock.sleep(5.0)
    seen = []
    fake.script((200, {}, '{"bitcoin":{"usd":1.5,"last_updated_at":1711356999}}'))
    original = poller._client.get

    def spy(*a, **k):
        seen.append(poller.circuit)
        return original(*a, **k)

    poller._client.get = spy  # type: ignore[method-assign]
    poller.poll_once()
    assert seen == ["half_open"] and poller.circuit == "closed"


def test_per_minute_call_budget(fake, clock):
    poller = make(fake, clock, coins="bitcoin", poll_interval=1.0, calls_per_minute=3, max_polls=5)
    list(poller.iter_ticks())
    times = [r.at for r in fake.requests]
    assert len(times) == 5
    # the 4th call waits for the 1st to leave the one-minute window
    assert clock.sleeps[:2] == [1.0, 1.0] and clock.sleeps[2] == pytest.approx(58.0)


def test_ratelimit_remaining_zero_delays_next_call(fake, clock):
    fake.retry_after_s = 45
    fake.script("ratelimit-exhausted", "ok")
    poller = make(fake, clock, coins="bitcoin", poll_interval=5.0, max_polls=2)
    assert len(list(poller.iter_ticks())) == 2
    assert clock.sleeps == [45.0]


def test_duration_stops_iteration(fake, clock):
    poller = make(fake, clock, coins="bitcoin", poll_interval=30.0, duration=100.0)
    ticks = list(poller.iter_ticks())
    assert len(ticks) == 4  # at 0, 30, 60, 90 s
    assert sum(clock.sleeps) == pytest.approx(100.0)


def test_stop_from_outside(fake, clock):
    poller = make(fake, clock, coins="bitcoin")
    out = []
    for t in poller.iter_ticks():
        out.append(t)
        if len(out) == 2:
            poller.stop()
    assert len(out) == 2


def test_parse_coins_mapping_and_errors():
    assert parse_coins({"bitcoin": "xbt-usd"}) == {"bitcoin": "XBT-USD"}
    assert parse_coins(["cardano"], "eur") == {"cardano": "ADA-EUR"}
    with pytest.raises(ValidationError):
        parse_coins("")
    with pytest.raises(ValidationError):
        parse_coins("bit coin")
    with pytest.raises(ValidationError):
        parse_coins("bitcoin=BTC'; DROP TABLE x;--")


def test_parse_simple_price_error_body_is_not_quotes():
    body = b'{"status":{"error_code":429,"error_message":"You\'ve exceeded the Rate Limit."}}'
    with pytest.raises(ValidationError) as err:
        parse_simple_price(body, {"bitcoin": "BTC-USD"}, "usd")
    assert err.value.reason.startswith("bad_shape")
