"""Routes of the official dialect. Keyframes become neutral requests:
frame0 image = start image, frame1 image = end image, frame0 generation =
extend, frame1 generation = reverse extend, both generations = interpolate."""

from __future__ import annotations

from typing import Any

from anyio.to_thread import run_sync
from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response

from reelgate.api.context import ApiContext
from reelgate.api.errors import status_for
from reelgate.api.official.present import generation
from reelgate.api.official.schemas import (
    AddAudio,
    CreateGeneration,
    GenerationKeyframe,
    ImageKeyframe,
    ModifyVideo,
    Upscale,
)
from reelgate.domain.concepts import CONCEPTS, unknown_concepts
from reelgate.domain.errors import InvalidRequest, ReelgateError
from reelgate.domain.models import (
    LUMA_VIDEO_MODELS,
    MAX_PROMPT_CHARS,
    OFFICIAL_MIN_PROMPT_CHARS,
    GenerationRequest,
    Kind,
)
from reelgate.domain.types import TokenInfo

DIALECT = "official"
PREFIX = "/dream-machine/v1"


def render_error(error: ReelgateError, trace_id: str) -> Response:
    return JSONResponse({"detail": error.message}, status_code=status_for(error))


def to_neutral(body: CreateGeneration, known_models: set[str]) -> GenerationRequest:
    if body.model not in known_models:
        raise InvalidRequest(
            f"model {body.model!r} is not supported; use one of {', '.join(sorted(known_models))}"
        )
    prompt = body.prompt
    frames = body.keyframes
    frame0 = frames.frame0 if frames else None
    frame1 = frames.frame1 if frames else None
    if prompt is not None and not OFFICIAL_MIN_PROMPT_CHARS <= len(prompt) <= MAX_PROMPT_CHARS:
        raise InvalidRequest(
            f"prompt must be between {OFFICIAL_MIN_PROMPT_CHARS} and {MAX_PROMPT_CHARS} characters"
        )
    if prompt is None and frame0 is None and frame1 is None:
        raise InvalidRequest("prompt is required")
    if body.loop and frame1 is not None:
        raise InvalidRequest(
            "loop is not supported with an end frame (frame1): it cannot be combined with two "
            "keyframes, a reverse extend or an interpolation"
        )
    concepts = list(dict.fromkeys(c.key for c in body.concepts or ()))
    if unknown := unknown_concepts(concepts):
        raise InvalidRequest(
            f"unknown concept {', '.join(repr(k[:64]) for k in unknown)}; "
            f"GET {PREFIX}/generations/concepts/list lists the concepts there are"
        )
    extend_from = frame0.id if isinstance(frame0, GenerationKeyframe) else None
    leads_into = frame1.id if isinstance(frame1, GenerationKeyframe) else None
    return GenerationRequest(
        prompt=prompt or "",
        kind=Kind.EXTEND if extend_from or leads_into else Kind.GENERATE,
        start_image=frame0.url if isinstance(frame0, ImageKeyframe) else None,
        end_image=frame1.url if isinstance(frame1, ImageKeyframe) else None,
        source_task_id=extend_from,
        end_source_task_id=leads_into,
        loop=bool(body.loop),
        concepts=tuple(concepts),
        aspect_ratio=body.aspect_ratio,
        resolution=body.resolution,
        duration=body.duration,
        model=body.model,
        callback_url=body.callback_url or None,
        callback_on_start=True,
    )


