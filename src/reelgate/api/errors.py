"""Error envelopes. Each dialect owns a path prefix and renders neutral errors
in its own shape; anything unexpected becomes that dialect's internal error,
never a bare traceback."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from reelgate.core.errors import InvalidRequest, NotFound, ReelgateError, Unauthorized

log = logging.getLogger(__name__)

ErrorRenderer = Callable[[ReelgateError, str], Response]
"""(error, trace id) -> response in the dialect's shape."""


def plain_error(error: ReelgateError, trace_id: str) -> Response:
    status = {"invalid_request": 400, "unauthorized": 401, "not_found": 404}.get(error.code, 500)
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
        trace_id = request.headers.get("x-request-id") or str(uuid.uuid4())
        response = self.renderer_for(request.url.path)(error, trace_id)
        response.headers["x-trace-id"] = trace_id
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
            elif exc.status_code == 401:
                error = Unauthorized(str(exc.detail))
            elif exc.status_code < 500:
                error = InvalidRequest(str(exc.detail))
            else:
                error = ReelgateError(str(exc.detail))
            response = self.render(request, error)
            if exc.status_code == 405:
                response.status_code = 405
            return response

        @app.exception_handler(Exception)
        async def _unexpected(request: Request, exc: Exception) -> Response:
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            return self.render(request, ReelgateError("internal server error"))
