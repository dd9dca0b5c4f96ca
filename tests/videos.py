"""Helpers for tests that look at pictures: test images, PSNR, decoding MP4s."""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np
from PIL import Image


def textured_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth, structured RGB picture (gradients and rings) that survives
    scaling and compression well enough to compare by PSNR."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height
    r = np.hypot(x - cx, y - cy)
    channels = [
        128 + 100 * np.sin(r / rng.uniform(15, 30)),
        255 * x / width,
        255 * y / height * rng.uniform(0.5, 1.0),
    ]
    return np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)


def png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@dataclass
class Decoded:
    width: int
    height: int
    fps: float
    codec: str
    pix_fmt: str
    frames: list[np.ndarray]

    @property
    def duration(self) -> float:
        return len(self.frames) / self.fps


def decode_mp4(data: bytes) -> Decoded:
    """Decode every frame of an MP4 held in memory."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return Decoded(
            stream.codec_context.width,
            stream.codec_context.height,
            float(stream.average_rate),
            stream.codec_context.name,
            stream.codec_context.pix_fmt,
            frames,
        )


def detailed_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A picture with fine detail (blurred noise over gradients): what makes a
    cross-fade ghost visibly, and what optical flow can lock on to."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (height, width, 3)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), 2.0)
    noise = (noise - noise.mean()) * 3.0
    base = textured_image(width, height, seed).astype(np.float32)
    return np.clip(base * 0.8 + 25 + noise, 0, 255).astype(np.uint8)
