"""A live, paced feed in a worker process (the latency benchmark's producer)."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from cryptolab.config import Settings

__all__ = ["work_feed"]


def work_feed(p: dict[str, Any]) -> dict[str, Any]:
    """A live feed: ticks stamped with the wall clock when sent, ``rate`` a second, paced."""
    from cryptolab.models import Tick
    from cryptolab.producer import TickProducer
    from cryptolab.sources.synthetic import synthetic_symbols

    settings = Settings.from_env({}, kafka_bootstrap=p["kafka"])
    symbols = synthetic_symbols(p["symbols"])
    rng = np.random.default_rng(5)
    prices = {s: 100.0 * (1 + i) for i, s in enumerate(symbols)}
    step = 0.005
    per_step = max(1, round(p["rate"] * step))
    sent = 0
    with TickProducer(settings, topic=p["topic"], create_topic=False, linger_ms=p["linger_ms"]) as producer:
        t_end = time.monotonic() + p["seconds"]
        nxt = time.monotonic()
        i = 0
        while time.monotonic() < t_end:
            batch = []
            for move in rng.normal(0.0, 1e-4, per_step).tolist():
                sym = symbols[i % len(symbols)]
                i += 1
                prices[sym] = round(prices[sym] * math.exp(move), 4)
                batch.append(Tick(symbol=sym, ts_ms=int(time.time() * 1000), price=prices[sym], size=0.5,
                                  source="bench"))
            producer.send_many(batch)
            producer.poll(0)
            sent += len(batch)
            nxt += step
            delay = nxt - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    return {"ticks_sent": sent}
