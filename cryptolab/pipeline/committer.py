"""The commit thread: a batch's results and progress to the store in one fenced transaction.

Commits run on a thread of their own, one at a time: while batch N is written (store,
then cache), batch N+1 is consumed and folded; N+1 is submitted only after N has been
reaped, with N's offsets as its fencing token. A reaped commit has *landed*, or was
*fenced* (another member committed from those offsets first: ``job.fenced``).

When the connection is lost at COMMIT, the outcome is unknown: the retry then meets the
batch's own offsets at the fence. The stored progress tells the two apart: the very same
offsets and window state mean the first attempt went through, and the batch has landed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptolab.errors import FencedError
from cryptolab.models import Alert, Candle
from cryptolab.pipeline.retries import StoreRetry
from cryptolab.pipeline.stats import CommitTimes, PipelineStats
from cryptolab.store.records import WebhookDelivery

if TYPE_CHECKING:  # pragma: no cover
    from cryptolab.store import Store

__all__ = ["CommitJob", "Committer"]

#: The package's one logger: its lines keep the name they always had.
log = logging.getLogger("cryptolab.pipeline")


@dataclass(slots=True)
class CommitJob:
    """One batch's results and progress, on their way to the store and then the cache."""

    finals: Sequence[Candle]
    updates: list[Candle]
    alerts: list[Alert]
    late: list[Any]
    progress: dict[int, Any]
    expected: dict[int, int | None]
    inserted: list[Alert] = field(default_factory=list)
    fenced: FencedError | None = None
    deliveries: list[WebhookDelivery] = field(default_factory=list)


class Committer:
    """Write :class:`CommitJob` s to the store, fenced, one at a time, on a thread of its own.

    Parameters
    ----------
    store
        Where results and progress are committed.
    group, topic
        Whose progress it is.
    retry
        Calls the store until it answers.
    stats
        The pipeline's counters (``store_retries`` tells an unknown outcome).
    deliver
        ``f(candles, new_alerts)`` after a commit landed (on the commit thread): publishing.
    """

    def __init__(
        self, store: Store, *, group: str, topic: str, retry: StoreRetry, stats: PipelineStats,
        deliver: Callable[[list[Candle], list[Alert]], None],
    ) -> None:
        self.store = store
        self.group = group
        self.topic = topic
        self.retry = retry
        self.stats = stats
        self.deliver = deliver
        #: how long the commits that landed took (store round trips and retries included)
        self.times = CommitTimes()
        self._executor: ThreadPoolExecutor | None = None
        #: The commit submitted and not reaped yet, and its future.
        self.inflight: tuple[CommitJob, Future[None]] | None = None

    @property
    def running(self) -> bool:
        """Whether the commit thread is started."""
        return self._executor is not None

    def start(self) -> None:
        """Start the commit thread."""
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="cryptolab-commit")

    def shutdown(self) -> None:
        """Stop the commit thread, once the commit in flight is written."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def submit(self, job: CommitJob) -> None:
        """Hand ``job`` to the commit thread (the previous one must have been reaped)."""
        assert self._executor is not None and self.inflight is None
        self.inflight = (job, self._executor.submit(self.write, job))

    def reap(self) -> CommitJob | None:
        """Wait for the commit in flight, if any, and return it: landed, or fenced (``job.fenced``).

        Raises
        ------
        Exception
            What the commit thread could not handle.
        """
        if self.inflight is None:
            return None
        job, done = self.inflight
        self.inflight = None
        done.result()  # re-raises what the commit thread could not handle
        return job

    def write(self, job: CommitJob) -> None:
        """Commit ``job`` to the store, then deliver it (on the commit thread)."""
        retries = self.stats.store_retries
        started = time.perf_counter()
        try:
            job.inserted = self.retry(
                lambda: self.store.commit_batch(
                    group=self.group, topic=self.topic, candles=job.finals, alerts=job.alerts,
                    late_ticks=job.late, progress=job.progress, expected_offsets=job.expected,
                    deliveries=job.deliveries,
                )
            )
        except FencedError as exc:
            if self.stats.store_retries == retries or not self.landed(job.progress):
                job.fenced = exc
                return
            # The connection was lost at COMMIT and the commit had gone through: the retry met
            # our own offsets at the fence. Which alerts were new is unknown: all go out (the
            # cache's payloads are idempotent).
            log.warning("a commit whose outcome was unknown had succeeded (%s)", exc)
            job.inserted = job.alerts
        self.times.observe(time.perf_counter() - started, now_ms=int(time.time() * 1000))
        self.deliver([*job.finals, *job.updates], job.inserted)  # closed candles first: they are awaited

    def landed(self, progress: dict[int, Any]) -> bool:
        """Whether the store holds exactly this progress (offsets and window state) already."""
        stored = self.retry(lambda: self.store.load_progress(self.group, self.topic, list(progress)))
        return all(
            p in stored and stored[p].offset == pr.offset and bytes(stored[p].state) == bytes(pr.state)
            for p, pr in progress.items()
        )
