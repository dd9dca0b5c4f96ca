"""The engine protocol: the one seam between the task machinery and a renderer.

An engine gets a `RenderJob` whose inputs are already resolved (decoded
images, a local source video) and yields frames one at a time, so the
encoder can stream them and memory stays bounded whatever the clip length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

ProgressFn = Callable[[float], None]
"""Called with 0..1 while rendering; cheap to call often (callers throttle)."""


class EngineError(Exception):
    """An engine refuses a request (unsupported size, bad input). Not retried."""


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
