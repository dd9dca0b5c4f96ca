"""The `ltx` engine: LTX-Video through diffusers' `LTXConditionPipeline`.

One code path serves every generation, because every shape is a list of
conditions on the same pipeline:

- text only: no condition;
- start image: an image condition at frame 0;
- end image: an image condition at the last frame;
- extend: the source's last frames, as it plays at the output rate, as a
  video condition at frame 0 (the worker puts the source itself, at that
  rate too, in front of what this engine yields);
- reverse extend, interpolation (`end_image_follows`): the next video's first
  frame as an image condition one frame past the end, not yielded, so the
  join shows no frame twice;
- loop: the first image again, or, when extending, the source's first
  frame, one frame past the end likewise (the clip wraps around into it);
- image (an image generation): a one-frame generation (1 is an 8k+1 count)
  whose `image_ref` and `modify_image_ref` references are image conditions
  at frame 0, each as strong as its weight (a modify reference is the
  picture to change, an image reference the composition); the strongest is
  folded in last, so it weighs most;
- modify: every frame of the source video (held at its end up to an 8k+1
  count) as a video condition at frame 0, as strong as the mode says
  (`MODIFY_STRENGTH`: from adhere_1, the source nearly kept, to reimagine_3,
  little more than its layout), and a first frame, when given, as a
  full-strength image condition at frame 0. It is made at the source's size
  snapped to the 32-pixel grid and resized back, so the result has the
  source's size and frame count.

An upscale is no generation: the source's frames are encoded with the VAE
of the checkpoint serving the request, their latents doubled in size by
LTX-Video's latent upsampler (diffusers' `LTXLatentUpsamplePipeline` and
`LTXLatentUpsamplerModel`, in diffusers 0.34 and later; the pinned 0.42.1
has them), decoded, and resized to exactly the size asked for, a few
seconds of frames at a time (so 4k too: the render budget does not hold
upscales). The engine declares upscales only when `REELGATE_LTX_UPSAMPLER`
names the upsampler's weights; with a diffusers that lacks the upsampler,
loading it fails the task clearly.

Not declared, so the service refuses them up front, naming this engine:
style and character references (the model has nothing to read them with),
soundtracks (add_audio) and reframes.

Each checkpoint's pipeline is loaded once per worker process (never
downloaded at run time: `ltx_weights.py` loads diffusers folders and single
files and tells the variant) and kept; renders take turns on the GPU
across all checkpoints. Each request runs its checkpoint's official recipe
(`ltx_recipes.py`) with the requested model's overrides. Sizes off the
32-pixel grid (a 1280x720 source) are rendered padded onto it and cropped
back; renders beyond `REELGATE_LTX_MAX_PIXEL_FRAMES` are refused before
they start, and the engine declares only the sizes that fit it for what it
renders from scratch (the service refuses the rest before queueing;
upscales are not held to it). The 0.9.7 and 0.9.8 recipes run multi-scale
(a first pass at 2/3 size, the latent upsampler with the serving
checkpoint's VAE, a short refine) when an upsampler is configured.
`REELGATE_LTX_COMPILE` and `REELGATE_LTX_CACHE_THRESHOLD` turn on regional
`torch.compile` and diffusers' first-block cache.
torch and diffusers are imported only here, so the base install does not
need them (`pip install 'reelgate[ltx]'`).
"""

from __future__ import annotations

import gc
import itertools
import logging
import threading
import traceback
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from reelgate.domain.concepts import CONCEPTS, guidance
from reelgate.domain.errors import InvalidInput, Unavailable
from reelgate.domain.models import RefRole, frame_count, frame_size
from reelgate.engines.base import (
    Capabilities,
    EngineServices,
    FrameEngine,
    Input,
    Needs,
    ProgressFn,
    RenderJob,
)
from reelgate.engines.ltx_recipes import (
    IMAGE_CRF,
    LtxProfile,
    apply,
    check_overrides,
    crf_round_trip,
    recipe,
)
from reelgate.engines.ltx_weights import (
    Variant,
    load_pipeline,
    out_of_memory_errors,
    resolve_folder,
)

if TYPE_CHECKING:
    from PIL import Image

    from reelgate.config import Settings

__all__ = ["LtxConfig", "LtxEngine", "LtxProfile", "Variant"]

log = logging.getLogger(__name__)

SOURCE_CONDITION_FRAMES = 9  # 8k+1 frames of the source carried into an extension
GRID = 32  # LTX-Video's sides are multiples of this
UPSCALE_CHUNK_FRAMES = 49  # 8k+1 frames encoded, upsampled and decoded at a time
ADAIN_FACTOR = 1.0  # upsampled latents keep the first pass's statistics (official multi-scale)

MODIFY_STRENGTH = {
    "adhere_1": 0.9, "adhere_2": 0.85, "adhere_3": 0.8,
    "flex_1": 0.7, "flex_2": 0.6, "flex_3": 0.5,
    "reimagine_1": 0.4, "reimagine_2": 0.3, "reimagine_3": 0.2,
}  # fmt: skip
"""How strongly a modify holds to its source video, by mode: the source's
share of each latent at the start (its frames stay as they are until the
noise falls below 1 - strength)."""

