"""Error envelopes. Each dialect owns a path prefix and renders neutral errors
in its own shape; anything unexpected becomes that dialect's internal error,
never a bare traceback."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from reelgate import logs
from reelgate.api.observe import request_id_of
from reelgate.domain.errors import (
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RangeNotSatisfiable,
    RateLimited,
    ReelgateError,
    ServiceUnavailable,
    StorageUnavailable,
    Unauthorized,
)

log = logging.getLogger(__name__)

ErrorRenderer = Callable[[ReelgateError, str], Response]
"""(error, trace id) -> response in the dialect's shape."""


STATUS_FOR_CODE = {
    "invalid_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "expired": 410,
    "payload_too_large": 413,
    "range_not_satisfiable": 416,
    "rate_limited": 429,
    "timeout": 504,
    "unavailable": 503,
}
"""HTTP status of each neutral error code, for dialects that use plain statuses."""


def status_for(error: ReelgateError) -> int:
    return STATUS_FOR_CODE.get(error.code, 500)


def plain_error(error: ReelgateError, trace_id: str) -> Response:
    status = status_for(error)
    return JSONResponse({"detail": error.message, "trace_id": trace_id}, status_code=status)


def describe_validation(exc: RequestValidationError) -> str:
    """One readable sentence from pydantic's error list."""
    parts: list[str] = []
    for err in exc.errors()[:5]:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        where = ".".join(loc) if loc else "body"
        parts.append(f"{where}: {err.get('msg', 'invalid value')}")
    return "; ".join(parts) or "invalid request"


class ErrorRouting:
    def __init__(self) -> None:
        self._by_prefix: list[tuple[str, ErrorRenderer]] = []

    def register(self, prefix: str, renderer: ErrorRenderer) -> None:
        self._by_prefix.append((prefix, renderer))
        self._by_prefix.sort(key=lambda item: len(item[0]), reverse=True)

    def renderer_for(self, path: str) -> ErrorRenderer:
        for prefix, renderer in self._by_prefix:
            if path.startswith(prefix):
                return renderer
        return plain_error

    def render(self, request: Request, error: ReelgateError) -> Response:
        trace_id = request_id_of(request)  # the X-Request-ID answered (api/observe.py)
        response = self.renderer_for(request.url.path)(error, trace_id)
        response.headers["x-trace-id"] = trace_id
        response.headers["x-request-id"] = trace_id
        if isinstance(error, RateLimited):
            response.headers["retry-after"] = str(error.retry_after)
        if isinstance(error, RangeNotSatisfiable):
            response.headers["content-range"] = f"bytes */{error.size}"
        if isinstance(error, MethodNotAllowed) and error.allowed:
            response.headers["allow"] = error.allowed
        return response

    def install(self, app: FastAPI) -> None:
        @app.exception_handler(ReelgateError)
        async def _neutral(request: Request, exc: ReelgateError) -> Response:
            return self.render(request, exc)

        @app.exception_handler(RequestValidationError)
        async def _validation(request: Request, exc: RequestValidationError) -> Response:
            return self.render(request, InvalidRequest(describe_validation(exc)))

        @app.exception_handler(StarletteHTTPException)
        async def _http(request: Request, exc: StarletteHTTPException) -> Response:
            error: ReelgateError
            if exc.status_code == 404:
                error = NotFound(f"no such endpoint: {request.method} {request.url.path}")
            elif exc.status_code == 405:
                allow = (exc.headers or {}).get("Allow", "")
                allowed = ", ".join(sorted(m.strip() for m in allow.split(",") if m.strip()))
                use = f"; use {allowed}" if allowed else ""
                error = MethodNotAllowed(
                    f"{request.method} is not allowed on {request.url.path}{use}",
                    allowed=allowed,
                )
            elif exc.status_code == 401:
                error = Unauthorized(str(exc.detail))
            elif exc.status_code < 500:
                error = InvalidRequest(str(exc.detail))
            else:
                error = ReelgateError(str(exc.detail))
            return self.render(request, error)

        @app.exception_handler(StorageUnavailable)
        async def _storage(request: Request, exc: StorageUnavailable) -> Response:
            log.warning("%s %s: %s", request.method, request.url.path, exc.message)
            return self.render(request, ServiceUnavailable(exc.message))

        @app.exception_handler(OperationalError)
        async def _database(request: Request, exc: OperationalError) -> Response:
            # the class only: a driver's message can name the server's address
            log.warning(
                "%s %s: the database did not answer (%s)",
                request.method,
                request.url.path,
                type(exc.orig or exc).__name__,
            )
            return self.render(
                request, ServiceUnavailable("the database is not answering; try again shortly")
            )

        @app.exception_handler(Exception)
        async def _unexpected(request: Request, exc: Exception) -> Response:
            # runs outside the middleware that bound the request's log context
            with logs.bound(request_id=request_id_of(request)):
                log.exception("unhandled error on %s %s", request.method, request.url.path)
            return self.render(request, ReelgateError("internal server error"))


class BodyLimit:
    """ASGI middleware capping request bodies: a declared Content-Length over
    the cap is refused before reading; an undeclared (chunked) body is counted
    as it arrives. Either way the client gets 413 in its dialect's shape."""

    def __init__(self, app: Any, limit: int, errors: ErrorRouting) -> None:
        self.app = app
        self.limit = limit
        self.errors = errors

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        too_large = PayloadTooLarge(f"request body is larger than {self.limit} bytes")
        if declared.isdigit() and int(declared) > self.limit:
            await self.errors.render(Request(scope), too_large)(scope, receive, send)
            return
        received = 0
        replaced = False

        async def counted() -> Any:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise too_large
            return message

        async def guarded_send(message: Any) -> None:
            # Frameworks may turn a failed body read into their own 400; the
            # client should learn the real reason.
            nonlocal replaced
            if received > self.limit:
                if not replaced:
                    replaced = True
                    await self.errors.render(Request(scope), too_large)(scope, receive, send)
                return
            await send(message)

        await self.app(scope, counted, guarded_send)
