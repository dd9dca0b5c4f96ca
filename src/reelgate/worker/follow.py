"""Running a file engine: another service makes the video while a worker
follows it.

The worker lends the engine a `FollowContext` (`FollowRun` here): progress
and waits that notice a lost lease or a shutdown, the upstream id kept on
the task, callback nudges that end a wait early, and a mark for steps a
shutdown must wait for. What comes back is checked by decoding it and
published from our storage like any rendered video.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from reelgate.config import Settings
from reelgate.domain.errors import InputUnreachable, InvalidInput, UpstreamFailed
from reelgate.domain.models import GENERATION_TYPES, Kind, State, Task, TaskResult
from reelgate.engines.base import (
    FileEngine,
    LeaseLost,
    Needs,
    ProducedImage,
    ProducedVideo,
    UpstreamJob,
    WorkerStopping,
)
from reelgate.media.images import decode_image
from reelgate.media.probe import probe_video, read_first_frame, read_last_frame
from reelgate.store.follow import FollowStore
from reelgate.store.tasks import TaskStore
from reelgate.worker.inputs import InputResolver
from reelgate.worker.lease import Lease
from reelgate.worker.publish import publish, publish_image

log = logging.getLogger(__name__)

CLIENT_ERROR = re.compile(r"\bHTTP 4\d\d\b")
"""A failure reason saying a link answered 4xx: refused, not merely unreachable."""


class FollowRun:
    """The worker's side of one file-engine run (a `FollowContext`)."""

    def __init__(
        self,
        tasks: TaskStore,
        follows: FollowStore,
        task: Task,
        lease: Lease,
        check_interval: float,
        stopping: threading.Event,
        uninterruptible: threading.Event,
    ) -> None:
        self.tasks = tasks
        self.follows = follows
        self.task_id = task.id
        self.lease_owner = task.lease_owner or ""
        self.lease = lease
        self.check_interval = check_interval
        self.stopping = stopping
        self._uninterruptible = uninterruptible
        self._seen_nudge = follows.nudged_at(task.id)

    def progress(self, value: float) -> None:
        self.lease.report(value)

    def remember(self, upstream_id: str, key_id: str, submitted_at: float) -> None:
        if not self.follows.remember(
            self.task_id, self.lease_owner, upstream_id, key_id, submitted_at
        ):
            raise LeaseLost()

    async def wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            self.check()
            nudged = self.follows.nudged_at(self.task_id)
            if nudged is not None and nudged != self._seen_nudge:
                self._seen_nudge = nudged
                return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, self.check_interval))

    def check(self) -> None:
        self.lease.check()
        if self.stopping.is_set():
            raise WorkerStopping()

    def count_unclear_create(self) -> int:
        total = self.follows.count_unclear_create(self.task_id, self.lease_owner)
        if total is None:
            raise LeaseLost()
        return total

    @contextmanager
    def uninterruptible(self) -> Iterator[None]:
        self._uninterruptible.set()
        try:
            yield
        finally:
            self._uninterruptible.clear()

    def deleted(self) -> bool:
        task = self.tasks.get(self.task_id)
        return task is None or task.state is State.CANCELLED


