"""The neutral vocabulary: tasks, states, sizes.

Nothing here knows a wire format. Dialect adapters translate their field
names into these types and back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

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


GENERATION_TYPES = {
    Kind.GENERATE: "video",
    Kind.EXTEND: "video",
    Kind.UPSCALE: "upscale_video",
    Kind.ADD_AUDIO: "add_audio",
    Kind.MODIFY: "modify_video",
}

MODIFY_MODES = tuple(
    f"{name}_{level}" for name in ("adhere", "flex", "reimagine") for level in (1, 2, 3)
)
"""The official modify modes, from the least change to the most."""
"""What the official API calls each kind of task (engines declare these)."""


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
    video: Asset
    thumbnail: Asset
    last_frame: Asset

    def keys(self) -> list[str]:
        """The storage key of every file of the result."""
        return [self.video.key, self.thumbnail.key, self.last_frame.key]

    def to_dict(self) -> dict[str, Any]:
        return {
            "video": self.video.to_dict(),
            "thumbnail": self.thumbnail.to_dict(),
            "last_frame": self.last_frame.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskResult:
        return cls(
            video=Asset.from_dict(data["video"]),
            thumbnail=Asset.from_dict(data["thumbnail"]),
            last_frame=Asset.from_dict(data["last_frame"]),
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

    @property
    def effective_prompt(self) -> str:
        return self.enhanced_prompt or self.prompt
