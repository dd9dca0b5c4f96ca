"""The task service: the one place that turns a neutral request into a task.

Dialects call it; it validates in neutral terms, resolves what a request
refers to (a source task for extend), persists the task and wakes a worker.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from reelgate.config import Settings
from reelgate.core.inputs import InlineInputs, echoed
from reelgate.core.limits import Limits
from reelgate.domain.errors import (
    INVALID_TOKEN,
    Conflict,
    Expired,
    InvalidInput,
    InvalidRequest,
    NotFound,
    Unauthorized,
)
from reelgate.domain.models import (
    ASPECT_RATIOS,
    DURATIONS,
    GENERATION_TYPES,
    IMAGE_FORMATS,
    IMAGE_RESOLUTION,
    MAX_PROMPT_CHARS,
    MAX_REFERENCES,
    MODIFY_MODES,
    RESOLUTIONS,
    GenerationRequest,
    Kind,
    RefRole,
    State,
    Task,
)
from reelgate.domain.reframe import PlacementError
from reelgate.domain.types import Delivery, QueueEstimate
from reelgate.engines.base import Engine, FileEngine, Input, Needs
from reelgate.storage.base import Storage, is_upload_key
from reelgate.store.callbacks import CallbackStore
from reelgate.store.queue import QueueStats
from reelgate.store.tasks import Admit, TaskStore
from reelgate.store.uploads import UploadStore

CANCELLED_BY_CLIENT = "cancelled by the client"
DELETED_BY_CLIENT = "cancelled by the client (deleted before it finished)"
CANCELLED_BY_OPERATOR = "cancelled by an operator"
"""The failure reasons a cancelled task reports, by who cancelled it."""


def _check_choice(name: str, value: str, allowed: Mapping[str, Any]) -> str:
    if value not in allowed:
        raise InvalidRequest(f"{name} {value!r} is not supported; use one of {', '.join(allowed)}")
    return value


def check_callback_url(url: str, check_address: Callable[[str], object]) -> str:
    """An absolute http(s) URL the guarded client would call (not a private or
    metadata address, unless the deployment allows private networks)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest("callback URL must be an absolute http(s) URL")
    try:
        check_address(url)
    except InvalidInput as exc:
        raise InvalidRequest(f"callback URL refused: {exc.message}") from exc
    return url


def _span(seconds: float) -> str:
    """A time span in words: `30 days`, `1.5 days`, `6 hours`, `1 minute`."""
    if seconds >= 86_400:
        amount, unit = round(seconds / 86_400, 1), "day"
    elif seconds >= 3_600:
        amount, unit = round(seconds / 3_600, 1), "hour"
    else:
        amount, unit = max(1, round(seconds / 60)), "minute"
    return f"{amount:g} {unit}{'' if amount == 1 else 's'}"


def expired_error(task: Task, name: str, consequence: str = "") -> Expired:
    """The one answer about a task whose files retention deleted."""
    after = _span((task.expired_at or 0.0) - (task.finished_at or task.created_at))
    return Expired(
        f"{name} expired: its files were deleted {after} after it finished{consequence}",
        task_id=task.id,
    )


def _inputs(
    prompt: str,
    req: GenerationRequest,
    source_task_id: str | None,
    source_video_url: str | None,
    end_source_task_id: str | None,
) -> frozenset[Input]:
    """What a request brings, in the terms engines declare capabilities in.
    A reframe's or modify's own media is what its generation type works on,
    not an input of its own (an image reframe keeps its image as the start
    image; a modify or video reframe its video as the source URL)."""
    roles = {ref.role for ref in req.references}
    extend = req.kind is Kind.EXTEND
    inputs = {
        Input.TEXT: bool(prompt),
        Input.START_IMAGE: bool(req.start_image) and req.kind is not Kind.REFRAME_IMAGE,
        Input.END_IMAGE: bool(req.end_image),
        Input.EXTEND: extend and bool(source_task_id) and not end_source_task_id,
        Input.REVERSE_EXTEND: bool(end_source_task_id) and not source_task_id,
        Input.INTERPOLATE: bool(source_task_id and end_source_task_id),
        Input.VIDEO_URL: extend and bool(source_video_url),
        Input.LOOP: req.loop,
        Input.IMAGE_REF: RefRole.IMAGE in roles,
        Input.STYLE_REF: RefRole.STYLE in roles,
        Input.CHARACTER_REF: RefRole.CHARACTER in roles,
        Input.MODIFY_IMAGE: RefRole.MODIFY in roles,
    }
    return frozenset(name for name, present in inputs.items() if present)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _image_refs(req: GenerationRequest) -> list[tuple[str, str]]:
    """Every image a request refers to, with what it is, for the link checks
    and the storing of inline images."""
    refs = [(req.start_image, "start image"), (req.end_image, "end image")]
    if req.kind is Kind.REFRAME_IMAGE:
        refs[0] = (req.start_image, "image (media.url)")
    refs += [(ref.url, f"{ref.role.value} reference") for ref in req.references]
    return [(ref, what) for ref, what in refs if ref]


