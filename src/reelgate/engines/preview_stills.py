"""The preview engine's pictures: stills steered by reference images, and
reframing onto a larger canvas.

Classical image processing, like the rest of the preview, each step one a
person can see:

- an image reference draws the picture's light and shade toward the
  reference's layout (composition), keeping the scene's colours;
- a style reference moves its colours to the reference's (colour transfer:
  mean and spread of each channel in Lab, as Reinhard et al. do);
- a character reference appears in the picture, a soft-edged portrait in
  the lower middle;
- a modify reference is the picture itself, restyled by the prompt;
- a reframe draws the source where its layout says and fills the rest of
  the canvas by reflecting the source outward, blurred more the farther
  from the source it is, tinted toward the prompt's scene (never bars).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import cv2
import numpy as np

from reelgate.domain.models import RefRole
from reelgate.domain.reframe import Layout
from reelgate.engines.base import ImageReference

Restyle = Callable[[np.ndarray, float], np.ndarray]
"""Restyles a picture by the prompt, as strongly as the second argument (0..1)."""
Scene = Callable[[float], np.ndarray]
"""The prompt's scene at a time in seconds, at the canvas size."""

COMPOSITION_MIX = 0.8
"""How much of the light and shade an image reference of weight 1 decides."""
PROMPT_TINT = 0.3
"""How much of a reframe's new area the prompt's scene colours."""


def still(references: Iterable[ImageReference], scene: np.ndarray, restyle: Restyle) -> np.ndarray:
    """One picture: the prompt's scene (or the picture a modify reference
    gives, restyled), then composition, style and characters applied."""
    refs = list(references)
    picture = scene
    for ref in _with(refs, RefRole.MODIFY):
        # weight 1 keeps closest to the given picture; it is always restyled
        # somewhat, or the prompt would do nothing
        picture = restyle(ref.image, 0.15 + 0.8 * (1.0 - ref.weight))
    for ref in _with(refs, RefRole.IMAGE):
        picture = _composed(picture, ref.image, ref.weight)
    for ref in _with(refs, RefRole.STYLE):
        picture = colour_transfer(picture, ref.image, ref.weight)
    characters = _with(refs, RefRole.CHARACTER)
    for index, ref in enumerate(characters):
        picture = _with_character(picture, ref.image, ref.weight, index, len(characters))
    return picture


def _with(refs: list[ImageReference], role: RefRole) -> list[ImageReference]:
    return [ref for ref in refs if ref.role is role]


def _composed(picture: np.ndarray, reference: np.ndarray, weight: float) -> np.ndarray:
    """Light and shade drawn toward the reference's broad layout (its
    lightness, blurred), the picture's colours and fine detail kept."""
    h, w = picture.shape[:2]
    ref = cv2.resize(reference, (w, h), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(picture, cv2.COLOR_RGB2LAB).astype(np.float32)
    ref_l = cv2.cvtColor(ref, cv2.COLOR_RGB2LAB)[..., 0].astype(np.float32)
    sigma = max(1.0, min(w, h) / 120)
    layout = cv2.GaussianBlur(ref_l, (0, 0), sigma)
    mix = COMPOSITION_MIX * float(np.clip(weight, 0.0, 1.0))
    lab[..., 0] = (1.0 - mix) * lab[..., 0] + mix * layout
    return np.asarray(cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB))


def colour_transfer(picture: np.ndarray, reference: np.ndarray, weight: float) -> np.ndarray:
    """The picture in the reference's colours: each Lab channel shifted and
    scaled to the reference's mean and spread, blended in by `weight`."""
    lab = cv2.cvtColor(picture, cv2.COLOR_RGB2LAB).astype(np.float32)
    ref = cv2.cvtColor(reference, cv2.COLOR_RGB2LAB).astype(np.float32)
    mean, std = lab.mean(axis=(0, 1)), lab.std(axis=(0, 1)) + 1e-3
    ref_mean, ref_std = ref.mean(axis=(0, 1)), ref.std(axis=(0, 1))
    moved = (lab - mean) * (ref_std / std) + ref_mean
    out = (1.0 - weight) * lab + weight * moved
    return np.asarray(cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB))


