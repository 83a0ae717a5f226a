"""CoinGecko poller: ``/simple/price`` quotes as ticks, with rate limits and a circuit breaker.

Every ``poll_interval`` seconds (30 by default) :class:`CoinGeckoPoller` calls
``GET {base_url}/simple/price?ids=...&vs_currencies=usd&include_24hr_vol=true&include_last_updated_at=true``
for the configured coins and yields one tick per coin whose quote is new.

* **Event time** is CoinGecko's ``last_updated_at`` (epoch seconds), never the
  local clock. A quote whose ``last_updated_at`` did not move forward is not
  emitted again. Ticks carry no size: the 24-hour volume is a rolling total, not
  a trade size; the latest one per symbol is kept in :attr:`CoinGeckoPoller.volumes_24h`.
* **API keys**: with ``Settings.coingecko_api_key`` set, the header
  ``x-cg-demo-api-key`` (plan ``demo``) or ``x-cg-pro-api-key`` (plan ``pro``)
  is sent. The key never appears in logs or reprs.
* **Rate limits**: a per-minute call budget (default 30 calls/minute on the
  demo plan, 500 on pro, 10 without a key) is kept on the client side; a 429
  answer is honoured by waiting ``Retry-After`` (seconds or an HTTP date), else
  the ``x-ratelimit-reset`` header, else the back-off; a successful answer with
  ``x-ratelimit-remaining: 0`` delays the next call until ``x-ratelimit-reset``.
* **Failures** -- 5xx answers, timeouts, connection errors, malformed bodies
  (HTML error pages, invalid JSON, unexpected shapes) and other 4xx answers --
  never raise: each is counted by kind in ``stats.failures`` (``http_429``,
  ``http_5xx``, ``http_4xx``, ``timeout``, ``connect``, ``html_body``,
  ``malformed_json``, ``bad_shape``, ``unknown_coin``, ``bad_quote``) and the
  next call backs off exponentially with jitter (``backoff_base * 2**(n-1)``
  seconds, capped at ``max_backoff``, times a random factor in [0.5, 1]).
* **Circuit breaker**: after ``failure_threshold`` consecutive failures the
  circuit opens and no call is made for ``reset_timeout`` seconds; then one
  probe call is made (half-open): success closes the circuit, failure opens it
  again for twice as long (capped at ``max_backoff``). The state is in
  ``stats.circuit``.

Coins are any CoinGecko ids, mapped to symbols: well-known ids have defaults
(``bitcoin`` -> ``BTC-USD``), others become ``<ID>-<VS>`` upper-cased, and
``"id=SYMBOL"`` (or a mapping) chooses the symbol.

Examples
--------
>>> parse_coins("bitcoin,ethereum=ETH-USD,my-coin")
{'bitcoin': 'BTC-USD', 'ethereum': 'ETH-USD', 'my-coin': 'MY-COIN-USD'}
>>> body = b'{"bitcoin":{"usd":67187.33,"usd_24h_vol":31.5e9,"last_updated_at":1711356300}}'
>>> ticks, rejects, unknown = parse_simple_price(body, {"bitcoin": "BTC-USD"}, "usd")
>>> ticks
[Tick(symbol='BTC-USD', ts_ms=1711356300000, price=67187.33, size=None, source='coingecko', trade_id=None)]
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import httpx

from cryptolab.config import Settings, redact_url
from cryptolab.errors import ValidationError
from cryptolab.models import MAX_PRICE, Tick, validate_symbol, validate_tick
from cryptolab.sources import Rejected, RejectHandler, SourceStats, handle_reject, loads_lenient

__all__ = [
    "KNOWN_COINS",
    "CoinGeckoPoller",
    "parse_coins",
    "parse_simple_price",
]

log = logging.getLogger(__name__)

#: Default symbols (base asset) of well-known CoinGecko ids.
KNOWN_COINS: Final[dict[str, str]] = {
    "bitcoin": "BTC",
    "ethereum": "ETH",
    "solana": "SOL",
    "cardano": "ADA",
    "ripple": "XRP",
    "dogecoin": "DOGE",
    "litecoin": "LTC",
    "polkadot": "DOT",
    "chainlink": "LINK",
    "avalanche-2": "AVAX",
    "binancecoin": "BNB",
    "tron": "TRX",
    "tether": "USDT",
    "usd-coin": "USDC",
}
_DEFAULT_BUDGET: Final = {"none": 10, "demo": 30, "pro": 500}


def parse_coins(coins: str | Sequence[str] | Mapping[str, str], vs_currency: str = "usd") -> dict[str, str]:
    """Map CoinGecko ids to symbols: ``"bitcoin,ethereum=ETH-USD"`` or a list or a mapping.

    Raises
    ------
    ValidationError
        For an empty list, a malformed id or a malformed symbol.
    """
    if isinstance(coins, Mapping):
        items = [(str(k), str(v)) for k, v in coins.items()]
    else:
        parts = coins.split(",") if isinstance(coins, str) else list(coins)
        items = []
        for part in parts:
            part = part.strip()
            if not part:
                continue
            cid, _, sym = part.partition("=")
            items.append((cid.strip(), sym.strip()))
    out: dict[str, str] = {}
    vs = vs_currency.upper()
    for cid, sym in items:
        cid = cid.lower()
        if not cid or len(cid) > 100 or not all(c.isalnum() or c in "-_." for c in cid) or not cid.isascii():
            raise ValidationError("coins", f"{cid!r} is not a CoinGecko id")
        if not sym:
            base = KNOWN_COINS.get(cid, cid.upper())
            sym = f"{base}-{vs}"
        out[cid] = validate_symbol(sym.upper())
    if not out:
        raise ValidationError("coins", "at least one coin id is required")
    return out


def parse_simple_price(
    body: bytes, coins: Mapping[str, str], vs_currency: str
) -> tuple[list[Tick], list[Rejected], list[str]]:
    """Parse a ``/simple/price`` body into ticks, rejected quotes and unknown coin ids.

    Raises
    ------
    ValidationError
        When the body as a whole is not a JSON object (field ``body``); the
        reason starts with ``html_body``, ``malformed_json`` or ``bad_shape``.
    """
    head = body[:256].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<")):
        raise ValidationError("body", "html_body: got an HTML page instead of JSON")
    data = _loads_lenient(body)
    if not isinstance(data, dict):
        raise ValidationError("body", f"bad_shape: expected a JSON object, got {type(data).__name__}")
    if "status" in data and isinstance(data["status"], dict) and "error_code" in data["status"]:
        raise ValidationError("body", f"bad_shape: error body {str(data['status'])[:200]}")
    ticks: list[Tick] = []
    rejects: list[Rejected] = []
    unknown: list[str] = []
    vs = vs_currency.lower()
    for cid, symbol in coins.items():
        quote = data.get(cid)
        if quote is None:
            unknown.append(cid)
            continue
        try:
            ticks.append(_quote_to_tick(quote, symbol, vs))
        except ValidationError as exc:
            raw = {cid: quote} if isinstance(quote, dict | list | str | int | float) else {cid: repr(quote)}
            rejects.append(Rejected(raw, exc.field, exc.reason, source="coingecko", where=f"coin {cid}"))
    return ticks, rejects, unknown


def _loads_lenient(body: bytes) -> Any:
    try:
        return loads_lenient(body)
    except ValueError as exc:
        raise ValidationError("body", f"malformed_json: {exc}") from None


def _quote_to_tick(quote: object, symbol: str, vs: str) -> Tick:
    if not isinstance(quote, dict):
        raise ValidationError("record", f"a quote must be an object, got {type(quote).__name__}")
    if not quote:
        raise ValidationError(vs, "empty quote (no price for this currency)")
    price = quote.get(vs)
    if isinstance(price, bool) or not isinstance(price, int | float):
        raise ValidationError("price", f"must be a number, got {price!r}"[:200])
    price = float(price) if not isinstance(price, int) or abs(price) < MAX_PRICE else math.inf
    updated = quote.get("last_updated_at")
    if isinstance(updated, bool) or not isinstance(updated, int | float):
        raise ValidationError("last_updated_at", f"must be epoch seconds, got {updated!r}"[:200])
    if not (isinstance(updated, int) or math.isfinite(updated)) or abs(updated) > 1e11:
        raise ValidationError("last_updated_at", f"{str(updated)[:40]} is not epoch seconds")
    return validate_tick(
        Tick(symbol=symbol, ts_ms=int(updated * 1000), price=price, source="coingecko")
    )


def _retry_after(value: str | None, now_wall: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        secs = float(value)
        return max(0.0, secs) if math.isfinite(secs) else None
    except ValueError:
        pass
    try:
        dt = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, dt.timestamp() - now_wall)


def _ratelimit_reset(value: str | None, now_wall: float) -> float | None:
    """Seconds until ``x-ratelimit-reset`` (delta seconds, or epoch seconds when large)."""
    if not value:
        return None
    try:
        v = float(value.strip())
    except ValueError:
        return _retry_after(value, now_wall)
    if not math.isfinite(v) or v < 0:
        return None
    return max(0.0, v - now_wall) if v > 1e9 else v


@dataclass
class _Circuit:
    state: str = "closed"
    failures: int = 0
    opened_at: float = 0.0
    open_for: float = 0.0


class CoinGeckoPoller:
    """Poll CoinGecko's ``/simple/price`` (a :class:`~cryptolab.sources.Source`).

    Parameters
    ----------
    coins
        CoinGecko ids (``"bitcoin,ethereum"``, a list, or ``{id: symbol}``).
    vs_currency
        Quote currency (``usd``).
    settings
        Base URL, API key and plan (``CRYPTOLAB_COINGECKO_*``).
    base_url, api_key, plan
        Override the settings' values.
    poll_interval
        Seconds between calls (default 30).
    calls_per_minute
        Client-side call budget (default by plan: 10 without a key, 30 demo, 500 pro).
    timeout
        HTTP timeout in seconds.
    backoff_base, max_backoff
        Exponential back-off after failures, in seconds.
    failure_threshold, reset_timeout
        Consecutive failures that open the circuit; seconds it stays open first.
    max_polls, duration
        Stop after this many calls / this many seconds (default: run until :meth:`stop`).
    transport
        An ``httpx`` transport (tests).
    clock, sleep, wall_clock
        Injected for tests: monotonic clock, sleep, and wall clock (``time.time``).
    seed
        Seed of the jitter.
    """

    name: Final = "coingecko"
    validated: Final = True

    def __init__(
        self,
        coins: str | Sequence[str] | Mapping[str, str] = ("bitcoin", "ethereum"),
        *,
        vs_currency: str = "usd",
        settings: Settings | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        plan: str | None = None,
        poll_interval: float = 30.0,
        calls_per_minute: int | None = None,
        timeout: float = 10.0,
        backoff_base: float = 2.0,
        max_backoff: float = 300.0,
        failure_threshold: int = 5,
        reset_timeout: float = 60.0,
        max_polls: int | None = None,
        duration: float | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        wall_clock: Callable[[], float] = time.time,
        seed: int | None = None,
    ) -> None:
        s = settings if settings is not None else Settings.from_env()
        if not vs_currency.isascii() or not vs_currency.isalpha() or len(vs_currency) > 10:
            raise ValidationError("vs_currency", f"{vs_currency!r} is not a currency code")
        self.vs_currency = vs_currency.lower()
        self.coins = parse_coins(coins, self.vs_currency)
        self.base_url = (base_url or s.coingecko_url).rstrip("/")
        self._api_key = api_key if api_key is not None else s.coingecko_api_key
        self.plan = (plan or s.coingecko_plan).lower()
        if self.plan not in ("demo", "pro"):
            raise ValidationError("plan", f"must be demo or pro, got {self.plan!r}")
        for name, v in (("poll_interval", poll_interval), ("timeout", timeout),
                        ("backoff_base", backoff_base), ("max_backoff", max_backoff),
                        ("reset_timeout", reset_timeout)):
            if not (math.isfinite(v) and v > 0):
                raise ValidationError(name, f"must be > 0 seconds, got {v}")
        if failure_threshold < 1:
            raise ValidationError("failure_threshold", f"must be >= 1, got {failure_threshold}")
        self.poll_interval = float(poll_interval)
        budget_key = self.plan if self._api_key else "none"
        self.calls_per_minute = calls_per_minute or _DEFAULT_BUDGET[budget_key]
        if self.calls_per_minute < 1:
            raise ValidationError("calls_per_minute", f"must be >= 1, got {self.calls_per_minute}")
        self.timeout = float(timeout)
        self.backoff_base = float(backoff_base)
        self.max_backoff = float(max_backoff)
        self.failure_threshold = failure_threshold
        self.reset_timeout = float(reset_timeout)
        self.max_polls = max_polls
        self.duration = duration
        self.stats = SourceStats()
        self.polls = 0
        self.volumes_24h: dict[str, float] = {}
        self.last_error: str | None = None
        self._clock = clock
        self._wall = wall_clock
        self._stop = threading.Event()
        self._sleep = sleep if sleep is not None else self._interruptible_sleep
        self._rng = random.Random(seed)
        self._calls: deque[float] = deque()
        self._last_seen: dict[str, int] = {}
        self._next_call = -math.inf
        self._consecutive = 0
        self._circuit = _Circuit()
        headers = {"accept": "application/json", "user-agent": "cryptolab"}
        if self._api_key:
            headers["x-cg-pro-api-key" if self.plan == "pro" else "x-cg-demo-api-key"] = self._api_key
        self._client = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=self.timeout, transport=transport,
            follow_redirects=False,
        )
        self._warned_unknown: set[str] = set()

    def __repr__(self) -> str:
        return (f"CoinGeckoPoller(coins={list(self.coins)}, base_url={redact_url(self.base_url)!r}, "
                f"plan={self.plan!r}, key={'***' if self._api_key else None}, "
                f"poll_interval={self.poll_interval})")

    # -- lifecycle ----------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`iter_ticks` to return (from another thread or a signal handler)."""
        self._stop.set()

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def _interruptible_sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    # -- scheduling ---------------------------------------------------------------

    @property
    def circuit(self) -> str:
        """Circuit state: ``closed``, ``open`` or ``half_open``."""
        return self._circuit.state

    def _budget_wait(self, now: float) -> float:
        while self._calls and now - self._calls[0] >= 60.0:
            self._calls.popleft()
        if len(self._calls) < self.calls_per_minute:
            return 0.0
        return self._calls[0] + 60.0 - now

    def next_call_in(self) -> float:
        """Seconds until the next call is allowed (schedule, back-off, budget, circuit)."""
        now = self._clock()
        wait = max(0.0, self._next_call - now, self._budget_wait(now))
        c = self._circuit
        if c.state == "open":
            wait = max(wait, c.opened_at + c.open_for - now)
        return wait

    def _backoff(self) -> float:
        n = max(1, self._consecutive)
        delay = min(self.max_backoff, self.backoff_base * float(2 ** min(n - 1, 30)))
        return delay * (0.5 + 0.5 * self._rng.random())

    def _failure(self, kind: str, detail: str, *, wait: float | None = None,
                 counts_for_circuit: bool = True) -> None:
        self.stats.failures[kind] += 1
        self.last_error = f"{kind}: {detail}"[:300]
        now = self._clock()
        if counts_for_circuit:
            self._consecutive += 1
            c = self._circuit
            if c.state == "half_open":
                c.state = "open"
                c.opened_at = now
                c.open_for = min(self.max_backoff, max(c.open_for, self.reset_timeout) * 2)
                log.warning("coingecko: probe failed (%s); circuit open for %.0fs", kind, c.open_for)
            elif c.state == "closed" and self._consecutive >= self.failure_threshold:
                c.state = "open"
                c.opened_at = now
                c.open_for = self.reset_timeout
                log.warning("coingecko: %d failures in a row; circuit open for %.0fs",
                            self._consecutive, c.open_for)
            self.stats.circuit = c.state
        delay = wait if wait is not None else self._backoff()
        self.stats.retries += 1
        self._next_call = now + max(delay, 0.0)
        log.warning("coingecko: %s (%s); next call in %.1fs", kind, detail[:200], delay)

    def _success(self) -> None:
        self._consecutive = 0
        if self._circuit.state != "closed":
            log.info("coingecko: circuit closed")
        self._circuit = _Circuit()
        self.stats.circuit = "closed"

    # -- one call ---------------------------------------------------------------------

    def poll_once(self, on_reject: RejectHandler | None = None) -> list[Tick]:
        """Make one call now (whatever the schedule) and return the new ticks.

        Never raises for a bad answer: failures are counted and scheduled for
        back-off; rejected quotes go to ``on_reject`` (else are logged).
        """
        now = self._clock()
        c = self._circuit
        if c.state == "open" and now >= c.opened_at + c.open_for:
            c.state = "half_open"
            self.stats.circuit = "half_open"
            log.info("coingecko: circuit half-open, probing")
        self._calls.append(now)
        self.polls += 1
        self._next_call = now + self.poll_interval
        params = {
            "ids": ",".join(self.coins),
            "vs_currencies": self.vs_currency,
            "include_24hr_vol": "true",
            "include_last_updated_at": "true",
        }
        try:
            resp = self._client.get("/simple/price", params=params)
        except httpx.TimeoutException as exc:
            self._failure("timeout", f"no answer within {self.timeout}s ({type(exc).__name__})")
            return []
        except httpx.TransportError as exc:
            self._failure("connect", f"{type(exc).__name__}: {exc}")
            return []
        wall = self._wall()
        code = resp.status_code
        if code == 429:
            wait = _retry_after(resp.headers.get("retry-after"), wall)
            if wait is None:
                wait = _ratelimit_reset(resp.headers.get("x-ratelimit-reset"), wall)
            self._failure("http_429", f"rate limited: {resp.text[:160]!r}",
                          wait=min(wait, 3600.0) if wait is not None else None,
                          counts_for_circuit=False)
            return []
        if code >= 500:
            self._failure("http_5xx", f"HTTP {code}: {resp.text[:160]!r}")
            return []
        if code != 200:
            self._failure("http_4xx", f"HTTP {code}: {resp.text[:160]!r}")
            return []
        try:
            ticks, rejects, unknown = parse_simple_price(resp.content, self.coins, self.vs_currency)
        except ValidationError as exc:
            kind, _, detail = exc.reason.partition(": ")
            self._failure(kind, detail)
            return []
        self._success()
        remaining = resp.headers.get("x-ratelimit-remaining")
        if remaining is not None and remaining.strip() == "0":
            reset = _ratelimit_reset(resp.headers.get("x-ratelimit-reset"), wall)
            if reset is not None:
                self._next_call = max(self._next_call, now + min(reset, 3600.0))
        for cid in unknown:
            self.stats.failures["unknown_coin"] += 1
            if cid not in self._warned_unknown:
                self._warned_unknown.add(cid)
                log.warning("coingecko: unknown coin id %r (absent from the answer)", cid)
        for rej in rejects:
            self.stats.failures["bad_quote"] += 1
            handle_reject(rej, self.stats, on_reject, "skip")
        data = _volumes(resp.content, self.coins, self.vs_currency)
        self.volumes_24h.update(data)
        fresh: list[Tick] = []
        for t in ticks:
            if t.ts_ms <= self._last_seen.get(t.symbol, 0):
                self.stats.skipped += 1
                continue
            self._last_seen[t.symbol] = t.ts_ms
            fresh.append(t)
        self.stats.ticks += len(fresh)
        return fresh

    # -- the source ---------------------------------------------------------------------

    def iter_ticks(self, *, on_reject: RejectHandler | None = None) -> Iterator[Tick]:
        """Poll until :meth:`stop`, ``max_polls`` or ``duration``; yield new quotes as ticks."""
        started = self._clock()
        while not self._stop.is_set():
            if self.max_polls is not None and self.polls >= self.max_polls:
                return
            wait = self.next_call_in()
            if self.duration is not None:
                left = started + self.duration - self._clock()
                if left <= 0 or wait > left:
                    if wait > left > 0:
                        self._sleep(left)
                    return
            if wait > 0:
                self._sleep(wait)
                continue
            yield from self.poll_once(on_reject)

    def __enter__(self) -> CoinGeckoPoller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _volumes(body: bytes, coins: Mapping[str, str], vs: str) -> dict[str, float]:
    try:
        data: Any = _loads_lenient(body)
    except ValidationError:
        return {}
    out: dict[str, float] = {}
    for cid, sym in coins.items():
        q = data.get(cid) if isinstance(data, dict) else None
        v = q.get(f"{vs}_24h_vol") if isinstance(q, dict) else None
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0:
            out[sym] = float(v)
    return out