REFERENCE_ROLES = (RefRole.IMAGE, RefRole.MODIFY)
"""The reference images the model can read: as image conditions."""


DEFAULT_MAX_PIXEL_FRAMES = 1920 * 1088 * 137
"""The default budget of one render, width x height x frames: 1080p 16:9 for
5 s (121 frames, 137 with an extension's source frames or a seamless join's
following frame), or 720p for 9 s: what a 2B model renders on a 48 GB card
(README)."""

OFFLOAD_MODES = ("none", "model", "group")

UNBUDGETED = frozenset({"upscale_video"})
"""Generation types the render budget does not hold: an upscale renders
nothing from scratch (a few seconds of the source at a time through the
VAE and the latent upsampler), so 1080p goes to 4k. `refuse` (at create)
and `check_job` (in the worker) follow the same rule."""


@dataclass(frozen=True)
class LtxConfig:
    weights: str
    """A diffusers folder, a single `.safetensors` checkpoint, or a repo id
    already in the offline Hugging Face cache."""
    device: str = "auto"
    dtype: str = "auto"
    offload: str = "none"
    """none, model (whole models moved to the GPU in turn; needs accelerate),
    group (layers streamed to the GPU as they run)."""
    fp8: bool = False
    """The transformer's weights stored as float8 (e4m3), computed in `dtype`."""
    vae_tiling: bool = True
    config: str | None = None
    """For a single-file checkpoint: the diffusers folder (or cached repo id)
    supplying its configs, text encoder and tokenizer."""
    distilled: bool | None = None
    """Whether the checkpoint is distilled (None: from its name)."""
    model_weights: dict[str, str] = field(default_factory=dict)
    """Requested model name -> its own checkpoint (default: `weights`)."""
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Requested model name -> overrides of its checkpoint's recipe."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Overrides of every model's recipe, under the model's own."""
    max_pixel_frames: int = DEFAULT_MAX_PIXEL_FRAMES
    """Largest width x height x frames one render may take (0: no limit)."""
    image_crf: int = IMAGE_CRF
    """The H.264 CRF round trip of conditioning images (0: none)."""
    extend_frames: int = SOURCE_CONDITION_FRAMES
    """Frames of the source an extension is conditioned on (8k+1)."""
    upsampler: str | None = None
    """The latent upsampler's weights (a local diffusers folder: the model, or
    a pipeline holding it); enables upscales and multi-scale renders."""
    compile: str = ""
    """The `torch.compile` backend for the transformer's repeated blocks
    ("inductor"; "": not compiled). The first render of a size compiles."""
    cache_threshold: float = 0.0
    """diffusers' first-block cache: a step whose first block changes its
    output less than this reuses the other blocks' last residual (0: off;
    0.05 is diffusers' default, higher is faster and rougher)."""

    def __post_init__(self) -> None:
        if self.offload not in OFFLOAD_MODES:
            raise ValueError(f"ltx offload must be one of {', '.join(OFFLOAD_MODES)}")
        if self.cache_threshold < 0:
            raise ValueError("ltx cache threshold must be 0 (off) or more")
        if self.extend_frames < 1 or (self.extend_frames - 1) % 8:
            raise ValueError(f"ltx extend frames must be 8k+1, got {self.extend_frames}")
        for model, values in self.profiles.items():
            check_overrides(values, f"the ltx profile of {model!r}")
        check_overrides(self.overrides, "the ltx profile overrides")


