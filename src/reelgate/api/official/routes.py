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
    CreateImage,
    GenerationKeyframe,
    ImageKeyframe,
    ModifyVideo,
    ReframeImage,
    ReframeVideo,
    Upscale,
    WeightedImage,
)
from reelgate.api.wire import WireModel
from reelgate.domain.concepts import CONCEPTS, unknown_concepts
from reelgate.domain.errors import InvalidRequest, ReelgateError
from reelgate.domain.models import (
    GENERATION_TYPES,
    LUMA_IMAGE_MODELS,
    LUMA_VIDEO_MODELS,
    MAX_PROMPT_CHARS,
    OFFICIAL_MIN_PROMPT_CHARS,
    GenerationRequest,
    Kind,
    Reference,
    RefRole,
)
from reelgate.domain.reframe import Placement
from reelgate.domain.types import TokenInfo

DIALECT = "official"
PREFIX = "/dream-machine/v1"


def render_error(error: ReelgateError, trace_id: str) -> Response:
    return JSONResponse({"detail": error.message}, status_code=status_for(error))


SYNC_TIMEOUT = 60.0
"""How long a `sync` image create waits when it names no `sync_timeout`."""
WEIGHTS = {RefRole.IMAGE: 0.85, RefRole.STYLE: 0.8, RefRole.CHARACTER: 1.0, RefRole.MODIFY: 1.0}
"""The weight of a reference that names none."""


def check_model(model: str, known: set[str]) -> str:
    if model not in known:
        raise InvalidRequest(
            f"model {model!r} is not supported; use one of {', '.join(sorted(known))}"
        )
    return model


def check_prompt(prompt: str | None) -> None:
    if prompt is not None and not OFFICIAL_MIN_PROMPT_CHARS <= len(prompt) <= MAX_PROMPT_CHARS:
        raise InvalidRequest(
            f"prompt must be between {OFFICIAL_MIN_PROMPT_CHARS} and {MAX_PROMPT_CHARS} characters"
        )


def to_neutral(body: CreateGeneration, known_models: set[str]) -> GenerationRequest:
    check_model(body.model, known_models)
    prompt = body.prompt
    frames = body.keyframes
    frame0 = frames.frame0 if frames else None
    frame1 = frames.frame1 if frames else None
    check_prompt(prompt)
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


def image_to_neutral(body: CreateImage, known_models: set[str]) -> GenerationRequest:
    check_model(body.model, known_models)
    check_prompt(body.prompt)

    def weighted(role: RefRole, ref: WeightedImage) -> Reference:
        return Reference(role, ref.url, WEIGHTS[role] if ref.weight is None else ref.weight)

    refs = [weighted(RefRole.IMAGE, r) for r in body.image_ref or ()]
    refs += [weighted(RefRole.STYLE, r) for r in body.style_ref or ()]
    identity = body.character_ref.identity0 if body.character_ref else None
    refs += [
        Reference(RefRole.CHARACTER, url, 1.0)
        for url in (identity.images or [] if identity else [])
    ]
    if body.modify_image_ref is not None:
        refs.append(weighted(RefRole.MODIFY, body.modify_image_ref))
    return GenerationRequest(
        kind=Kind.IMAGE,
        prompt=body.prompt or "",
        references=tuple(refs),
        image_format=body.format,
        aspect_ratio=body.aspect_ratio,
        model=body.model,
        callback_url=body.callback_url or None,
        callback_on_start=True,
    )


def reframe_to_neutral(
    body: ReframeImage | ReframeVideo, known_models: set[str]
) -> GenerationRequest:
    check_model(body.model, known_models)
    check_prompt(body.prompt)
    image = isinstance(body, ReframeImage)
    placement = Placement(
        grid_x=body.grid_position_x,
        grid_y=body.grid_position_y,
        x_start=body.x_start,
        x_end=body.x_end,
        y_start=body.y_start,
        y_end=body.y_end,
        resized_width=body.resized_width,
        resized_height=body.resized_height,
    )
    return GenerationRequest(
        kind=Kind.REFRAME_IMAGE if image else Kind.REFRAME_VIDEO,
        prompt=body.prompt or "",
        start_image=body.media.url
        if isinstance(body, ReframeImage)
        else (body.first_frame.url if body.first_frame else None),
        source_video_url=None if isinstance(body, ReframeImage) else body.media.url,
        placement=placement if placement.to_dict() else None,
        image_format=body.format if isinstance(body, ReframeImage) else None,
        aspect_ratio=body.aspect_ratio,
        model=body.model,
        callback_url=body.callback_url or None,
        callback_on_start=True,
    )


