"""The worker loop: claim, render, encode, publish, finish.

A heartbeat thread renews the lease while a task runs and records progress;
if the lease is lost (this worker was presumed dead and the task was handed
to another), rendering stops and nothing this run made is published.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from reelgate.config import Settings
from reelgate.core.models import FPS, Asset, Kind, Task, TaskResult, frame_count, frame_size
from reelgate.engines.base import (
    UPSTREAM_THUMBNAIL,
    Engine,
    EngineError,
    LeaseLost,
    ProducedVideo,
    RenderJob,
    UpstreamEngine,
    UpstreamJob,
    WorkerStopping,
    is_upstream,
)
from reelgate.media.encode import encode_mp4
from reelgate.media.errors import MediaError
from reelgate.media.fetch import FetchError
from reelgate.media.images import cover_fit, decode_image, save_jpeg
from reelgate.media.probe import (
    VideoInfo,
    iter_frames,
    probe_video,
    read_first_frame,
    read_last_frame,
)
from reelgate.storage.local import INPUTS_DIR, LocalStorage
from reelgate.store.tasks import TaskStore
from reelgate.worker.inputs import InputError, InputResolver

log = logging.getLogger(__name__)

PERMANENT_ERRORS = (InputError, FetchError, MediaError, EngineError)
"""Errors that another attempt would repeat: the task fails at once."""


SOURCE_FILE = "source.mp4"


class _Heartbeat:
    """Renews the lease and records progress: every third of the lease, and at
    least every second so clients polling a task see it move."""

    def __init__(self, tasks: TaskStore, task: Task, lease_seconds: float) -> None:
        self.tasks = tasks
        self.task = task
        self.lease_seconds = lease_seconds
        self.progress = 0.0
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{task.id[:8]}", daemon=True
        )

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(min(self.lease_seconds / 3, 1.0)):
            try:
                alive = self.tasks.heartbeat(
                    self.task.id, self.task.lease_owner or "", self.lease_seconds, self.progress
                )
            except Exception:
                log.exception("heartbeat failed for task %s", self.task.id)
                continue
            if not alive:
                self.lost.set()
                return


class _Follow:
    """The worker's side of an upstream engine's run: progress and waits that
    notice a lost lease, the upstream id kept on the task, callback nudges."""

    def __init__(
        self,
        tasks: TaskStore,
        task: Task,
        beat: _Heartbeat,
        check_interval: float,
        stopping: threading.Event,
        create_in_flight: threading.Event,
    ) -> None:
        self.tasks = tasks
        self.stopping = stopping
        self.create_in_flight = create_in_flight
        self.task_id = task.id
        self.lease_owner = task.lease_owner or ""
        self.beat = beat
        self.check_interval = check_interval
        self._seen_nudge = tasks.upstream_nudged_at(task.id)

    def progress(self, value: float) -> None:
        if self.beat.lost.is_set():
            raise LeaseLost()
        self.beat.progress = max(self.beat.progress, value)

    def remember(self, upstream_id: str, key_id: str, submitted_at: float) -> None:
        if not self.tasks.remember_upstream(
            self.task_id, self.lease_owner, upstream_id, key_id, submitted_at
        ):
            raise LeaseLost()

    async def wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            self.check()
            nudged = self.tasks.upstream_nudged_at(self.task_id)
            if nudged is not None and nudged != self._seen_nudge:
                self._seen_nudge = nudged
                return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, self.check_interval))

    def check(self) -> None:
        if self.beat.lost.is_set():
            raise LeaseLost()
        if self.stopping.is_set():
            raise WorkerStopping()

    def count_unclear_create(self) -> int:
        total = self.tasks.count_unclear_create(self.task_id, self.lease_owner)
        if total is None:
            raise LeaseLost()
        return total

    @contextmanager
    def creating(self) -> Iterator[None]:
        self.create_in_flight.set()
        try:
            yield
        finally:
            self.create_in_flight.clear()

    def deleted(self) -> bool:
        return self.tasks.get(self.task_id) is None


class Worker:
    def __init__(
        self,
        settings: Settings,
        tasks: TaskStore,
        storage: LocalStorage,
        engines: Mapping[str, Engine | UpstreamEngine],
        inputs: InputResolver,
        on_finished: Callable[[str], None] = lambda task_id: None,
        upstream_callback_url: Callable[[str], str | None] = lambda task_id: None,
        only: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
    ) -> None:
        """`only`/`exclude`: which engines' tasks this worker claims."""
        self.settings = settings
        self.tasks = tasks
        self.storage = storage
        self.engines = engines
        self.inputs = inputs
        self.on_finished = on_finished
        self.upstream_callback_url = upstream_callback_url
        self.only = only
        self.exclude = exclude
        self.stopping = threading.Event()
        self.create_in_flight = threading.Event()
        """Set while an upstream create is on the wire: shutdown waits for it,
        or the generation it makes would be neither followed nor deleted."""

    def run(self, stop: threading.Event, wake: threading.Event) -> None:
        """Work until `stop` is set; sleep on `wake` (or the poll interval) when idle."""
        self.stopping = stop
        while not stop.is_set():
            try:
                worked = self.run_once()
            except Exception:
                log.exception("worker loop error")
                worked = False
            if not worked:
                wake.wait(self.settings.poll_interval)
                wake.clear()

    def run_once(self) -> bool:
        task = self.tasks.claim(
            self.settings.lease_seconds,
            self.settings.max_attempts,
            only=self.only,
            exclude=self.exclude,
        )
        if task is None:
            return False
        if self.stopping.is_set():
            self.tasks.release(task.id, task.lease_owner or "")
            return True
        log.info("task %s: attempt %d", task.id, task.attempts)
        self.process(task)
        return True

    def process(self, task: Task) -> None:
        run_key = f"{task.id}/{uuid.uuid4().hex[:12]}"
        workdir = self.storage.workdir(run_key)
        lease = task.lease_owner or ""
        try:
            with _Heartbeat(self.tasks, task, self.settings.lease_seconds) as beat:
                result = self._render(task, run_key, workdir, beat)
            if not self.tasks.complete(task.id, lease, result):
                log.warning("task %s: superseded by another run, discarding this one", task.id)
        except LeaseLost:
            log.warning("task %s: lease lost, discarding this run", task.id)
        except WorkerStopping:
            log.info("task %s: shutting down, handing the task back", task.id)
            self.tasks.release(task.id, lease)
        except PERMANENT_ERRORS as exc:
            self.tasks.fail(task.id, lease, str(exc))
        except Exception as exc:
            log.exception("task %s: attempt %d failed", task.id, task.attempts)
            reason = f"internal error: {exc.__class__.__name__}: {exc}"
            delay = self.settings.retry_backoff_seconds * 2 ** (task.attempts - 1)
            self.tasks.retry_later(task.id, lease, reason, delay, self.settings.max_attempts)
        finally:
            (workdir / SOURCE_FILE).unlink(missing_ok=True)
            (workdir / UPSTREAM_THUMBNAIL).unlink(missing_ok=True)
        latest = self.tasks.get(task.id)
        if latest is not None and self._published(latest, run_key):
            self.storage.prune_runs(task.id, keep=run_key)
        else:
            self.storage.delete_prefix(run_key)
        if latest is not None and latest.state.terminal:
            self.on_finished(task.id)

    @staticmethod
    def _published(task: Task, run_key: str) -> bool:
        return task.result is not None and task.result.video.key.startswith(run_key + "/")

    def _render(self, task: Task, run_key: str, workdir: Path, beat: _Heartbeat) -> TaskResult:
        engine = self.engines.get(task.engine)
        if engine is None:
            raise EngineError(f"the {task.engine!r} engine is not enabled on this worker")
        if is_upstream(engine):
            return self._produce(task, engine, run_key, workdir, beat)  # type: ignore[arg-type]
        extend = task.kind is Kind.EXTEND
        source = self.inputs.source_video(task, workdir) if extend else None
        leads_into = self.inputs.end_source_video(task) if extend else None
        reference = source or leads_into
        if reference is not None:
            width, height = reference.info.width, reference.info.height
        else:
            width, height = frame_size(task.aspect_ratio, task.resolution)
        end_image = (
            read_first_frame(leads_into.path, (width, height))
            if leads_into
            else self.inputs.image(task.end_image, "end image")
        )
        job = RenderJob(
            task_id=task.id,
            prompt=task.effective_prompt,
            seed=task.seed,
            width=width,
            height=height,
            fps=FPS,
            num_frames=frame_count(task.duration),
            loop=task.loop,
            start_image=self.inputs.image(task.start_image, "start image"),
            end_image=end_image,
            source_video=source.path if source else None,
            source_last_frame=cover_fit(source.last_frame, width, height) if source else None,
            model=task.model,
        )
        engine.check(width, height, job.num_frames)
        # Extend: source + new clip. Reverse extend: new clip + the video it
        # leads into. Both (interpolation): only the bridge between them.
        before = source if source and not leads_into else None
        after = leads_into if leads_into and not source else None
        total = job.num_frames + sum(v.info.frames for v in (before, after) if v)

        def on_frame(count: int) -> None:
            if beat.lost.is_set():
                raise LeaseLost()
            beat.progress = max(beat.progress, 0.99 * count / total)

        def on_engine_progress(value: float) -> None:
            # Engines that work before the first frame (denoising) report here.
            if beat.lost.is_set():
                raise LeaseLost()
            beat.progress = max(beat.progress, 0.9 * value * job.num_frames / total)

        frames = itertools.chain(
            iter_frames(before.path, (width, height)) if before else (),
            engine.render(job, on_engine_progress),
            iter_frames(after.path, (width, height)) if after else (),
        )
        video_path = workdir / "video.mp4"
        summary = encode_mp4(
            frames,
            video_path,
            width=width,
            height=height,
            fps=FPS,
            preset=self.settings.encoder_preset,
            crf=self.settings.encoder_crf,
            on_frame=on_frame,
        )
        return self._publish(run_key, workdir, video_path, summary.first_frame, summary.last_frame)

    def _produce(
        self, task: Task, engine: UpstreamEngine, run_key: str, workdir: Path, beat: _Heartbeat
    ) -> TaskResult:
        """An upstream engine makes the whole file; we check it by decoding it
        and publish it from our storage."""
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
            callback_url=self.upstream_callback_url(task.id),
        )
        if not task.upstream_id:  # inputs matter only to a create, not to a follow
            # Kept per task, not per run: a queued upstream generation may fetch
            # them after this run has been handed back or replaced.
            inputs = f"{task.id}/{INPUTS_DIR}"
            job.start_image_url = self.inputs.shareable_image(
                task.start_image, inputs, "start image"
            )
            job.end_image_url = self.inputs.shareable_image(task.end_image, inputs, "end image")
            job.extend_generation_id = self._upstream_id(engine, task.source_task_id)
            job.leads_into_generation_id = self._upstream_id(engine, task.end_source_task_id)
        follow = _Follow(
            self.tasks,
            task,
            beat,
            self.settings.poll_interval,
            self.stopping,
            self.create_in_flight,
        )
        produced = engine.produce(job, follow)
        return self._publish_produced(run_key, workdir, produced)

    def _upstream_id(self, engine: UpstreamEngine, source_task_id: str | None) -> str | None:
        if not source_task_id:
            return None
        source = self.tasks.get(source_task_id)
        if source is None:
            raise EngineError(f"source task {source_task_id} no longer exists")
        engine.check_sources([(source.engine, source.upstream_id)])
        return source.upstream_id

    def _publish_produced(self, run_key: str, workdir: Path, produced: ProducedVideo) -> TaskResult:
        try:
            info = probe_video(produced.video)
            first = read_first_frame(produced.video, (info.width, info.height))
            last = read_last_frame(produced.video)
        except Exception as exc:
            raise EngineError(f"the upstream video cannot be decoded: {exc}") from exc
        thumbnail = None
        if produced.thumbnail is not None:
            try:
                thumbnail = decode_image(
                    produced.thumbnail.read_bytes(), self.settings.image_max_pixels
                )
            except Exception as exc:  # a broken thumbnail is not worth failing for
                log.warning("upstream thumbnail unusable (%s); using the first frame", exc)
        return self._publish(run_key, workdir, produced.video, first, last, thumbnail, info)

    def _publish(
        self,
        run_key: str,
        workdir: Path,
        video_path: Path,
        first: np.ndarray,
        last: np.ndarray,
        thumbnail: np.ndarray | None = None,
        info: VideoInfo | None = None,
    ) -> TaskResult:
        info = info or probe_video(video_path)
        thumbnail = first if thumbnail is None else thumbnail
        save_jpeg(thumbnail, workdir / "thumbnail.jpg")
        save_jpeg(last, workdir / "last_frame.jpg")
        th, tw = thumbnail.shape[:2]
        h, w = last.shape[:2]
        return TaskResult(
            video=Asset(
                key=f"{run_key}/video.mp4",
                width=info.width,
                height=info.height,
                content_type="video/mp4",
                bytes=info.bytes,
                duration=info.duration,
                fps=info.fps,
                frames=info.frames,
            ),
            thumbnail=Asset(
                key=f"{run_key}/thumbnail.jpg",
                width=tw,
                height=th,
                content_type="image/jpeg",
                bytes=(workdir / "thumbnail.jpg").stat().st_size,
            ),
            last_frame=Asset(
                key=f"{run_key}/last_frame.jpg",
                width=w,
                height=h,
                content_type="image/jpeg",
                bytes=(workdir / "last_frame.jpg").stat().st_size,
            ),
        )
