"""The engine plug-in point: the one seam between the task machinery and a renderer.

Every engine subclasses one of two bases, told apart by an explicit `kind`:

- `FrameEngine` renders frames here. It gets a `RenderJob` whose inputs are
  already resolved (decoded images, a local source video) and yields frames
  one at a time, so the encoder can stream them and memory stays bounded
  whatever the clip length.
- `FileEngine` has another service make the video. It gets an `UpstreamJob`
  (image references the service can fetch, the upstream ids of source
  generations) and a `FollowContext` the worker lends it, and returns a
  finished file, which the worker probes, thumbnails and publishes exactly
  like an encoded one.

Each engine declares its `Capabilities`; the task service refuses a request
an engine cannot serve, with the engine's name and what it lacks, before
anything is queued. Engines are registered in `engines/registry.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np

from reelgate.domain.errors import InvalidInput, Unavailable
from reelgate.domain.models import ASPECT_RATIOS, DURATIONS, RESOLUTIONS, RefRole
from reelgate.domain.reframe import Layout, Placement
from reelgate.domain.retry import Backoff
from reelgate.domain.types import Reservation
from reelgate.metrics import NO_METRICS, Metrics

if TYPE_CHECKING:
    from reelgate.config import Settings

UPSTREAM_THUMBNAIL = "upstream_thumbnail"
"""File name, in a run's directory, of a thumbnail an upstream made."""

ProgressFn = Callable[[float], None]
"""Called with 0..1 while rendering; cheap to call often (callers throttle)."""


class LeaseLost(Exception):
    """The task is no longer this run's (deleted, cancelled, or handed to another worker)."""


class WorkerStopping(Exception):
    """The process is shutting down: hand the task back without using an attempt."""


# What an engine can do


class EngineKind(StrEnum):
    FRAMES = "frames"
    """Renders frames in this process; the worker encodes them."""
    FILE = "file"
    """Another service makes the file; the worker follows it and re-hosts the result."""


class Input(StrEnum):
    """What a request brings besides its sizes."""

    TEXT = "text prompts"
    START_IMAGE = "start images"
    END_IMAGE = "end images"
    EXTEND = "extending a generation"
    REVERSE_EXTEND = "leading into a generation (reverse extend)"
    INTERPOLATE = "joining two generations (interpolation)"
    VIDEO_URL = "extending a video given by URL"
    LOOP = "loops"
    IMAGE_REF = "image references (image_ref)"
    STYLE_REF = "style references (style_ref)"
    CHARACTER_REF = "character references (character_ref)"
    MODIFY_IMAGE = "modifying an image (modify_image_ref)"


@dataclass(frozen=True)
class Needs:
    """What one request asks of an engine, in neutral terms."""

    generation_type: str
    inputs: frozenset[Input]
    resolution: str
    duration: str
    aspect_ratio: str
    source_engines: tuple[tuple[str, str | None], ...] = ()
    """(engine, upstream id) of each generation the request continues or joins."""
    concepts: tuple[str, ...] = ()
    """Camera concept keys the request names."""