def round_frames(n: int) -> int:
    """The smallest 8k+1 frame count of at least n."""
    return ((max(n, 1) - 1 + 7) // 8) * 8 + 1


def from_settings(settings: Settings, services: EngineServices) -> LtxEngine | None:
    """The ltx engine when weights are configured (torch is imported on first use)."""
    if not settings.ltx_weights:
        return None
    offload = settings.ltx_offload
    if offload == "none" and settings.ltx_cpu_offload:
        offload = "model"
    return LtxEngine(
        LtxConfig(
            weights=settings.ltx_weights,
            device=settings.ltx_device,
            dtype=settings.ltx_dtype,
            offload=offload,
            fp8=settings.ltx_fp8,
            vae_tiling=settings.ltx_vae_tiling,
            config=settings.ltx_config,
            distilled=settings.ltx_distilled,
            model_weights=dict(settings.ltx_model_weights),
            profiles={model: dict(values) for model, values in settings.ltx_profiles.items()},
            max_pixel_frames=settings.ltx_max_pixel_frames,
            image_crf=settings.ltx_image_crf,
            extend_frames=settings.ltx_extend_frames,
            upsampler=settings.ltx_upsampler,
            compile="inductor" if settings.ltx_compile else "",
            cache_threshold=settings.ltx_cache_threshold,
        )
    )


class LtxEngine(FrameEngine):
    """Every video shape and size the API accepts, images, and modifies; upscales
    when a latent upsampler is configured. A GPU that runs out of memory fails
    the task clearly.

    Render threads share the engine: a pipeline keeps per-call state (its
    scheduler's timesteps, its guidance), so one render at a time uses the
    GPU (`_busy`, held through denoising and decoding); the others wait."""

    name = "ltx"
    capabilities = Capabilities(
        generation_types=frozenset({"video", "image", "modify_video"}),
        inputs=frozenset(Input) - {Input.STYLE_REF, Input.CHARACTER_REF},
        concepts=frozenset(CONCEPTS),  # as prompt guidance
    )
    """Without a latent upsampler (an engine that has one also upscales), and
    before the budget: an engine declares only the sizes that fit it."""

    def __init__(self, config: LtxConfig) -> None:
        self.config = config
        self._pipelines: dict[str, tuple[Any, Variant]] = {}
        self._failures: dict[str, str] = {}  # checkpoint -> why it cannot be used
        self._upsampler: Any = None
        self._lock = threading.Lock()  # loading
        self._busy = threading.Lock()  # rendering: one pipeline call at a time
        declared = type(self).capabilities
        if config.upsampler:
            declared = replace(
                declared, generation_types=declared.generation_types | {"upscale_video"}
            )
        self._rendered = self._within_budget(declared)
        """What renders from scratch may ask for: within the budget."""
        self.capabilities = declared if UNBUDGETED & declared.generation_types else self._rendered
        """Everything any generation type may ask for (what
        `/reelgate/v1/models` lists): with upscales, every declared size."""

    def _within_budget(self, declared: Capabilities) -> Capabilities:
        """`declared` less the resolutions, durations and aspect ratios with
        which no clip fits the budget (4k, by default), so the service refuses
        them before queueing and `/reelgate/v1/models` does not offer them
        for what renders from scratch. Upscales (`UNBUDGETED`) are not held
        to it: they run a few seconds of frames at a time, to any size."""
        if not self.config.max_pixel_frames:
            return declared
        fits = [
            (resolution, duration, ratio)
            for resolution in declared.resolutions
            for duration in declared.durations
            for ratio in declared.aspect_ratios
            if self._clip_pixel_frames(resolution, ratio, duration) <= self.config.max_pixel_frames
        ]
        return replace(
            declared,
            resolutions=tuple(r for r in declared.resolutions if any(f[0] == r for f in fits)),
            durations=tuple(d for d in declared.durations if any(f[1] == d for f in fits)),
            aspect_ratios=tuple(a for a in declared.aspect_ratios if any(f[2] == a for f in fits)),
        )

    def _clip_pixel_frames(self, resolution: str, ratio: str, duration: str) -> int:
        """A plain clip's render (no source, no join): the least a choice costs."""
        width, height = _padded(*frame_size(ratio, resolution))
        return (
            width
            * height
            * self.rendered_frames(frame_count(duration), source=False, follows=False)
        )

    def refuse(self, needs: Needs) -> None:
        """What the capabilities lack, then a video whose size, length and
        shape together exceed the budget (1080p fits for 5 s, not for 9 s): both
        refused before anything is queued. A video URL's size is known only
        once a worker reads it (the worker checks it then). An upscale is
        held to neither (`UNBUDGETED`; nor is it in the worker)."""
        declared = self.capabilities if needs.generation_type in UNBUDGETED else self._rendered
        missing = declared.lacks(self.name, needs)
        if missing:
            raise InvalidInput(f"the {self.name} engine does not support {'; '.join(missing)}")
        if needs.generation_type != "video" or Input.VIDEO_URL in needs.inputs:
            return
        inputs = needs.inputs
        source = bool(inputs & {Input.EXTEND, Input.INTERPOLATE})
        follows = bool(inputs & {Input.REVERSE_EXTEND, Input.INTERPOLATE}) or (
            Input.LOOP in inputs and Input.END_IMAGE not in inputs
        )
        width, height = _padded(*frame_size(needs.aspect_ratio, needs.resolution))
        frames = self.rendered_frames(frame_count(needs.duration), source=source, follows=follows)
        self._check_budget(
            width,
            height,
            frames,
            f"the ltx engine does not support {needs.resolution} at {needs.aspect_ratio} for "
            f"{needs.duration} here: it",
        )

    def model_label(self, requested: str | None) -> str:
        return "ltx-video"

    def check_frames(self, width: int, height: int, num_frames: int) -> None:
        """Any size (rendered on the 32-pixel grid, padded, and cropped back)
        in 8k+1 frames, within the budget."""
        if width < 1 or height < 1:
            raise InvalidInput(f"nothing to render: {width}x{height}")
        if (num_frames - 1) % 8:
            raise InvalidInput(f"LTX-Video needs 8k+1 frames, got {num_frames}")
        self._check_budget(*_padded(width, height), num_frames)

    def check_job(self, job: RenderJob) -> None:
        """Modifies and upscales run on the 32-pixel grid and 8k+1 frames by
        themselves, then come back to the source's exact size and length;
        everything else must be asked for in 8k+1 frames. A render larger
        than the budget is refused before it starts."""
        if job.modify or job.upscale:
            if job.width < 1 or job.height < 1 or job.num_frames < 1:
                raise InvalidInput(
                    f"nothing to render: {job.width}x{job.height}, {job.num_frames} frames"
                )
            if job.modify:
                self._check_budget(*_on_grid(job.width, job.height), round_frames(job.num_frames))
            return
        self.check_frames(job.width, job.height, job.num_frames)
        self._check_budget(
            *_padded(job.width, job.height),
            self.rendered_frames(
                job.num_frames,
                source=job.source_video is not None,
                follows=job.end_image_follows or (job.loop and job.end_image is None),
            ),
        )

    def rendered_frames(self, frames: int, *, source: bool, follows: bool) -> int:
        """The frames a clip of `frames` is rendered in: with an extension's
        source frames in front, and one more when it leads into a frame it
        does not show (a following video, a loop's start)."""
        before = self.config.extend_frames if source else 0
        return round_frames(before + frames + (1 if follows else 0))

    def _check_budget(
        self, width: int, height: int, frames: int, refused: str = "the ltx engine"
    ) -> None:
        budget = self.config.max_pixel_frames
        if budget and width * height * frames > budget:
            raise InvalidInput(
                f"{refused} renders at most {budget:,} pixel-frames at once "
                f"(REELGATE_LTX_MAX_PIXEL_FRAMES); {width}x{height} x {frames} frames is "
                f"{width * height * frames:,}: ask for a lower resolution or a shorter clip"
            )

    # Loading

    def weights_for(self, model: str | None) -> str:
        """The checkpoint that serves a requested model."""
        return self.config.model_weights.get(model or "", self.config.weights)

    def pipeline(self, model: str | None = None) -> Any:
        """The loaded pipeline for a requested model (loaded on first use, then kept)."""
        return self.loaded(model)[0]

    def loaded(self, model: str | None = None) -> tuple[Any, Variant]:
        """The pipeline serving `model` and its variant. A checkpoint that
        cannot be used fails every task the same way, without loading again
        (a fresh error each time, from the message kept); a GPU out of
        memory while loading is tried again by the next task."""
        source = self.weights_for(model)
        with self._lock:
            if source in self._failures:
                raise Unavailable(self._failures[source])
            if source not in self._pipelines:
                try:
                    self._pipelines[source] = self._load(source)
                except Unavailable as exc:
                    if not exc.retryable:
                        self._failures[source] = exc.message
                    raise
            return self._pipelines[source]

    def latent_upsampler(self) -> Any:
        """The loaded `LTXLatentUpsamplerModel` (loaded on first use, then
        kept): the upsampler alone, whichever checkpoint it serves."""
        with self._lock:
            if self._upsampler is None:
                self._upsampler = self._load_upsampler()
            return self._upsampler

    def upsample_pipeline(self, pipe: Any) -> Any:
        """An `LTXLatentUpsamplePipeline` of the latent upsampler and `pipe`'s
        VAE (the checkpoint serving the request: no other is loaded)."""
        model = self.latent_upsampler()
        from diffusers import LTXLatentUpsamplePipeline

        pipeline_class: Any = LTXLatentUpsamplePipeline  # diffusers leaves it unannotated
        upsampler = pipeline_class(vae=pipe.vae, latent_upsampler=model)
        upsampler.set_progress_bar_config(disable=True)
        return upsampler

    def profile(self, model: str | None, variant: Variant) -> LtxProfile:
        """The checkpoint's recipe with the overrides for every model, then the model's."""
        profile = apply(recipe(variant), self.config.overrides)
        return apply(profile, self.config.profiles.get(model or "", {}))

    def _load(self, source: str) -> tuple[Any, Variant]:
        import torch

        if not source:
            raise Unavailable(
                "the ltx engine has no weights: set REELGATE_LTX_WEIGHTS to a local "
                "LTX-Video folder or .safetensors file, or a cached repo id"
            )
        device = self._device(torch)
        dtype = self._dtype(torch, device)
        offload = self.config.offload if device.startswith("cuda") else "none"
        # What the placement needs is checked before gigabytes are read.
        if offload == "model" and find_spec("accelerate") is None:
            raise Unavailable(
                "REELGATE_LTX_OFFLOAD=model needs accelerate, which is not installed "
                "(pip install 'reelgate[ltx]')"
            )
        # Out of memory, the exception is let go before memory is freed (its
        # traceback holds what was loaded) and the error is raised afresh.
        out_of_memory = False
        try:
            pipe, variant = load_pipeline(source, self.config.config, dtype, self.config.distilled)
        except out_of_memory_errors() as exc:
            log.warning("ltx engine: out of memory loading %s: %s", source, exc)
            out_of_memory = True
        if out_of_memory:
            _release_memory(torch)
            raise _loading_out_of_memory(f"loading {source!r} on {device}")
        failure = ""
        try:
            self._place(pipe, torch, device, dtype, offload)
        except Exception as exc:
            # logged as text: a record holding the exception would hold the pipeline
            log.warning(
                "ltx engine: %s could not be set up:\n%s",
                variant.describe(),
                "".join(traceback.format_exception(exc)),
            )
            out_of_memory = isinstance(exc, out_of_memory_errors())
            failure = f"{type(exc).__name__}: {exc}"
        if failure:
            del pipe  # half placed: its memory back before the error goes up
            _release_memory(torch)
            if out_of_memory:
                raise _loading_out_of_memory(f"setting up {variant.describe()} on {device}")
            raise Unavailable(
                f"{variant.describe()} could not be set up on {device} "
                f"(offload {offload}, fp8 {'on' if self.config.fp8 else 'off'}): {failure}"
            )
        log.info("ltx engine loaded %s from %s on %s", variant.describe(), source, device)
        return pipe, variant

    def _place(self, pipe: Any, torch: Any, device: str, dtype: Any, offload: str) -> None:
        if self.config.fp8:
            pipe.transformer.enable_layerwise_casting(
                storage_dtype=torch.float8_e4m3fn, compute_dtype=dtype
            )
        if self.config.vae_tiling:
            pipe.vae.enable_tiling()
        if offload == "model":
            pipe.enable_model_cpu_offload(device=device)
        elif offload == "group":
            pipe.enable_group_offload(
                onload_device=torch.device(device),
                offload_device=torch.device("cpu"),
                offload_type="leaf_level",
                use_stream=True,
            )
        else:
            pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        for module in (pipe.transformer, pipe.vae, pipe.text_encoder):
            module.eval()
        if self.config.cache_threshold:
            from diffusers import FirstBlockCacheConfig

            cache_config: Any = FirstBlockCacheConfig  # diffusers leaves it unannotated
            pipe.transformer.enable_cache(cache_config(threshold=self.config.cache_threshold))
        if self.config.compile:
            # Regional compilation: each transformer block compiles once and
            # the compiled code serves all 28 (or 48) of them.
            pipe.transformer.compile_repeated_blocks(backend=self.config.compile, dynamic=True)

    def _load_upsampler(self) -> Any:
        """The latent upsampler model from a folder holding the model itself
        (`config.json`, or a `latent_upsampler/` folder) or a whole upsample
        pipeline (`model_index.json`: its `latent_upsampler/`), or a cached
        repo id of either; the VAE is always the requesting pipeline's."""
        import torch

        source = self.config.upsampler
        if not source:
            raise Unavailable(
                "the ltx engine has no latent upsampler: set REELGATE_LTX_UPSAMPLER to "
                "a local diffusers folder of LTX-Video's latent upsampler"
            )
        try:
            from diffusers import LTXLatentUpsamplePipeline  # noqa: F401 (upsample_pipeline's)
            from diffusers.pipelines.ltx.modeling_latent_upsampler import (
                LTXLatentUpsamplerModel,
            )
        except ImportError as exc:
            raise Unavailable(
                "the installed diffusers has no LTX-Video latent upsampler "
                "(LTXLatentUpsamplePipeline, diffusers 0.34 or later)"
            ) from exc
        device = self._device(torch)
        dtype = self._dtype(torch, device)
        try:
            local = resolve_folder(source, "the folder")
            folder = local / "latent_upsampler"
            model = LTXLatentUpsamplerModel.from_pretrained(
                str(folder if folder.is_dir() else local), dtype=dtype, local_files_only=True
            )
        except (OSError, ValueError, Unavailable) as exc:
            reason = exc.message if isinstance(exc, Unavailable) else str(exc)
            raise Unavailable(
                f"the LTX-Video latent upsampler could not be loaded from {source!r} "
                f"(offline; nothing is downloaded): {reason}"
            ) from exc
        model.to(device)
        model.eval()
        return model

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
        if job.reframe is not None or job.soundtrack:
            raise InvalidInput("the ltx engine makes neither reframes nor soundtracks")
        if job.upscale:
            yield from self._upscaled(job, progress)
        elif job.modify:
            yield from self._modified(job, progress)
        else:
            yield from self._generated(job, progress)
        progress(1.0)

    def _generated(self, job: RenderJob, progress: ProgressFn) -> Iterator[np.ndarray]:
        """A video, a continuation, or (a still) an image, rendered on the
        32-pixel grid (a source of another size padded onto it) and cropped
        back to the size asked for."""
        self.check_job(job)
        pipe, variant = self.loaded(job.model)
        profile = self.profile(job.model, variant)
        if self.text_loop(job):
            # A loop from text alone: its opening frame is made first (one
            # frame, cheap) and the video then starts and ends on it.
            (opening,) = self._generate(
                pipe, replace(job, still=True), profile, [], 1, lambda p: progress(0.05 * p)
            )
            job = replace(job, start_image=_crop(_to_uint8(opening), job.width, job.height))
            progress = _after(progress, 0.05)
        conditions, skip, total = self.conditions(job)
        frames = self._generate(pipe, job, profile, conditions, total, progress)
        for frame in frames[skip : skip + job.num_frames]:
            yield _crop(_to_uint8(frame), job.width, job.height)

    @staticmethod
    def text_loop(job: RenderJob) -> bool:
        """A loop with nothing to start or end on but its prompt."""
        return (
            job.loop
            and not job.still
            and job.start_image is None
            and job.end_image is None
            and job.source_video is None
        )

    def _modified(self, job: RenderJob, progress: ProgressFn) -> Iterator[np.ndarray]:
        """The source restyled, at its own size and length."""
        pipe, variant = self.loaded(job.model)
        conditions, total = self.modify_conditions(job)
        size = _on_grid(job.width, job.height)
        frames = self._generate(
            pipe, job, self.profile(job.model, variant), conditions, total, progress, size=size
        )
        last = len(frames) - 1
        for index in range(job.num_frames):
            yield _resized(_to_uint8(frames[min(index, last)]), job.width, job.height)

    def _upscaled(self, job: RenderJob, progress: ProgressFn) -> Iterator[np.ndarray]:
        """The source's frames, their latents upsampled, at exactly width x height.

        The frames are encoded at the source's own size (on the grid), so
        nothing the source holds is lost before the upsampler doubles it;
        the decoded frames are then resized to the size asked for. There is
        no denoising pass after the upsampler: the result is the source at
        the new size, not re-imagined."""
        import torch
        from PIL import Image

        from reelgate.media.probe import iter_frames_at

        if job.source_video is None:
            raise InvalidInput("an upscale needs the video to upscale")
        pipe, variant = self.loaded(job.model)
        upsampler = self.upsample_pipeline(pipe)
        profile = self.profile(job.model, variant)
        generator = torch.Generator(device="cpu").manual_seed(job.seed)
        made, last = 0, None
        for chunk in _chunks(iter_frames_at(job.source_video, job.fps), UPSCALE_CHUNK_FRAMES):
            if made >= job.num_frames:
                break
            width, height = _on_grid(chunk[0].shape[1], chunk[0].shape[0])
            video = [Image.fromarray(_resized(frame, width, height)) for frame in chunk]
            video += [video[-1]] * (round_frames(len(video)) - len(video))
            with (
                self._busy,
                _gpu_memory(f"upscaling {width}x{height} x {len(video)} frames"),
                torch.inference_mode(),
                _reset_when_stopped(upsampler),
            ):
                result = upsampler(
                    video=video,
                    width=width,
                    height=height,
                    decode_timestep=profile.decode_timestep,
                    decode_noise_scale=profile.decode_noise_scale,
                    generator=generator,
                    output_type="np",
                )
            for frame in np.asarray(result.frames[0])[: min(len(chunk), job.num_frames - made)]:
                last = _resized(_to_uint8(frame), job.width, job.height)
                made += 1
                yield last
            progress(0.99 * made / job.num_frames)
        if last is None:
            raise InvalidInput("the source video has no frames")
        for _ in range(job.num_frames - made):  # a source shorter than it said
            yield last

    def conditions(self, job: RenderJob) -> tuple[list[Any], int, int]:
        """(conditions, frames to skip at the start, frames to generate)."""
        from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition
        from PIL import Image

        from reelgate.media.images import cover_fit

        def image(array: np.ndarray) -> Image.Image:
            return Image.fromarray(_pad(cover_fit(array, job.width, job.height)))

        def still(array: np.ndarray) -> Image.Image:
            """An image condition, prepared as the official inference does."""
            fitted = _pad(cover_fit(array, job.width, job.height))
            return Image.fromarray(crf_round_trip(fitted, self.config.image_crf))

        if job.still:
            return self._reference_conditions(job, image), 0, 1
        conditions: list[Any] = []
        skip = 0
        total = job.num_frames
        first_image: np.ndarray | None = None
        if job.source_video is not None:
            tail, first_image = _source_ends(job.source_video, self.config.extend_frames, job.fps)
            # 8k+1 of them, on a latent boundary, even from a shorter source:
            # the last ones, so the clip continues from the source's last frame
            tail = tail[(len(tail) - 1) % 8 :]
            conditions.append(LTXVideoCondition(video=[image(f) for f in tail], frame_index=0))
            skip = len(tail)
            total = round_frames(skip + job.num_frames)
        elif job.start_image is not None:
            first_image = job.start_image
            conditions.append(LTXVideoCondition(image=still(job.start_image), frame_index=0))
        last, follows = job.end_image, job.end_image_follows
        if last is None and job.loop:
            last, follows = first_image, True
        if last is not None:
            # A frame the clip flows into (the next video's first frame, or a
            # loop's first frame again) is conditioned one past the clip's end
            # and not yielded, so the seam shows no frame twice; an end image
            # of the clip's own is its last frame.
            index = skip + job.num_frames - (0 if follows else 1)
            conditions.append(LTXVideoCondition(image=still(last), frame_index=index))
            total = max(total, round_frames(index + 1))
        return conditions, skip, total

    @staticmethod
    def _reference_conditions(job: RenderJob, image: Any) -> list[Any]:
        """An image's references as image conditions at its one frame, the
        strongest last: each is blended into the latent in turn, so the last
        weighs most."""
        from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

        unread = {ref.role.value for ref in job.references if ref.role not in REFERENCE_ROLES}
        if unread:
            raise InvalidInput(
                f"the ltx engine cannot use {' or '.join(sorted(unread))} references"
            )
        return [
            LTXVideoCondition(image=image(ref.image), frame_index=0, strength=float(ref.weight))
            for ref in sorted(job.references, key=lambda ref: ref.weight)
        ]

    def modify_conditions(self, job: RenderJob) -> tuple[list[Any], int]:
        """A modify's conditions, at the source's size snapped to the grid, and
        the frames to generate (the source's, rounded up to 8k+1)."""
        from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition
        from PIL import Image

        from reelgate.media.images import cover_fit
        from reelgate.media.probe import iter_frames_at

        if job.source_video is None:
            raise InvalidInput("a modify needs the video to modify")
        if job.modify not in MODIFY_STRENGTH:
            raise InvalidInput(f"unknown modify mode {job.modify!r}")
        width, height = _on_grid(job.width, job.height)
        # The source's frames, stretched (not cropped) onto the grid, so the
        # result stretched back has the source's geometry.
        # Only the frames the job keeps (what its budget was checked for).
        video = [
            Image.fromarray(_resized(frame, width, height))
            for frame in itertools.islice(iter_frames_at(job.source_video, job.fps), job.num_frames)
        ]
        if not video:
            raise InvalidInput("the source video has no frames")
        total = round_frames(max(len(video), job.num_frames))
        video += [video[-1]] * (total - len(video))
        conditions = [
            LTXVideoCondition(video=video, frame_index=0, strength=MODIFY_STRENGTH[job.modify])
        ]
        if job.start_image is not None:
            first = cover_fit(job.start_image, job.width, job.height)
            conditions.append(
                LTXVideoCondition(image=Image.fromarray(_resized(first, width, height)))
            )
        return conditions, total

    def _generate(
        self,
        pipe: Any,
        job: RenderJob,
        profile: LtxProfile,
        conditions: list[Any],
        total: int,
        progress: ProgressFn,
        size: tuple[int, int] | None = None,
    ) -> np.ndarray:
        """`total` frames (float RGB in 0..1) at `size` (default: the job's):
        in one pass, or multi-scale when the profile asks for it and a latent
        upsampler is configured."""
        import torch

        width, height = size or _padded(job.width, job.height)
        upsampler = self._multi_scale(pipe, profile, width, height, total)
        steps = profile.step_count + (profile.refine_step_count if upsampler else 0)

        def stepper(done: int) -> Any:
            def on_step(
                pipeline: Any, step: int, timestep: Any, kwargs: dict[str, Any]
            ) -> dict[str, Any]:
                progress(0.95 * (done + step + 1) / steps)
                return kwargs

            return on_step

        generator = torch.Generator(device="cpu").manual_seed(job.seed)
        negative = ", ".join(p for p in (job.negative_prompt, profile.negative_prompt) if p)
        arguments = {
            "conditions": conditions or None,
            "prompt": _guided(job.prompt or ("an image" if job.still else "a video"), job.concepts),
            "negative_prompt": negative,
            "num_frames": total,
            "frame_rate": job.fps,
            "generator": generator,
            **profile.call_arguments(),
        }
        with (
            self._busy,
            _gpu_memory(f"rendering {width}x{height} x {total} frames"),
            torch.inference_mode(),
            _reset_when_stopped(pipe, *([upsampler] if upsampler else [])),
        ):
            if upsampler is None:
                result = pipe(
                    width=width,
                    height=height,
                    output_type="np",
                    callback_on_step_end=stepper(0),
                    **arguments,
                )
                return np.asarray(result.frames[0])
            # Multi-scale, as the 0.9.7 and 0.9.8 configs: a first pass at 2/3
            # of the size, its latents doubled by the upsampler, then the last
            # steps of the schedule at that size, resized to the size asked for.
            first_width, first_height = first_pass_size(width, height)
            latents = pipe(
                width=first_width,
                height=first_height,
                output_type="latent",
                callback_on_step_end=stepper(0),
                **arguments,
            ).frames
            latents = upsampler(
                latents=latents, adain_factor=ADAIN_FACTOR, output_type="latent"
            ).frames
            result = pipe(
                width=2 * first_width,
                height=2 * first_height,
                latents=latents,
                denoise_strength=profile.refine_denoise_strength,
                output_type="np",
                callback_on_step_end=stepper(profile.step_count),
                **arguments,
            )
        return np.stack([_resized(frame, width, height) for frame in np.asarray(result.frames[0])])

    def _multi_scale(
        self, pipe: Any, profile: LtxProfile, width: int, height: int, frames: int
    ) -> Any:
        """The latent upsampler to run a multi-scale render with (on `pipe`'s
        VAE), or None for one pass: the profile does not ask for it, no
        upsampler is configured, or its refine (at 4/3 of the size) would
        exceed the budget that the size itself fits."""
        if not (profile.multi_scale and self.config.upsampler):
            return None
        if profile.refine_denoise_strength >= 1.0:
            # diffusers denoises from scratch at a strength of 1, discarding
            # the upsampled latents: a schedule of one step has no refine
            log.warning(
                "ltx engine: %d steps leave no multi-scale refine; rendering in one pass",
                profile.step_count,
            )
            return None
        first_width, first_height = first_pass_size(width, height)
        budget = self.config.max_pixel_frames
        if budget and 4 * first_width * first_height * frames > budget:
            log.warning(
                "ltx engine: %dx%d x %d frames in one pass; its multi-scale refine at %dx%d "
                "exceeds REELGATE_LTX_MAX_PIXEL_FRAMES",
                width,
                height,
                frames,
                2 * first_width,
                2 * first_height,
            )
            return None
        return self.upsample_pipeline(pipe)


def first_pass_size(width: int, height: int) -> tuple[int, int]:
    """A multi-scale render's first pass: 2/3 of the size, on the 32-pixel grid
    (rounded down, as the official inference does)."""
    return (
        max(GRID, int(width * 2 / 3) // GRID * GRID),
        max(GRID, int(height * 2 / 3) // GRID * GRID),
    )


@contextmanager
def _gpu_memory(what: str) -> Iterator[None]:
    """A GPU out of memory becomes a clear, final answer (the same render
    would run out again)."""
    import torch

    try:
        yield
    except out_of_memory_errors() as exc:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise Unavailable(
            f"the GPU ran out of memory {what}; try a lower resolution or a shorter clip, "
            "or offload to the CPU (REELGATE_LTX_OFFLOAD=model or group)"
        ) from exc


@contextmanager
def _reset_when_stopped(*pipes: Any) -> Iterator[None]:
    """diffusers resets a pipeline's stateful hooks (the first-block cache's
    residuals) and puts model offload back as it was only at the end of a
    call that finishes (`maybe_free_model_hooks`); a call stopped part way
    (a lost lease, a cancel, out of memory) is reset here, so the next
    render does not start from this one's cache."""
    try:
        yield
    except BaseException:
        for pipe in pipes:
            try:
                pipe.maybe_free_model_hooks()
            except Exception:
                log.exception("ltx engine: resetting the pipeline after a stopped render failed")
        raise


def _release_memory(torch: Any) -> None:
    """What nothing references any more, freed, and the GPU's cache emptied."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _loading_out_of_memory(what: str) -> Unavailable:
    """Out of memory while a checkpoint loads: worth another try (another
    process may have let go of the GPU), not kept as the checkpoint's fate."""
    return Unavailable(
        f"the GPU ran out of memory {what}; offload to the CPU (REELGATE_LTX_OFFLOAD=model "
        "or group), store the transformer in fp8 (REELGATE_LTX_FP8), or free the GPU",
        retryable=True,
    )


def _padded(width: int, height: int) -> tuple[int, int]:
    """The size a width x height frame is rendered at: each side rounded up
    to the 32-pixel grid (the frame centred, the rest cropped away after)."""
    return -(-width // GRID) * GRID, -(-height // GRID) * GRID


def _offsets(width: int, height: int) -> tuple[int, int]:
    """Where a width x height frame sits on its padded canvas (left, top)."""
    padded_width, padded_height = _padded(width, height)
    return (padded_width - width) // 2, (padded_height - height) // 2


def _pad(frame: np.ndarray) -> np.ndarray:
    """`frame` centred on its padded canvas, the border black (as the official
    inference pads its conditioning media)."""
    height, width = frame.shape[:2]
    padded_width, padded_height = _padded(width, height)
    if (padded_width, padded_height) == (width, height):
        return frame
    left, top = _offsets(width, height)
    canvas = np.zeros((padded_height, padded_width, 3), np.uint8)
    canvas[top : top + height, left : left + width] = frame
    return canvas


def _crop(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """The width x height frame back from its padded canvas."""
    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    left, top = _offsets(width, height)
    return np.ascontiguousarray(frame[top : top + height, left : left + width])


def _after(progress: ProgressFn, done: float) -> ProgressFn:
    """Progress for the rest of the work, after `done` of it."""
    return lambda value: progress(done + (1.0 - done) * value)


def _on_grid(width: int, height: int) -> tuple[int, int]:
    """The nearest size LTX-Video makes: both sides multiples of 32."""
    return max(GRID, round(width / GRID) * GRID), max(GRID, round(height / GRID) * GRID)


def _resized(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """`frame` at exactly width x height (stretched, not cropped)."""
    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    shrinking = frame.shape[0] * frame.shape[1] > width * height
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(frame, (width, height), interpolation=interpolation)


def _to_uint8(frame: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray((np.clip(frame, 0.0, 1.0) * 255 + 0.5).astype(np.uint8))


def _chunks(frames: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    """Consecutive lists of `size` frames (the last may be shorter)."""
    it = iter(frames)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


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
