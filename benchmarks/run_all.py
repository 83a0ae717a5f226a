"""``python benchmarks/run_all.py [options]``: :mod:`benchmarks.run` from a path, not a module name.

The same command line as ``python -m benchmarks.run`` (``make bench``); see that module.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout, for `benchmarks`
    from benchmarks.run import main

    raise SystemExit(main())
