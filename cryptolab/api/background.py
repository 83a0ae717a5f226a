"""The HTTP API served from a thread of a process busy with other work (``cryptolab run --api``).

:func:`listen` binds the socket first, so that a port already in use is a clear error before
anything else starts; :class:`BackgroundApi` then runs uvicorn on it in a thread of its own,
with its own event loop (uvicorn installs no signal handlers off the main thread: the process
keeps its own), until :meth:`BackgroundApi.stop`.

Examples
--------
>>> import httpx
>>> from cryptolab.api import create_app
>>> from cryptolab.store import Store
>>> api = BackgroundApi(create_app(store=Store("sqlite://")), listen("127.0.0.1", 0)).start()
>>> httpx.get(api.url + "/health").json()["status"]
'ok'
>>> api.stop()
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

from cryptolab.errors import ConfigError, CryptolabError

__all__ = ["BackgroundApi", "listen"]


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (``0``: any free port) and listening.

    Raises
    ------
    ConfigError
        The port is out of range, in use, or the address cannot be bound.
    """
    if not 0 <= port <= 65535:
        raise ConfigError(f"the API port must be 0..65535, got {port}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} for the API: {exc.strerror or exc}") from None


class BackgroundApi:
    """An ASGI application served by uvicorn on ``sock`` in a background thread.

    Parameters
    ----------
    app
        The application (:func:`cryptolab.api.create_app`).
    sock
        A bound socket (:func:`listen`); closed by :meth:`stop`.
    """

    def __init__(self, app: Any, sock: socket.socket) -> None:
        import uvicorn

        self.sock = sock
        host, port = sock.getsockname()[:2]
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self.sock]))
        except BaseException as exc:  # uvicorn exits on a failed start-up (SystemExit included)
            self._failure = exc

    def start(self, timeout: float = 60.0) -> BackgroundApi:
        """Start serving; return once the server accepts requests.

        Raises
        ------
        CryptolabError
            The server did not start within ``timeout`` seconds (or stopped during start-up).
        """
        self._thread = threading.Thread(target=self._run, name="cryptolab-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                why = f": {self._failure!r}" if self._failure is not None else ""
                raise CryptolabError(f"the API did not start on {self.url}{why}")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Close the connections, run the application's shutdown and stop the thread."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.sock.close()
