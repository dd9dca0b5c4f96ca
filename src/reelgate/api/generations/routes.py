"""Routes of the generations dialect."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from typing import Any, Literal

from anyio.to_thread import run_sync
from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response

from reelgate import logs
from reelgate.api.context import ApiContext
from reelgate.api.deliveries import delivery_dict
from reelgate.api.errors import status_for
from reelgate.api.generations.present import task_object, wrapped
from reelgate.api.generations.schemas import CreateRequest, UploadRequest
from reelgate.domain.errors import InvalidRequest, ReelgateError
from reelgate.domain.models import GenerationRequest, Kind, State, Task
from reelgate.domain.types import TokenInfo

DIALECT = "generations"
PREFIX = "/luma/generations"

_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s_-]+$")


def render_error(error: ReelgateError, trace_id: str) -> Response:
    status = status_for(error)
    return JSONResponse(
        {"code": status, "message": error.message, "request_id": trace_id, "data": None},
        status_code=status,
    )


def image_ref(value: str | None, field: str) -> str | None:
    """http(s) URLs and data URIs pass through; anything else must be bare Base64."""
    if not value:
        return None
    value = value.strip()
    if value.startswith(("http://", "https://", "data:")):
        return value
    if len(value) < 16 or not _BASE64.match(value):
        raise InvalidRequest(f"{field} must be an http(s) URL, a data URI or Base64 image data")
    try:
        base64.b64decode(value[:64] + "=" * (-len(value[:64]) % 4), validate=False)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(f"{field} is not valid Base64") from exc
    return f"data:application/octet-stream;base64,{value}"


def to_neutral(
    body: CreateRequest, kind: Kind = Kind.GENERATE, source_task_id: str | None = None
) -> GenerationRequest:
    if kind is Kind.GENERATE and not (body.user_prompt or body.image_url):
        raise InvalidRequest("user_prompt is required")
    return GenerationRequest(
        prompt=body.user_prompt or "",
        kind=kind,
        start_image=image_ref(body.image_url, "image_url"),
        end_image=image_ref(body.image_end_url, "image_end_url"),
        source_task_id=source_task_id,
        loop=bool(body.loop),
        aspect_ratio=body.aspect_ratio or None,
        resolution=body.resolution,
        duration=body.duration,
        model=body.model_name or body.model,
        enhance=bool(body.expand_prompt),
        callback_url=body.notify_hook or None,
    )


def tasks_by_ids(ctx: ApiContext, owner: TokenInfo, ids: list[str]) -> dict[str, Any]:
    """`POST /luma/tasks {ids}`: the gateway's batch query."""
    tasks = ctx.service.get_many(owner.id, ids)
    estimates = ctx.service.queue_estimates(tasks)
    data = [task_object(t, ctx.url_for, estimates.get(t.id)) for t in tasks]
    return {"code": "success", "message": "", "data": data}


def _request_id() -> str:
    """This request's id (the `X-Request-ID` answer header and the log lines
    say the same), for the wrapped answer's `request_id`."""
    context = logs.current()
    return (context.request_id if context else None) or str(uuid.uuid4())


def build_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["generations dialect"])

    async def answer(task: Task, format: str | None) -> JSONResponse:
        """The task as created (pending), whatever a worker did since, with
        its place in line unless a worker took it already."""
        if (format or ctx.settings.generations_response) == "wrapped":
            return JSONResponse(wrapped(task, _request_id()), status_code=201)
        estimates = await run_sync(ctx.service.queue_estimates, [task])
        return JSONResponse(task_object(task, ctx.url_for, estimates.get(task.id)), status_code=201)

    Format = Query(
        None,
        description="plain (web-style object) or wrapped {code, data}; "
        "default from REELGATE_GENERATIONS_RESPONSE",
    )

    @router.post("", status_code=201, summary="Create a generation")
    async def create(
        body: CreateRequest,
        format: Literal["plain", "wrapped"] | None = Format,
        owner: TokenInfo = Depends(ctx.auth),
    ) -> JSONResponse:
        task = await run_sync(
            lambda: ctx.service.create(
                owner.id,
                to_neutral(body),
                origin=DIALECT,
                origin_request=body.model_dump(exclude_none=True),
            )
        )
        return await answer(task, format)

    @router.post("/file_upload", summary="Upload an image by URL or Base64")
    async def file_upload(
        body: UploadRequest, owner: TokenInfo = Depends(ctx.auth)
    ) -> dict[str, str]:
        ref = image_ref(body.url or body.file, "url")
        if ref is None:
            raise InvalidRequest("url (or file) is required")
        upload_id, url = await run_sync(ctx.uploads.put_image, owner.id, ref)
        return {"id": upload_id, "presigned_url": url, "public_url": url}

    @router.post("/{generation_id}/extend", status_code=201, summary="Extend a generation")
    async def extend(
        generation_id: str,
        body: CreateRequest,
        format: Literal["plain", "wrapped"] | None = Format,
        owner: TokenInfo = Depends(ctx.auth),
    ) -> JSONResponse:
        request = to_neutral(body, Kind.EXTEND, source_task_id=generation_id)
        task = await run_sync(
            lambda: ctx.service.create(
                owner.id,
                request,
                origin=DIALECT,
                origin_request={**body.model_dump(exclude_none=True), "extend": generation_id},
            )
        )
        return await answer(task, format)

    @router.post(
        "/{generation_id}/cancel",
        summary="Cancel a pending or processing generation (a reelgate route)",
    )
    async def cancel(
        generation_id: str,
        format: Literal["plain", "wrapped"] | None = Format,
        owner: TokenInfo = Depends(ctx.auth),
    ) -> dict[str, Any]:
        """The generation as cancelled: `failed`, with `failure_code`
        "cancelled"; its `notify_hook` is called with the same. A finished
        generation answers 409."""
        task = await run_sync(ctx.service.cancel, owner.id, generation_id)
        if (format or ctx.settings.generations_response) == "wrapped":
            return wrapped(task, _request_id())
        return task_object(task, ctx.url_for)

    @router.get("/{generation_id}", summary="Get a generation")
    async def get(generation_id: str, owner: TokenInfo = Depends(ctx.auth)) -> dict[str, Any]:
        task = await run_sync(ctx.service.get, owner.id, generation_id)
        deliveries = await run_sync(ctx.service.deliveries, [task])
        estimates = await run_sync(ctx.service.queue_estimates, [task])
        return {
            **task_object(task, ctx.url_for, estimates.get(task.id)),
            "callbacks": [delivery_dict(d) for d in deliveries[task.id]],
        }

    @router.get("/{generation_id}/download_video_url", summary="The video's URL once completed")
    async def download_url(
        generation_id: str, owner: TokenInfo = Depends(ctx.auth)
    ) -> dict[str, str]:
        task = await run_sync(ctx.service.get, owner.id, generation_id)
        if task.state is not State.COMPLETED or task.result is None:
            raise InvalidRequest(
                f"generation {generation_id} is {task.state.value}; "
                "the video is available once it is completed"
            )
        if task.result.video is None:
            raise InvalidRequest(f"generation {generation_id} is an image; it has no video")
        return {"url": ctx.url_for(task.result.video.key)}

    return router
