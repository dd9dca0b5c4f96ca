"""The app factory: one FastAPI app serving every dialect and the assets."""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio.to_thread import run_sync
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response
from starlette.responses import MalformedRangeHeader
from starlette.responses import RangeNotSatisfiable as StarletteRangeNotSatisfiable

from reelgate import __version__
from reelgate.api import luma_tasks
from reelgate.api.auth import Authenticator
from reelgate.api.callbacks import callback_renderer
from reelgate.api.context import ApiContext
from reelgate.api.dialects import DIALECTS
from reelgate.api.errors import BodyLimit, ErrorRouting
from reelgate.api.waiting import CompletionHub
from reelgate.api.wire import PathGuard
from reelgate.core.upstream_links import CALLBACK_ROUTE
from reelgate.domain.errors import Forbidden, InvalidRequest, NotFound, RangeNotSatisfiable
from reelgate.runtime import Runtime
from reelgate.storage.local import ASSET_ROUTE, expires_in

CONTENT_TYPES = {".mp4": "video/mp4", ".jpg": "image/jpeg", ".png": "image/png"}
YEAR = 31_536_000


def cache_control(lifetime: int | None) -> str:
    """Assets never change, but a signed link must not outlive its expiry in a cache."""
    if lifetime is None:
        return f"public, max-age={YEAR}, immutable"
    return f"private, max-age={min(lifetime, YEAR)}"


def check_range(header: str | None, size: int) -> None:
    """Refuse a bad Range header in the server's error shape (the file
    response would answer it in plain text)."""
    if header is None:
        return
    try:
        FileResponse._parse_range_header(header, size)
    except MalformedRangeHeader as exc:
        raise InvalidRequest(f"invalid Range header: {exc.content or header[:80]}") from None
    except StarletteRangeNotSatisfiable:
        raise RangeNotSatisfiable(
            f"the range {header[:80]!r} is outside the file ({size} bytes)", size=size
        ) from None


def create_app(runtime: Runtime, *, workers: int = 0) -> FastAPI:
    """`workers` render workers (threads) start with the app and stop with it."""
    settings = runtime.settings
    hub = CompletionHub(runtime.tasks, settings.poll_interval)
    ctx = ApiContext(
        settings,
        runtime.service,
        hub,
        Authenticator(runtime.tokens),
        runtime.asset_url,
        runtime.uploads,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await hub.start()
        if workers:
            runtime.start_workers(
                workers, callback_renderer(runtime.asset_url), on_finished=hub.notify_threadsafe
            )
        try:
            yield
        finally:
            await hub.stop()
            runtime.stop_workers()

    app = FastAPI(
        title="reelgate",
        version=__version__,
        lifespan=lifespan,
        description="Self-hosted video generation speaking the Luma API dialects.",
    )
    errors = ErrorRouting()
    for dialect in DIALECTS:
        for prefix in dialect.prefixes:
            errors.register(prefix, dialect.render_error)
    errors.install(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, errors=errors)
    app.add_middleware(PathGuard, errors=errors)
    for dialect in DIALECTS:
        app.include_router(dialect.build_router(ctx))
    # `POST /luma/tasks` is shared by two dialects: it reads which one it got.
    app.include_router(luma_tasks.build_router(ctx))

    @app.get("/healthz", tags=["server"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.post(
        CALLBACK_ROUTE + "/{task_id}/{token}",
        tags=["server"],
        summary="Receives an upstream engine's callback for a task",
    )
    async def upstream_callback(task_id: str, token: str) -> dict[str, bool]:
        """The link carries an HMAC of the task id; the body is not trusted (the
        worker re-reads the generation from the upstream), so it is not read."""
        if len(task_id) > 64 or not runtime.upstream_links.valid(task_id, token):
            raise NotFound("no such callback link")
        await run_sync(runtime.follows.nudge, task_id)
        return {"received": True}

    @app.head(ASSET_ROUTE + "/{key:path}", include_in_schema=False)
    @app.get(
        ASSET_ROUTE + "/{key:path}",
        tags=["assets"],
        summary="A stored video or image (supports Range)",
    )
    def asset(key: str, request: Request) -> Response:
        try:
            path = runtime.storage.path(key)
        except ValueError:
            raise NotFound("no such asset") from None
        query = dict(request.query_params)
        if not runtime.storage.link_valid(key, query):
            raise Forbidden("this asset link is invalid or has expired")
        if not path.is_file():
            raise NotFound("no such asset")
        check_range(request.headers.get("range"), path.stat().st_size)
        media_type = CONTENT_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
        return FileResponse(
            path,
            media_type=media_type or "application/octet-stream",
            headers={
                "cache-control": cache_control(expires_in(query)),
                "x-content-type-options": "nosniff",
            },
        )

    app.state.hub = hub
    app.state.runtime = runtime
    return app
