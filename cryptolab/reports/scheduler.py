"""The cron loop: run pipelines when their schedules fire, one at a time, in this process."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from cryptolab.errors import ValidationError
from cryptolab.models import iso_utc
from cryptolab.reports.runs import RunRecord, run_pipeline
from cryptolab.reports.schedules import Pipeline

__all__ = ["Scheduler"]

log = logging.getLogger("cryptolab.schedules")  # the logger the scheduler has always used


class Scheduler:
    """Run pipelines when their cron schedules fire (one at a time, in this process).

    Parameters
    ----------
    pipelines
        The pipelines (disabled ones are skipped).
    max_runs
        Stop after this many runs (``None``: run until :meth:`stop`).
    once
        Stop after the first firing (every pipeline due at that moment runs).
    clock
        Wall clock in epoch seconds (inject a fake one in tests).
    wait
        ``wait(seconds) -> stopped``: sleeps, returning early (and True) when
        stopped; default waits on the scheduler's stop event.

    Notes
    -----
    Missed firings are not caught up: when a run overruns the next firing of
    its own (or another) pipeline, that firing is skipped and logged, as cron
    does. :meth:`stop` lets the running notebook finish.
    """

    def __init__(
        self,
        pipelines: Iterable[Pipeline],
        *,
        max_runs: int | None = None,
        once: bool = False,
        clock: Callable[[], float] = time.time,
        wait: Callable[[float], bool] | None = None,
        on_run: Callable[[RunRecord], None] | None = None,
    ) -> None:
        self.pipelines = [p for p in pipelines if p.enabled]
        if max_runs is not None and max_runs < 1:
            raise ValidationError("max_runs", f"must be >= 1, got {max_runs}")
        self.max_runs = max_runs
        self.once = once
        self._clock = clock
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self._on_run = on_run
        self.records: list[RunRecord] = []
        self.skipped = 0

    def stop(self) -> None:
        """Ask the loop to end (after the notebook that is running, if any)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop.is_set()

    def next_fires(self) -> dict[str, int]:
        """Next firing time (epoch ms) of every enabled pipeline, from now."""
        now = int(self._clock() * 1000)
        return {p.name: p.next_fire_ms(now) for p in self.pipelines}

    def run(self) -> list[RunRecord]:
        """Loop until stopped, ``max_runs`` runs, or one firing when ``once``; return the records."""
        if not self.pipelines:
            log.warning("no enabled pipeline to schedule")
            return self.records
        now = int(self._clock() * 1000)
        due = {p.name: p.next_fire_ms(now) for p in self.pipelines}
        by_name = {p.name: p for p in self.pipelines}
        for name, at in sorted(due.items(), key=lambda kv: kv[1]):
            log.info("pipeline %s: next run at %s", name, iso_utc(at))
        while not self._stop.is_set():
            fire = min(due.values())
            now = int(self._clock() * 1000)
            if fire > now:
                if self._wait(min((fire - now) / 1000, 60.0)):
                    break
                continue
            for name in sorted(n for n, at in due.items() if at <= now):
                if self._stop.is_set():
                    break
                record = run_pipeline(by_name[name], scheduled_ms=due[name], clock=self._clock)
                self.records.append(record)
                if self._on_run is not None:
                    self._on_run(record)
                after = int(self._clock() * 1000)
                nxt = by_name[name].next_fire_ms(due[name])
                while nxt <= after:  # overran: skip, like cron
                    self.skipped += 1
                    log.warning("pipeline %s: skipping the run due at %s (previous run overran)",
                                name, iso_utc(nxt))
                    nxt = by_name[name].next_fire_ms(nxt)
                due[name] = nxt
                if self.max_runs is not None and len(self.records) >= self.max_runs:
                    self._stop.set()
            if self.once:
                break
        return self.records