def _with_character(
    picture: np.ndarray, portrait: np.ndarray, weight: float, index: int, count: int
) -> np.ndarray:
    """A portrait standing in the lower middle (side by side when there are
    several), its edges faded into the scene."""
    h, w = picture.shape[:2]
    ph = max(2, int(h * 0.6))
    pw = max(2, min(w // max(1, count), int(ph * portrait.shape[1] / portrait.shape[0])))
    person = cv2.resize(portrait, (pw, ph), interpolation=cv2.INTER_AREA).astype(np.float32)
    slot = w / count
    x = int(slot * index + (slot - pw) / 2)
    y = h - ph - int(h * 0.06)
    yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32)
    ellipse = ((xx - pw / 2) / (pw / 2)) ** 2 + ((yy - ph / 2) / (ph / 2)) ** 2
    mask = np.clip((1.0 - ellipse) * 3.0, 0.0, 1.0)[..., None] * float(weight)
    out = picture.astype(np.float32)
    region = out[y : y + ph, x : x + pw]
    out[y : y + ph, x : x + pw] = region * (1.0 - mask) + person * mask
    return np.asarray(np.clip(out + 0.5, 0, 255), dtype=np.uint8)


# --------------------------------------------------------------------------- reframing


class Reframer:
    """Draws pictures (an image, or each frame of a video) at a layout's
    place on its canvas and fills the rest: the picture reflected outward,
    blurred, tinted and shaded more the farther from it (the masks for
    that are made once per layout, not per frame)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.pads = (
            layout.y,
            layout.height - layout.y - layout.content_height,
            layout.x,
            layout.width - layout.x - layout.content_width,
        )
        far = _distance_ramp(layout)
        # at the source's edge the fill is the source itself, reflected (no
        # seam); farther out it becomes soft and ambient
        self.near = np.clip(far * 4.0, 0.0, 1.0)[..., None]
        self.shade = (1.0 - 0.25 * far)[..., None]

    def __call__(self, picture: np.ndarray, scene: np.ndarray | None = None) -> np.ndarray:
        lay = self.layout
        content = cv2.resize(
            picture, (lay.content_width, lay.content_height), interpolation=cv2.INTER_AREA
        )
        if not any(self.pads):
            return content
        canvas = _reflected(content, *self.pads)
        blurred = _soft(canvas)
        if scene is not None:
            blurred = cv2.addWeighted(blurred, 1.0 - PROMPT_TINT, scene, PROMPT_TINT, 0)
        out = canvas.astype(np.float32) * (1.0 - self.near) + blurred.astype(np.float32) * self.near
        out *= self.shade
        filled = np.clip(out + 0.5, 0, 255).astype(np.uint8)
        filled[lay.y : lay.y + lay.content_height, lay.x : lay.x + lay.content_width] = content
        return filled


def _reflected(content: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """The content mirrored outward to fill the borders (mirrored again where
    a border is wider than the content)."""
    out = content
    if min(content.shape[:2]) < 2:  # nothing to mirror: repeat the edge
        return cv2.copyMakeBorder(out, top, bottom, left, right, cv2.BORDER_REPLICATE)
    while top or bottom or left or right:
        h, w = out.shape[:2]  # grows every pass: each pass mirrors at least a pixel
        t, b = min(top, h - 1), min(bottom, h - 1)
        lft, r = min(left, w - 1), min(right, w - 1)
        out = cv2.copyMakeBorder(out, t, b, lft, r, cv2.BORDER_REFLECT_101)
        top, bottom, left, right = top - t, bottom - b, left - lft, right - r
    return out


def _soft(canvas: np.ndarray) -> np.ndarray:
    """A heavy blur, made on a small copy (fast at any size)."""
    h, w = canvas.shape[:2]
    small = cv2.resize(canvas, (max(2, w // 8), max(2, h // 8)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), max(1.5, min(small.shape[:2]) / 12))
    return np.asarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR))


def _distance_ramp(layout: Layout) -> np.ndarray:
    """0 inside the source, rising to 1 at the canvas' farthest point."""
    ys = np.arange(layout.height, dtype=np.float32)[:, None]
    xs = np.arange(layout.width, dtype=np.float32)[None, :]
    x0, x1 = layout.x, layout.x + layout.content_width
    y0, y1 = layout.y, layout.y + layout.content_height
    dx = np.maximum(np.maximum(x0 - xs, xs - (x1 - 1)), 0.0)
    dy = np.maximum(np.maximum(y0 - ys, ys - (y1 - 1)), 0.0)
    dist = np.sqrt(dx**2 + dy**2)
    return np.asarray(np.clip(dist / max(1.0, float(dist.max())), 0.0, 1.0), dtype=np.float32)


def reframed_video(
    frames: Iterable[np.ndarray],
    layout: Layout,
    scene: Scene | None,
    fps: int,
    first: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """Every frame reframed; a given first frame opens the clip and fades
    into the reframed video over its first second."""
    reframer = Reframer(layout)
    for index, frame in enumerate(frames):
        out = reframer(frame, scene(index / fps) if scene else None)
        if first is not None and index < fps:
            out = cv2.addWeighted(first, 1.0 - index / fps, out, index / fps, 0)
        yield out
