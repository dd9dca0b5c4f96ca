"""The task service: the one place that turns a neutral request into a task.

Dialects call it; it validates in neutral terms, resolves what a request
refers to (a source task for extend), persists the task and wakes a worker.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from reelgate.config import Settings
from reelgate.core.enhance import Enhancer
from reelgate.domain.errors import InvalidInput, InvalidRequest, NotFound, RateLimited
from reelgate.domain.models import (
    ASPECT_RATIOS,
    DURATIONS,
    MAX_PROMPT_CHARS,
    RESOLUTIONS,
    GenerationRequest,
    Kind,
    State,
    Task,
)
from reelgate.domain.types import Delivery
from reelgate.engines.base import Engine, Input, Needs
from reelgate.store.callbacks import CallbackStore
from reelgate.store.tasks import TaskStore


def _check_choice(name: str, value: str, allowed: Mapping[str, Any]) -> str:
    if value not in allowed:
        raise InvalidRequest(f"{name} {value!r} is not supported; use one of {', '.join(allowed)}")
    return value


def check_callback_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest("callback URL must be an absolute http(s) URL")
    return url


def _inputs(
    prompt: str,
    req: GenerationRequest,
    source_task_id: str | None,
    source_video_url: str | None,
    end_source_task_id: str | None,
) -> frozenset[Input]:
    """What a request brings, in the terms engines declare capabilities in."""
    inputs = {
        Input.TEXT: bool(prompt),
        Input.START_IMAGE: bool(req.start_image),
        Input.END_IMAGE: bool(req.end_image),
        Input.EXTEND: bool(source_task_id) and not end_source_task_id,
        Input.REVERSE_EXTEND: bool(end_source_task_id) and not source_task_id,
        Input.INTERPOLATE: bool(source_task_id and end_source_task_id),
        Input.VIDEO_URL: bool(source_video_url),
        Input.LOOP: req.loop,
    }
    return frozenset(name for name, present in inputs.items() if present)


class TaskService:
    def __init__(
        self,
        settings: Settings,
        tasks: TaskStore,
        engines: Mapping[str, Engine],
        enhancer: Enhancer,
        wake_workers: Callable[[], None] = lambda: None,
        delete_assets: Callable[[str], None] = lambda task_id: None,
        callbacks: CallbackStore | None = None,
        cancel_upstream: Callable[[Task], None] = lambda task: None,
    ) -> None:
        self.settings = settings
        self.tasks = tasks
        self.engines = engines
        self.enhancer = enhancer
        self.wake_workers = wake_workers
        self.delete_assets = delete_assets
        self.callbacks = callbacks
        self.cancel_upstream = cancel_upstream

    def route(self, model: str | None) -> Engine:
        """The engine for a requested model: `model_engines` in the settings,
        else the default engine."""
        name = self.settings.model_engines.get(model or "", self.settings.default_engine)
        if name not in self.engines:
            raise InvalidRequest(f"model {model!r} maps to engine {name!r}, which is not enabled")
        return self.engines[name]

    def create(
        self,
        owner_id: str,
        req: GenerationRequest,
        *,
        origin: str,
        origin_request: dict[str, Any],
        callback_dialect: str | None = None,
    ) -> Task:
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
        source_task_id, source_video_url, end_source_task_id = None, None, None
        sources: list[Task] = []
        if req.kind is Kind.EXTEND:
            source = self._extend_source(owner_id, req)
            end_source = self._end_source(owner_id, req)
            if source is None and end_source is None and not req.source_video_url:
                raise InvalidRequest("extend needs a video_id or a video_url")
            # The size follows the video being continued: a source task's is what
            # it made. A video URL's is known only once a worker reads the file;
            # the worker decides it then and the task stores what it made.
            for ref in (end_source, source):
                if ref is not None:
                    aspect_ratio, resolution = ref.aspect_ratio, ref.resolution
            source_task_id = source.id if source else None
            source_video_url = req.source_video_url if source is None else None
            end_source_task_id = end_source.id if end_source else None
            sources = [t for t in (source, end_source) if t is not None]
        elif not prompt and not req.start_image and not req.end_image:
            raise InvalidRequest("prompt is required (or a start or end image)")
        if req.callback_url:
            check_callback_url(req.callback_url)
        self._check_limits(owner_id)

        engine = self.route(req.model)
        needs = Needs(
            generation_type="video",
            inputs=_inputs(prompt, req, source_task_id, source_video_url, end_source_task_id),
            resolution=resolution,
            duration=duration,
            aspect_ratio=aspect_ratio,
            source_engines=tuple((t.engine, t.upstream_id) for t in sources),
        )
        try:
            engine.refuse(needs)
        except InvalidInput as exc:
            raise InvalidRequest(exc.message) from exc

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
            end_source_task_id=end_source_task_id,
            loop=req.loop,
            aspect_ratio=aspect_ratio,
            resolution=resolution,
            duration=duration,
            model=engine.model_label(req.model),
            engine=engine.name,
            seed=req.seed if req.seed is not None else secrets.randbelow(2**31),
            callback_url=req.callback_url,
            callback_dialect=(callback_dialect or origin) if req.callback_url else None,
            callback_on_start=bool(req.callback_url and req.callback_on_start),
            origin_request=origin_request,
        )
        self.wake_workers()
        return task

    def _check_limits(self, owner_id: str) -> None:
        """Creates per minute and tasks in flight, per token (answered with 429)."""
        per_minute, max_active = self.settings.rate_limit_per_minute, self.settings.max_active_tasks
        if per_minute:
            now = time.time()
            recent = self.tasks.created_since(owner_id, now - 60)
            if len(recent) >= per_minute:
                wait = recent[-per_minute] + 60 - now
                raise RateLimited(
                    f"more than {per_minute} tasks per minute for this token",
                    retry_after=max(1, math.ceil(wait)),
                )
        if max_active and self.tasks.count_active(owner_id) >= max_active:
            raise RateLimited(
                f"this token already has {max_active} tasks queued or running", retry_after=5
            )

    def _extend_source(self, owner_id: str, req: GenerationRequest) -> Task | None:
        """The task an extend continues (None: none, or a video URL)."""
        if req.source_task_id:
            return self._finished_source(
                self.tasks.get_owned(owner_id, req.source_task_id), f"task {req.source_task_id}"
            )
        if req.source_video_id:
            return self._finished_source(
                self.tasks.find_by_video_id(owner_id, req.source_video_id),
                f"video {req.source_video_id}",
            )
        return None

    def _end_source(self, owner_id: str, req: GenerationRequest) -> Task | None:
        if not req.end_source_task_id:
            return None
        return self._finished_source(
            self.tasks.get_owned(owner_id, req.end_source_task_id), f"task {req.end_source_task_id}"
        )

    @staticmethod
    def _finished_source(source: Task | None, name: str) -> Task:
        if source is None:
            raise NotFound(f"{name} was not found")
        if source.state is not State.COMPLETED:
            raise InvalidRequest(f"{name} cannot be used yet: its task is {source.state.value}")
        return source

    def get(self, owner_id: str, task_id: str) -> Task:
        task = self.tasks.get_owned(owner_id, task_id)
        if task is None:
            raise NotFound(f"task {task_id} was not found")
        return task

    def get_many(self, owner_id: str, task_ids: Sequence[str]) -> list[Task]:
        return self.tasks.get_many_owned(owner_id, task_ids)

    def deliveries(self, tasks: Sequence[Task]) -> dict[str, list[Delivery]]:
        """Each task's callbacks and how each delivery went, in one query. The
        tasks come from `get`/`get_many`, so ownership is already checked."""
        ids = [t.id for t in tasks]
        if not ids or self.callbacks is None:
            return {task_id: [] for task_id in ids}
        return self.callbacks.for_tasks(ids)

    def list(self, owner_id: str, limit: int, offset: int) -> tuple[list[Task], int]:
        return self.tasks.list_owned(owner_id, limit, offset)

    def delete(self, owner_id: str, task_id: str) -> None:
        """Delete a task and its assets, and its generation upstream if it has one
        (a worker following it also notices and stops)."""
        self.get(owner_id, task_id)
        deleted = self.tasks.delete(task_id)
        self.delete_assets(task_id)
        if deleted is not None and deleted.upstream_id:
            self.cancel_upstream(deleted)
