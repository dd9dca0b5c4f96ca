"""LTX-Video speed on a GPU, with random weights (prints figures; not a test).

Builds the LTX-Video architectures from their published configs with random
weights (the compute is the same as with real weights): the 2B transformer
(28 blocks, 2048 wide) or the 13B one (48 blocks, 4096 wide), both with the
0.9.5+ VAE (32x spatial and 8x temporal compression, patches of 4, a
timestep-conditioned decoder). Each recipe is the ltx engine's own
(`reelgate.engines.ltx_recipes`): dev 2B (40 steps with classifier-free
guidance), dev 13B (30 steps with guidance) and distilled (the eight
official timesteps, no guidance), decoded at `decode_timestep` 0.05 with
0.025 of noise. Each is timed on one 5 s clip (121 frames) at 768x512,
single pass, eager and, with `--compile`, with the transformer's repeated
blocks compiled, and reports peak GPU memory
(`torch.cuda.max_memory_allocated`). Text encoding is left out (random
prompt embeddings of the T5-XXL shape are passed in): it runs once per clip
and does not depend on the video size.

Published anchor: the LTX-Video paper reports 5 s of 768x512 at 24 fps in
about 2 s on an H100 for the 2B model (its distilled, few-step setting).

Without a GPU (or with --tiny) it runs the same recipes on tiny components
of the same geometry on the CPU and says so: a smoke run of this script,
not a measurement.

Usage: python benchmarks/ltx_engine.py [--recipes dev-2b,dev-13b,distilled-2b] [--compile]
       python benchmarks/ltx_engine.py --tiny
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any

import torch
from diffusers import (
    AutoencoderKLLTXVideo,
    FlowMatchEulerDiscreteScheduler,
    LTXConditionPipeline,
    LTXVideoTransformer3DModel,
)

from reelgate.engines.ltx_recipes import recipe
from reelgate.engines.ltx_weights import Variant

SIZE = (768, 512)
FRAMES = 121  # 5 s at 24 fps
PAPER_SECONDS = 2.0  # the LTX-Video paper, 2B, H100

VAE_095 = {
    "latent_channels": 128,
    "block_out_channels": (128, 256, 512, 1024, 2048),
    "down_block_types": ("LTXVideo095DownBlock3D",) * 4,
    "decoder_block_out_channels": (256, 512, 1024),
    "layers_per_block": (4, 6, 6, 2, 2),
    "decoder_layers_per_block": (5, 5, 5, 5),
    "spatio_temporal_scaling": (True,) * 4,
    "decoder_spatio_temporal_scaling": (True,) * 3,
    "decoder_inject_noise": (False,) * 4,
    "downsample_type": ("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
    "upsample_residual": (True,) * 3,
    "upsample_factor": (2,) * 3,
    "timestep_conditioning": True,
    "patch_size": 4,
    "patch_size_t": 1,
    "spatial_compression_ratio": 32,
    "temporal_compression_ratio": 8,
}
"""The 0.9.5 VAE (also the 0.9.6 to 0.9.8 and 13B one), as diffusers configures it."""

TINY_VAE = {
    **VAE_095,
    "latent_channels": 8,
    "block_out_channels": (8, 8, 8, 8, 8),
    "decoder_block_out_channels": (8, 16, 32),
    "layers_per_block": (1, 1, 1, 1, 1),
    "decoder_layers_per_block": (1, 1, 1, 1),
}

TRANSFORMERS = {
    "2B": {"num_layers": 28, "num_attention_heads": 32, "attention_head_dim": 64},
    "13B": {
        "num_layers": 48,
        "num_attention_heads": 32,
        "attention_head_dim": 128,
        "cross_attention_dim": 4096,
    },
}
"""Over diffusers' defaults (the 2B: 2048 wide, T5-XXL captions of 4096)."""

TINY_TRANSFORMERS = {  # the same proportions, scaled down for a CPU
    "2B": {"num_layers": 2, "num_attention_heads": 2, "attention_head_dim": 8},
    "13B": {"num_layers": 4, "num_attention_heads": 2, "attention_head_dim": 16},
}

RECIPES = {
    "dev-2b": Variant("2B", "0.9.6"),
    "dev-13b": Variant("13B", "0.9.8"),
    "distilled-2b": Variant("2B", "0.9.8", distilled=True),
    "distilled-13b": Variant("13B", "0.9.8", distilled=True),
}


