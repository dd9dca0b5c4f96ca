"""The preview engine: real, playable clips on a CPU with no model weights.

It exists so the whole API works offline (laptops, CI) and produces videos a
person can look at and tell apart: a text prompt becomes an animated scene
drawn from the prompt's words (`preview_scene.py`: time of day, weather,
setting, colours, mood, moving subjects, camera moves); images
get camera motion; two keyframes are joined by optical-flow morphing. It is
not a generative model and does not pretend to be one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import cv2
import numpy as np

from reelgate.domain.concepts import CONCEPTS
from reelgate.domain.errors import InvalidInput
from reelgate.domain.reframe import Layout
from reelgate.engines import concept_camera, preview_stills, scene_words
from reelgate.engines.base import (
    Capabilities,
    EngineServices,
    FrameEngine,
    ProgressFn,
    RenderJob,
)
from reelgate.engines.preview_scene import PromptScene
from reelgate.engines.scene_words import digest_int, words
from reelgate.media.images import cover_fit
from reelgate.media.probe import iter_frames_at
from reelgate.media.soundscape import soundscape

if TYPE_CHECKING:
    from reelgate.config import Settings

MAX_SHORT_SIDE = 1088  # 1080p snapped to the 32-pixel grid
FLOW_LONG_SIDE = 384  # optical flow resolution: fast, and smooth motion needs no more


class PreviewEngine(FrameEngine):
    """Classical computer-vision renderer (NumPy + OpenCV) behind the engine base."""

    name = "preview"
    # What a CPU renders in reasonable time: everything but 4k.
    capabilities = Capabilities(
        generation_types=frozenset(
            {
                "video",
                "upscale_video",
                "add_audio",
                "modify_video",
                "image",
                "reframe_image",
                "reframe_video",
            }
        ),
        resolutions=("540p", "720p", "1080p"),
        concepts=frozenset(CONCEPTS),
    )

    def model_label(self, requested: str | None) -> str:
        """Always the same label: whatever was asked for, this is what rendered it."""
        return "reelgate-preview"

    def soundtrack(self, job: RenderJob, seconds: float, sample_rate: int) -> np.ndarray:
        """Sound synthesized from the prompt's words (`media/soundscape.py`)."""
        return soundscape(job.prompt, job.negative_prompt, seconds, job.seed, sample_rate)

    def check_frames(self, width: int, height: int, num_frames: int) -> None:
        """Refuse what a CPU cannot render in reasonable time (4k), and nonsense sizes."""
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise InvalidInput(
                f"the preview engine needs a positive, even frame size, got {width}x{height}"
            )
        if min(width, height) > MAX_SHORT_SIDE:
            raise InvalidInput(
                f"the preview engine renders up to 1080p; {width}x{height} (4k) is not supported,"
                " choose 540p, 720p or 1080p"
            )
        if num_frames < 1:
            raise InvalidInput(f"the preview engine needs at least one frame, got {num_frames}")

    def render(self, job: RenderJob, progress: ProgressFn) -> Iterator[np.ndarray]:
        """Yield job.num_frames frames of job.height x job.width x 3, reporting progress."""
        self.check_frames(job.width, job.height, job.num_frames)
        progress(0.0)
        frames = _frames_for(job)
        concepts = job.concepts or _worded_concepts(job)
        if concepts:
            frames = concept_camera.steer(frames, concepts, job.num_frames, job.seed)
        for produced, frame in enumerate(frames, start=1):
            yield np.ascontiguousarray(frame, dtype=np.uint8)
            progress(produced / job.num_frames)
        progress(1.0)


def from_settings(settings: Settings, services: EngineServices) -> PreviewEngine:
    """Always on: it needs no weights and no settings."""
    return PreviewEngine()


# --------------------------------------------------------------------------- dispatch


