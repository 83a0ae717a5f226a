"""A local webhook endpoint on loopback: records every POST, fails on script, or hangs.

``WebhookReceiver(fail_first=2)`` answers 503 to the first two POSTs of each idempotency key,
then 200; ``hang=True`` reads nothing and never answers (a dead endpoint whose connections
time out). The endpoint keeps every request (:attr:`requests`) and the bodies it accepted,
keyed by the payload's idempotency key (:attr:`accepted`), as a receiver that drops repeats
would.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Request:
    """One POST as received."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int


class WebhookReceiver:
    """A webhook endpoint on ``127.0.0.1`` (use as a context manager)."""

    def __init__(self, *, fail_first: int = 0, hang: bool = False, status: int = 200) -> None:
        self.fail_first = fail_first
        self.hang = hang
        self.ok_status = status
        self.requests: list[Request] = []
        self.accepted: dict[str, list[bytes]] = {}
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if receiver.hang:
                    receiver._closing.wait(120)
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = self.headers.get("Idempotency-Key") or ""
                with receiver._lock:
                    n = receiver._seen.get(key, 0)
                    receiver._seen[key] = n + 1
                    status = 503 if n < receiver.fail_first else receiver.ok_status
                    receiver.requests.append(Request(self.path, dict(self.headers.items()), body, status))
                    if status < 300:
                        receiver.accepted.setdefault(key, []).append(body)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
