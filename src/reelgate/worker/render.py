"""Running a frame engine: resolve the inputs, stream the engine's frames
(with an extend's source before them, or the video a reverse extend leads
into after them) through the encoder, and publish the file.

A worker asked to stop ends the render at its next progress report with
`WorkerStopping`, so the task goes back to the queue at once, its attempt
not counted, instead of holding the shutdown (or its lease) until it ends."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np

from reelgate.config import Settings
from reelgate.domain.models import (
    ASPECT_RATIOS,
    FPS,
    IMAGE_RESOLUTION,
    Kind,
    Task,
    TaskResult,
    frame_count,
    frame_size,
)
from reelgate.domain.reframe import Layout, Placement, PlacementError, layout
from reelgate.engines.base import FrameEngine, RenderJob, WorkerStopping
from reelgate.media.encode import SAMPLE_RATE, encode_mp4
from reelgate.media.images import cover_fit
from reelgate.media.probe import frame_count_at, iter_frames_at, read_first_frame
from reelgate.metrics import NO_METRICS, Metrics
from reelgate.worker.inputs import InputError, InputResolver, SourceVideo
from reelgate.worker.lease import Lease
from reelgate.worker.publish import publish, publish_image

T = TypeVar("T")


class FrameRunner:
    def __init__(
        self,
        settings: Settings,
        inputs: InputResolver,
        stopping: Callable[[], threading.Event] = threading.Event,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        """`stopping`: the worker's stop event, read when a run reports progress."""
        self.settings = settings
        self.inputs = inputs
        self.stopping = stopping
        self.metrics = metrics

    def run(
        self, task: Task, engine: FrameEngine, run_key: str, workdir: Path, lease: Lease
    ) -> TaskResult:
        if task.kind.makes_image:
            return self._still(task, engine, run_key, workdir, lease)
        extend = task.kind is Kind.EXTEND
        upscale = task.kind is Kind.UPSCALE  # the source's frames, enlarged
        sound = task.kind is Kind.ADD_AUDIO  # the source's frames, with a soundtrack
        modify = task.kind is Kind.MODIFY  # the source's frames, restyled
        reframe = task.kind is Kind.REFRAME_VIDEO  # the source's frames, on a new canvas
        # the engine yields every frame of the source
        whole = upscale or sound or modify or reframe
        source = self.inputs.source_video(task, workdir) if extend or whole else None
        leads_into = self.inputs.end_source_video(task, workdir) if extend else None
        # The size of a clip that continues a video is that video's: decided
        # here, from the file, and stored with the result.
        reference = source or leads_into
        layout = None
        if reframe and source is not None:
            layout = _layout(task, source.info.width, source.info.height)
            width, height = layout.width, layout.height
        elif reference is not None and not upscale:
            width, height = reference.info.width, reference.info.height
        else:
            width, height = frame_size(task.aspect_ratio, task.resolution)
        end_image = (
            read_first_frame(leads_into.path, (width, height))
            if leads_into
            else self.inputs.image(task.end_image, "end image", task.id, (width, height))
        )
        job = RenderJob(
            task_id=task.id,
            prompt=task.effective_prompt,
            seed=task.seed,
            width=width,
            height=height,
            fps=FPS,
            num_frames=(
                frame_count_at(source.info.duration, FPS)
                if whole and source
                else frame_count(task.duration)
            ),
            loop=task.loop,
            start_image=self.inputs.image(
                task.start_image, "start image", task.id, (width, height)
            ),
            end_image=end_image,
            end_image_follows=leads_into is not None,
            source_video=source.path if source else None,
            source_last_frame=(
                cover_fit(source.last_frame, width, height) if source and not whole else None
            ),
            model=task.model,
            concepts=task.concepts,
            upscale=upscale,
            soundtrack=sound,
            modify=(task.mode or "adhere_1") if modify else "",
            negative_prompt=task.negative_prompt or "",
            reframe=layout,
        )
        engine.check_job(job)
        # Extend: source + new clip. Reverse extend: new clip + the video it
        # leads into. Both (interpolation): only the bridge between them.
        before = source if source and not leads_into and not whole else None
        after = leads_into if leads_into and not source else None
        total = job.num_frames + sum(
            frame_count_at(v.info.duration, FPS) for v in (before, after) if v
        )

        def report(progress: float) -> None:
            if self.stopping().is_set():
                raise WorkerStopping()
            lease.report(progress)

        def on_frame(count: int) -> None:
            report(0.99 * count / total)

        def on_engine_progress(value: float) -> None:
            # Engines that work before the first frame (denoising) report here.
            report(0.9 * value * job.num_frames / total)

        rendering = Stopwatch()
        frames = itertools.chain(
            self._played(before, width, height),
            rendering.timed(engine.render(job, on_engine_progress)),
            self._played(after, width, height),
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
            threads=self.settings.encoder_threads,
            on_frame=on_frame,
            audio=engine.soundtrack(job, job.num_frames / FPS, SAMPLE_RATE) if sound else None,
        )
        self.metrics.rendered(engine.name, rendering.seconds)
        self.metrics.encoded(engine.name, summary.encode_seconds)
        return publish(run_key, workdir, video_path, summary.first_frame, summary.last_frame)

    def _still(
        self, task: Task, engine: FrameEngine, run_key: str, workdir: Path, lease: Lease
    ) -> TaskResult:
        """An image: the one frame of a one-frame job (an image generation, or
        an image reframe), saved in the task's format."""
        source_image, layout = None, None
        if task.kind is Kind.REFRAME_IMAGE:
            source_image = self.inputs.image(task.start_image, "image", task.id)
            assert source_image is not None  # the service requires one
            layout = _layout(task, source_image.shape[1], source_image.shape[0])
            width, height = layout.width, layout.height
        else:
            width, height = frame_size(task.aspect_ratio, IMAGE_RESOLUTION)
        job = RenderJob(
            task_id=task.id,
            prompt=task.effective_prompt,
            seed=task.seed,
            width=width,
            height=height,
            fps=FPS,
            num_frames=1,
            model=task.model,
            still=True,
            references=self.inputs.references(task, (width, height)),
            reframe=layout,
            source_image=source_image,
        )
        engine.check_job(job)

        def report(progress: float) -> None:
            if self.stopping().is_set():
                raise WorkerStopping()
            lease.report(0.95 * progress)

        rendering = Stopwatch()
        picture = next(rendering.timed(engine.render(job, report)), None)
        self.metrics.rendered(engine.name, rendering.seconds)
        if picture is None or picture.shape[:2] != (height, width):
            raise RuntimeError(f"the {engine.name} engine did not make a {width}x{height} image")
        return publish_image(run_key, workdir, picture, task.image_format or "jpg")

    def _played(self, video: SourceVideo | None, width: int, height: int) -> Iterator[np.ndarray]:
        """A source's frames as it plays at the output rate, so it keeps its
        speed and duration whatever rate it was made at."""
        if video is None:
            return iter(())
        return iter_frames_at(
            video.path, FPS, (width, height), max_seconds=self.settings.source_max_seconds
        )


class Stopwatch:
    """Seconds spent inside an iterator's `next` (an engine making frames,
    in the encoder's prefetch thread), not waiting for whoever consumes it."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def timed(self, items: Iterable[T]) -> Iterator[T]:
        iterator = iter(items)
        while True:
            began = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                self.seconds += time.perf_counter() - began
                return
            self.seconds += time.perf_counter() - began
            yield item


def _layout(task: Task, width: int, height: int) -> Layout:
    """Where a reframe puts a `width` x `height` source (`domain/reframe.py`)."""
    try:
        return layout(
            width, height, ASPECT_RATIOS[task.aspect_ratio], task.placement or Placement()
        )
    except PlacementError as exc:
        raise InputError(f"reframe: {exc}") from exc