def _frames_for(job: RenderJob) -> Iterator[np.ndarray]:
    """Pick the behaviour from the shape of the request."""
    if job.reframe is not None:
        return _reframed(job, job.reframe)
    if job.still:
        scene = PromptScene(job.prompt, job.seed, job.width, job.height, job.fps).frame(0.0)
        return iter([preview_stills.still(job.references, scene, _prompt_style(job.prompt))])
    if job.upscale and job.source_video is not None:
        return _upscaled(job.source_video, job.width, job.height, job.fps)
    if job.modify and job.source_video is not None:
        first = job.start_image
        first = None if first is None else cover_fit(first, job.width, job.height)
        return _modified(job.source_video, job.modify, job.prompt, first, job.fps)
    if job.soundtrack and job.source_video is not None:
        return iter_frames_at(job.source_video, job.fps)  # the picture stays as it was
    size = (job.width, job.height)
    n = job.num_frames
    rng = _rng(job.prompt, job.seed)
    if job.source_last_frame is not None:
        return _extend(job, job.source_last_frame, rng)
    start = None if job.start_image is None else cover_fit(job.start_image, *size)
    end = None if job.end_image is None else cover_fit(job.end_image, *size)
    if start is not None and end is not None:
        # Loop is meaningless with two different keyframes; the keyframes win.
        return _morph(start, end, _positions(n, include_start=True))
    if start is not None:
        return _camera(start, _camera_path(n, rng, loop=job.loop))
    if end is not None:
        # Arrive at the end image: the same camera path played backwards.
        return _camera(end, list(reversed(_camera_path(n, rng, loop=job.loop))))
    return PromptScene(job.prompt, job.seed, job.width, job.height, job.fps).frames(n, job.loop)


def _worded_concepts(job: RenderJob) -> tuple[str, ...]:
    """Camera moves the prompt's words name ("pan left", "aerial view"), for a
    text-only clip whose request names no concepts. A loop keeps none: a move
    that goes one way would not close it."""
    inputs = (job.reframe, job.source_video, job.source_last_frame, job.start_image, job.end_image)
    if job.loop or job.still or any(given is not None for given in inputs):
        return ()
    return scene_words.parse(job.prompt).camera