@dataclass(frozen=True)
class Capabilities:
    generation_types: frozenset[str] = frozenset({"video"})
    inputs: frozenset[Input] = frozenset(Input)
    resolutions: tuple[str, ...] = tuple(RESOLUTIONS)
    durations: tuple[str, ...] = tuple(DURATIONS)
    aspect_ratios: tuple[str, ...] = tuple(ASPECT_RATIOS)
    own_sources_only: bool = False
    """Continues or joins only generations this engine made itself (it refers
    to them upstream by their upstream ids)."""
    concepts: frozenset[str] = frozenset()
    """Camera concepts the engine acts on (none unless it says so)."""

    def lacks(self, engine: str, needs: Needs) -> list[str]:
        """What this engine cannot do of `needs`, each as a readable clause."""
        missing: list[str] = []
        if needs.generation_type not in self.generation_types:
            missing.append(f"{needs.generation_type} generations")
        for choice, value, allowed in (
            ("resolution", needs.resolution, self.resolutions),
            ("duration", needs.duration, self.durations),
            ("aspect ratio", needs.aspect_ratio, self.aspect_ratios),
        ):
            if value not in allowed:
                missing.append(f"{choice} {value} (it supports {', '.join(allowed)})")
        missing += [str(i) for i in Input if i in needs.inputs and i not in self.inputs]
        if unknown := [c for c in needs.concepts if c not in self.concepts]:
            missing.append(f"camera concepts ({', '.join(unknown)})")
        if self.own_sources_only:
            extending = needs.generation_type == "video"
            verb = "continuing" if extending else "working on"
            foreign = [
                f"{verb} a video rendered by the {source!r} engine"
                for source, upstream_id in needs.source_engines
                if source != engine or not upstream_id
            ]
            missing += foreign
            if foreign or (Input.VIDEO_URL in needs.inputs and Input.VIDEO_URL not in self.inputs):
                can = "extend" if extending else "work on"
                missing[-1] += f" (it can only {can} videos it generated upstream itself)"
        return missing


class Engine(ABC):
    """What every engine declares."""

    name: ClassVar[str]
    kind: ClassVar[EngineKind]
    capabilities: Capabilities = Capabilities()

    @abstractmethod
    def model_label(self, requested: str | None) -> str:
        """The model name a task reports (e.g. "reelgate-preview")."""

    def refuse(self, needs: Needs) -> None:
        """Raise InvalidInput naming what this engine lacks for a request."""
        missing = self.capabilities.lacks(self.name, needs)
        if missing:
            raise InvalidInput(f"the {self.name} engine does not support {'; '.join(missing)}")


# Engines that render frames here


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
    end_image_follows: bool = False
    """`end_image` is the first frame of the video played right after this
    clip (a reverse extend's, an interpolation's): the clip leads into it
    rather than ending on it. Engines may ignore it."""
    source_video: Path | None = None
    """Extend: the local source clip. The worker puts the source frames before
    the engine's continuation, so the engine yields only new frames."""
    source_last_frame: np.ndarray | None = None
    """Extend: the source's last frame, already width x height."""
    model: str = "preview"
    concepts: tuple[str, ...] = ()
    """Camera concepts to steer by (`domain/concepts.py`), in the order asked."""
    upscale: bool = False
    """Yield `source_video`'s frames enlarged to width x height (an upscale)."""
    soundtrack: bool = False
    """Yield `source_video`'s frames as they are: the job is its soundtrack
    (`FrameEngine.soundtrack`), from `prompt` without `negative_prompt`."""
    negative_prompt: str = ""
    modify: str = ""
    """A modify mode (`MODIFY_MODES`): yield `source_video`'s frames restyled
    by the prompt that strongly, starting from `start_image` when given."""
    still: bool = False
    """An image generation: yield one frame (`num_frames` is 1), the image."""
    references: tuple[ImageReference, ...] = ()
    """Decoded reference images that steer a still, in the order given."""
    reframe: Layout | None = None
    """A reframe: yield the source (`source_image`, else every frame of
    `source_video`) drawn at this layout's place on a canvas of width x
    height (the layout's size), the rest of the canvas filled."""
    source_image: np.ndarray | None = None
    """An image reframe's picture, at its original size."""


@dataclass(frozen=True)
class ImageReference:
    """A reference image of a still, decoded (RGB uint8, at most the still's
    size), with what it steers and how strongly (0..1)."""

    role: RefRole
    image: np.ndarray
    weight: float


