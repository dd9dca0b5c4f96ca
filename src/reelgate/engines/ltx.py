"""The `ltx` engine: LTX-Video through diffusers' `LTXConditionPipeline`.

One code path serves every request shape, because every shape is a list of
conditions on the same pipeline:

- text only: no condition;
- start image: an image condition at frame 0;
- end image: an image condition at the last frame;
- extend: the source's last frames, as it plays at the output rate, as a
  video condition at frame 0 (the worker puts the source itself, at that
  rate too, in front of what this engine yields);
- loop: the first image again as the last condition, or, when extending,
  the source's first frame as the last condition.

The pipeline is loaded once per worker process, from a local directory or
the offline Hugging Face cache (never downloaded at run time), and kept.
torch and diffusers are imported only here, so the base install does not
need them (`pip install 'reelgate[ltx]'`).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reelgate.domain.concepts import CONCEPTS, guidance
from reelgate.domain.errors import InvalidInput, Unavailable
from reelgate.engines.base import (
    Capabilities,
    EngineServices,
    FrameEngine,
    ProgressFn,
    RenderJob,
)

if TYPE_CHECKING:
    from reelgate.config import Settings

SOURCE_CONDITION_FRAMES = 9  # 8k+1 frames of the source carried into an extension


@dataclass(frozen=True)
class LtxProfile:
    """Sampling settings for a requested model name (`REELGATE_LTX_PROFILES`)."""

    steps: int = 30
    guidance: float = 3.0
    decode_timestep: float = 0.05  # timestep-aware VAEs (0.9.1+), as diffusers recommends
    image_cond_noise_scale: float = 0.025
    negative_prompt: str = "worst quality, inconsistent motion, blurry, jittery, distorted"


@dataclass(frozen=True)
class LtxConfig:
    weights: str
    """A local directory saved with `save_pretrained`, or a repo id already in the
    offline Hugging Face cache."""
    device: str = "auto"
    dtype: str = "auto"
    cpu_offload: bool = False
    profiles: dict[str, LtxProfile] = field(default_factory=dict)
    default_profile: LtxProfile = LtxProfile()


def round_frames(n: int) -> int:
    """The smallest 8k+1 frame count of at least n."""
    return ((max(n, 1) - 1 + 7) // 8) * 8 + 1


def from_settings(settings: Settings, services: EngineServices) -> LtxEngine | None:
    """The ltx engine when weights are configured (torch is imported on first use)."""
    if not settings.ltx_weights:
        return None
    return LtxEngine(
        LtxConfig(
            weights=settings.ltx_weights,
            device=settings.ltx_device,
            dtype=settings.ltx_dtype,
            cpu_offload=settings.ltx_cpu_offload,
            profiles={
                model: LtxProfile(**values) for model, values in settings.ltx_profiles.items()
            },
        )
    )


class LtxEngine(FrameEngine):
    """Every request shape and size the API accepts (sizes are snapped to the
    32-pixel grid); a GPU that runs out of memory fails the task clearly."""

    name = "ltx"
    capabilities = Capabilities(concepts=frozenset(CONCEPTS))  # as prompt guidance

    def __init__(self, config: LtxConfig) -> None:
        self.config = config
        self._pipeline: Any = None
        self._lock = threading.Lock()

    def model_label(self, requested: str | None) -> str:
        return "ltx-video"

    def check_frames(self, width: int, height: int, num_frames: int) -> None:
        if width % 32 or height % 32:
            raise InvalidInput(
                f"LTX-Video needs sides that are multiples of 32, got {width}x{height}"
            )
        if (num_frames - 1) % 8:
            raise InvalidInput(f"LTX-Video needs 8k+1 frames, got {num_frames}")

    # Loading

    def pipeline(self) -> Any:
        """The loaded pipeline (loaded on first use, then kept)."""
        with self._lock:
            if self._pipeline is None:
                self._pipeline = self._load()
            return self._pipeline

    def _load(self) -> Any:
        import torch
        from diffusers import LTXConditionPipeline

        source = self.config.weights
        if not source:
            raise Unavailable(
                "the ltx engine has no weights: set REELGATE_LTX_WEIGHTS to a "
                "local LTX-Video directory or a cached repo id"
            )
        local = Path(source).expanduser()
        device = self._device(torch)
        dtype = self._dtype(torch, device)
        try:
            # diffusers leaves from_pretrained unannotated; `unused-ignore`: without the
            # ltx extra installed, diffusers is Any (see [tool.mypy]) and nothing is ignored
            pipe = LTXConditionPipeline.from_pretrained(  # type: ignore[no-untyped-call, unused-ignore]
                str(local) if local.exists() else source, dtype=dtype, local_files_only=True
            )
        except (OSError, ValueError) as exc:
            raise Unavailable(
                f"LTX-Video weights could not be loaded from {source!r} "
                f"(offline; nothing is downloaded): {exc}"
            ) from exc
        if self.config.cpu_offload and device.startswith("cuda"):
            pipe.enable_model_cpu_offload()
        else:
            pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        for module in (pipe.transformer, pipe.vae, pipe.text_encoder):
            module.eval()
        return pipe

    def _device(self, torch: Any) -> str:
        if self.config.device != "auto":
            return self.config.device
        return "cuda" if torch.cuda.is_available() else "cpu"

    def _dtype(self, torch: Any, device: str) -> Any:
        name = self.config.dtype
        if name == "auto":
            name = "bfloat16" if device.startswith("cuda") else "float32"
        return getattr(torch, name)

    # Rendering

    def render(self, job: RenderJob, progress: ProgressFn) -> Iterator[np.ndarray]:
        self.check_frames(job.width, job.height, job.num_frames)
        pipe = self.pipeline()
        profile = self.config.profiles.get(job.model, self.config.default_profile)
        conditions, skip, total = self.conditions(job)
        frames = self._generate(pipe, job, profile, conditions, total, progress)
        for frame in frames[skip : skip + job.num_frames]:
            yield np.ascontiguousarray((np.clip(frame, 0.0, 1.0) * 255 + 0.5).astype(np.uint8))
        progress(1.0)

    def conditions(self, job: RenderJob) -> tuple[list[Any], int, int]:
        """(conditions, frames to skip at the start, frames to generate)."""
        from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition
        from PIL import Image

        from reelgate.media.images import cover_fit

        def image(array: np.ndarray) -> Image.Image:
            return Image.fromarray(cover_fit(array, job.width, job.height))

        conditions: list[Any] = []
        skip = 0
        total = job.num_frames
        first_image: np.ndarray | None = None
        if job.source_video is not None:
            tail, first_image = _source_ends(job.source_video, SOURCE_CONDITION_FRAMES, job.fps)
            conditions.append(LTXVideoCondition(video=[image(f) for f in tail], frame_index=0))
            skip = len(tail)
            total = round_frames(skip + job.num_frames)
        elif job.start_image is not None:
            first_image = job.start_image
            conditions.append(LTXVideoCondition(image=image(job.start_image), frame_index=0))
        last = job.end_image
        if last is None and job.loop:
            last = first_image
        if last is not None:
            conditions.append(
                LTXVideoCondition(image=image(last), frame_index=skip + job.num_frames - 1)
            )
        return conditions, skip, total

    def _generate(
        self,
        pipe: Any,
        job: RenderJob,
        profile: LtxProfile,
        conditions: list[Any],
        total: int,
        progress: ProgressFn,
    ) -> np.ndarray:
        import torch

        def on_step(
            pipeline: Any, step: int, timestep: Any, kwargs: dict[str, Any]
        ) -> dict[str, Any]:
            progress(0.95 * (step + 1) / profile.steps)
            return kwargs

        generator = torch.Generator(device="cpu").manual_seed(job.seed)
        try:
            with torch.inference_mode():
                result = pipe(
                    conditions=conditions or None,
                    prompt=_guided(job.prompt or "a video", job.concepts),
                    negative_prompt=profile.negative_prompt,
                    width=job.width,
                    height=job.height,
                    num_frames=total,
                    frame_rate=job.fps,
                    num_inference_steps=profile.steps,
                    guidance_scale=profile.guidance,
                    decode_timestep=profile.decode_timestep,
                    image_cond_noise_scale=profile.image_cond_noise_scale,
                    generator=generator,
                    output_type="np",
                    callback_on_step_end=on_step,
                )
        except torch.cuda.OutOfMemoryError as exc:
            torch.cuda.empty_cache()
            raise Unavailable(
                f"the GPU ran out of memory rendering {job.width}x{job.height} "
                f"x {total} frames; try a lower resolution or enable CPU "
                "offload (REELGATE_LTX_CPU_OFFLOAD)"
            ) from exc
        return np.asarray(result.frames[0])


def _source_ends(path: Path, count: int, fps: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The last `count` frames of a clip as it plays at `fps` (streamed, not
    all kept) and its first frame.

    The pipeline takes the condition's frames as frames at `fps`: the source's
    own frames at another rate would tell it motion at the wrong speed (60 fps
    frames read at 24 fps move 2.5 times slower), and the worker puts the
    source in front at `fps` too.
    """
    from reelgate.media.probe import iter_frames_at

    tail: deque[np.ndarray] = deque(maxlen=count)
    first: np.ndarray | None = None
    for frame in iter_frames_at(path, fps):
        if first is None:
            first = frame
        tail.append(frame)
    if first is None:
        raise InvalidInput("the source video has no frames")
    return list(tail), first


def _guided(prompt: str, concepts: tuple[str, ...]) -> str:
    """The model has no camera controls: camera concepts steer it as words
    appended to the prompt (`domain/concepts.py` says what each means)."""
    words = guidance(concepts)
    return f"{prompt.rstrip('. ')}. {words[0].upper()}{words[1:]}." if words else prompt