def build_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["official dialect"])
    known_models = set(LUMA_VIDEO_MODELS) | set(ctx.settings.model_engines)

    async def submit(
        owner: TokenInfo, request: GenerationRequest, echo: dict[str, Any]
    ) -> JSONResponse:
        """Every create of this dialect: the new generation, 201."""
        task = await run_sync(
            lambda: ctx.service.create(owner.id, request, origin=DIALECT, origin_request=echo)
        )
        return JSONResponse(generation(task, ctx.url_for), status_code=201)

    async def create(body: CreateGeneration, owner: TokenInfo) -> JSONResponse:
        request = to_neutral(body, known_models)
        return await submit(owner, request, body.model_dump(exclude_none=True))

    @router.post("/generations", status_code=201, summary="Create a video generation")
    async def create_generation(
        body: CreateGeneration, owner: TokenInfo = Depends(ctx.auth)
    ) -> JSONResponse:
        return await create(body, owner)

    @router.post("/generations/video", status_code=201, summary="Create a video generation")
    async def create_video(
        body: CreateGeneration, owner: TokenInfo = Depends(ctx.auth)
    ) -> JSONResponse:
        return await create(body, owner)

    @router.post(
        "/generations/{generation_id}/upscale",
        status_code=201,
        summary="Upscale a completed video generation (a new generation)",
    )
    async def upscale(
        generation_id: str, body: Upscale, owner: TokenInfo = Depends(ctx.auth)
    ) -> JSONResponse:
        request = GenerationRequest(
            kind=Kind.UPSCALE,
            source_task_id=generation_id,
            resolution=body.resolution,
            callback_url=body.callback_url or None,
            callback_on_start=True,
        )
        echo = {**body.model_dump(exclude_none=True), "generation_type": "upscale_video"}
        return await submit(owner, request, echo)

    @router.post(
        "/generations/video/modify",
        status_code=201,
        summary="Restyle a video by a prompt, as far as the mode allows",
    )
    async def modify_video(body: ModifyVideo, owner: TokenInfo = Depends(ctx.auth)) -> JSONResponse:
        if body.model not in known_models:
            raise InvalidRequest(
                f"model {body.model!r} is not supported; use one of "
                f"{', '.join(sorted(known_models))}"
            )
        request = GenerationRequest(
            kind=Kind.MODIFY,
            prompt=body.prompt or "",
            mode=body.mode,
            model=body.model,
            source_video_url=body.media.url,
            start_image=body.first_frame.url if body.first_frame else None,
            callback_url=body.callback_url or None,
            callback_on_start=True,
        )
        echo = {**body.model_dump(exclude_none=True), "generation_type": "modify_video"}
        return await submit(owner, request, echo)

    @router.post(
        "/generations/{generation_id}/audio",
        status_code=201,
        summary="Add a soundtrack to a completed video generation (a new generation)",
    )
    async def add_audio(
        generation_id: str, body: AddAudio, owner: TokenInfo = Depends(ctx.auth)
    ) -> JSONResponse:
        request = GenerationRequest(
            kind=Kind.ADD_AUDIO,
            prompt=body.prompt or "",
            negative_prompt=body.negative_prompt or None,
            source_task_id=generation_id,
            callback_url=body.callback_url or None,
            callback_on_start=True,
        )
        echo = {**body.model_dump(exclude_none=True), "generation_type": "add_audio"}
        return await submit(owner, request, echo)

    @router.get(
        "/generations/concepts/list",
        summary="The camera concepts a video generation may name",
        response_model=list[str],
    )
    async def list_concepts(owner: TokenInfo = Depends(ctx.auth)) -> list[str]:
        return list(CONCEPTS)

    @router.get("/generations/{generation_id}", summary="Get a generation")
    async def get_generation(
        generation_id: str, owner: TokenInfo = Depends(ctx.auth)
    ) -> dict[str, Any]:
        task = await run_sync(ctx.service.get, owner.id, generation_id)
        return generation(task, ctx.url_for)

    @router.get("/generations", summary="List generations, newest first")
    async def list_generations(
        limit: int = Query(10, ge=1, le=100),
        offset: int = Query(0, ge=0, le=1_000_000_000),
        owner: TokenInfo = Depends(ctx.auth),
    ) -> dict[str, Any]:
        tasks, total = await run_sync(ctx.service.list, owner.id, limit, offset)
        return {
            "generations": [generation(t, ctx.url_for) for t in tasks],
            "count": len(tasks),
            "has_more": offset + len(tasks) < total,
            "limit": limit,
            "offset": offset,
        }

    @router.delete(
        "/generations/{generation_id}",
        status_code=204,
        summary="Delete a generation and its assets",
    )
    async def delete_generation(
        generation_id: str, owner: TokenInfo = Depends(ctx.auth)
    ) -> Response:
        await run_sync(ctx.service.delete, owner.id, generation_id)
        return Response(status_code=204)

    @router.get("/ping", summary="Check the API is up")
    async def ping() -> dict[str, str]:
        return {"message": "pong"}

    @router.get("/credits", summary="Credit balance (reelgate does not meter use)")
    async def credits(owner: TokenInfo = Depends(ctx.auth)) -> dict[str, float]:
        return {"credit_balance": ctx.settings.credit_balance}

    return router
