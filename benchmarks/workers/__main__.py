"""``python -m benchmarks.workers KIND PARAMS_JSON``: run one worker, print its result as a JSON line.

Kinds: ``pipeline`` (cryptolab's consumer on a pre-filled topic), ``live`` (the same on a live
topic for a while), ``feed`` (a paced live producer), ``bare`` (the consume + decode ceiling),
``quix`` (Quix Streams computing the same candles).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, Final

from benchmarks.peers.bare import work_bare
from benchmarks.peers.quix import work_quix
from benchmarks.workers.feed import work_feed
from benchmarks.workers.pipeline import work_live, work_pipeline

#: Each kind of worker: a function of its parameters that returns its result.
WORKERS: Final[dict[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "pipeline": work_pipeline, "bare": work_bare, "quix": work_quix, "live": work_live, "feed": work_feed,
}


def main(argv: Sequence[str]) -> int:
    """Run the worker ``argv[0]`` with the JSON parameters ``argv[1]``; print its result."""
    if len(argv) != 2 or argv[0] not in WORKERS:
        print(f"usage: python -m benchmarks.workers {{{','.join(WORKERS)}}} PARAMS_JSON", file=sys.stderr)
        return 2
    kind, params = argv[0], json.loads(argv[1])
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result = WORKERS[kind](params)
    sys.stdout.write(json.dumps(result, default=float) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
