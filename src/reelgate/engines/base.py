"""The engine protocols: the one seam between the task machinery and a renderer.

A frame engine gets a `RenderJob` whose inputs are already resolved (decoded
images, a local source video) and yields frames one at a time, so the
encoder can stream them and memory stays bounded whatever the clip length.

An upstream engine has another service make the video: it gets an
`UpstreamJob` (image references the upstream can fetch, the upstream ids of
source generations) and returns a finished file, which the worker probes,
thumbnails and publishes exactly like an encoded one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeGuard

import numpy as np

UPSTREAM_THUMBNAIL = "upstream_thumbnail"
"""File name, in a run's directory, of a thumbnail an upstream made."""

ProgressFn = Callable[[float], None]
"""Called with 0..1 while rendering; cheap to call often (callers throttle)."""


class EngineError(Exception):
    """An engine refuses a request (unsupported size, bad input). Not retried."""


class LeaseLost(Exception):
    """The task is no longer this run's (deleted, or handed to another worker)."""


class WorkerStopping(Exception):
    """The process is shutting down: hand the task back without using an attempt."""


@dataclass
class RenderJob:
    task_id: str
    prompt: str
    seed: int
    width: int
    height: int
    fps: int
    num_frames: int
    """Frames to produce. For an extend job: frames of the continuation only."""
    loop: bool = False
    start_image: np.ndarray | None = None
    """RGB uint8 HxWx3 at its original size; the engine fits it to width x height."""
    end_image: np.ndarray | None = None
    source_video: Path | None = None
    """Extend: the local source clip. The worker puts the source frames before
    the engine's continuation, so the engine yields only new frames."""
    source_last_frame: np.ndarray | None = None
    """Extend: the source's last frame, already width x height."""
    model: str = "preview"


class Engine(Protocol):
    name: str

    def model_label(self, requested: str | None) -> str:
        """The model name a task reports (e.g. "reelgate-preview")."""
        ...

    def check(self, width: int, height: int, num_frames: int) -> None:
        """Raise EngineError if this engine cannot render that size."""
        ...

    def render(self, job: RenderJob, progress: ProgressFn) -> Iterator[np.ndarray]:
        """Yield `job.num_frames` RGB uint8 frames of job.height x job.width x 3."""
        ...


@dataclass
class UpstreamJob:
    task_id: str
    prompt: str
    model: str
    aspect_ratio: str
    resolution: str
    duration: str
    loop: bool
    workdir: Path
    """Where the finished files go (the run's directory)."""
    start_image_url: str | None = None
    """URLs the upstream can fetch: the client's own http(s) URL, or our asset link."""
    end_image_url: str | None = None
    extend_generation_id: str | None = None
    """Upstream id of the generation this one continues (frame0)."""
    leads_into_generation_id: str | None = None
    """Upstream id of the generation this one leads into (frame1)."""
    upstream_id: str | None = None
    """Set when an earlier attempt already created the upstream generation."""
    upstream_key: str | None = None
    submitted_at: float | None = None
    callback_url: str | None = None
    """Where the upstream may call back (None: follow by polling)."""


@dataclass
class ProducedVideo:
    video: Path
    thumbnail: Path | None = None
    """The upstream's own thumbnail, when it made one."""


class FollowContext(Protocol):
    """What the worker lends an upstream engine while it follows a task."""

    task_id: str
    lease_owner: str

    def progress(self, value: float) -> None:
        """Record 0..1; raises LeaseLost once the task is no longer ours."""
        ...

    def remember(self, upstream_id: str, key_id: str, submitted_at: float) -> None:
        """Keep the upstream id on the task; raises LeaseLost if it could not."""
        ...

    async def wait(self, seconds: float) -> None:
        """Sleep up to `seconds`, less when an upstream callback arrives;
        raises LeaseLost once the task is no longer ours, WorkerStopping when
        the process shuts down."""
        ...

    def check(self) -> None:
        """Raise LeaseLost or WorkerStopping if the run must end now."""
        ...

    def count_unclear_create(self) -> int:
        """Count, on the task, a create the upstream may have acted on; the total."""
        ...

    def creating(self) -> AbstractContextManager[None]:
        """Marks a create on the wire, so a shutdown waits for its answer."""
        ...

    def deleted(self) -> bool:
        """Whether the task was deleted (not merely handed to another worker)."""
        ...


def is_upstream(engine: object) -> TypeGuard[UpstreamEngine]:
    """Whether an engine has another service make the file (`produce`), rather
    than yielding frames (`render`)."""
    return bool(getattr(engine, "produces_file", False))


class UpstreamEngine(Protocol):
    name: str
    produces_file: bool
    """True: the worker calls `produce` instead of `render`."""

    def model_label(self, requested: str | None) -> str: ...

    def check(self, width: int, height: int, num_frames: int) -> None: ...

    def check_sources(self, sources: list[tuple[str, str | None]]) -> None:
        """Raise EngineError unless every (engine, upstream id) of a request's
        source tasks can be referred to upstream."""
        ...

    def produce(self, job: UpstreamJob, ctx: FollowContext) -> ProducedVideo: ...

    def cancel(self, upstream_id: str, key_id: str | None) -> None:
        """Delete a generation upstream; best effort (errors are logged)."""
        ...
