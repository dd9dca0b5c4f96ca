"""The task service: the one place that turns a neutral request into a task.

Dialects call it; it validates in neutral terms, resolves what a request
refers to (a source task for extend), persists the task and wakes a worker.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from reelgate.config import Settings
from reelgate.core.enhance import Enhancer
from reelgate.core.errors import InvalidRequest, NotFound
from reelgate.core.models import (
    ASPECT_RATIOS,
    DURATIONS,
    RESOLUTIONS,
    GenerationRequest,
    Kind,
    State,
    Task,
    frame_count,
    frame_size,
)
from reelgate.engines.base import Engine, EngineError
from reelgate.store.tasks import TaskStore

MAX_PROMPT_CHARS = 5000


def _check_choice(name: str, value: str, allowed: Mapping[str, Any]) -> str:
    if value not in allowed:
        raise InvalidRequest(f"{name} {value!r} is not supported; use one of {', '.join(allowed)}")
    return value


def check_callback_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest("callback URL must be an absolute http(s) URL")
    return url


class TaskService:
    def __init__(
        self,
        settings: Settings,
        tasks: TaskStore,
        engines: Mapping[str, Engine],
        enhancer: Enhancer,
        wake_workers: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.tasks = tasks
        self.engines = engines
        self.enhancer = enhancer
        self.wake_workers = wake_workers

    def route(self, model: str | None) -> Engine:
        """The engine for a requested model. Every model maps to the default
        engine until model routing is configured."""
        return self.engines[self.settings.default_engine]

    def create(self, owner_id: str, req: GenerationRequest, *, origin: str,
               origin_request: dict[str, Any], callback_dialect: str | None = None) -> Task:
        prompt = (req.prompt or "").strip()
        if len(prompt) > MAX_PROMPT_CHARS:
            raise InvalidRequest(f"prompt is longer than {MAX_PROMPT_CHARS} characters")
        aspect_ratio = _check_choice(
            "aspect_ratio", req.aspect_ratio or self.settings.default_aspect_ratio, ASPECT_RATIOS
        )
        resolution = _check_choice(
            "resolution", req.resolution or self.settings.default_resolution, RESOLUTIONS
        )
        duration = _check_choice(
            "duration", req.duration or self.settings.default_duration, DURATIONS
        )
        source_task_id, source_video_url = None, None
        if req.kind is Kind.EXTEND:
            source = self._extend_source(owner_id, req)
            if source is not None:
                source_task_id = source.id
                aspect_ratio, resolution = source.aspect_ratio, source.resolution
            else:
                source_video_url = req.source_video_url
        elif not prompt and not req.start_image and not req.end_image:
            raise InvalidRequest("prompt is required (or a start or end image)")
        if req.callback_url:
            check_callback_url(req.callback_url)

        engine = self.route(req.model)
        width, height = frame_size(aspect_ratio, resolution)
        try:
            engine.check(width, height, frame_count(duration))
        except EngineError as exc:
            raise InvalidRequest(str(exc)) from exc

        task = self.tasks.create(
            owner_id=owner_id,
            origin=origin,
            kind=req.kind.value,
            prompt=prompt,
            enhanced_prompt=self.enhancer.enhance(prompt) if req.enhance and prompt else None,
            start_image=req.start_image,
            end_image=req.end_image,
            source_task_id=source_task_id,
            source_video_url=source_video_url,
            loop=req.loop,
            aspect_ratio=aspect_ratio,
            resolution=resolution,
            duration=duration,
            model=engine.model_label(req.model),
            engine=engine.name,
            seed=req.seed if req.seed is not None else secrets.randbelow(2**31),
            callback_url=req.callback_url,
            callback_dialect=callback_dialect or origin if req.callback_url else None,
            origin_request=origin_request,
        )
        self.wake_workers()
        return task

    def _extend_source(self, owner_id: str, req: GenerationRequest) -> Task | None:
        """The task an extend continues, or None when it continues a video URL."""
        source: Task | None = None
        if req.source_task_id:
            source = self.tasks.get_owned(owner_id, req.source_task_id)
            missing = f"task {req.source_task_id} was not found"
        elif req.source_video_id:
            source = self.tasks.find_by_video_id(owner_id, req.source_video_id)
            missing = f"video {req.source_video_id} was not found"
        elif req.source_video_url:
            return None
        else:
            raise InvalidRequest("extend needs a video_id or a video_url")
        if source is None:
            raise NotFound(missing)
        if source.state is not State.COMPLETED:
            raise InvalidRequest(
                f"video {source.video_id} cannot be extended yet: its task is {source.state.value}"
            )
        return source

    def get(self, owner_id: str, task_id: str) -> Task:
        task = self.tasks.get_owned(owner_id, task_id)
        if task is None:
            raise NotFound(f"task {task_id} was not found")
        return task

    def get_many(self, owner_id: str, task_ids: Sequence[str]) -> list[Task]:
        return self.tasks.get_many_owned(owner_id, task_ids)
