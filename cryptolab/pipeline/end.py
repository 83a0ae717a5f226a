"""``run(stop_at_end=True)``: when the whole topic is done, whichever member of the group did it.

The end offsets are read when the run starts; the group's stored progress then tells which
partitions are done. A member drains and closes the partitions it owns, stays in the group to
take over those freed later, and waits (saying which) for those other members hold, up to a
limit without progress.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from cryptolab.candles.state import state_from_bytes, state_has_open_windows
from cryptolab.errors import EndNotReachedError

if TYPE_CHECKING:  # pragma: no cover
    from cryptolab.store import PartitionProgress

__all__ = ["EndOfTopic"]

#: The package's one logger: its lines keep the name they always had.
log = logging.getLogger("cryptolab.pipeline")

#: How often the group's stored progress is read again (s), and how often a member that has
#: nothing of its own left says which partitions it waits for (s).
_END_CHECK_S = 1.0
_END_SAY_S = 5.0


class EndOfTopic:
    """What ``run(stop_at_end=True)`` waits for, read from the group's stored progress.

    A partition is *done* when the stored progress of the group has reached the end offset the
    partition had when the run started and holds no open window, whichever member did it (a
    partition empty at start is done without progress). :meth:`update` is given the stored
    progress and keeps the partitions not done yet in :attr:`left`, and when they last moved.

    Examples
    --------
    >>> from cryptolab.store import PartitionProgress as P
    >>> end = EndOfTopic({0: (0, 5), 1: (0, 0), 2: (3, 3)}, wait_s=60)
    >>> end.update({}, now=0.0)
    True
    >>> end.left, end.drained(2, 0), end.drained(0, 4)
    ({0: 0}, True, False)
    >>> end.update({0: P(partition=0, offset=5, watermark_ms=None, state=b"")}, now=1.0), end.left
    (True, {})

    A member with nothing of its own left, waiting for a partition another member holds:

    >>> end = EndOfTopic({0: (0, 5)}, wait_s=0)
    >>> end.check(lambda: {}, owned=[], idle=True, assigned=True, commits=0), end.gave_up
    ([0], True)
    """

    def __init__(self, watermarks: dict[int, tuple[int, int]], wait_s: float) -> None:
        self.targets = {p: high for p, (_low, high) in watermarks.items()}
        self._empty = {p for p, (low, high) in watermarks.items() if high <= low}
        self.wait_s = wait_s
        self.left: dict[int, int] = {}  # partitions not done -> stored offset, capped at the target
        self.reached = False
        self.gave_up = False
        self.checked_at = -math.inf
        self.commits_seen = -1
        self.moved_at = time.monotonic()  # when the partitions not done last moved
        self.waiting_since: float | None = None  # since when this member has had nothing of its own
        self.said_at = -math.inf

    def drained(self, partition: int, next_offset: int) -> bool:
        """Whether a member that will consume ``next_offset`` next has reached the partition's end."""
        return next_offset >= self.targets.get(partition, 0) or partition in self._empty

    def update(self, stored: dict[int, PartitionProgress], now: float) -> bool:
        """Recompute :attr:`left` and :attr:`reached` from ``stored``; return whether anything moved."""
        left: dict[int, int] = {}
        for p, target in self.targets.items():
            pr = stored.get(p)
            if pr is None:
                if target > 0 and p not in self._empty:
                    left[p] = 0
            elif (pr.offset < target and p not in self._empty) or state_has_open_windows(
                    state_from_bytes(pr.state)):
                left[p] = min(pr.offset, target)
        moved = left != self.left
        if moved:
            self.moved_at = now
        self.left = left
        self.reached = not left
        return moved

    def check(
        self, load: Callable[[], dict[int, PartitionProgress]], *, owned: Collection[int], idle: bool,
        assigned: bool, commits: int, force: bool = False,
    ) -> list[int] | None:
        """Read the group's stored progress with ``load`` when due, and judge it.

        It is due every second, or at once when this member is ``idle`` (it has nothing of
        its own left and its last commit landed) and has committed since the last look, or
        when ``force`` is given. :attr:`reached` is set, or :attr:`gave_up` after
        :attr:`wait_s` without progress on the partitions other members hold: the clock runs
        only while this member is ``assigned`` partitions and ``idle`` (not while the group
        rebalances).

        Parameters
        ----------
        load
            Reads the group's stored progress, every partition.
        owned
            The partitions this member owns.
        idle
            Whether none of them is left to drain.
        assigned
            Whether the member has an assignment (the group is not rebalancing).
        commits
            How many commits this member has made.
        force
            Look now, and only update :attr:`left` and :attr:`reached`.

        Returns
        -------
        list of int or None
            The partitions not done that other members hold; ``None`` when not due.
        """
        now = time.monotonic()
        fresh = idle and commits != self.commits_seen
        if not (force or fresh or now - self.checked_at >= _END_CHECK_S):
            return None
        self.checked_at, self.commits_seen = now, commits
        self.update(load(), now)
        others = sorted(set(self.left) - set(owned))
        if not (self.reached or force):
            self._wait(others, idle=idle, assigned=assigned, now=now)
        return others

    def _wait(self, others: list[int], *, idle: bool, assigned: bool, now: float) -> None:
        """Run the clock of a member waiting for ``others``; give up, or say so now and then."""
        if not idle or not others:  # this member is at work (or its last commit is on its way)
            self.moved_at, self.waiting_since = now, None
            return
        if self.waiting_since is None:
            self.waiting_since, self.said_at = now, now - _END_SAY_S + 1.0  # first said after 1 s
        if not assigned:  # the group is (re)balancing: that is not time lost, and who
            self.moved_at = now  # holds which partition is not known yet: nothing to say
            return
        if now - self.moved_at >= self.wait_s:
            self.gave_up = True
        elif now - self.said_at >= _END_SAY_S:
            self.said_at = now
            log.warning(
                "waiting for partitions %s held by other members (%.0fs; gives up after %gs without "
                "progress)", ", ".join(map(str, others)), now - self.waiting_since, self.wait_s,
            )

    def error(self, topic: str, group: str, why: str) -> EndNotReachedError:
        """The error of a run that ended before the topic was done."""
        left = sorted(self.left)
        names = ", ".join(map(str, left))
        return EndNotReachedError(
            f"partition{'s' if len(left) > 1 else ''} {names} of topic {topic!r} not drained to the end "
            f"offsets at start and closed by group {group!r}: {why}",
            partitions=left,
        )
