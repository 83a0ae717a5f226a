"""``cryptolab bench``: says where the benchmarks are (they run from a source checkout).

The performance suite compares cryptolab with its peers (Quix Streams, polars...), which the
package never imports; it lives in the repository's ``benchmarks/`` folder, outside the
package, and runs with ``make bench`` (``python -m benchmarks.run``). This command accepts
whatever it is given and answers with that, in one line, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Final

__all__ = ["MOVED", "register", "run"]

#: The one line ``cryptolab bench`` answers.
MOVED: Final = ("cryptolab bench: the benchmarks run from a source checkout of cryptolab: "
                "`make bench` there, or `python -m benchmarks.run --json PATH [--quick] [--only KEYS]`")


def register(sub: Any) -> None:
    """Add the ``bench`` subcommand (it takes any arguments: none of them is read)."""
    p: argparse.ArgumentParser = sub.add_parser(
        "bench", prefix_chars="+", add_help=False,  # "--json ..." lands in `ignored`, not in an error
        help="the benchmark suite runs from a source checkout: make bench (python -m benchmarks.run)",
    )
    p.add_argument("ignored", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Say where the benchmarks are; exit status 2.

    Examples
    --------
    >>> run(argparse.Namespace(ignored=["--quick"]))
    2
    """
    print(MOVED, file=sys.stderr)
    return 2
