"""Errors as the API answers them: one JSON shape (:class:`~cryptolab.api.schemas.ErrorOut`).

Every failure leaves as ``{"error": code, "message": sentence, "field": name or null}``:
a bad parameter is 422 and names it, an unknown route 404, a missing token 401, too many
requests 429 (with ``Retry-After``), a body over 64 KiB 413, a rule id in use 409, the store down 503. Nothing a client sends becomes a 500.

Examples
--------
>>> error_body("bad_request", "invalid 'limit': must be <= 10000", "limit")
b'{"error":"bad_request","message":"invalid \\'limit\\': must be <= 10000","field":"limit"}'
>>> sorted(ERROR_RESPONSES)
[401, 404, 413, 422, 429, 503]
"""

from __future__ import annotations

import logging
from typing import Any, Final

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from cryptolab.api.schemas import ErrorOut
from cryptolab.errors import CacheError, StoreError, ValidationError

__all__ = ["ERROR_RESPONSES", "ApiError", "error_body", "error_response", "install_error_handlers"]

log = logging.getLogger(__name__)

#: The error answers every route may give, for the OpenAPI schema.
ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    401: {"model": ErrorOut, "description": "missing or wrong bearer token (with --token)"},
    404: {"model": ErrorOut, "description": "no such route or no such data"},
    413: {"model": ErrorOut, "description": "the request body is larger than 64 KiB"},
    422: {"model": ErrorOut, "description": "a parameter is invalid or unknown (named in `field`)"},
    429: {"model": ErrorOut, "description": "rate limited; retry after `Retry-After` seconds",
          "headers": {"Retry-After": {"description": "seconds to wait",
                                      "schema": {"type": "integer"}}}},
    503: {"model": ErrorOut, "description": "the store does not answer"},
}

_CODES: Final = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 409: "conflict", 413: "too_large", 422: "bad_request",
                 429: "rate_limited", 503: "unavailable"}

#: FastAPI's 400 for a request body it cannot read (not UTF-8, say): answered as 422 ``body``.
_UNPARSED: Final = "There was an error parsing the body"


class ApiError(Exception):
    """An error answer: ``status``, ``message`` and the offending ``field``."""

    def __init__(self, status: int, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}


def error_body(code: str, message: str, field: str | None = None) -> bytes:
    """The JSON bytes of an error answer."""
    return orjson.dumps({"error": code, "message": message, "field": field})


def error_response(status: int, message: str, field: str | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    """An error answer as a response."""
    code = _CODES.get(status, "bad_request" if status < 500 else "unavailable")
    return Response(error_body(code, message, field), status_code=status, headers=headers,
                    media_type="application/json")


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str | None:
    names = [str(x) for x in loc if x not in ("query", "path", "body", "header")]
    return ".".join(names) or None


def install_error_handlers(app: FastAPI) -> None:
    """Answer every failure in the one JSON shape."""

    async def api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.message, exc.field, exc.headers)

    async def invalid(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        loc = tuple(first.get("loc", ()))
        field = _field_of(loc)
        msg = str(first.get("msg", "invalid request"))
        if loc[:1] == ("body",) and (field is None or first.get("type") == "json_invalid"):
            field = "body"  # the body as a whole: missing, not JSON, not an object
            msg = "must be a JSON object" if first.get("type") != "json_invalid" else f"is not JSON ({msg})"
        return error_response(422, f"invalid {field!r}: {msg}" if field else msg, field)

    async def validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ValidationError)
        return error_response(422, str(exc), exc.field)

    async def http(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        message = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404 and message == "Not Found":
            message = "no such route (see /docs)"
        if exc.status_code == 400 and message == _UNPARSED:  # FastAPI: a body it cannot decode
            return error_response(422, "invalid 'body': is not JSON text (UTF-8)", "body")
        return error_response(exc.status_code, message, None, dict(exc.headers or {}))

    async def store_down(_: Request, exc: Exception) -> Response:
        log.warning("store error: %s", exc)
        return error_response(503, f"the store does not answer: {exc}")

    async def cache_down(_: Request, exc: Exception) -> Response:
        log.warning("cache error: %s", exc)
        return error_response(503, f"the cache does not answer: {exc}")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(ValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http)
    app.add_exception_handler(StoreError, store_down)
    app.add_exception_handler(CacheError, cache_down)