def build(variant: Variant, tiny: bool, device: str, dtype: torch.dtype) -> tuple[Any, int]:
    """The pipeline for a variant's architecture, and the text embedding width it expects."""
    # Built where it runs, in its dtype: a 13B in float32 would not fit beside its copy.
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            if tiny:
                shape = {**TINY_TRANSFORMERS[variant.size], "in_channels": 8, "out_channels": 8}
                width = 2 * shape["attention_head_dim"]
                shape |= {"cross_attention_dim": width, "caption_channels": 16}
                transformer = LTXVideoTransformer3DModel(**shape)
                vae = AutoencoderKLLTXVideo(**TINY_VAE)
            else:
                transformer = LTXVideoTransformer3DModel(**TRANSFORMERS[variant.size])
                vae = AutoencoderKLLTXVideo(**VAE_095)
    finally:
        torch.set_default_dtype(default)
    vae.enable_tiling()
    pipe = LTXConditionPipeline(
        transformer=transformer,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=None,
        tokenizer=None,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe, transformer.config.caption_channels


def clip_seconds(
    pipe: Any,
    embed_width: int,
    arguments: dict[str, Any],
    width: int,
    height: int,
    frames: int,
    device: str,
    dtype: torch.dtype,
) -> float:
    embeds = torch.randn(1, 128, embed_width, device=device, dtype=dtype)
    mask = torch.ones(1, 128, device=device, dtype=torch.long)
    guided = arguments["guidance_scale"] > 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    with torch.inference_mode():
        pipe(
            prompt_embeds=embeds,
            prompt_attention_mask=mask,
            negative_prompt_embeds=torch.zeros_like(embeds) if guided else None,
            negative_prompt_attention_mask=mask if guided else None,
            width=width,
            height=height,
            num_frames=frames,
            output_type="np",
            generator=torch.Generator().manual_seed(0),
            **arguments,
        )
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--recipes",
        default="dev-2b,dev-13b,distilled-2b",
        help=f"comma-separated, of {', '.join(RECIPES)}",
    )
    parser.add_argument("--compile", action="store_true", help="also time compiled blocks")
    parser.add_argument("--tiny", action="store_true", help="tiny components on the CPU")
    args = parser.parse_args()
    gpu = torch.cuda.is_available() and not args.tiny
    device = "cuda" if gpu else "cpu"
    dtype = torch.bfloat16 if gpu else torch.float32
    (width, height), frames = (SIZE, FRAMES) if gpu else ((96, 64), 17)
    if gpu:
        print(f"LTX-Video, random weights, on {torch.cuda.get_device_name()}, {dtype}:")
        print(f"one 5 s clip ({frames} frames) at {width}x{height}, single pass")
        print(f"paper: about {PAPER_SECONDS:.0f} s per clip for 2B on an H100")
    else:
        print("No GPU (or --tiny): tiny components of the real geometry on the CPU,")
        print(f"{frames} frames at {width}x{height}; a smoke run, not a measurement")
    for name in args.recipes.split(","):
        variant = RECIPES[name]
        profile = recipe(variant)
        arguments = profile.call_arguments()
        pipe, embed_width = build(variant, not gpu, device, dtype)
        modes = [("eager", False)] + ([("compiled", True)] if args.compile else [])
        for label, compiled in modes:
            if compiled:
                pipe.transformer.compile_repeated_blocks(dynamic=True)
            short = {**arguments, "num_inference_steps": 1, "timesteps": None}
            clip_seconds(pipe, embed_width, short, width, height, frames, device, dtype)  # warm-up
            if gpu:
                torch.cuda.reset_peak_memory_stats()
            seconds = clip_seconds(
                pipe, embed_width, arguments, width, height, frames, device, dtype
            )
            line = (
                f"  {name:<14} {label:<8} {profile.step_count:>2} steps, guidance "
                f"{profile.guidance:g}: {seconds:7.2f} s per clip"
            )
            if gpu:
                peak = torch.cuda.max_memory_allocated() / 2**30
                line += f" ({seconds / PAPER_SECONDS:.1f}x the paper), peak {peak:5.1f} GiB"
            print(line, flush=True)
        del pipe
        gc.collect()
        if gpu:
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
