"""LTX-Video speed on a GPU, with random weights (prints figures; not a test).

Builds the LTX-Video 2B architecture from its published config (diffusers'
defaults for `LTXVideoTransformer3DModel` and `AutoencoderKLLTXVideo` are the
2B / 0.9 VAE configuration) with random weights. The compute is the same as
with real weights. It then times one 5 s clip (121 frames) at 768x512 and at
1280x704, with and without `torch.compile` on the transformer, and reports
peak GPU memory. Text encoding is left out (random prompt embeddings of the
T5-XXL shape are passed in), because it runs once per clip and does not
depend on the video size.

Published anchor: 5 s of 768x512 at 24 fps in about 2 s on an H100 (2B).

Usage: python benchmarks/ltx_engine.py [--steps 8] [--no-compile]
       python benchmarks/ltx_engine.py --tiny   # a CPU smoke run of this script
"""

from __future__ import annotations

import argparse
import time

import torch
from diffusers import (
    AutoencoderKLLTXVideo,
    FlowMatchEulerDiscreteScheduler,
    LTXConditionPipeline,
    LTXVideoTransformer3DModel,
)

SIZES = [(768, 512), (1280, 704)]
FRAMES = 121


def build(tiny: bool, device: str, dtype: torch.dtype) -> tuple[LTXConditionPipeline, int]:
    """The pipeline and the text embedding width it expects."""
    if tiny:
        transformer = LTXVideoTransformer3DModel(
            in_channels=8,
            out_channels=8,
            num_attention_heads=2,
            attention_head_dim=8,
            cross_attention_dim=16,
            num_layers=1,
            caption_channels=16,
        )
        vae = AutoencoderKLLTXVideo(
            latent_channels=8,
            block_out_channels=(8, 8, 8, 8),
            decoder_block_out_channels=(8, 8, 8, 8),
            layers_per_block=(1, 1, 1, 1, 1),
            decoder_layers_per_block=(1, 1, 1, 1, 1),
        )
        width = 16
    else:
        transformer = LTXVideoTransformer3DModel()  # 2B: 28 layers, 32 heads x 64, T5-XXL captions
        vae = AutoencoderKLLTXVideo()
        width = transformer.config.caption_channels
    pipe = LTXConditionPipeline(
        transformer=transformer.to(dtype),
        vae=vae.to(dtype),
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=None,
        tokenizer=None,
    )
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe, width


def clip_seconds(
    pipe: LTXConditionPipeline,
    embed_width: int,
    width: int,
    height: int,
    frames: int,
    steps: int,
    device: str,
    dtype: torch.dtype,
) -> float:
    embeds = torch.randn(1, 128, embed_width, device=device, dtype=dtype)
    mask = torch.ones(1, 128, device=device, dtype=torch.long)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    with torch.inference_mode():
        pipe(
            prompt_embeds=embeds,
            prompt_attention_mask=mask,
            negative_prompt_embeds=torch.zeros_like(embeds),
            negative_prompt_attention_mask=mask,
            width=width,
            height=height,
            num_frames=frames,
            num_inference_steps=steps,
            guidance_scale=3.0,
            output_type="np",
        )
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=8, help="denoising steps (the distilled 2B models use about 8)"
    )
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--tiny", action="store_true", help="tiny random model on the CPU")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    sizes, frames = ([(64, 32)], 9) if args.tiny else (SIZES, FRAMES)
    pipe, embed_width = build(args.tiny, device, dtype)
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(
        f"LTX-Video {'tiny' if args.tiny else '2B'} (random weights) on {name}, "
        f"{frames} frames, {args.steps} steps, {dtype}"
    )
    variants = [("eager", False)] + ([] if args.no_compile or args.tiny else [("compiled", True)])
    for label, compiled in variants:
        if compiled:
            pipe.transformer = torch.compile(pipe.transformer)
        for width, height in sizes:
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            clip_seconds(pipe, embed_width, width, height, frames, 1, device, dtype)  # warm-up
            seconds = clip_seconds(
                pipe, embed_width, width, height, frames, args.steps, device, dtype
            )
            peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0
            print(
                f"  {label:<9} {width}x{height}: {seconds:6.2f} s per clip"
                + (f", peak GPU memory {peak:5.1f} GiB" if device == "cuda" else "")
            )


if __name__ == "__main__":
    main()
