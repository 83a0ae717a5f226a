"""An in-process cache that also keeps, in order, every candle published to it."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from cryptolab.cache import MemoryCache
from cryptolab.models import Candle


class RecordingCache(MemoryCache):
    """The in-process cache, keeping every candle published to it, in order."""

    def __init__(self, prefix: str = "recording") -> None:
        super().__init__(f"{prefix}-{uuid.uuid4().hex[:8]}")
        self.published: list[Candle] = []
        self._lock = threading.Lock()

    def publish(self, candles: Any) -> None:
        with self._lock:
            self.published.extend(candles)
        super().publish(candles)