def build_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["official dialect"])
    known_models = set(LUMA_VIDEO_MODELS) | set(ctx.settings.model_engines)
    image_models = set(LUMA_IMAGE_MODELS) | set(ctx.settings.model_engines)

    async def submit(
        owner: TokenInfo, request: GenerationRequest, body: WireModel, wait: float | None = None
    ) -> JSONResponse:
        """Every create of this dialect: the new generation, 201, its body kept
        as the request it echoes (a create call that is not a plain video one
        is known by its generation type). With `wait` seconds, the generation
        as it stands once it finished or the wait ended."""
        echo = body.model_dump(exclude_none=True)
        if request.kind not in (Kind.GENERATE, Kind.EXTEND):
            echo["generation_type"] = GENERATION_TYPES[request.kind]
        task = await run_sync(
            lambda: ctx.service.create(owner.id, request, origin=DIALECT, origin_request=echo)
        )
        if wait is not None:
            await ctx.hub.wait(task.id, min(wait, ctx.settings.max_wait_seconds))
            task = await run_sync(ctx.service.get, owner.id, task.id)
        return JSONResponse(generation(task, ctx.url_for), status_code=201)

    async def create(body: CreateGeneration, owner: TokenInfo) -> JSONResponse:
        request = to_neutral(body, known_models)
        return await submit(owner, request, body)

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

    @router.post("/generations/image", status_code=201, summary="Create an image generation")
    async def create_image(body: CreateImage, owner: TokenInfo = Depends(ctx.auth)) -> JSONResponse:
        request = image_to_neutral(body, image_models)
        if not body.sync:
            return await submit(owner, request, body)
        timeout = SYNC_TIMEOUT if body.sync_timeout is None else body.sync_timeout
        return await submit(owner, request, body, wait=timeout)

    @router.post(
        "/generations/image/reframe",
        status_code=201,
        summary="Reframe an image to a new aspect ratio, the new area filled",
    )
    async def reframe_image(
        body: ReframeImage, owner: TokenInfo = Depends(ctx.auth)
    ) -> JSONResponse:
        request = reframe_to_neutral(body, image_models)
        return await submit(owner, request, body)

    @router.post(
        "/generations/video/reframe",
        status_code=201,
        summary="Reframe a video to a new aspect ratio, the new area filled",
    )
    async def reframe_video(
        body: ReframeVideo, owner: TokenInfo = Depends(ctx.auth)
    ) -> JSONResponse:
        request = reframe_to_neutral(body, known_models)
        return await submit(owner, request, body)

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
        return await submit(owner, request, body)

    @router.post(
        "/generations/video/modify",
        status_code=201,
        summary="Restyle a video by a prompt, as far as the mode allows",
    )
    async def modify_video(body: ModifyVideo, owner: TokenInfo = Depends(ctx.auth)) -> JSONResponse:
        check_model(body.model, known_models)
        check_prompt(body.prompt)
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
        return await submit(owner, request, body)

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
        return await submit(owner, request, body)

    @router.get(
        "/generations/concepts/list",
        summary="The camera concepts a video generation may name",
        response_model=list[str],
    )
    async def list_concepts(owner: TokenInfo = Depends(ctx.auth)) -> list[str]:
        return list(CONCEPTS)

    @router.get("/generations/{generation_id}", summary="Get a generation")
    async def get_generation(
        generation_id: str, owner: TokenInfo = Depends(ctx.auth.caller)
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
        summary="Delete a generation and its assets (a queued or dreaming one is cancelled)",
    )
    async def delete_generation(
        generation_id: str, owner: TokenInfo = Depends(ctx.auth)
    ) -> Response:
        """The generation goes at once, with its assets (then 404); a queued
        or dreaming one is cancelled in the same step, its render stopped and
        its callback told (`failed`, with a failure_reason saying so)."""
        await run_sync(ctx.service.delete, owner.id, generation_id)
        return Response(status_code=204)

    @router.get("/ping", summary="Check the API is up")
    async def ping() -> dict[str, str]:
        return {"message": "pong"}

    @router.get("/credits", summary="Credit balance (reelgate does not meter use)")
    async def credits(owner: TokenInfo = Depends(ctx.auth)) -> dict[str, float]:
        return {"credit_balance": ctx.settings.credit_balance}

    return router