def _extend(
    job: RenderJob, last_frame: np.ndarray, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """Continue from the source's last frame; the first new frame is one small step on."""
    size = (job.width, job.height)
    n = job.num_frames
    source = cover_fit(last_frame, *size)  # already fitted; cheap no-op then
    target = None if job.end_image is None else cover_fit(job.end_image, *size)
    if target is None and job.loop:
        target = _first_frame_of(job.source_video, size)
    if target is not None:
        # Arrive at the end image, or (loop) at the source's first frame so the
        # whole extended video plays seamlessly in a loop.
        return _morph(source, target, _positions(n, include_start=False))
    if job.loop:
        return _camera(source, _camera_path(n + 1, rng, loop=True)[1:])
    return _camera(source, _camera_path(n + 1, rng, loop=False, ease=_ease_out)[1:])


def _reframed(job: RenderJob, layout: Layout) -> Iterator[np.ndarray]:
    """The source on its new canvas, the new area tinted by the prompt's scene."""
    scene = None
    if job.prompt:
        scene = PromptScene(job.prompt, job.seed, job.width, job.height, job.fps).frame
    if job.source_image is not None:
        reframer = preview_stills.Reframer(layout)
        return iter([reframer(job.source_image, scene(0.0) if scene else None)])
    if job.source_video is None:
        raise InvalidInput("the preview engine needs an image or a video to reframe")
    first = None if job.start_image is None else cover_fit(job.start_image, job.width, job.height)
    frames = iter_frames_at(job.source_video, job.fps)
    return preview_stills.reframed_video(frames, layout, scene, job.fps, first)


def _prompt_style(prompt: str) -> preview_stills.Restyle:
    """The prompt's restyle (the one modify uses), at a given strength."""
    turn = 45 + digest_int(prompt) % 91

    def restyle(picture: np.ndarray, strength: float) -> np.ndarray:
        return cv2.addWeighted(picture, 1.0 - strength, _restyled(picture, turn, None), strength, 0)

    return restyle


def _upscaled(video: Path, width: int, height: int, fps: int) -> Iterator[np.ndarray]:
    """Each frame of `video` resampled to width x height with a Lanczos
    filter, then an unsharp mask to restore the edges resampling softens
    (a real, if classical, upscaler: it adds no detail that was not there)."""
    for frame in iter_frames_at(video, fps):
        big = cv2.resize(frame, (width, height), interpolation=cv2.INTER_LANCZOS4)
        soft = cv2.GaussianBlur(big, (0, 0), sigmaX=max(0.8, width / frame.shape[1] * 0.6))
        yield cv2.addWeighted(big, 1.5, soft, -0.5, 0)


MODIFY_STRENGTH = {
    "adhere_1": 0.12, "adhere_2": 0.2, "adhere_3": 0.28,
    "flex_1": 0.4, "flex_2": 0.5, "flex_3": 0.6,
    "reimagine_1": 0.72, "reimagine_2": 0.84, "reimagine_3": 0.95,
}  # fmt: skip
"""How much of each frame the restyled version replaces, by mode."""


def _modified(
    video: Path, mode: str, prompt: str, first: np.ndarray | None, fps: int
) -> Iterator[np.ndarray]:
    """The video restyled: each frame simplified into flat, edge-preserving
    colour regions with inked edges and recoloured (toward the first frame's
    colours when one is given, else by a hue turn the prompt picks), blended
    in as strongly as the mode says. A given first frame opens the clip and
    fades into the restyled video over its first second."""
    strength = MODIFY_STRENGTH.get(mode, 0.4)
    # The style follows the prompt alone, so modes differ only in strength;
    # a turn of 45..135 (of 180) always recolours visibly.
    turn = 45 + digest_int(prompt) % 91
    for index, frame in enumerate(iter_frames_at(video, fps)):
        styled = _restyled(frame, turn, first)
        out = cv2.addWeighted(frame, 1.0 - strength, styled, strength, 0)
        if first is not None and index < 24:
            out = cv2.addWeighted(first, 1.0 - index / 24, out, index / 24, 0)
        yield out


def _restyled(frame: np.ndarray, turn: int, palette: np.ndarray | None) -> np.ndarray:
    h, w = frame.shape[:2]
    small = cv2.resize(frame, (max(2, w // 2), max(2, h // 2)), interpolation=cv2.INTER_AREA)
    flat = cv2.bilateralFilter(small, 9, 60, 9)
    flat = (flat // 32) * 32 + 16  # flat colour regions
    hsv = cv2.cvtColor(flat, cv2.COLOR_RGB2HSV)
    if palette is None:
        hsv[..., 0] = (hsv[..., 0].astype(np.int32) + turn) % 180
    else:
        target = cv2.cvtColor(cv2.resize(palette, (32, 32)), cv2.COLOR_RGB2HSV)
        hsv[..., 0] = int(np.median(target[..., 0]))
    recoloured = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    edges = cv2.Canny(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), 60, 140)
    recoloured[edges > 0] = (recoloured[edges > 0] * 0.25).astype(np.uint8)
    return cv2.resize(recoloured, (w, h), interpolation=cv2.INTER_LINEAR)


def _first_frame_of(video: Path | None, size: tuple[int, int]) -> np.ndarray | None:
    """The source clip's first frame, or None when there is no readable source."""
    if video is None:
        return None
    from reelgate.media.errors import MediaError
    from reelgate.media.probe import iter_frames

    try:
        return next(iter(iter_frames(video, size)), None)
    except MediaError:
        return None


# --------------------------------------------------------------------------- shared helpers


def _rng(prompt: str, seed: int) -> np.random.Generator:
    """A generator fixed by (prompt words, seed): same request, same clip."""
    return np.random.default_rng(digest_int(" ".join(words(prompt)), str(seed)))


def _smoothstep(u: float) -> float:
    u = min(1.0, max(0.0, u))
    return u * u * (3.0 - 2.0 * u)


def _ease_out(u: float) -> float:
    """Starts moving at once, settles at the end: right for continuing a clip."""
    u = min(1.0, max(0.0, u))
    return 1.0 - (1.0 - u) ** 2


def _positions(n: int, *, include_start: bool) -> list[float]:
    """Normalised times 0..1. Without the start, the first entry is 1/n (extend)."""
    if include_start:
        return [0.0] if n == 1 else [i / (n - 1) for i in range(n)]
    return [k / n for k in range(1, n + 1)]


# --------------------------------------------------------------------------- camera motion


@dataclass(frozen=True)
class _Pose:
    """A virtual camera over a still: zoom >= 1 and a pan as a fraction (-1..1)
    of the room the zoom leaves, so the view never leaves the picture."""

    scale: float
    pan_x: float
    pan_y: float


def _camera_path(
    n: int, rng: np.random.Generator, *, loop: bool, ease: Callable[[float], float] = _smoothstep
) -> list[_Pose]:
    """Poses for n frames; pose 0 is always the identity (scale 1, centred).

    Loop: every parameter is a function of the phase 2*pi*i/(n-1), so the
    last pose equals the first and the clip repeats seamlessly.
    """
    zoom = float(rng.uniform(0.10, 0.18))
    angle = float(rng.uniform(0.0, 2.0 * math.pi))
    reach = float(rng.uniform(0.5, 0.85))
    if n == 1:
        return [_Pose(1.0, 0.0, 0.0)]
    poses = []
    for i in range(n):
        if loop:
            phase = 2.0 * math.pi * i / (n - 1)
            e = (1.0 - math.cos(phase)) / 2.0
            a = angle + phase
        else:
            e = ease(i / (n - 1))
            a = angle
        poses.append(_Pose(1.0 + zoom * e, reach * math.cos(a), reach * math.sin(a)))
    return poses


def _camera(img: np.ndarray, poses: Iterable[_Pose]) -> Iterator[np.ndarray]:
    # OpenCV warps four channels in its vector path and three in a scalar one
    # (2-3x slower): warp an RGBA copy and drop the alpha after.
    rgba = cv2.cvtColor(img, cv2.COLOR_RGB2RGBA)
    for pose in poses:
        if abs(pose.scale - 1.0) < 1e-9:
            yield img.copy()  # the identity: the keyframe's own pixels
        else:
            yield cv2.cvtColor(_apply_pose(rgba, pose), cv2.COLOR_RGBA2RGB)


def _apply_pose(img: np.ndarray, pose: _Pose) -> np.ndarray:
    """Render the camera's view of `img`; the identity pose returns the pixels unchanged
    (so a start keyframe is reproduced exactly, not resampled).

    Parallax: a still has no depth, so the lower part of the frame (usually
    the foreground) is taken as near and pans fully, while the top (usually
    sky and distance) pans half as far; the view still never leaves the picture.
    """
    h, w = img.shape[:2]
    s = pose.scale
    if abs(s - 1.0) < 1e-9:
        return img.copy()
    # Source x = (x - w/2)/s + w/2 + off_x * nearness(y), and likewise for y,
    # with nearness linear in y: an affine map, so one warpAffine does it
    # (no per-pixel maps to build, several times faster than a remap).
    off_x = pose.pan_x * (w - w / s) / 2.0
    off_y = pose.pan_y * (h - h / s) / 2.0
    slope = 0.5 / max(1, h - 1)
    inverse = np.array(
        [
            [1.0 / s, off_x * slope, w / 2.0 - w / (2.0 * s) + 0.5 * off_x],
            [0.0, 1.0 / s + off_y * slope, h / 2.0 - h / (2.0 * s) + 0.5 * off_y],
        ],
        dtype=np.float64,
    )
    return cv2.warpAffine(
        img,
        inverse,
        (w, h),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )


# --------------------------------------------------------------------------- keyframe morphing


def _morph(start: np.ndarray, end: np.ndarray, times: Sequence[float]) -> Iterator[np.ndarray]:
    """Carry motion from `start` to `end` with dense optical flow.

    Flow is computed once in both directions at low resolution (the motion
    field is smooth, so this loses little and costs ~ms), upscaled, and each
    frame warps start forward and end backward before an eased blend. Compared
    with a cross-fade, shapes travel instead of ghosting in place. Time 0 is
    `start` exactly and time 1 is `end` exactly.
    """
    morph = _FlowMorph(start, end)
    for u in times:
        if u <= 0.0:
            yield start.copy()
        elif u >= 1.0:
            yield end.copy()
        else:
            yield morph.frame(_smoothstep(u))


def _bidirectional_flow(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flow a->b and b->a, computed and returned at FLOW_LONG_SIDE, in units of
    full-resolution pixels (the caller upsamples what it needs per frame)."""
    h, w = a.shape[:2]
    k = min(1.0, FLOW_LONG_SIDE / max(h, w))
    sw, sh = max(16, round(w * k)), max(16, round(h * k))
    ga = cv2.cvtColor(cv2.resize(a, (sw, sh), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    gb = cv2.cvtColor(cv2.resize(b, (sw, sh), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    dis = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    scale = np.array([w / sw, h / sh], dtype=np.float32)
    dx, dy = _global_shift(ga, gb)
    flows = []
    for src, dst, sx, sy in ((ga, gb, dx, dy), (gb, ga, -dx, -dy)):
        # Flow src -> dst = the global shift + DIS on the residual motion.
        moved = cv2.warpAffine(
            dst,
            np.array([[1, 0, sx], [0, 1, sy]], dtype=np.float32),
            (sw, sh),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        # None (no initial flow) is accepted at run time; the stubs want an array
        small: np.ndarray = dis.calc(src, moved, None)  # type: ignore[call-overload]
        small[..., 0] += sx
        small[..., 1] += sy
        flows.append(small * scale)
    return flows[0], flows[1]


def _global_shift(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """The dominant translation a -> b (a camera pan), by phase correlation;
    (0, 0) when the two frames share no clear shift.

    DIS refines coarse to fine from zero motion, so on detailed pictures it
    loses pans larger than its coarsest level sees; removing the global shift
    first leaves it only the residual motion."""
    window = cv2.createHanningWindow((a.shape[1], a.shape[0]), cv2.CV_32F)
    (dx, dy), response = cv2.phaseCorrelate(a.astype(np.float32), b.astype(np.float32), window)
    return (float(dx), float(dy)) if response >= 0.2 else (0.0, 0.0)


# A blend share this small changes no pixel by more than a level: that
# keyframe's warp is skipped (the first and last ~10% of a morph's frames).
_NEGLIGIBLE_SHARE = 0.5 / 255.0
# How far (pixels) past a side a sampled coordinate may be and still be read as
# fully inside: bilinear weights this small round away.
_EDGE_TOLERANCE = 1e-3
# Blended alpha (of 255) below which a pixel counts as uncovered and is filled
# like one no warp reaches. Un-premultiplying multiplies the 8-bit rounding of
# a premultiplied colour and of its alpha by 255/alpha: measured on pans, a
# colour comes out up to ~380/alpha levels off, so a pixel at alpha 1 or 2 (a
# warp grazing its picture's edge, or a keyframe with a share of a few
# thousandths alone where the other has no pixels) turns pure red, black or
# white. From 16 on (four bits of colour left) it is at most ~25 levels off;
# a higher floor would swap that noise for the nearest pixels' smear over a
# wider strip and for more frames.
_MIN_ALPHA = 16


class _FlowMorph:
    """In-between frames of two keyframes, warped along their optical flow.

    Per frame it does only OpenCV work on whole images (two flow mixes at flow
    size, two map upsamples, two remaps, one blend), which is what keeps
    interpolation close to the encoder's own speed.
    """

    def __init__(self, start: np.ndarray, end: np.ndarray) -> None:
        self.flow_fwd, self.flow_bwd = _bidirectional_flow(start, end)
        h, w = start.shape[:2]
        self.size = (w, h)
        # An opaque alpha channel that remap fills with 0 outside the picture:
        # it tells, per pixel, whether a warped keyframe has anything to show.
        self.start = cv2.cvtColor(start, cv2.COLOR_RGB2RGBA)
        self.end = cv2.cvtColor(end, cv2.COLOR_RGB2RGBA)
        # remap reads absolute maps (each pixel's source coordinate) faster
        # than relative ones (its flow), and a pixel's coordinate is linear in
        # its position, which bilinear upsampling reproduces: added to the
        # coordinates of the flow grid's samples at flow size, it comes out
        # right at full size, with no full-size pass of its own.
        sh, sw = self.flow_fwd.shape[:2]
        self._x, self._y = _GridAxis.of(sw, w), _GridAxis.of(sh, h)
        self._grid = np.dstack(np.meshgrid(self._x.at, self._y.at))
        # Work buffers, reused frame after frame (only each frame returned is
        # new): fresh ones per frame cost time and, as freed blocks pile up
        # beside the encoder's, memory.
        self._small = (np.empty_like(self._grid), np.empty_like(self._grid))
        self._maps = (np.empty((h, w, 2), np.float32), np.empty((h, w, 2), np.float32))
        self._warps = (np.empty((h, w, 4), np.uint8), np.empty((h, w, 4), np.uint8))
        self._blend = np.empty((h, w, 4), np.uint8)

    def frame(self, t: float) -> np.ndarray:
        """The frame at time t (0..1).

        Flows from time t back to each keyframe are the linear-motion
        estimates used by Super SloMo: F_t0 = -(1-t)t F_01 + t^2 F_10 and
        F_t1 = (1-t)^2 F_01 - t(1-t) F_10. Mixing is linear, so it is done on
        the small flow fields and only the result is upsampled.
        """
        weight = _smoothstep(t)
        mixes = ((-(1.0 - t) * t, t * t), ((1.0 - t) ** 2, -t * (1.0 - t)))
        shares = (1.0 - weight, weight)
        sources = (self.start, self.end)
        warps: list[_Warped] = []
        edges = _Edges()
        for k in (0, 1):
            if shares[k] < _NEGLIGIBLE_SHARE:
                continue
            small, coords = self._map(*mixes[k], k)
            # outside its picture a warp is transparent black (alpha 0)
            pixels = _remap(
                sources[k], coords, cv2.INTER_LINEAR, cv2.BORDER_CONSTANT, self._warps[k]
            )
            warps.append(_Warped(shares[k], sources[k], coords, pixels))
            edges = edges.union(self._outside(small))
        if len(warps) == 1:  # the other's share is negligible: this one is all
            warps[0] = warps[0]._replace(share=1.0)
            blend = warps[0].pixels
        else:
            # Outside its picture a warp is transparent black, and bilinear
            # edges are partly so: the warps are premultiplied RGBA. Blending
            # them and un-premultiplying takes, at an edge a pan reveals, the
            # keyframe that has the pixel instead of fading to black.
            a, b = warps
            blend = cv2.addWeighted(a.pixels, a.share, b.pixels, b.share, 0.0, dst=self._blend)
        out = cv2.cvtColor(blend, cv2.COLOR_RGBA2RGB)
        # Alpha can be under 255 only in bands along the sides, as far in as
        # a map there samples outside its picture; elsewhere un-premultiplying
        # changes nothing.
        for rows, cols in edges.bands(*self.size):
            _straighten(out, blend, rows, cols, warps)
        return out

    def _map(self, a: float, b: float, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The map for the flow a*F_01 + b*F_10, at flow size and at full size."""
        small = cv2.addWeighted(self.flow_fwd, a, self.flow_bwd, b, 0.0, dst=self._small[k])
        cv2.add(small, self._grid, dst=small)
        coords = self._maps[k]
        cv2.resize(small, self.size, dst=coords, interpolation=cv2.INTER_LINEAR)
        for index, fix in self._x.fixes:
            coords[:, index, 0] += fix
        for index, fix in self._y.fixes:
            coords[index, :, 1] += fix
        return small, coords

    def _outside(self, small: np.ndarray) -> _Edges:
        """Where along the sides the full-size map made from `small` can
        sample outside the picture: near the grid samples whose coordinates
        are outside (or close enough to a side that a pixel near them is)."""
        w, h = self.size
        x, y = self._x, self._y
        # Per grid column, the smallest and largest coordinates (x and y); per
        # grid row only when some y is near the top or bottom.
        low = cv2.reduce(small, 0, cv2.REDUCE_MIN)[0]
        high = cv2.reduce(small, 0, cv2.REDUCE_MAX)[0]
        edges = _Edges(
            left=_farthest(x.end, low[:, 0] < x.low),
            right=w - _farthest(x.first, high[:, 0] > x.high, w),
        )
        columns = low[:, 1] < y.low.max()
        if columns.any():
            edges.top = _farthest(y.end, small[..., 1].min(axis=1) < y.low)
            edges.top_cols = (int(x.first[columns].min()), int(x.end[columns].max()))
        columns = high[:, 1] > y.high.min()
        if columns.any():
            edges.bottom = h - _farthest(y.first, small[..., 1].max(axis=1) > y.high, h)
            edges.bottom_cols = (int(x.first[columns].min()), int(x.end[columns].max()))
        return edges


class _Warped(NamedTuple):
    """One keyframe warped for a frame: its share of the blend, the keyframe
    (RGBA), the full-size map and the warped pixels (premultiplied RGBA)."""

    share: float
    source: np.ndarray
    coords: np.ndarray
    pixels: np.ndarray


def _straighten(
    out: np.ndarray, blend: np.ndarray, rows: slice, cols: slice, warps: list[_Warped]
) -> None:
    """Un-premultiply one band of the frame. Pixels neither keyframe covers
    (corners of a large move), or covers too thinly to un-premultiply (alpha
    under _MIN_ALPHA: a warp grazing its picture's edge, or one whose share of
    the blend is a few percent), take the nearest edge pixels of both, so
    neither black nor a made-up colour appears."""
    band, shown = blend[rows, cols], out[rows, cols]
    straight = cv2.cvtColor(band, cv2.COLOR_mRGBA2RGBA)
    cv2.cvtColor(straight, cv2.COLOR_RGBA2RGB, dst=shown)  # in place
    alpha = cv2.extractChannel(band, 3)
    if cv2.minMaxLoc(alpha)[0] >= _MIN_ALPHA:
        return
    thin = alpha < _MIN_ALPHA
    x, y, w, h = cv2.boundingRect(thin.view(np.uint8))
    box = (slice(rows.start + y, rows.start + y + h), slice(cols.start + x, cols.start + x + w))
    mixed = np.zeros((h, w, 4), np.float32)
    for warped in warps:
        nearest = _remap(warped.source, warped.coords[box], cv2.INTER_NEAREST, cv2.BORDER_REPLICATE)
        mixed += warped.share * nearest
    filled = cv2.cvtColor(np.clip(mixed + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGBA2RGB)
    np.copyto(shown[y : y + h, x : x + w], filled, where=thin[y : y + h, x : x + w, None])


def _remap(
    image: np.ndarray,
    coords: np.ndarray,
    interpolation: int,
    border: int,
    into: np.ndarray | None = None,
) -> np.ndarray:
    """`image` sampled at the positions `coords` (HxWx2, x and y) maps to:
    bilinear for a warp, nearest (with the sides replicated) for the fill."""
    # map2 None (map1 holds both coordinates) is accepted at run time; the stubs want an array
    out: np.ndarray = cv2.remap(  # type: ignore[call-overload]
        image, coords, None, interpolation, dst=into, borderMode=border, borderValue=0
    )
    return out


@dataclass(frozen=True)
class _GridAxis:
    """One axis of the flow grid, seen from the frame's pixels.

    at: the pixel position of each sample, the coordinate bilinear resize
    reproduces between them. fixes: (pixel, correction) for the pixel or two
    at each end that resize clamps to the outermost sample, which needs the
    correction to get its own coordinate. first, end: the pixels each sample
    reaches (up to its neighbours). low, high: a sample coordinate below
    (above) these may put a pixel it reaches outside the picture."""

    at: np.ndarray
    fixes: tuple[tuple[int, float], ...]
    first: np.ndarray
    end: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def of(cls, samples: int, size: int) -> _GridAxis:
        at = ((np.arange(samples) + 0.5) * (size / samples) - 0.5).astype(np.float32)
        upsampled = cv2.resize(at[None, :], (size, 1), interpolation=cv2.INTER_LINEAR)[0]
        error = np.arange(size, dtype=np.float32) - upsampled
        fixes = tuple((int(i), float(error[i])) for i in np.flatnonzero(np.abs(error) > 1e-3))
        first = np.clip(np.concatenate([[0], np.floor(at[:-1])]), 0, size).astype(np.intp)
        end = np.clip(np.concatenate([np.ceil(at[1:]) + 1, [size]]), 0, size).astype(np.intp)
        # Between samples a pixel's coordinate is a mix of theirs; the clamped
        # end pixels' are the outermost sample's moved by their correction.
        low = np.full(samples, -_EDGE_TOLERANCE, np.float32)
        high = np.full(samples, size - 1 + _EDGE_TOLERANCE, np.float32)
        low[0] -= min(0.0, min((fix for i, fix in fixes if i < size // 2), default=0.0))
        high[-1] -= max(0.0, max((fix for i, fix in fixes if i >= size // 2), default=0.0))
        return cls(at, fixes, first, end, low, high)


def _farthest(bounds: np.ndarray, hits: np.ndarray, none: int = 0) -> int:
    """The farthest of `bounds` among the samples hit, `none` when none is:
    the largest (the smallest, when `none` is the size: from the far side)."""
    if not hits.any():
        return none
    return int(bounds[hits].max()) if none == 0 else int(bounds[hits].min())


@dataclass
class _Edges:
    """Bands along a frame's sides where a warp may have sampled outside its
    picture: the left and right ones full height (widths in pixels), the top
    and bottom ones (heights) over a span of columns."""

    left: int = 0
    right: int = 0
    top: int = 0
    top_cols: tuple[int, int] = (0, 0)
    bottom: int = 0
    bottom_cols: tuple[int, int] = (0, 0)

    def union(self, other: _Edges) -> _Edges:
        return _Edges(
            max(self.left, other.left),
            max(self.right, other.right),
            max(self.top, other.top),
            _span_union(self.top_cols, other.top_cols),
            max(self.bottom, other.bottom),
            _span_union(self.bottom_cols, other.bottom_cols),
        )

    def bands(self, w: int, h: int) -> Iterator[tuple[slice, slice]]:
        """(rows, cols) of each band, none empty; a corner may be in two."""
        left, right = min(self.left, w), min(self.right, w)
        for rows, cols in (
            (slice(0, h), slice(0, left)),
            (slice(0, h), slice(max(left, w - right), w)),
            (slice(0, min(self.top, h)), slice(*self.top_cols)),
            (slice(max(0, h - self.bottom), h), slice(*self.bottom_cols)),
        ):
            if rows.stop > rows.start and cols.stop > cols.start:
                yield rows, cols


def _span_union(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    if a[1] <= a[0]:
        return b
    if b[1] <= b[0]:
        return a
    return (min(a[0], b[0]), max(a[1], b[1]))
