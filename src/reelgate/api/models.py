"""`GET /reelgate/v1/models`: the models this server offers, each with what
its engine can do (the studio's form offers only those choices; any client
may ask the same)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from reelgate.api.context import ApiContext
from reelgate.domain.errors import InvalidRequest
from reelgate.domain.models import LUMA_IMAGE_MODELS, LUMA_VIDEO_MODELS
from reelgate.domain.types import TokenInfo
from reelgate.engines.base import Input

PREFIX = "/reelgate/v1"


class ModelInfo(BaseModel):
    model: str
    """The name to send as `model`."""
    kind: Literal["video", "image"]
    """What the model makes: image models are the official photon ones."""
    engine: str
    """The engine that serves it here."""
    generation_types: list[str]
    """The official generation types the engine makes (video, image, upscale_video...)."""
    inputs: list[str]
    """What a request may bring (`Input`: text prompts, start images, end
    images, extending a generation, ..., loops)."""
    resolutions: list[str]
    durations: list[str]
    aspect_ratios: list[str]
    concepts: list[str]
    """Camera concept keys the engine acts on."""


class ModelList(BaseModel):
    models: list[ModelInfo]
    default_model: str | None
    """The video model a form should start with (the official default, ray-2,
    when it is offered)."""


def offered_models(ctx: ApiContext) -> ModelList:
    """The official video and image models and the models the settings route,
    each once, leaving out those whose engine is not enabled here."""
    names = dict.fromkeys([*LUMA_VIDEO_MODELS, *LUMA_IMAGE_MODELS, *ctx.settings.model_engines])
    models: list[ModelInfo] = []
    for name in names:
        try:
            engine = ctx.service.route(name)
        except InvalidRequest:
            continue
        caps = engine.capabilities
        models.append(
            ModelInfo(
                model=name,
                kind="image" if name in LUMA_IMAGE_MODELS else "video",
                engine=engine.name,
                generation_types=sorted(caps.generation_types),
                inputs=[str(i) for i in Input if i in caps.inputs],
                resolutions=list(caps.resolutions),
                durations=list(caps.durations),
                aspect_ratios=list(caps.aspect_ratios),
                concepts=sorted(caps.concepts),
            )
        )
    videos = [m.model for m in models if m.kind == "video" and "video" in m.generation_types]
    return ModelList(models=models, default_model=videos[0] if videos else None)


def build_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["server"])

    @router.get(
        "/models",
        summary="The models this server offers, with what each one's engine can do",
        response_model=ModelList,
    )
    async def list_models(owner: TokenInfo = Depends(ctx.auth)) -> ModelList:
        return offered_models(ctx)

    return router
