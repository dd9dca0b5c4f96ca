"""The neutral vocabulary: tasks, states, sizes.

Nothing here knows a wire format. Dialect adapters translate their field
names into these types and back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from reelgate.domain.reframe import Placement

FPS = 24
SIZE_MULTIPLE = 32  # LTX-Video needs sides that are multiples of 32

ASPECT_RATIOS: dict[str, tuple[int, int]] = {
    "1:1": (1, 1),
    "4:3": (4, 3),
    "3:4": (3, 4),
    "16:9": (16, 9),
    "9:16": (9, 16),
    "21:9": (21, 9),
    "9:21": (9, 21),
}
RESOLUTIONS: dict[str, int] = {"540p": 540, "720p": 720, "1080p": 1080, "4k": 2160}
DURATIONS: dict[str, int] = {"5s": 5, "9s": 9}

MAX_PROMPT_CHARS = 5000
"""The longest prompt any dialect accepts."""
OFFICIAL_MIN_PROMPT_CHARS = 3
"""The official API's shortest prompt."""

LUMA_VIDEO_MODELS = ("ray-2", "ray-flash-2", "ray-1-6")
"""The official API's video models (what its `model` field accepts)."""
LUMA_MODEL_ALIASES = {
    "ray-v2": "ray-2",
    "ray-v1": "ray-1-6",
    "ray-flash-v2": "ray-flash-2",
    "ray-1.6": "ray-1-6",
}
"""Model names the gateway dialects use for the official ones."""


class State(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({State.COMPLETED, State.FAILED, State.CANCELLED})


class FailureCode(StrEnum):
    """Why a task failed, so each dialect can pick its error and status."""

    INVALID_INPUT = "invalid_input"  # the client's inputs cannot be used
    UPSTREAM = "upstream"  # the upstream service failed or refused the generation
    UNAVAILABLE = "unavailable"  # the server cannot do it now (keys, capacity, transient)
    TIMEOUT = "timeout"  # the generation did not finish in time
    INTERNAL = "internal"  # the server could not finish it (crashes, lost workers)


class Kind(StrEnum):
    GENERATE = "generate"
    EXTEND = "extend"
    UPSCALE = "upscale"
    """The source task's video at a higher resolution (`source_task_id`)."""
    ADD_AUDIO = "add_audio"
    """The source task's video with a soundtrack made from the prompt."""
    MODIFY = "modify"
    """A video (`source_video_url`) restyled by the prompt, as strongly as `mode` says."""
    IMAGE = "image"
    """A still image from the prompt, steered by `references`."""
    REFRAME_IMAGE = "reframe_image"
    """An image (`start_image`) on a canvas of a new aspect ratio, the new area filled."""
    REFRAME_VIDEO = "reframe_video"
    """A video (`source_video_url`) on a canvas of a new aspect ratio, the new area filled."""

    @property
    def makes_image(self) -> bool:
        """Whether the result is a still image rather than a video."""
        return self in (Kind.IMAGE, Kind.REFRAME_IMAGE)


GENERATION_TYPES = {
    Kind.GENERATE: "video",
    Kind.EXTEND: "video",
    Kind.UPSCALE: "upscale_video",
    Kind.ADD_AUDIO: "add_audio",
    Kind.MODIFY: "modify_video",
    Kind.IMAGE: "image",
    Kind.REFRAME_IMAGE: "reframe_image",
    Kind.REFRAME_VIDEO: "reframe_video",
}
"""What the official API calls each kind of task (engines declare these)."""

MODIFY_MODES = tuple(
    f"{name}_{level}" for name in ("adhere", "flex", "reimagine") for level in (1, 2, 3)
)
"""The official modify modes, from the least change to the most."""

LUMA_IMAGE_MODELS = ("photon-1", "photon-flash-1")
"""The official API's image models."""
IMAGE_FORMATS = {"jpg": "image/jpeg", "png": "image/png"}
"""Formats an image result can be stored in, with their content types."""
IMAGE_RESOLUTION = "1080p"
"""The size class of image results (photon makes images of about this size)."""


class RefRole(StrEnum):
    """What a reference image steers in an image generation."""

    IMAGE = "image"
    """Composition: the picture is drawn toward it."""
    STYLE = "style"
    """Palette and look."""
    CHARACTER = "character"
    """A person (identity) who appears in the picture."""
    MODIFY = "modify"
    """The picture to restyle: the result is this image, changed by the prompt."""


@dataclass(frozen=True)
class Reference:
    """An image that steers an image generation, by a role and a weight (0..1)."""

    role: RefRole
    url: str
    weight: float = 0.85

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role.value, "url": self.url, "weight": self.weight}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reference:
        return cls(RefRole(data["role"]), str(data["url"]), float(data["weight"]))


MAX_REFERENCES = 8
"""Reference images one image generation may bring, all roles together."""


def _round_to_grid(value: float) -> int:
    """Nearest multiple of 32, ties rounding down so we never exceed the nominal size."""
    return max(SIZE_MULTIPLE, math.ceil(value / SIZE_MULTIPLE - 0.5) * SIZE_MULTIPLE)


def frame_size(aspect_ratio: str, resolution: str) -> tuple[int, int]:
    """(width, height) for a ratio and resolution: the short side is the nominal
    resolution, both sides snapped to the 32-pixel grid."""
    a, b = ASPECT_RATIOS[aspect_ratio]
    short = RESOLUTIONS[resolution]
    if a >= b:
        return _round_to_grid(short * a / b), _round_to_grid(short)
    return _round_to_grid(short), _round_to_grid(short * b / a)


