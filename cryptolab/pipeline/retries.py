"""Calls to the store, retried while it is unavailable."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from cryptolab.errors import FencedError, StoreError
from cryptolab.pipeline.stats import PipelineStats

__all__ = ["StoreRetry"]

#: The package's one logger: its lines keep the name they always had.
log = logging.getLogger("cryptolab.pipeline")

T = TypeVar("T")


class StoreRetry:
    """Call the store until it answers: a database restart must not kill the consumer.

    A :class:`~cryptolab.errors.StoreError` is counted in ``stats.store_retries``, logged and
    retried after a back-off (0.2 s doubling up to 5 s), unless ``stop`` is set: then it is
    raised. A :class:`~cryptolab.errors.FencedError` is an answer, not an outage: raised at once.

    Parameters
    ----------
    stats
        The pipeline's counters.
    stop
        Set when the pipeline is asked to stop.

    Examples
    --------
    >>> import threading
    >>> from cryptolab.errors import StoreError
    >>> answers = [StoreError("down"), 42]
    >>> def call():
    ...     answer = answers.pop(0)
    ...     if isinstance(answer, Exception):
    ...         raise answer
    ...     return answer
    >>> stats = PipelineStats()
    >>> StoreRetry(stats, threading.Event())(call), stats.store_retries
    (42, 1)
    """

    def __init__(self, stats: PipelineStats, stop: threading.Event) -> None:
        self.stats = stats
        self.stop = stop

    def __call__(self, fn: Callable[[], T]) -> T:
        """``fn()``, called again while the store is unavailable."""
        delay = 0.2
        while True:
            try:
                return fn()
            except FencedError:
                raise
            except StoreError as exc:
                self.stats.store_retries += 1
                if self.stop.is_set():
                    raise
                log.warning("store unavailable (%s); retrying in %.1fs", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