class FrameEngine(Engine):
    kind = EngineKind.FRAMES

    def check_frames(self, width: int, height: int, num_frames: int) -> None:
        """Raise InvalidInput if this engine cannot render that exact size (the
        worker asks once the size is known, e.g. from an extended video)."""

    def check_job(self, job: RenderJob) -> None:
        """Raise InvalidInput if this engine cannot do this job; the worker
        asks before rendering. By default, the job's exact size is checked;
        an engine that renders some jobs at a size of its own choosing and
        resizes (a modify, an upscale) may check those less strictly."""
        self.check_frames(job.width, job.height, job.num_frames)

    def soundtrack(self, job: RenderJob, seconds: float, sample_rate: int) -> np.ndarray:
        """Float32 mono samples for a soundtrack job; only engines that declare
        the `add_audio` generation type are asked."""
        raise Unavailable(f"the {self.name} engine cannot make soundtracks")

    @abstractmethod
    def render(self, job: RenderJob, progress: ProgressFn) -> Iterator[np.ndarray]:
        """Yield `job.num_frames` RGB uint8 frames of job.height x job.width x 3."""


# Engines that have another service make the file


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
    concepts: tuple[str, ...] = ()
    """Camera concepts, forwarded as the official API takes them."""
    generation_type: str = "video"
    """What to make (`GENERATION_TYPES`); the fields below serve the others."""
    source_generation_id: str | None = None
    """Upscale, audio: the upstream id of the generation worked on."""
    media_url: str | None = None
    """Modify, reframe: a URL the upstream can fetch the video or image from."""
    mode: str | None = None
    negative_prompt: str | None = None
    references: tuple[tuple[RefRole, str, float], ...] = ()
    """An image generation's references: (role, fetchable URL, weight)."""
    image_format: str | None = None
    placement: Placement | None = None


@dataclass
class ProducedVideo:
    video: Path
    thumbnail: Path | None = None
    """The upstream's own thumbnail, when it made one."""


@dataclass
class ProducedImage:
    image: Path
    """The image, in the task's format (`IMAGE_FORMATS`)."""


class FollowContext(Protocol):
    """What the worker lends a file engine while it follows a task."""

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

    def uninterruptible(self) -> AbstractContextManager[None]:
        """Marks a step that must not be abandoned (a create on the wire): a
        shutdown waits up to the engine's `shutdown_grace` for it."""
        ...

    def deleted(self) -> bool:
        """Whether the task was deleted or cancelled (not merely handed to
        another worker): its generation upstream is not wanted any more."""
        ...


class FileEngine(Engine):
    kind = EngineKind.FILE
    shutdown_grace: float = 0.0
    """How long a shutdown waits for an uninterruptible step to end."""

    @abstractmethod
    def produce(self, job: UpstreamJob, ctx: FollowContext) -> ProducedVideo | ProducedImage:
        """Have the upstream make the video (or image) and download it into `job.workdir`."""

    def cancel(self, upstream_id: str, key_id: str | None) -> None:
        """Delete a generation upstream; best effort (errors are logged)."""


class KeyPool(Protocol):
    """Upstream API keys shared by every process (the database keeps the
    counts); handed to engines that need keys, so they never reach a store."""

    def register(self, engine: str, secrets_: Sequence[str]) -> None: ...

    def reserve(
        self,
        task_id: str,
        lease_owner: str,
        key_ids: list[str],
        *,
        max_in_flight: int,
        per_minute: int,
        probe: Backoff | None = None,
        failure_limit: int = 1,
    ) -> Reservation:
        """A key for one create, or how long to wait; with `probe`, one create
        at a time may try a key resting after failures, on that backoff."""
        ...

    def succeeded(self, key_id: str) -> None: ...

    def failed(self, key_id: str, error: str, *, limit: int, cooldown: float) -> bool: ...

    def set_aside(self, key_id: str, reason: str, until: float = ...) -> None:
        """Keep a key out until `until` (a unix time; the default: for good)."""


@dataclass
class EngineServices:
    """What the composition root lends engines when it builds them."""

    key_pool: KeyPool | None = None
    metrics: Metrics = NO_METRICS
    """Where an engine counts what only it sees (the luma engine: upstream requests)."""


EngineFactory = Callable[["Settings", EngineServices], Engine | None]
"""`from_settings(settings, services)` of an engine module: the engine, or
None when the settings do not enable it."""