def describe_size(width: int, height: int) -> tuple[str, str]:
    """The aspect ratio and resolution names closest to a real frame size, so
    a task reports what it made (an extended video keeps its source's size)."""
    ratio = width / max(1, height)
    aspect = min(
        ASPECT_RATIOS,
        key=lambda k: abs(math.log(ratio * ASPECT_RATIOS[k][1] / ASPECT_RATIOS[k][0])),
    )
    short = min(width, height)
    resolution = min(RESOLUTIONS, key=lambda k: abs(RESOLUTIONS[k] - short))
    return aspect, resolution


def frame_count(duration: str) -> int:
    """Frames for a duration at 24 fps, of the form 8k+1 (5 s -> 121, 9 s -> 217)."""
    seconds = DURATIONS[duration]
    return (seconds * FPS // 8) * 8 + 1


@dataclass(frozen=True)
class Asset:
    """A stored file of a finished task. `key` is the storage key; URLs are
    derived from it at answer time so a changed public base URL takes effect."""

    key: str
    width: int
    height: int
    content_type: str
    bytes: int = 0
    duration: float | None = None
    fps: float | None = None
    frames: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Asset:
        return cls(**data)


@dataclass(frozen=True)
class TaskResult:
    """What a finished task made: a video (with its last frame), or an image;
    and a JPEG thumbnail either way."""

    thumbnail: Asset
    video: Asset | None = None
    last_frame: Asset | None = None
    image: Asset | None = None

    @property
    def main(self) -> Asset:
        """The file the task was asked for: its video, or its image."""
        main = self.video or self.image
        assert main is not None, "a result has a video or an image"
        return main

    def keys(self) -> list[str]:
        """The storage key of every file of the result, the main one first."""
        return [a.key for a in (self.main, self.thumbnail, self.last_frame) if a is not None]

    def to_dict(self) -> dict[str, Any]:
        parts = {
            "video": self.video,
            "image": self.image,
            "thumbnail": self.thumbnail,
            "last_frame": self.last_frame,
        }
        return {name: asset.to_dict() for name, asset in parts.items() if asset is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskResult:
        def asset(name: str) -> Asset | None:
            return Asset.from_dict(data[name]) if data.get(name) else None

        return cls(
            thumbnail=Asset.from_dict(data["thumbnail"]),
            video=asset("video"),
            last_frame=asset("last_frame"),
            image=asset("image"),
        )


@dataclass
class GenerationRequest:
    """What a client asked for, in neutral terms, before it becomes a task.

    Images and source videos are references (URLs, data URIs or our own task
    ids); the worker resolves them, never the API process.
    """

    prompt: str = ""
    kind: Kind = Kind.GENERATE
    start_image: str | None = None
    end_image: str | None = None
    source_task_id: str | None = None
    source_video_id: str | None = None
    source_video_url: str | None = None
    end_source_task_id: str | None = None
    """The new clip ends where this task's video begins (reverse extend); with
    a start source too, the clip bridges the two (interpolation)."""
    loop: bool = False
    concepts: tuple[str, ...] = ()
    """Official camera concept keys (`domain/concepts.py`), checked by the dialect."""
    negative_prompt: str | None = None
    """What to leave out (an audio generation's sounds)."""
    mode: str | None = None
    """How far a modify may depart from its video (`MODIFY_MODES`)."""
    references: tuple[Reference, ...] = ()
    """Images that steer an image generation (checked by the dialect)."""
    image_format: str | None = None
    """An image result's format (`IMAGE_FORMATS`)."""
    placement: Placement | None = None
    """Where a reframe puts its source on the new canvas (None: centred)."""
    aspect_ratio: str | None = None
    resolution: str | None = None
    duration: str | None = None
    model: str | None = None
    enhance: bool = False
    seed: int | None = None
    callback_url: str | None = None
    callback_on_start: bool = False
    """Also call back when a worker starts the task (not only when it ends)."""


@dataclass
class Task:
    id: str
    video_id: str
    owner_id: str
    origin: str
    kind: Kind
    prompt: str
    enhanced_prompt: str | None
    start_image: str | None
    end_image: str | None
    source_task_id: str | None
    source_video_url: str | None
    end_source_task_id: str | None
    loop: bool
    aspect_ratio: str
    resolution: str
    duration: str
    model: str
    engine: str
    seed: int
    callback_url: str | None
    callback_dialect: str | None
    callback_on_start: bool
    origin_request: dict[str, Any]
    state: State
    progress: float
    failure_reason: str | None
    failure_code: FailureCode | None
    attempts: int
    created_at: float
    updated_at: float
    started_at: float | None = None
    finished_at: float | None = None
    result: TaskResult | None = None
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    upstream_id: str | None = None
    """Upstream engines: the generation this task follows (kept so an extend
    can refer to it and a delete can cancel it)."""
    upstream_key: str | None = None
    upstream_submitted_at: float | None = None
    expired_at: float | None = None
    """When retention deleted the task's files: its links are gone for good."""
    concepts: tuple[str, ...] = ()
    """Camera concepts the engine steers by (keys of `domain/concepts.py`)."""
    negative_prompt: str | None = None
    mode: str | None = None
    references: tuple[Reference, ...] = ()
    image_format: str | None = None
    placement: Placement | None = None
    priority: int = 0
    """Its token's queue priority when it was created (higher goes first)."""
    enhance: bool = False
    """Enhance the prompt before rendering (the worker does it once and keeps
    the result in `enhanced_prompt`)."""
    deleted_at: float | None = None
    """When its client deleted it unfinished: it reads as absent to them."""

    @property
    def effective_prompt(self) -> str:
        return self.enhanced_prompt or self.prompt
