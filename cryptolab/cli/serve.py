"""``cryptolab serve``: the HTTP API (REST + WebSocket) on uvicorn."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptolab.cli._common import add_service_flags, settings_from_args
from cryptolab.errors import ConfigError

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the ``serve`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "serve",
        help="serve the HTTP API: candles, alerts, live WebSocket updates, /health, /docs",
        description=(
            "Serves the store's candles and alerts and the cache's live updates over HTTP "
            "(REST under /api/v1, WebSockets under /ws; docs at /docs). Stateless: run more "
            "processes behind a load balancer to scale. Stop with Ctrl-C."
        ),
    )
    add_service_flags(p, kafka=False)
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 = any free port)")
    p.add_argument("--token", default=None,
                   help="bearer token required on every route but /health (default: none)")
    p.add_argument("--token-file", type=Path, default=None, metavar="FILE",
                   help="read the bearer token from FILE (keeps it out of process listings)")
    p.add_argument("--cors", action="append", default=[], metavar="ORIGIN",
                   help="origin allowed to call the API from a browser ('*' for any); repeatable")
    p.add_argument("--rate-limit", type=float, default=100.0, metavar="RATE",
                   help="requests per second per client address (default 100; 0 = no limit)")
    p.add_argument("--burst", type=int, default=None, metavar="N",
                   help="requests a client may make at once above the rate (default 2 x RATE)")
    p.add_argument("--ws-queue", type=int, default=1024, metavar="N",
                   help="updates queued per WebSocket client before it is dropped as too slow "
                        "(default 1024)")
    p.add_argument("--demo", action="store_true",
                   help="run a synthetic market through the embedded pipeline in this process")
    p.add_argument("--demo-symbols", type=int, default=5, help="symbols of the --demo market (default 5)")
    p.add_argument("--speed", type=float, default=60.0,
                   help="--demo simulated seconds per second (default 60: a 1m candle a second)")
    p.set_defaults(func=run)


def _token(args: argparse.Namespace) -> str | None:
    if args.token is not None and args.token_file is not None:
        raise ConfigError("give --token or --token-file, not both")
    token: str | None = args.token
    if args.token_file is not None:
        try:
            token = args.token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read --token-file {args.token_file}: {exc.strerror}") from None
    if token is not None and (not token or any(c.isspace() for c in token) or not token.isprintable()):
        raise ConfigError("the bearer token must be non-empty printable text without spaces")
    return token


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    import uvicorn

    from cryptolab.api import RateLimit, create_app

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0..65535, got {args.port}")
    if args.rate_limit < 0 or (args.burst is not None and args.burst < 1) or args.ws_queue < 1:
        raise ConfigError("--rate-limit must be >= 0, --burst and --ws-queue >= 1")
    token = _token(args)
    limit = None
    if args.rate_limit > 0:
        limit = RateLimit(rate=args.rate_limit, burst=args.burst or max(1, round(2 * args.rate_limit)))
    settings = settings_from_args(args)
    live = None
    if args.demo:
        from cryptolab.demo import LiveDemo

        live = LiveDemo(symbols=args.demo_symbols, speed=args.speed, settings=settings).start()
        settings = live.settings
    try:
        app = create_app(settings, token=token, cors=args.cors, rate_limit=limit,
                         ws_queue=args.ws_queue)
        config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                                lifespan="on")
        asyncio.run(_serve(_server(config), "demo market" if live else None))
    finally:
        if live is not None:
            live.stop()
    print("cryptolab serve: stopped", file=sys.stderr, flush=True)
    return 0


def _server(config: Any) -> Any:
    """A uvicorn server that SIGINT and SIGTERM stop gracefully, after which ``serve`` exits 0
    like every other command (uvicorn's own handlers raise the signal again once it has shut
    down, which ends the process with 128 + the signal's number)."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            before = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in before.items():
                    signal.signal(sig, handler)

    return Server(config)


async def _serve(server: Any, mode: str | None) -> None:
    """Run ``server``, saying where it listens once it does."""
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.05)
    if server.started:
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        extra = f"{mode}; " if mode else ""
        print(f"cryptolab serve: http://{host}:{port}  (docs at /docs; {extra}Ctrl-C to stop)",
              flush=True)
    await task
