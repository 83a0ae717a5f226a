"""A fake CoinGecko HTTP API on 127.0.0.1, scripted per request.

It answers ``GET /api/v3/simple/price`` (and ``/api/v3/ping``) with CoinGecko's real
response shapes:

* 200: ``{"bitcoin": {"usd": 67187.33, "usd_24h_vol": 2.2e10, "last_updated_at": 1711356300}}``
  (ids it does not know are simply absent, as on the real API);
* 429: ``{"status": {"error_code": 429, "error_message": "You've exceeded the Rate Limit. ..."}}``
  with a ``retry-after`` header (seconds);
* 5xx and Cloudflare-style HTML error pages, truncated JSON, slow answers (timeouts).

Usage::

    from fakes.coingecko import FakeCoinGecko

    with FakeCoinGecko() as fake:
        fake.script("429", "500", "ok")          # the next three answers; then "ok" forever
        poller = CoinGeckoPoller("bitcoin", base_url=fake.url, ...)
        ...
        fake.requests[0].headers["x-cg-demo-api-key"]

Behaviours for :meth:`FakeCoinGecko.script`: ``"ok"`` (quotes; each coin's
``last_updated_at`` moves forward by :attr:`step_s`), ``"stale"`` (the same quotes
as last time), ``"429"``, ``"429-no-retry-after"``, ``"500"``, ``"502-html"``,
``"html"`` (200 with an HTML page), ``"503-html"`` (a Cloudflare-style HTML 503), ``"malformed"`` (truncated JSON), ``"list"``
(valid JSON of the wrong shape), ``"timeout"`` (answers after :attr:`slow_s`),
``"bad-quote"`` (a NaN-like string price), ``"ratelimit-exhausted"`` (200 with
``x-ratelimit-remaining: 0``), or an ``(status, headers, body)`` tuple.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

RATE_LIMIT_BODY = {
    "status": {
        "error_code": 429,
        "error_message": "You've exceeded the Rate Limit. Please visit "
        "https://www.coingecko.com/en/api/pricing to subscribe to our API plans for higher rate limits.",
    }
}

CLOUDFLARE_HTML = (
    "<!DOCTYPE html>\n<html lang=\"en-US\"><head><title>api.coingecko.com | 502: Bad gateway</title>"
    "</head><body><div id=\"cf-error-details\"><h1>Bad gateway</h1><span>Error code 502</span>"
    "<p>Visit <a href=\"https://www.cloudflare.com/\">cloudflare.com</a> for more information.</p>"
    "</div></body></html>\n"
)

DEFAULT_PRICES = {
    "bitcoin": 67187.33,
    "ethereum": 3421.18,
    "solana": 172.5,
    "cardano": 0.6412,
    "ripple": 0.6235,
}


@dataclass
class Request:
    """One request the fake received."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    at: float


