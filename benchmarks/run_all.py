"""Run the whole benchmark suite side by side and write benchmarks/results/latest.json.

The suite lives in :mod:`cryptolab.bench` (``cryptolab bench``); this script is the same
command with the repository's default output path, for ``python benchmarks/run_all.py``.
It calls the section benchmarks of this folder as modules (``bench_producer.py`` for the
producer, ``bench_store.py`` for history/latest, ``bench_scoring.py`` for scoring).

Usage::

    scripts/services.sh up && eval "$(scripts/services.sh env)"
    python benchmarks/run_all.py [--quick] [--only consumer,batch] [--json PATH]

Not a test: it prints figures and writes JSON; nothing asserts a speed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cryptolab.cli import main

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--json" not in args:
        args += ["--json", str(DEFAULT_JSON)]
    raise SystemExit(main(["bench", *args]))
