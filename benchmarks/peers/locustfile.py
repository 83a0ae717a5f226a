# mypy: disable-error-code="misc,untyped-decorator"
"""The locust users of the ``api`` section (run by :func:`benchmarks.peers.locust.run_locust` in
locust's own virtualenv: this file imports neither cryptolab nor the harness).

Every user requests ``BENCH_LOCUST_PATH`` again as soon as its previous answer is read (no wait),
over one keep-alive connection (``FastHttpUser``). From the moment every user runs to the end of
the run, each response time (ms, float) is kept; at exit they go to ``BENCH_LOCUST_OUT`` as JSON
(``ms``, ``failures``, ``start``, ``end``), from which the harness takes requests/s and exact
percentiles.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from locust import FastHttpUser, constant, events, task

PATH = os.environ["BENCH_LOCUST_PATH"]
OUT = os.environ["BENCH_LOCUST_OUT"]

_ms: list[float] = []
_window: dict[str, Any] = {"start": None, "end": None, "failures": 0}


@events.spawning_complete.add_listener
def _spawned(**_: Any) -> None:
    _window["start"] = time.perf_counter()


@events.request.add_listener
def _request(response_time: float, exception: BaseException | None = None, **_: Any) -> None:
    if _window["start"] is None or _window["end"] is not None:
        return  # users still starting, or the run is over
    if exception is None:
        _ms.append(response_time)
    else:
        _window["failures"] += 1


@events.test_stop.add_listener
def _stopped(**_: Any) -> None:
    if _window["end"] is None:
        _window["end"] = time.perf_counter()


@events.quitting.add_listener
def _write(**_: Any) -> None:
    end = _window["end"] if _window["end"] is not None else time.perf_counter()
    with open(OUT, "w") as f:
        json.dump({"ms": _ms, "failures": _window["failures"], "start": _window["start"] or end, "end": end}, f)


class Client(FastHttpUser):
    """One client: the path, again and again."""

    wait_time = constant(0)

    @task
    def get(self) -> None:
        self.client.get(PATH, name=PATH)
