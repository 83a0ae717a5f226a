"""``python -m benchmarks.workers.api_server SERVE_ARGS...``: ``cryptolab serve`` with the
benchmark's bench-only routes (:mod:`benchmarks.peers.bare_api`) added to its application.

It runs the real ``cryptolab serve`` command (its flags, uvicorn, the application's lifespan);
only :func:`cryptolab.api.create_app`, which the command looks up when it runs, is wrapped for
this process, so the production routes stay as they are.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any


def main(argv: Sequence[str]) -> int:
    """Serve (``cryptolab serve ARGV``) with the bench routes; return its exit status."""
    import cryptolab.api
    from benchmarks.peers.bare_api import with_bench_routes
    from cryptolab.cli import main as cryptolab_main

    create_app = cryptolab.api.create_app

    def bench_app(*args: Any, **kwargs: Any) -> Any:
        return with_bench_routes(create_app(*args, **kwargs))

    cryptolab.api.create_app = bench_app  # type: ignore[assignment]
    return cryptolab_main(["serve", *argv])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
