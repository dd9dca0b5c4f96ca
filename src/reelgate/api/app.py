"""The app factory: one FastAPI app serving every dialect and the assets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from anyio.to_thread import run_sync
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.responses import MalformedRangeHeader
from starlette.responses import RangeNotSatisfiable as StarletteRangeNotSatisfiable

from reelgate import __version__
from reelgate.api import luma_tasks, models, operations, studio
from reelgate.api.auth import Authenticator
from reelgate.api.callbacks import callback_renderer
from reelgate.api.context import ApiContext
from reelgate.api.dialects import DIALECTS
from reelgate.api.errors import BodyLimit, ErrorRouting
from reelgate.api.observe import Observe
from reelgate.api.operations import DatabaseCollector
from reelgate.api.waiting import CompletionHub
from reelgate.api.wire import PathGuard
from reelgate.core.upstream_links import CALLBACK_ROUTE
from reelgate.domain.errors import (
    Forbidden,
    InvalidRequest,
    NotFound,
    RangeNotSatisfiable,
    ReelgateError,
)
from reelgate.metrics import PrometheusMetrics
from reelgate.runtime import Runtime
from reelgate.storage.base import (
    ASSET_ROUTE,
    Storage,
    check_key,
    content_disposition,
    content_type,
    expires_in,
)
from reelgate.storage.local import LocalStorage
from reelgate.store.notify import DONE_CHANNEL, Listener

YEAR = 31_536_000


def cache_control(lifetime: int | None) -> str:
    """Assets never change, but a signed link must not outlive its expiry in a cache."""
    if lifetime is None:
        return f"public, max-age={YEAR}, immutable"
    return f"private, max-age={min(lifetime, YEAR)}"


def check_range(header: str | None, size: int) -> list[tuple[int, int]]:
    """The byte ranges a Range header asks for (start, end exclusive; none
    for the whole file); a bad one is refused in the server's error shape
    (the file response would answer it in plain text)."""
    if header is None:
        return []
    try:
        return FileResponse._parse_range_header(header, size)
    except MalformedRangeHeader as exc:
        raise InvalidRequest(f"invalid Range header: {exc.content or header[:80]}") from None
    except StarletteRangeNotSatisfiable:
        raise RangeNotSatisfiable(
            f"the range {header[:80]!r} is outside the file ({size} bytes)", size=size
        ) from None


def streamed(
    storage: Storage, key: str, size: int, request: Request, headers: dict[str, str]
) -> Response:
    """An object streamed from the store, whole or one byte range (several
    ranges are answered with the whole object, as HTTP allows)."""
    ranges = check_range(request.headers.get("range"), size)
    start, end = ranges[0] if len(ranges) == 1 else (0, size)
    headers = {**headers, "accept-ranges": "bytes", "content-length": str(end - start)}
    status = 200
    if len(ranges) == 1:
        status = 206
        headers["content-range"] = f"bytes {start}-{end - 1}/{size}"
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=content_type(key))
    return StreamingResponse(
        storage.stream(key, start, end),
        status_code=status,
        headers=headers,
        media_type=content_type(key),
    )


def ring_on_done(listener: Listener | None, hub: CompletionHub) -> list[Callable[[], None]]:
    """On PostgreSQL, a task finished by any process wakes this process's
    waiting clients, and a listener back from a disconnect makes the hub poll
    at once; returns what undoes it."""
    if listener is None:
        return []
    return [
        listener.subscribe(DONE_CHANNEL, hub.notify_threadsafe),
        listener.on_connect(hub.poll_soon_threadsafe),
    ]


def create_app(runtime: Runtime, *, workers: int = 0) -> FastAPI:
    """`workers` render workers (threads) start with the app and stop with it.
    With none (`serve --workers 0`, workers in other processes) the callback
    dispatcher, the janitor and the listener still run: the outbox is leased,
    so any number of processes deliver it, and waiting clients need the
    listener."""
    settings = runtime.settings
    hub = CompletionHub(runtime.tasks, runtime.poll_interval)
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
        undo = ring_on_done(runtime.listener, hub)  # before the listener's first connect
        runtime.start_workers(
            workers, callback_renderer(runtime.asset_url), on_finished=hub.notify_threadsafe
        )
        try:
            yield
        finally:
            for undo_one in undo:
                undo_one()
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
    app.add_middleware(Observe, metrics=runtime.metrics)  # outermost: sees every answer
    for dialect in DIALECTS:
        app.include_router(dialect.build_router(ctx))
    # `POST /luma/tasks` is shared by two dialects: it reads which one it got.
    app.include_router(luma_tasks.build_router(ctx))
    app.include_router(models.build_router(ctx))
    studio.install(app, ctx)  # the web page at / and /studio

    @app.get("/healthz", tags=["server"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        """The process is up (it touches nothing else); `/readyz` says whether it can serve."""
        return {"status": "ok", "version": __version__}

    operations.install(
        app,
        runtime.readiness,
        runtime.metrics if isinstance(runtime.metrics, PrometheusMetrics) else None,
        settings.metrics_token.get_secret_value() if settings.metrics_token else None,
        DatabaseCollector(
            runtime.stats, runtime.workers, runtime.engines, settings.ready_heartbeat_seconds
        ),
    )

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
        """Files of either backend; for an object store this is the proxy
        for clients that cannot reach the bucket."""
        storage = runtime.storage
        try:
            check_key(key)
        except ValueError:
            raise NotFound("no such asset") from None
        query = dict(request.query_params)
        if not storage.link_valid(key, query):
            raise Forbidden("this asset link is invalid or has expired")

        def missing() -> ReelgateError:
            """410 for a file retention deleted (asked only once it is
            missing, and only of a valid link); else 404."""
            gone = runtime.service.expired_asset(key)
            return gone if gone is not None else NotFound("no such asset")

        headers = {
            "cache-control": cache_control(expires_in(query)),
            "x-content-type-options": "nosniff",
            "content-disposition": content_disposition(key),
        }
        if isinstance(storage, LocalStorage):
            path = storage.path(key)
            if not path.is_file():
                raise missing()
            check_range(request.headers.get("range"), path.stat().st_size)
            return FileResponse(path, media_type=content_type(key), headers=headers)
        size = storage.size(key)
        if size is None:
            raise missing()
        try:
            return streamed(storage, key, size, request, headers)
        except FileNotFoundError:  # deleted between the size and the read
            raise missing() from None

    app.state.hub = hub
    app.state.runtime = runtime
    return app
