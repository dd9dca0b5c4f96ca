"""What every HTTP request leaves behind: a request id, a log context, an
access line and the HTTP metrics.

The outermost middleware. The request id is the client's `X-Request-ID`
when it is a sane one, else a new one; every answer carries it back as
`X-Request-ID`, error bodies carry it where the dialect has a field for it
(`api/errors.py`), and every log line written for the request carries it
(`logs.py`). The access line names the route template, never the path as
sent (asset links and ids are not for logs), and never a header or a query.
Routes are labelled by their template (`/luma/generations/{generation_id}`),
a path no route matched as `unmatched`, so labels stay few.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.requests import Request

from reelgate import logs
from reelgate.metrics import Metrics

access = logging.getLogger("reelgate.access")

REQUEST_ID_KEY = "reelgate.request_id"
"""Where the request id is kept in the ASGI scope, for the error handlers
(the last of which runs outside this middleware, after it)."""

UNMATCHED = "unmatched"

QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
"""Probes and scrapes come every few seconds: their access lines are DEBUG."""


def request_id_of(request: Request) -> str:
    """The request's id, as the middleware chose it (or, outside it, as it would)."""
    chosen = request.scope.get(REQUEST_ID_KEY)
    if isinstance(chosen, str):
        return chosen
    return logs.request_id(request.headers.get("x-request-id"))


def route_of(scope: dict[str, Any]) -> str:
    """The template of the route that answered (`scope["route"]`, set by routing)."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class Observe:
    """ASGI middleware: request id, log context, access line, HTTP metrics."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = None
        for name, value in scope.get("headers") or ():
            if name == b"x-request-id":
                given = value.decode("latin-1")
                break
        request_id = logs.request_id(given)
        scope[REQUEST_ID_KEY] = request_id
        started = time.perf_counter()
        status = 500  # unless an answer starts: an exception the app did not handle

        async def answer(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["x-request-id"] = request_id
            await send(message)

        with logs.bound(request_id=request_id, task_id=None, token=None):
            try:
                await self.app(scope, receive, answer)
            finally:
                self._done(scope, status, time.perf_counter() - started, request_id)

    def _done(self, scope: dict[str, Any], status: int, seconds: float, request_id: str) -> None:
        route = route_of(scope)
        method = scope.get("method", "")
        self.metrics.http_request(route, method, status, seconds)
        access.log(
            logging.DEBUG if route in QUIET_ROUTES else logging.INFO,
            "%s %s %d %.1f ms",
            method,
            route,
            status,
            seconds * 1000,
            extra={
                "http": {
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 1),
                }
            },
        )