class Follower:
    def __init__(
        self,
        settings: Settings,
        tasks: TaskStore,
        follows: FollowStore,
        inputs: InputResolver,
        callback_url: Callable[[str], str | None],
        stopping: Callable[[], threading.Event],
        uninterruptible: threading.Event,
    ) -> None:
        """`callback_url`: the link an upstream may call back for a task (None:
        poll). `stopping`: the worker's stop event (set when it shuts down)."""
        self.settings = settings
        self.tasks = tasks
        self.follows = follows
        self.inputs = inputs
        self.callback_url = callback_url
        self.stopping = stopping
        self.uninterruptible = uninterruptible

    def run(
        self, task: Task, engine: FileEngine, run_key: str, workdir: Path, lease: Lease
    ) -> TaskResult:
        job = UpstreamJob(
            task_id=task.id,
            prompt=task.effective_prompt,
            model=task.model,
            aspect_ratio=task.aspect_ratio,
            resolution=task.resolution,
            duration=task.duration,
            loop=task.loop,
            workdir=workdir,
            upstream_id=task.upstream_id,
            upstream_key=task.upstream_key,
            submitted_at=task.upstream_submitted_at,
            callback_url=self.callback_url(task.id),
            concepts=task.concepts,
            # a follow needs it too: it says whether to download an image or a video
            generation_type=GENERATION_TYPES[task.kind],
            mode=task.mode,
            negative_prompt=task.negative_prompt,
            image_format=task.image_format,
            placement=task.placement,
        )
        if not task.upstream_id:  # inputs matter only to a create, not to a follow
            self._resolve_inputs(task, engine, job)
        run = FollowRun(
            self.tasks,
            self.follows,
            task,
            lease,
            self.settings.poll_interval,
            self.stopping(),
            self.uninterruptible,
        )
        try:
            produced = engine.produce(job, run)
        except InputUnreachable as exc:
            if exc.retryable or not self._ours_was_away(exc):
                raise  # the client's own links would fail the same way again
            # Links to this server: the upstream fetched while it was away (a
            # restart). The next attempt makes a new generation, not this one.
            if not self.follows.forget(task.id, run.lease_owner):
                raise LeaseLost() from exc
            raise InputUnreachable(exc.message, urls=exc.urls, retryable=True) from exc
        if isinstance(produced, ProducedImage):
            return self._publish_image(run_key, workdir, produced, task.image_format or "jpg")
        return self._publish(run_key, workdir, produced)

    def _resolve_inputs(self, task: Task, engine: FileEngine, job: UpstreamJob) -> None:
        """What a create sends: links the upstream can fetch, kept per task,
        not per run (a queued upstream generation may fetch them after this
        run has been handed back or replaced), and the upstream ids of the
        generations it works on."""
        if task.kind is Kind.REFRAME_IMAGE:  # its image is what it works on
            job.media_url = self.inputs.shareable_image(
                task.start_image, task.id, "image (media.url)"
            )
        else:  # a modify's or video reframe's first frame, too
            job.start_image_url = self.inputs.shareable_image(
                task.start_image, task.id, "start image"
            )
        job.end_image_url = self.inputs.shareable_image(task.end_image, task.id, "end image")
        if task.kind in (Kind.MODIFY, Kind.REFRAME_VIDEO):
            job.media_url = self.inputs.shareable_video(task.source_video_url, task.id)
        source_id = self._upstream_id(task, engine, task.source_task_id)
        if task.kind in (Kind.UPSCALE, Kind.ADD_AUDIO):
            job.source_generation_id = source_id
        else:
            job.extend_generation_id = source_id
        job.leads_into_generation_id = self._upstream_id(task, engine, task.end_source_task_id)
        job.references = tuple(
            (ref.role, url, ref.weight)
            for ref in task.references
            if (url := self.inputs.shareable_image(ref.url, task.id, f"{ref.role.value} reference"))
        )

    def _ours_was_away(self, exc: InputUnreachable) -> bool:
        """Whether the upstream failed to fetch links of ours that do serve a
        file, in a way a moment's absence explains (not a 4xx, which would
        come again and cost another generation)."""
        if CLIENT_ERROR.search(exc.message):
            return False
        return all(self.inputs.storage.key_for_url(url) for url in exc.urls)

    def _upstream_id(
        self, task: Task, engine: FileEngine, source_task_id: str | None
    ) -> str | None:
        """The upstream id of a source generation, checked again now (the
        service checked it when the task was created)."""
        if not source_task_id:
            return None
        source = self.tasks.get(source_task_id)
        if source is None:
            raise InvalidInput(f"source task {source_task_id} no longer exists")
        engine.refuse(
            Needs(
                generation_type=GENERATION_TYPES[task.kind],
                inputs=frozenset(),
                resolution=task.resolution,
                duration=task.duration,
                aspect_ratio=task.aspect_ratio,
                source_engines=((source.engine, source.upstream_id),),
            )
        )
        return source.upstream_id

    def _publish_image(
        self, run_key: str, workdir: Path, produced: ProducedImage, image_format: str
    ) -> TaskResult:
        """An upstream's image, decoded (a file that is not a picture fails
        the task) and stored in the task's format."""
        try:
            picture = decode_image(produced.image.read_bytes(), self.settings.image_max_pixels)
        except Exception as exc:
            raise UpstreamFailed(f"the upstream image cannot be decoded: {exc}") from exc
        finally:
            produced.image.unlink(missing_ok=True)
        return publish_image(run_key, workdir, picture, image_format)

    def _publish(self, run_key: str, workdir: Path, produced: ProducedVideo) -> TaskResult:
        try:
            info = probe_video(produced.video)
            first = read_first_frame(produced.video, (info.width, info.height))
            last = read_last_frame(produced.video)
        except Exception as exc:
            raise UpstreamFailed(f"the upstream video cannot be decoded: {exc}") from exc
        thumbnail = None
        if produced.thumbnail is not None:
            try:
                thumbnail = decode_image(
                    produced.thumbnail.read_bytes(), self.settings.image_max_pixels
                )
            except Exception as exc:  # a broken thumbnail is not worth failing for
                log.warning("upstream thumbnail unusable (%s); using the first frame", exc)
        return publish(run_key, workdir, produced.video, first, last, thumbnail, info)