class TaskService:
    def __init__(
        self,
        settings: Settings,
        tasks: TaskStore,
        engines: Mapping[str, Engine],
        wake_workers: Callable[[], None] = lambda: None,
        delete_assets: Callable[[str], None] = lambda task_id: None,
        callbacks: CallbackStore | None = None,
        cancel_upstream: Callable[[Task], None] = lambda task: None,
        *,
        limits: Limits | None = None,
        inline_inputs: InlineInputs | None = None,
        check_address: Callable[[str], object] = lambda url: None,
        queue: QueueStats | None = None,
        storage: Storage | None = None,
        uploads: UploadStore | None = None,
    ) -> None:
        """`inline_inputs` stores data URIs as files (without it they stay in
        the task); `check_address` refuses callback URLs the guarded client
        would not call (the runtime passes the guarded client's check).
        With `storage`, links to our own assets in a request are checked: an
        upload is usable by its owner only (`uploads` knows who that is),
        and a link to a task's files only while the task keeps them."""
        self.settings = settings
        self.tasks = tasks
        self.engines = engines
        self.wake_workers = wake_workers
        self.delete_assets = delete_assets
        self.callbacks = callbacks
        self.cancel_upstream = cancel_upstream
        self.limits = limits or Limits(settings)
        self.inline_inputs = inline_inputs
        self.check_address = check_address
        self.queue = queue
        self.storage = storage
        self.uploads = uploads

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
        elif req.kind is Kind.UPSCALE:
            source, resolution = self._upscale_source(owner_id, req)
            aspect_ratio, duration = source.aspect_ratio, source.duration
            source_task_id, sources = source.id, [source]
        elif req.kind is Kind.MODIFY:
            if not req.source_video_url:
                raise InvalidRequest("modify needs the video to modify (media.url)")
            if req.mode not in MODIFY_MODES:
                raise InvalidRequest(f"mode must be one of {', '.join(MODIFY_MODES)}")
            # its size is the video's, known once a worker reads the file
            source_video_url = req.source_video_url
        elif req.kind is Kind.ADD_AUDIO:
            source = self._finished_source(
                self.tasks.get_owned(owner_id, req.source_task_id or ""),
                f"generation {req.source_task_id}",
                "given a soundtrack",
            )
            aspect_ratio, resolution, duration = (
                source.aspect_ratio,
                source.resolution,
                source.duration,
            )
            source_task_id, sources = source.id, [source]
        elif req.kind is Kind.IMAGE:
            resolution = IMAGE_RESOLUTION
            self._check_image(prompt, req)
        elif req.kind is Kind.REFRAME_IMAGE:
            if not req.start_image:
                raise InvalidRequest("reframe needs the image to reframe (media.url)")
            resolution = IMAGE_RESOLUTION  # until a worker reads the image
            self._check_placement(req)
        elif req.kind is Kind.REFRAME_VIDEO:
            if not req.source_video_url:
                raise InvalidRequest("reframe needs the video to reframe (media.url)")
            source_video_url = req.source_video_url
            self._check_placement(req)
        elif not prompt and not req.start_image and not req.end_image:
            raise InvalidRequest("prompt is required (or a start or end image)")
        self._check_links(owner_id, req)
        if req.callback_url:
            check_callback_url(req.callback_url, self.check_address)

        engine = self.route(req.model)
        if req.kind in (Kind.UPSCALE, Kind.ADD_AUDIO) and sources[0].engine in self.engines:
            engine = self.engines[sources[0].engine]  # the engine that made it works on it
        needs = Needs(
            generation_type=GENERATION_TYPES[req.kind],
            inputs=_inputs(prompt, req, source_task_id, source_video_url, end_source_task_id),
            resolution=resolution,
            duration=duration,
            aspect_ratio=aspect_ratio,
            source_engines=tuple((t.engine, t.upstream_id) for t in sources),
            concepts=req.concepts,
        )
        try:
            engine.refuse(needs)
        except InvalidInput as exc:
            raise InvalidRequest(exc.message) from exc

        # The model a token may be limited to is the one asked for, else the
        # one reported. Where there are inline images to decode and store, a
        # first look at the limits first, so that a token past them costs no
        # such work; they are checked (again), locked, on insert.
        model = req.model or engine.model_label(None)
        if self.inline_inputs is not None and any(
            ref.startswith("data:") for ref, _ in _image_refs(req)
        ):
            usage = self.tasks.usage(owner_id, self.limits.rate_window)
            self.limits.admit_task(usage, engine.name, model)
        task_id = str(uuid.uuid4())
        links: dict[str, str] = {}
        try:
            links.update(self._store_inline(task_id, req))
            task = self._insert(
                task_id,
                owner_id,
                req,
                prompt=prompt,
                origin=origin,
                origin_request=echoed(origin_request, links),
                callback_dialect=callback_dialect,
                start_image=links.get(req.start_image or "", req.start_image),
                end_image=links.get(req.end_image or "", req.end_image),
                refs=[
                    replace(ref, url=links.get(ref.url, ref.url)).to_dict()
                    for ref in req.references
                ]
                or None,
                source_task_id=source_task_id,
                source_video_url=source_video_url,
                end_source_task_id=end_source_task_id,
                aspect_ratio=aspect_ratio,
                resolution=resolution,
                duration=duration,
                engine=engine,
                admit=lambda usage: self.limits.admit_task(usage, engine.name, model),
            )
        except BaseException:
            self.delete_assets(task_id)  # whatever inputs were stored before the failure
            raise
        self.wake_workers()
        return task

    @staticmethod
    def _check_image(prompt: str, req: GenerationRequest) -> None:
        if not prompt and not req.references:
            raise InvalidRequest("prompt is required (or a reference image)")
        if len(req.references) > MAX_REFERENCES:
            raise InvalidRequest(
                f"an image generation takes at most {MAX_REFERENCES} reference images"
            )
        if sum(ref.role is RefRole.MODIFY for ref in req.references) > 1:
            raise InvalidRequest("an image generation modifies at most one image")
        for ref in req.references:
            if not 0.0 <= ref.weight <= 1.0:
                raise InvalidRequest(
                    f"the weight of a {ref.role.value} reference must be between 0 and 1"
                )
        if (req.image_format or "jpg") not in IMAGE_FORMATS:
            raise InvalidRequest(f"format must be one of {', '.join(IMAGE_FORMATS)}")

    @staticmethod
    def _check_placement(req: GenerationRequest) -> None:
        if req.placement is None:
            return
        try:
            req.placement.check()
        except PlacementError as exc:
            raise InvalidRequest(str(exc)) from exc

    def _check_links(self, owner_id: str, req: GenerationRequest) -> None:
        """Refuse, before anything is queued, links to our own assets that the
        task could not use: another token's upload (or one that expired), or
        a file of a task whose files retention deleted. Found by the link's
        path alone, whatever its host or signature."""
        if self.storage is None:
            return
        refs = [*_image_refs(req), (req.source_video_url, "source video")]
        for ref, what in refs:
            if not ref or ref.startswith("data:"):
                continue
            if not ref.startswith(("http://", "https://")):
                raise InvalidRequest(f"{what} must be an http(s) URL or a data URI")
            key = self.storage.key_in_path(ref)
            if key is None:
                continue
            if is_upload_key(key):
                if self.uploads is None or self.uploads.owner(key) != owner_id:
                    # the same answer whether it is another token's or gone
                    raise NotFound(
                        f"{what}: no such upload (an upload can be used only by the "
                        "token that made it, until it expires)"
                    )
                continue
            # a link of this form may also be another reelgate's (a chained
            # one hands us its links): only a task of this token's is judged
            task = self.tasks.get_owned(owner_id, key.split("/")[0])
            if task is not None and task.expired_at is not None:
                raise expired_error(task, f"{what}: task {task.id}", ", so it cannot be used")

    def expired_asset(self, key: str) -> Expired | None:
        """The error for a link to a file of an expired task (its key starts
        with the task's id), else None: links name no owner, so neither does this."""
        task_id = key.split("/")[0]
        if not _is_uuid(task_id):
            return None
        task = self.tasks.get(task_id)
        if task is None or task.expired_at is None:
            return None
        return expired_error(task, f"this file of task {task_id}")

    def _store_inline(self, task_id: str, req: GenerationRequest) -> dict[str, str]:
        """Inline images (data URIs) stored as files: data URI -> link."""
        links: dict[str, str] = {}
        if self.inline_inputs is None:
            return links
        for ref, what in _image_refs(req):
            if ref.startswith("data:") and ref not in links:
                links[ref] = self.inline_inputs.store(task_id, ref, what)
        return links

    def _insert(
        self,
        task_id: str,
        owner_id: str,
        req: GenerationRequest,
        *,
        prompt: str,
        engine: Engine,
        callback_dialect: str | None,
        origin: str,
        admit: Admit,
        **fields: Any,
    ) -> Task:
        """The row, inserted only if the token's limits allow it (`admit`,
        checked in the same transaction, also gives its queue priority)."""
        return self.tasks.create(
            admit=admit,
            window=self.limits.rate_window,
            id=task_id,
            owner_id=owner_id,
            origin=origin,
            kind=req.kind.value,
            prompt=prompt,
            enhance=bool(req.enhance and prompt),  # a worker enhances it, once
            loop=req.loop,
            concepts=list(req.concepts) or None,
            negative_prompt=req.negative_prompt or None,
            mode=req.mode,
            image_format=(req.image_format or "jpg") if req.kind.makes_image else None,
            placement=req.placement.to_dict() if req.placement else None,
            model=engine.model_label(req.model),
            engine=engine.name,
            seed=req.seed if req.seed is not None else secrets.randbelow(2**31),
            callback_url=req.callback_url,
            callback_dialect=(callback_dialect or origin) if req.callback_url else None,
            callback_on_start=bool(req.callback_url and req.callback_on_start),
            **fields,
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

    def _upscale_source(self, owner_id: str, req: GenerationRequest) -> tuple[Task, str]:
        """The finished video an upscale enlarges (one of the token's) and the
        resolution it goes to: the one asked for, else the next one up."""
        name = f"generation {req.source_task_id}"
        source = self._finished_source(
            self.tasks.get_owned(owner_id, req.source_task_id or ""), name, "upscaled"
        )
        order = list(RESOLUTIONS)
        higher = order[order.index(source.resolution) + 1 :]
        if not higher:
            raise InvalidRequest(f"{name} is {source.resolution}, the highest resolution there is")
        resolution = req.resolution or higher[0]
        if resolution not in higher:
            raise InvalidRequest(
                f"{name} is {source.resolution} already; an upscale goes to {' or '.join(higher)}"
            )
        return source, resolution

    @staticmethod
    def _finished_source(source: Task | None, name: str, use: str = "extended") -> Task:
        if source is None:
            raise NotFound(f"{name} was not found")
        if source.expired_at is not None:
            raise expired_error(source, name, f", so it cannot be {use}")
        if source.state is State.COMPLETED:
            if source.result is not None and source.result.video is None:
                raise InvalidRequest(f"{name} is an image: it has no video to be {use}")
            return source
        if source.state.terminal:
            raise InvalidRequest(
                f"{name} cannot be {use}: its task is {source.state.value} and has no video"
            )
        raise InvalidRequest(f"{name} cannot be used yet: its task is {source.state.value}")
        return source

    def get(self, owner_id: str, task_id: str) -> Task:
        """One of the token's tasks; an expired one (its files deleted by
        retention) answers `Expired` rather than links to files that are gone.
        A revoked token is refused (`Unauthorized`), checked in the same query
        (so routes may authenticate with `Authenticator.caller`)."""
        return self.get_with_deliveries(owner_id, task_id, deliveries=False)[0]

    def get_with_deliveries(
        self, owner_id: str, task_id: str, *, deliveries: bool = True
    ) -> tuple[Task, list[Delivery]]:
        """`get`, and the task's callback deliveries (as `deliveries` has
        them), all in one query."""
        live, task, found = self.tasks.get_live(
            owner_id, task_id, deliveries=deliveries and self.callbacks is not None
        )
        if not live:
            raise Unauthorized(INVALID_TOKEN)
        if task is None:
            raise NotFound(f"task {task_id} was not found")
        if task.expired_at is not None:
            raise expired_error(task, f"task {task_id}")
        return task, found

    def _owned(self, owner_id: str, task_id: str) -> Task:
        task = self.tasks.get_owned(owner_id, task_id)
        if task is None:
            raise NotFound(f"task {task_id} was not found")
        return task

    def get_many(self, owner_id: str, task_ids: Sequence[str]) -> list[Task]:
        """The token's tasks among `task_ids`; expired ones are left out, as
        unknown ids are (lists show only tasks whose files are kept)."""
        tasks = self.tasks.get_many_owned(owner_id, task_ids)
        return [t for t in tasks if t.expired_at is None]

    def deliveries(self, tasks: Sequence[Task]) -> dict[str, list[Delivery]]:
        """Each task's callbacks and how each delivery went, in one query. The
        tasks come from `get`/`get_many`, so ownership is already checked."""
        ids = [t.id for t in tasks]
        if not ids or self.callbacks is None:
            return {task_id: [] for task_id in ids}
        return self.callbacks.for_tasks(ids)

    def queue_estimates(self, tasks: Sequence[Task]) -> dict[str, QueueEstimate]:
        """Where each queued task stands in its worker pool's line and about
        how long until a worker starts it, in one look at the queue for all
        of them. Tasks that are running, finished or gone get none.

        The wait is the tasks ahead, plus this one, times the pool's mean run
        time over recent tasks, shared among the workers busy now (at least
        one); without recent history there is a place in line but no wait."""
        queued = [t.id for t in tasks if t.state is State.QUEUED]
        if not queued or self.queue is None:
            return {}
        # Render engines share one pool of workers and file engines another
        # (Runtime.start_workers); an engine this process lacks is its own.
        pools = {
            name: "upstream" if isinstance(engine, FileEngine) else "render"
            for name, engine in self.engines.items()
        }
        snapshot = self.queue.snapshot(queued, pools)
        estimates: dict[str, QueueEstimate] = {}
        for task_id, (pool, position) in snapshot.positions.items():
            count, seconds = snapshot.finished.get(pool, (0, 0.0))
            wait = None
            if count:
                workers = max(1, snapshot.running.get(pool, 0))
                wait = max(1, round(position * seconds / count / workers))
            estimates[task_id] = QueueEstimate(position=position, wait_seconds=wait)
        return estimates

    def list(self, owner_id: str, limit: int, offset: int) -> tuple[list[Task], int]:
        """A page of the token's tasks whose files are kept (expired ones are
        left out of the page and the count)."""
        return self.tasks.list_owned(owner_id, limit, offset, expired=False)

    def delete(self, owner_id: str, task_id: str) -> None:
        """Delete a finished task and its assets, and its generation upstream
        if it has one. An expired task can be deleted too (its row goes).

        A queued or running task is cancelled first (`cancel`: its render
        stops, its callback says so), then hidden: it reads as absent at once,
        as the official API's delete does, and its files are deleted; its row
        stays until its cancel callback has had its time to be delivered
        (`purge_deleted`, run by the janitor)."""
        task = self._owned(owner_id, task_id)
        if not task.state.terminal:
            try:
                self.cancel(owner_id, task_id, reason=DELETED_BY_CLIENT, hide=True)
            except Conflict:
                pass  # it finished meanwhile: deleted below like any finished task
            else:
                self.delete_assets(task_id)
                return
        deleted = self.tasks.delete(task_id)
        self.delete_assets(task_id)
        if deleted is not None and deleted.upstream_id:
            self.cancel_upstream(deleted)

    def cancel(
        self, owner_id: str, task_id: str, reason: str = CANCELLED_BY_CLIENT, *, hide: bool = False
    ) -> Task:
        """Stop one of the token's queued or running tasks: it ends cancelled
        with `reason` (the dialects show it), its callback (if it has one)
        reports it, the worker running it stops within about a second and
        publishes nothing, and its generation upstream, if one was made, is
        cancelled there (a follower that made one a moment later deletes it
        itself when it finds the task cancelled). A finished task answers
        `Conflict` (409), naming its state. `hide`: a delete, so the task
        reads as absent from the same commit on."""
        task = self._owned(owner_id, task_id)
        cancelled = None
        if not task.state.terminal:
            cancelled = self.tasks.cancel(task_id, reason, hide=hide)
        if cancelled is None:
            task = self._owned(owner_id, task_id)  # it may have finished meanwhile
            raise Conflict(
                f"task {task_id} is {task.state.value} already; only a queued or running "
                "task can be cancelled",
                task_id=task_id,
            )
        if cancelled.upstream_id:
            self.cancel_upstream(cancelled)
        return cancelled

    def retry(self, task_id: str) -> Task:
        """An operator's retry: a failed or cancelled task (of any token) goes
        back to the queue with its attempts reset. Anything else answers
        `Conflict`; a task whose files expired, `Expired`."""
        task = self.tasks.get(task_id)
        if task is None:
            raise NotFound(f"task {task_id} was not found")
        if task.expired_at is not None:
            raise expired_error(task, f"task {task_id}", ", so it cannot be retried")
        queued = self.tasks.requeue(task_id)
        if queued is None:
            raise Conflict(
                f"task {task_id} is {task.state.value}; only a failed or cancelled task "
                "can be retried",
                task_id=task_id,
            )
        self.wake_workers()
        return queued
