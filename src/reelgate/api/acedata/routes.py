"""Routes of the AceData dialect. Translates wire fields to a neutral
`GenerationRequest` and neutral tasks back; nothing here touches storage."""

from __future__ import annotations

from typing import Any

from anyio.to_thread import run_sync
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from reelgate.api.acedata.present import failure_error, flat_result, retrieve_item
from reelgate.api.acedata.schemas import TasksRequest, VideoRequest
from reelgate.api.context import ApiContext
from reelgate.api.deliveries import delivery_dict
from reelgate.domain.errors import (
    Conflict,
    InvalidRequest,
    ReelgateError,
    TaskFailed,
    WaitTimeout,
)
from reelgate.domain.models import FailureCode, GenerationRequest, Kind, State, Task
from reelgate.domain.types import Delivery, TokenInfo

DIALECT = "acedata"
PREFIXES = ("/luma/videos", "/luma/tasks")

_ERRORS: dict[str, tuple[str, int]] = {
    "invalid_request": ("bad_request", 400),
    "unauthorized": ("invalid_token", 401),
    "forbidden": ("forbidden", 403),
    "not_found": ("not_found", 404),
    "method_not_allowed": ("method_not_allowed", 405),
    "conflict": ("conflict", 409),
    "expired": ("expired", 410),
    "rate_limited": ("too_many_requests", 429),
    "payload_too_large": ("payload_too_large", 413),
    "timeout": ("timeout", 504),
    "unavailable": ("service_unavailable", 503),
}


def render_error(error: ReelgateError, trace_id: str) -> Response:
    code, status = _ERRORS.get(error.code, ("api_error", 500))
    if isinstance(error, TaskFailed):
        code, status = failure_error(error.failure_code)
    body: dict[str, Any] = {
        "success": False,
        "error": {"code": code, "message": error.message},
        "trace_id": trace_id,
    }
    if error.task_id:
        body["task_id"] = error.task_id
    return JSONResponse(body, status_code=status)


def to_neutral(body: VideoRequest) -> GenerationRequest:
    start, end = body.start_image_url, body.end_image_url
    if body.image_urls:  # legacy [start, end]
        start = start or body.image_urls[0]
        end = end or (body.image_urls[1] if len(body.image_urls) > 1 else None)
    kind = Kind.EXTEND if body.action == "extend" else Kind.GENERATE
    return GenerationRequest(
        prompt=body.prompt or "",
        kind=kind,
        start_image=start or None,
        end_image=end or None,
        source_video_id=(body.video_id or None) if kind is Kind.EXTEND else None,
        source_video_url=(body.video_url or None) if kind is Kind.EXTEND else None,
        loop=bool(body.loop),
        aspect_ratio=body.aspect_ratio or None,
        resolution=body.resolution,
        duration=body.duration,
        model=body.model,
        enhance=body.enhancement is not False,
        seed=body.seed,
        callback_url=body.callback_url or None,
    )


def _action(body: TasksRequest) -> str:
    return body.action or ("retrieve_batch" if body.ids is not None else "retrieve")


def retrieves_one(body: TasksRequest) -> bool:
    """Whether `task_action` answers this body by retrieving one task, in the
    one query that also checks the token is live (`TaskService.get`)."""
    return _action(body) == "retrieve" and bool(body.id)


def task_action(ctx: ApiContext, owner: TokenInfo, body: TasksRequest) -> dict[str, Any]:
    """`POST /luma/tasks` with an action: `retrieve` one task, `retrieve_batch`,
    or `cancel` one (answered with the task as cancelled, as `retrieve` shows it)."""
    action = _action(body)
    if action == "retrieve_batch":
        if body.ids is None:
            raise InvalidRequest("retrieve_batch needs 'ids'")
        items = _items(ctx, ctx.service.get_many(owner.id, body.ids))
        return {"items": items, "count": len(items)}
    if not body.id:
        raise InvalidRequest(f"{action} needs 'id'")
    if action == "cancel":
        return _items(ctx, [ctx.service.cancel(owner.id, body.id)])[0]
    task, deliveries = ctx.service.get_with_deliveries(owner.id, body.id)
    return _item(ctx, task, deliveries)


def _items(ctx: ApiContext, tasks: list[Task]) -> list[dict[str, Any]]:
    """Retrieve items with each task's callback deliveries (one query for all)."""
    deliveries = ctx.service.deliveries(tasks)
    return [_item(ctx, t, deliveries[t.id]) for t in tasks]


def _item(ctx: ApiContext, task: Task, deliveries: list[Delivery]) -> dict[str, Any]:
    return {
        **retrieve_item(task, ctx.url_for),
        "callbacks": [delivery_dict(d) for d in deliveries],
    }


def build_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["AceData dialect"])

    @router.post("/luma/videos", summary="Generate or extend a video")
    async def create_video(
        body: VideoRequest, owner: TokenInfo = Depends(ctx.auth.caller)
    ) -> dict[str, Any]:
        task = await run_sync(
            lambda: ctx.service.create(
                owner.id,
                to_neutral(body),
                origin=DIALECT,
                origin_request=body.model_dump(by_alias=True, exclude_unset=True),
            )
        )
        if body.async_ or body.callback_url:
            return {"task_id": task.id}
        timeout = min(
            body.timeout if body.timeout is not None else 300.0, ctx.settings.max_wait_seconds
        )
        await ctx.hub.wait(task.id, timeout)
        task = await run_sync(ctx.service.get, owner.id, task.id)
        if task.state is State.COMPLETED:
            return flat_result(task, ctx.url_for)
        if task.state is State.CANCELLED:
            raise Conflict(task.failure_reason or "the task was cancelled", task_id=task.id)
        if task.state.terminal:
            raise TaskFailed(
                task.failure_reason or "the task failed",
                task_id=task.id,
                failure_code=task.failure_code or FailureCode.INTERNAL,
            )
        estimate = (await run_sync(ctx.service.queue_estimates, [task])).get(task.id)
        waiting = f"; it is still waiting, {estimate.describe()}" if estimate else ""
        raise WaitTimeout(
            f"the video was not ready within {timeout:g} s{waiting}; "
            "poll /luma/tasks with this task_id",
            task_id=task.id,
        )

    return router
