"""The gate in front of every route but ``/health``: rate limit, bearer token, body size.

A pure ASGI middleware, so that it guards HTTP requests and WebSocket handshakes alike, and
unknown routes too. The client's bucket is taken first (a wrong token costs a token of the
bucket, so guessing is rate limited as well); then, with a token configured, the request
must carry ``Authorization: Bearer <token>`` (a WebSocket may instead pass ``?token=``, since
browsers cannot set headers on one), compared in constant time (:func:`hmac.compare_digest`).
Last, a request body may not exceed :data:`MAX_BODY_BYTES` (a rule is a few hundred bytes):
a larger ``Content-Length`` is refused before the body is read, and a body sent in chunks
without one is cut off as soon as it passes the limit.
Refusals are the API's JSON errors: 429 with ``Retry-After``, 401 with ``WWW-Authenticate``,
413 for a body too large.

Examples
--------
>>> token_matches(b"Bearer s3cret", None, b"s3cret"), token_matches(b"Bearer nope", None, b"s3cret")
(True, False)
>>> token_matches(None, "s3cret", b"s3cret"), token_matches(b"Basic s3cret", None, b"s3cret")
(True, False)
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException

from cryptolab.api.errors import error_body
from cryptolab.api.ratelimit import RateLimiter

__all__ = ["MAX_BODY_BYTES", "OPEN_PATHS", "Guard", "token_matches"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The largest request body accepted, in bytes (64 KiB).
MAX_BODY_BYTES: Final = 64 * 1024

#: Paths served without a token and without rate limiting (health checks of load balancers).
OPEN_PATHS: Final = frozenset({"/health"})


def token_matches(authorization: bytes | None, query_token: str | None, token: bytes) -> bool:
    """Whether a request's bearer token (header, or a WebSocket's ``?token=``) is ``token``."""
    given = b""
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(b" ")
        if scheme.lower() == b"bearer":
            given = value.strip()
    elif query_token is not None:
        given = query_token.encode("utf-8", "replace")
    # compare_digest takes time independent of where the bytes differ
    return bool(given) and hmac.compare_digest(given, token)


class Guard:
    """ASGI middleware: per-client rate limit, then the bearer token, on every path but
    :data:`OPEN_PATHS`.

    Parameters
    ----------
    app
        The application guarded.
    token
        The bearer token every request must carry, or ``None`` for none.
    limiter
        The per-client buckets, or ``None`` for no rate limit.
    max_body
        The largest request body accepted, in bytes.
    """

    def __init__(self, app: ASGIApp, *, token: str | None, limiter: RateLimiter | None,
                 max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.limiter = limiter
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        if self.limiter is not None:
            client = scope.get("client")
            wait = self.limiter.take(client[0] if client else "unknown")
            if wait > 0:
                retry = str(max(1, math.ceil(wait)))
                await self._deny(scope, receive, send, 429,
                                 f"rate limited: retry after {retry} s", [(b"retry-after", retry.encode())])
                return
        if self.token is not None and not self._authorized(scope):
            await self._deny(scope, receive, send, 401, "missing or wrong bearer token",
                             [(b"www-authenticate", b"Bearer")])
            return
        if kind == "http":
            length = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)
            if length is not None and length.isdigit() and int(length) > self.max_body:
                await self._deny(scope, receive, send, 413, self._too_large(), [])
                return
            receive = self._limited(receive)
        await self.app(scope, receive, send)

    def _too_large(self) -> str:
        return f"request body too large: at most {self.max_body:,} bytes"

    def _limited(self, receive: Receive) -> Receive:
        """``receive`` that refuses (413, through the API's error handler) a body past the limit."""
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise HTTPException(413, self._too_large())
            return message

        return limited

    def _authorized(self, scope: Scope) -> bool:
        assert self.token is not None
        header = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), None)
        query = None
        if header is None and scope["type"] == "websocket":
            qs = scope.get("query_string", b"").decode("latin-1")
            query = next((v for k, v in parse_qsl(qs) if k == "token"), None)
        return token_matches(header, query, self.token)

    async def _deny(self, scope: Scope, receive: Receive, send: Send, status: int, message: str,
                    headers: list[tuple[bytes, bytes]]) -> None:
        code = {429: "rate_limited", 413: "too_large"}.get(status, "unauthorized")
        body = error_body(code, message)
        head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                *headers]
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": status, "headers": head})
            await send({"type": "http.response.body", "body": body})
            return
        await receive()  # websocket.connect
        if "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": status, "headers": head})
            await send({"type": "websocket.http.response.body", "body": body})
        else:  # the server answers the handshake with 403
            await send({"type": "websocket.close", "code": 1008})
