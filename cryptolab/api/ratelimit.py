"""Per-client rate limiting: one token bucket per client, in this process.

Each client (its address) has a bucket of ``burst`` tokens refilled at ``rate`` per second;
a request takes one, and a request that finds the bucket empty is refused with the seconds
until a token is back (the API answers 429 with ``Retry-After``). The buckets live in the
process: behind a load balancer, each ``serve`` process limits on its own.

Examples
--------
>>> now = [0.0]
>>> limiter = RateLimiter(RateLimit(rate=1.0, burst=2), clock=lambda: now[0])
>>> limiter.take("10.0.0.1"), limiter.take("10.0.0.1"), limiter.take("10.0.0.1")
(0.0, 0.0, 1.0)
>>> limiter.take("10.0.0.2")
0.0
>>> now[0] = 0.5
>>> limiter.take("10.0.0.1")
0.5
>>> now[0] = 1.0
>>> limiter.take("10.0.0.1")
0.0
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = ["DEFAULT_RATE_LIMIT", "RateLimit", "RateLimiter"]

#: Buckets kept before idle (full) ones are forgotten.
_PRUNE_AT: Final = 10_000


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``rate`` requests per second per client, in bursts of up to ``burst``.

    Examples
    --------
    >>> RateLimit(rate=0, burst=1)
    Traceback (most recent call last):
    ...
    ValueError: rate must be > 0 and burst >= 1, got rate=0 burst=1
    """

    rate: float
    burst: int

    def __post_init__(self) -> None:
        if not (self.rate > 0 and self.burst >= 1):
            raise ValueError(f"rate must be > 0 and burst >= 1, got rate={self.rate} burst={self.burst}")


#: What ``cryptolab serve`` allows by default: 100 requests/s per client, bursts of 200.
DEFAULT_RATE_LIMIT: Final = RateLimit(rate=100.0, burst=200)


class RateLimiter:
    """Token buckets by client key.

    Parameters
    ----------
    limit
        Rate and burst of every bucket.
    clock
        Monotonic clock in seconds (inject a fake one in tests).
    """

    def __init__(self, limit: RateLimit, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """Take a token for ``key``: 0.0 when allowed, else the seconds until one is back."""
        now = self._clock()
        rate, burst = self.limit.rate, float(self.limit.burst)
        tokens, last = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > _PRUNE_AT:
                self._prune(now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / rate

    def _prune(self, now: float) -> None:
        """Forget buckets that are full again (they behave as absent ones)."""
        full_after = self.limit.burst / self.limit.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}

    def __len__(self) -> int:
        return len(self._buckets)