@dataclass
class FakeCoinGecko:
    """The fake server; use as a context manager (or :meth:`start` / :meth:`stop`)."""

    prices: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    start_updated_at: int = 1_711_356_300
    step_s: int = 30
    retry_after_s: int = 7
    slow_s: float = 1.0
    requests: list[Request] = field(default_factory=list)
    #: Every fresh quote served in a complete answer: ``(coin id, last_updated_at, price)``.
    served: list[tuple[str, int, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._script: deque[Any] = deque()
        self._lock = threading.Lock()
        self._updated: dict[str, int] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._answers = 0

    # -- control -------------------------------------------------------------------

    def script(self, *behaviours: Any) -> None:
        """Queue behaviours for the next requests (then ``"ok"`` forever)."""
        with self._lock:
            self._script.extend(behaviours)

    @property
    def url(self) -> str:
        """Base URL to give the poller (``http://127.0.0.1:PORT/api/v3``)."""
        assert self._server is not None, "start the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api/v3"

    def start(self) -> FakeCoinGecko:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                fake._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeCoinGecko:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- answers -------------------------------------------------------------------

    def _quotes(self, ids: list[str], vs: str, advance: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for cid in ids:
            if cid not in self.prices:
                continue  # the real API omits unknown ids
            if advance or cid not in self._updated:
                prev = self._updated.get(cid)
                self._updated[cid] = self.start_updated_at if prev is None else prev + self.step_s
                if prev is not None:
                    self.prices[cid] = round(self.prices[cid] * 1.0005, 8)
            out[cid] = {
                vs: self.prices[cid],
                f"{vs}_24h_vol": 22_384_955_786.18,
                "last_updated_at": self._updated[cid],
            }
        return out

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            self.requests.append(Request(parts.path, query, {k.lower(): v for k, v in h.headers.items()},
                                         time.monotonic()))
            behaviour = self._script.popleft() if self._script else "ok"
            self._answers += 1
        if parts.path.endswith("/ping"):
            return _send(h, 200, {}, json.dumps({"gecko_says": "(V3) To the Moon!"}))
        if not parts.path.endswith("/simple/price"):
            return _send(h, 404, {}, json.dumps({"error": "Not Found"}))
        ids = [i for i in query.get("ids", "").split(",") if i]
        vs = query.get("vs_currencies", "usd").split(",")[0]
        if isinstance(behaviour, tuple):
            status, headers, body = behaviour
            return _send(h, status, headers, body)
        if behaviour == "ok":
            with self._lock:
                quotes = self._quotes(ids, vs, advance=True)
                self.served.extend((cid, q["last_updated_at"], q[vs]) for cid, q in quotes.items())
                body = json.dumps(quotes)
            return _send(h, 200, {}, body)
        if behaviour == "stale":
            with self._lock:
                body = json.dumps(self._quotes(ids, vs, advance=False))
            return _send(h, 200, {}, body)
        if behaviour == "ratelimit-exhausted":
            with self._lock:
                body = json.dumps(self._quotes(ids, vs, advance=True))
            return _send(h, 200, {"x-ratelimit-limit": "30", "x-ratelimit-remaining": "0",
                                  "x-ratelimit-reset": str(self.retry_after_s)}, body)
        if behaviour == "429":
            return _send(h, 429, {"retry-after": str(self.retry_after_s)}, json.dumps(RATE_LIMIT_BODY))
        if behaviour == "429-no-retry-after":
            return _send(h, 429, {}, json.dumps(RATE_LIMIT_BODY))
        if behaviour == "500":
            return _send(h, 500, {}, json.dumps({"error": "Internal Server Error"}))
        if behaviour == "502-html":
            return _send(h, 502, {}, CLOUDFLARE_HTML, "text/html; charset=UTF-8")
        if behaviour == "503-html":
            return _send(h, 503, {}, CLOUDFLARE_HTML.replace("502: Bad gateway", "503: Service unavailable"),
                         "text/html; charset=UTF-8")
        if behaviour == "html":
            return _send(h, 200, {}, CLOUDFLARE_HTML, "text/html; charset=UTF-8")
        if behaviour == "malformed":
            with self._lock:
                body = json.dumps(self._quotes(ids, vs, advance=True))
            return _send(h, 200, {}, body[: len(body) // 2])
        if behaviour == "list":
            return _send(h, 200, {}, json.dumps([1, 2, 3]))
        if behaviour == "bad-quote":
            with self._lock:
                quotes = self._quotes(ids, vs, advance=True)
            for q in quotes.values():
                q[vs] = "NaN"
            return _send(h, 200, {}, json.dumps(quotes))
        if behaviour == "timeout":
            time.sleep(self.slow_s)
            with self._lock:
                body = json.dumps(self._quotes(ids, vs, advance=True))
            try:
                return _send(h, 200, {}, body)
            except OSError:  # the client gave up
                return None
        raise ValueError(f"unknown behaviour {behaviour!r}")


def _send(h: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: str,
          content_type: str = "application/json; charset=utf-8") -> None:
    data = body.encode()
    h.send_response(status)
    h.send_header("content-type", content_type)
    h.send_header("content-length", str(len(data)))
    for k, v in headers.items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(data)
