"""The sampling recipe for each LTX-Video variant, and the preprocessing of
conditioning images, as the official LTX-Video inference does them.

A profile starts from the recipe of the checkpoint that serves the request
(`recipe(variant)`, from the LTX-Video repository's configs, single pass)
and takes the operator's overrides for the requested model on top
(`REELGATE_LTX_PROFILES`): an unmapped model gets its checkpoint's own
recipe, not fixed numbers.

- dev models: 40 steps (2B) or 30 (13B) at guidance 3 with a guidance
  rescale of 0.7, the official default negative prompt;
- distilled models: the official 8 timesteps (1.0 ... 0.4219) without
  classifier-free guidance (guidance 1, so no negative prompt is run);
- every timestep-conditioned VAE (0.9.1 and later) decodes at timestep 0.05
  with 0.025 of noise.

The 0.9.7 and 0.9.8 configs' multi-scale path is the recipe of those
releases (`multi_scale`): a first pass at 2/3 of the size, the latent
upsampler doubling it, and a short refine of the last `refine_strength`
(0.4) of the schedule; the engine runs it when a latent upsampler is
configured, one pass otherwise. Their spatio-temporal guidance is not
reproduced: diffusers' `LTXConditionPipeline` guides by classifier-free
guidance.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from reelgate.engines.ltx_weights import Variant

DISTILLED_TIMESTEPS = (1.0, 0.9937, 0.9875, 0.9812, 0.975, 0.9094, 0.725, 0.4219)
"""The distilled models' official schedule (the 0.9.6 and 0.9.8 configs' eight
steps, the 0.9.7 first pass followed by its refine's last step), as sigmas."""

NEGATIVE_PROMPT = "worst quality, inconsistent motion, blurry, jittery, distorted"
"""The official inference's default negative prompt."""

IMAGE_CRF = 29
"""The official conditioning images' H.264 round trip: compression artefacts
like a video frame's, so the model does not read a too-clean first frame as
a still (image-to-video moves more)."""


@dataclass(frozen=True)
class LtxProfile:
    """Sampling settings for a request: its checkpoint's recipe, with the
    requested model's overrides (`REELGATE_LTX_PROFILES`)."""

    steps: int = 40
    guidance: float = 3.0
    guidance_rescale: float = 0.7
    timesteps: tuple[float, ...] | None = None
    """Explicit sigmas (1.0 down), as distilled models need; sets the step count."""
    decode_timestep: float = 0.05
    decode_noise_scale: float = 0.025
    image_cond_noise_scale: float = 0.025
    negative_prompt: str = NEGATIVE_PROMPT
    multi_scale: bool = False
    """A first pass at 2/3 size, the latent upsampler, a refine (needs one)."""
    refine_strength: float = 0.4
    """The share of the schedule the multi-scale refine runs (its last
    steps): less than 1 (the whole schedule would start from noise again)."""

    @property
    def step_count(self) -> int:
        return len(self.timesteps) if self.timesteps else self.steps

    @property
    def refine_step_count(self) -> int:
        """Steps of a multi-scale refine (the last of the schedule, as diffusers cuts it)."""
        return max(1, min(int(self.step_count * self.refine_strength), self.step_count))

    @property
    def refine_denoise_strength(self) -> float:
        """The `denoise_strength` that makes diffusers run exactly
        `refine_step_count` steps (it keeps int(steps x strength) of them);
        1.0 (one step in all: no refine is possible) means from scratch."""
        return min(1.0, (self.refine_step_count + 0.5) / self.step_count)

    def call_arguments(self) -> dict[str, Any]:
        """What `LTXConditionPipeline.__call__` takes from this profile."""
        arguments: dict[str, Any] = {
            "num_inference_steps": self.step_count,
            "guidance_scale": self.guidance,
            "guidance_rescale": self.guidance_rescale,
            "decode_timestep": self.decode_timestep,
            "decode_noise_scale": self.decode_noise_scale,
            "image_cond_noise_scale": self.image_cond_noise_scale,
        }
        if self.timesteps:
            arguments["timesteps"] = [1000.0 * sigma for sigma in self.timesteps]
        return arguments


PROFILE_FIELDS = {f.name for f in fields(LtxProfile)}


def recipe(variant: Variant) -> LtxProfile:
    """The official recipe for a checkpoint (multi-scale from 0.9.7 on)."""
    multi_scale = variant.multi_scale
    if variant.distilled:
        # The refine's last 0.4 of the eight timesteps are the official
        # second pass (0.9094, 0.725, 0.4219).
        return LtxProfile(
            steps=len(DISTILLED_TIMESTEPS),
            guidance=1.0,
            guidance_rescale=0.0,
            timesteps=DISTILLED_TIMESTEPS,
            multi_scale=multi_scale,
        )
    if variant.size == "13B":
        return LtxProfile(steps=30, multi_scale=multi_scale)
    if variant.version in ("0.9.0", "0.9.1"):
        # diffusers' recipe for the first releases (their VAE: 0.9.1 decodes
        # at timestep 0.03; 0.9.0 is not timestep-conditioned).
        return LtxProfile(steps=50, guidance_rescale=0.0, decode_timestep=0.03)
    return LtxProfile(multi_scale=multi_scale)


def check_overrides(values: dict[str, Any], where: str) -> dict[str, Any]:
    """`values` as profile overrides; a ValueError naming `where` otherwise."""
    unknown = sorted(set(values) - PROFILE_FIELDS)
    if unknown:
        raise ValueError(
            f"{where}: unknown LTX-Video profile settings {', '.join(unknown)} "
            f"(known: {', '.join(sorted(PROFILE_FIELDS))})"
        )
    checked = dict(values)
    if checked.get("timesteps") is not None:
        checked["timesteps"] = tuple(float(t) for t in checked["timesteps"])
    try:
        apply(LtxProfile(), checked)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from exc
    return checked


def apply(profile: LtxProfile, overrides: dict[str, Any]) -> LtxProfile:
    """`profile` with `overrides`; steps given without timesteps drop the
    recipe's timesteps (they fix the step count)."""
    if not overrides:
        return profile
    values = dict(overrides)
    if "steps" in values and "timesteps" not in values:
        values["timesteps"] = None
    result = replace(profile, **values)
    if result.step_count < 1:
        raise ValueError("a profile needs at least one step")
    if not 0.0 < result.refine_strength < 1.0:
        # at 1, diffusers would denoise the refine from scratch, discarding
        # the upsampled first pass
        raise ValueError(
            f"refine_strength must be more than 0 and less than 1, got {result.refine_strength}"
        )
    return result


def crf_round_trip(image: np.ndarray, crf: int = IMAGE_CRF) -> np.ndarray:
    """`image` (RGB uint8, even sides) encoded as one H.264 frame at `crf`
    and decoded again, as the official inference prepares a conditioning
    image. A crf of 0 leaves it as it is."""
    import av

    if crf <= 0:
        return image
    height, width = image.shape[:2]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=1)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)}
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    buffer.seek(0)
    with av.open(buffer, mode="r") as container:
        decoded = next(container.decode(video=0))
        return np.ascontiguousarray(decoded.to_ndarray(format="rgb24"))
