"""cryptolab: real-time crypto market analytics, Jupyter-first.

Ticks from market-data sources go through Kafka (keyed by symbol) into a
windowing consumer that builds event-time OHLCV candles and writes them
exactly once to a SQL store (PostgreSQL/TimescaleDB, or embedded SQLite) and
to Redis (or an in-process cache) for live views; online anomaly detectors
score the candles and raise alerts.

Quick start (pure, no services)::

    >>> import pandas as pd
    >>> import cryptolab
    >>> ticks = pd.DataFrame({
    ...     "symbol": ["BTC-USD"] * 3,
    ...     "ts_ms": [1_700_000_040_000, 1_700_000_070_000, 1_700_000_100_000],
    ...     "price": [100.0, 101.0, 99.0],
    ...     "size": [1.0, 2.0, 1.0],
    ... })
    >>> candles = cryptolab.candles_from_ticks(ticks, intervals="1m")
    >>> candles[["window_start", "open", "high", "low", "close", "volume", "trades"]]
                   window_start   open   high    low  close  volume  trades
    0 2023-11-14 22:14:00+00:00  100.0  101.0  100.0  101.0     3.0       2
    1 2023-11-14 22:15:00+00:00   99.0   99.0   99.0   99.0     1.0       1

Every candle frame (``candles_from_ticks``, ``history``, ``score_history``) has
``window_start``/``window_end`` as tz-aware UTC datetimes.

Everything public is listed in ``__all__``; modules are imported lazily so
``import cryptolab`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "Tick": "cryptolab.models",
    "Candle": "cryptolab.models",
    "Alert": "cryptolab.models",
    "Settings": "cryptolab.config",
    "CryptolabError": "cryptolab.errors",
    "ValidationError": "cryptolab.errors",
    "CandleAggregator": "cryptolab.candles.stream",
    "candles_from_ticks": "cryptolab.candles.batch",
    "TickProducer": "cryptolab.producer",
    "CandlePipeline": "cryptolab.pipeline",
    "history": "cryptolab.store",
    "latest": "cryptolab.cache",
    "score_history": "cryptolab.anomaly",
    "CandleChart": "cryptolab.viz",
    "run_notebook": "cryptolab.reports.notebooks",
    "live": "cryptolab.market.session",
}

__all__ = [
    "Alert",
    "Candle",
    "CandleAggregator",
    "CandleChart",
    "CandlePipeline",
    "CryptolabError",
    "Settings",
    "Tick",
    "TickProducer",
    "ValidationError",
    "__version__",
    "candles_from_ticks",
    "history",
    "latest",
    "live",
    "run_notebook",
    "score_history",
]

if TYPE_CHECKING:  # pragma: no cover
    from cryptolab.anomaly import score_history
    from cryptolab.cache import latest
    from cryptolab.candles.batch import candles_from_ticks
    from cryptolab.candles.stream import CandleAggregator
    from cryptolab.config import Settings
    from cryptolab.errors import CryptolabError, ValidationError
    from cryptolab.market.session import live
    from cryptolab.models import Alert, Candle, Tick
    from cryptolab.pipeline import CandlePipeline
    from cryptolab.producer import TickProducer
    from cryptolab.reports.notebooks import run_notebook
    from cryptolab.store import history
    from cryptolab.viz import CandleChart


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cryptolab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
