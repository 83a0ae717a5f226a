"""The partitions a member owns: where each one stands, and its windows.

A partition is taken on assignment (its windows restored from the stored progress, the
consumer sought to the stored offset), released on revocation, resynced after a fenced
commit, and closed when it reaches its end (``stop_at_end``) or goes idle.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from cryptolab.candles.state import state_from_bytes, state_to_bytes
from cryptolab.candles.stream import CandleAggregator

if TYPE_CHECKING:  # pragma: no cover
    from cryptolab.store import PartitionProgress

__all__ = ["Owned", "Partitions"]

#: The package's one logger: its lines keep the name they always had.
log = logging.getLogger("cryptolab.pipeline")


@dataclass
class Owned:
    """What this member knows about a partition it owns.

    The decoder moves :attr:`next_offset` on and marks the partition :attr:`dirty` when a
    batch brings it messages; a commit stores :attr:`next_offset`, which becomes the next
    fencing token (:attr:`expected`).
    """

    expected: int | None  # offset stored in the progress table (fencing token)
    next_offset: int  # next offset to consume
    last_seen: float = field(default_factory=time.monotonic)
    dirty: bool = False
    idle_closed: bool = False
    finished: bool = False  # stop_at_end: drained to its end offset, windows closed, not fetched any more


class Partitions:
    """The partitions a member owns (:attr:`owned`), and their windows in ``aggregator``.

    Parameters
    ----------
    topic
        The tick topic.
    aggregator
        The member's windows, which hold a state per partition.

    Examples
    --------
    >>> from confluent_kafka import TopicPartition
    >>> from cryptolab.candles.stream import CandleAggregator
    >>> parts = Partitions("ticks", CandleAggregator(intervals="1m"))
    >>> tps = [TopicPartition("ticks", 0), TopicPartition("ticks", 1)]
    >>> parts.take(tps, {})
    >>> sorted(parts.owned), parts.unfinished(), parts.dirty()
    ([0, 1], [0, 1], {})
    >>> parts.release([1]); sorted(parts.owned)
    [0]
    """

    def __init__(self, topic: str, aggregator: CandleAggregator) -> None:
        self.topic = topic
        self.aggregator = aggregator
        #: partition -> what this member knows about it (shared with the decoder)
        self.owned: dict[int, Owned] = {}

    def lag(self, consumer: Consumer | None) -> dict[int, tuple[int | None, int | None]]:
        """Per owned partition: messages behind the end of its log, and its event-time watermark
        (see :meth:`cryptolab.pipeline.CandlePipeline.lag`)."""
        out: dict[int, tuple[int | None, int | None]] = {}
        for p, o in list(self.owned.items()):
            behind = None
            if consumer is not None:
                try:
                    _low, high = consumer.get_watermark_offsets(TopicPartition(self.topic, p), cached=True)
                except (KafkaException, RuntimeError):  # not fetched yet, or closing
                    high = -1
                behind = max(0, high - o.next_offset) if high >= 0 else None
            out[p] = (behind, self.aggregator.watermark(p))
        return out

    def take(self, partitions: list[TopicPartition], progress: Mapping[int, PartitionProgress]) -> None:
        """Own ``partitions`` from their stored ``progress`` (from the start when there is none):
        windows restored, and each ``TopicPartition``'s offset set where consuming resumes."""
        for tp in partitions:
            pr = progress.get(tp.partition)
            if pr is None:
                tp.offset = OFFSET_BEGINNING
                self.aggregator.forget(tp.partition)
                self.owned[tp.partition] = Owned(expected=None, next_offset=0)
            else:
                tp.offset = pr.offset
                self.aggregator.restore(tp.partition, state_from_bytes(pr.state))
                self.owned[tp.partition] = Owned(expected=pr.offset, next_offset=pr.offset)

    def release(self, partitions: list[int]) -> None:
        """Stop owning ``partitions``: another member folds them next."""
        for p in partitions:
            self.owned.pop(p, None)
            self.aggregator.forget(p)

    def unfinished(self) -> list[int]:
        """The partitions not drained to their end yet."""
        return [p for p, o in self.owned.items() if not o.finished]

    def dirty(self) -> dict[int, Owned]:
        """The partitions with progress not handed to a commit yet."""
        return {p: o for p, o in self.owned.items() if o.dirty}

    def checkpoint(self) -> tuple[dict[int, PartitionProgress], dict[int, int | None]]:
        """The progress to store for each dirty partition (next offset, watermark and windows:
        call it after the aggregator's ``drain``), and its fencing token; they are clean again."""
        from cryptolab.store import PartitionProgress

        dirty = self.dirty()
        progress = {
            p: PartitionProgress(
                partition=p,
                offset=o.next_offset,
                watermark_ms=self.aggregator.watermark(p),
                state=state_to_bytes(self.aggregator.snapshot(p)),
            )
            for p, o in dirty.items()
        }
        expected = {p: o.expected for p, o in dirty.items()}
        for o in dirty.values():
            o.dirty = False
        return progress, expected

    def stored(self, progress: Mapping[int, PartitionProgress]) -> None:
        """A commit of ``progress`` landed: its offsets are the partitions' next fencing tokens."""
        for p, pr in progress.items():
            o = self.owned.get(p)
            if o is not None:
                o.expected = pr.offset

    def resync(
        self, partitions: list[int], progress: Mapping[int, PartitionProgress], consumer: Consumer | None
    ) -> None:
        """After being fenced: restore the windows of ``partitions`` from their stored
        ``progress`` and seek back to its offsets (to the start where there is none)."""
        paused: list[TopicPartition] = []
        for p in partitions:
            pr = progress.get(p)
            o = self.owned.get(p)
            if o is None:
                continue
            if pr is None:
                self.aggregator.forget(p)
                o.expected, o.next_offset = None, 0
                off = OFFSET_BEGINNING
            else:
                self.aggregator.restore(p, state_from_bytes(pr.state))
                o.expected, o.next_offset = pr.offset, pr.offset
                off = pr.offset
            o.dirty = False
            if o.finished:  # closed at its end by a commit that did not land: drained again
                o.finished = False
                paused.append(TopicPartition(self.topic, p))
            if consumer is not None:
                try:
                    consumer.seek(TopicPartition(self.topic, p, off))
                except Exception:  # partition may be gone after a rebalance
                    log.debug("seek failed for partition %s", p, exc_info=True)
        if paused and consumer is not None:
            try:
                consumer.resume(paused)
            except Exception:  # partition may be gone after a rebalance
                log.debug("resume failed for partitions %s", paused, exc_info=True)

    def finish_drained(self, drained: Callable[[int, int], bool]) -> list[int]:
        """Close the windows of each partition ``drained(partition, next_offset)`` says is at its
        end, once, and mark it finished and dirty (the next commit stores the closed windows);
        return those."""
        done = [p for p, o in self.owned.items() if not o.finished and drained(p, o.next_offset)]
        for p in done:
            self.aggregator.close_partition(p)
            o = self.owned[p]
            o.finished = o.dirty = True
        return done

    def idle_close(self, timeout_s: float, now: float) -> int:
        """Close the windows of each partition without a message for ``timeout_s`` (once until
        the next message); return how many were closed."""
        closed = 0
        for p, o in self.owned.items():
            if o.idle_closed or o.finished:
                continue
            if now - o.last_seen >= timeout_s and self.aggregator.open_windows(p):
                self.aggregator.close_partition(p)
                o.idle_closed = True
                o.dirty = True
                closed += 1
        return closed
