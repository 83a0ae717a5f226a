"""The ``cryptolab`` command line.

Each subcommand lives in its own module in this package and exposes
``register(subparsers)``; modules are discovered automatically, so adding a
command means adding a module. Run ``cryptolab --help`` for the list.

:func:`main` is the one place where errors become exit codes: a
:class:`~cryptolab.errors.CryptolabError` is one line on standard error and exit
code 2; a reader that closes the pipe early (``cryptolab export ... | head``)
ends the command quietly with 141, the status of a Unix tool killed by SIGPIPE.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Sequence

from cryptolab.errors import CryptolabError
from cryptolab.extras import installed_version, missing_extra_hint

__all__ = ["EXIT_BROKEN_PIPE", "build_parser", "main"]

#: Exit status when standard output is a pipe closed by its reader (128 + SIGPIPE).
EXIT_BROKEN_PIPE = 141


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="cryptolab",
        description="Real-time crypto market analytics: ticks -> Kafka -> candles -> store, cache, alerts.",
    )
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR")
    parser.add_argument("--version", action="version", version=f"cryptolab {installed_version()}",
                        help="print the installed version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cryptolab`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = args.log_level or os.environ.get("CRYPTOLAB_LOG_LEVEL") or "WARNING"
    logging.basicConfig(
        level=getattr(logging, str(level).upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
    except CryptolabError as exc:
        print(f"cryptolab {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # an optional extra is not installed: say which one
        hint = missing_extra_hint(exc, f"cryptolab {args.command}")
        if hint is None:
            raise
        print(hint, file=sys.stderr)
        return 2
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return 130
    return int(code or 0)


def _discard_stdout() -> None:
    """Point standard output at the null device, so that nothing more fails on the closed pipe.

    The recipe of Python's documentation (``signal``, "Note on SIGPIPE"): the
    interpreter flushes standard output again when it exits.
    """
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a non-file (tests)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
