"""``--metrics-port`` and ``--metrics-host``: the flags of the commands that serve ``/metrics``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from cryptolab.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from cryptolab.metrics import MetricsServer

__all__ = ["add_metrics_flags", "serve_metrics"]


def add_metrics_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``--metrics-port`` and ``--metrics-host`` to ``parser``."""
    parser.add_argument("--metrics-port", type=int, metavar="PORT",
                        help="serve Prometheus metrics at http://HOST:PORT/metrics while running "
                        "(0: any free port, printed; needs the metrics extra)")
    parser.add_argument("--metrics-host", default="127.0.0.1", metavar="HOST",
                        help="interface for --metrics-port (default 127.0.0.1; 0.0.0.0 for all)")


def serve_metrics(args: argparse.Namespace, *collectors: Any) -> MetricsServer | None:
    """Serve ``collectors`` (in a registry of their own) when ``--metrics-port`` was given.

    The address goes to standard error (``metrics at http://...``), so that a port chosen
    with ``--metrics-port 0`` can be found.

    Raises
    ------
    ConfigError
        A port outside 0-65535, or one that cannot be listened on.
    ModuleNotFoundError
        prometheus-client is not installed (the command says which extra to install).
    """
    port = getattr(args, "metrics_port", None)
    if port is None:
        return None
    if not 0 <= port <= 65_535:
        raise ConfigError(f"--metrics-port must be between 0 and 65535, not {port}")
    from cryptolab.metrics import MetricsServer, registry

    server = MetricsServer(registry(*collectors), port, args.metrics_host)
    print(f"metrics at {server.url}", file=sys.stderr, flush=True)
    return server
