"""Camera concepts for the preview engine: a virtual camera over every frame
it renders (text scenes, keyframes, extends, morphs alike).

Each official concept key becomes a move or a framing a viewer can see: pans,
tilts, trucks, pedestals and cranes translate the view; zooms, pushes and
pulls scale it; rolls rotate it; orbits add a turning perspective; low, high
and overhead angles tilt the image plane (keystone); a dolly zoom magnifies
the edges while the centre holds; a tiny planet wraps the picture around a
small sphere; handheld, POV and selfie shots shake; elevator doors open on
the scene; an over-the-shoulder shot puts a shoulder in the foreground.
Moves start from the untouched first frame (a start keyframe is reproduced
exactly) unless the concept is a framing that holds for the whole shot.
`eye_level` and `static` are the preview's own neutral framing: they add
nothing. Borders are reflected, never black.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from reelgate.media.images import warp_rgb


@dataclass
class _Move:
    """The camera at one moment: translation as fractions of the frame,
    scale (>1 is closer), roll in degrees, keystone (>0 looks up: the top
    narrows; <0 looks down), yaw (>0 turns the right side away), dolly zoom
    strength, shake amplitude (fraction of the width)."""

    tx: float = 0.0
    ty: float = 0.0
    scale: float = 1.0
    roll: float = 0.0
    keystone: float = 0.0
    yaw: float = 0.0
    dolly: float = 0.0
    shake: float = 0.0
    tiny_planet: bool = False
    doors: float = -1.0
    """Elevator doors: how far open (0..1); negative when there are none."""
    shoulder: bool = False


def _ease(u: float) -> float:
    return u * u * (3.0 - 2.0 * u)


_GLIDES: dict[str, tuple[str, float]] = {
    "pan_left": ("tx", 0.18),
    "pan_right": ("tx", -0.18),
    "truck_left": ("tx", 0.24),
    "truck_right": ("tx", -0.24),
    "tilt_up": ("ty", 0.18),
    "tilt_down": ("ty", -0.18),
    "pedestal_up": ("ty", 0.15),
    "pedestal_down": ("ty", -0.15),
    "roll_left": ("roll", 8.0),
    "roll_right": ("roll", -8.0),
    "dolly_zoom": ("dolly", 0.6),
}
"""Moves that add to one camera value as the shot goes: (value, full amount)."""
_ZOOMS: dict[str, tuple[float, float]] = {
    "zoom_in": (1.0, 1.35),
    "push_in": (1.0, 1.3),
    "zoom_out": (1.35, 1.0),
    "pull_out": (1.3, 1.0),
}
"""Moves that scale the view: (scale at the start, scale at the end)."""


def _apply(key: str, m: _Move, u: float) -> None:
    """Add concept `key` at progress `u` (0..1) to the move `m`."""
    e = _ease(u)
    if key in _GLIDES:
        name, amount = _GLIDES[key]
        setattr(m, name, getattr(m, name) + amount * e)
    elif key in _ZOOMS:
        start, end = _ZOOMS[key]
        m.scale *= start + (end - start) * e
    elif key == "bolt_cam":  # accelerating
        m.scale *= 1.0 + 0.6 * u * u
    elif key in ("orbit_left", "orbit_right"):
        sign = 1.0 if key == "orbit_left" else -1.0
        m.tx += sign * 0.16 * e
        m.yaw += sign * 0.12 * e
    elif key in ("crane_up", "crane_down"):
        m.ty += (0.18 if key == "crane_up" else -0.18) * e
        m.scale *= 1.0 + 0.06 * e
    elif key in ("aerial", "aerial_drone"):
        m.keystone -= 0.12
        m.scale *= 1.0 + (0.25 if key == "aerial_drone" else 0.15) * e
        m.ty -= 0.06 * e
    elif key == "low_angle":
        m.keystone += 0.18
    elif key in ("high_angle", "overhead"):
        m.keystone -= 0.18 if key == "high_angle" else 0.3
    elif key == "ground_level":
        m.keystone += 0.1
        m.ty += 0.08
    elif key in ("handheld", "pov", "selfie"):
        m.shake += {"handheld": 0.012, "pov": 0.008, "selfie": 0.01}[key]
        if key == "pov":
            m.scale *= 1.0 + 0.08 * e
        if key == "selfie":
            m.scale *= 1.06
    elif key == "tiny_planet":
        m.tiny_planet = True
    elif key == "elevator_doors":
        m.doors = _ease(min(1.0, u / 0.6))
    elif key == "over_the_shoulder":
        m.shoulder = True
        m.shake += 0.004


def move_at(concepts: tuple[str, ...], u: float, index: int, seed: int) -> _Move:
    """The camera for frame `index` at progress `u` (0..1)."""
    m = _Move()
    for key in concepts:
        _apply(key, m, u)
    if m.shake:
        phase = (seed % 997) * 0.37
        t = index / 24.0
        m.tx += m.shake * (math.sin(2.1 * t + phase) + 0.5 * math.sin(5.3 * t + 2 * phase))
        m.ty += m.shake * (math.sin(1.7 * t + 3 * phase) + 0.5 * math.sin(4.1 * t + phase))
        m.roll += 40 * m.shake * math.sin(1.3 * t + phase)
    return m


def _homography(m: _Move, w: int, h: int) -> np.ndarray:
    """Where each output pixel samples the input (output -> input)."""
    cx, cy = w / 2.0, h / 2.0
    # forward model: input -> output; inverted at the end
    a = math.radians(m.roll)
    rot = np.array(
        [[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]], np.float64
    )
    scale = np.diag([m.scale, m.scale, 1.0])
    move = np.array([[1, 0, m.tx * w], [0, 1, m.ty * h], [0, 0, 1]], np.float64)
    centre = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], np.float64)
    back = np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1]], np.float64)
    # keystone and yaw: a perspective term (a tilted or turned image plane)
    persp = np.array([[1, 0, 0], [0, 1, 0], [m.yaw / w, -m.keystone / h, 1]], np.float64)
    forward = move @ back @ persp @ rot @ scale @ centre
    inverse: np.ndarray = np.linalg.inv(forward)
    return inverse


def _cover(frame: np.ndarray, m: _Move) -> np.ndarray:
    """The frame through the camera `m` (reflected borders)."""
    h, w = frame.shape[:2]
    identity = (
        m.tx == 0 and m.ty == 0 and m.scale == 1 and m.roll == 0 and m.keystone == 0 and m.yaw == 0
    )
    out = frame
    if not identity:
        homography = _homography(m, w, h)
        out = warp_rgb(
            frame,
            lambda rgba: cv2.warpPerspective(
                rgba,
                homography,
                (w, h),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_REFLECT,
            ),
        )
    if m.dolly:
        out = _dolly_zoom(out, m.dolly)
    if m.tiny_planet:
        out = _tiny_planet(out)
    if m.doors >= 0:
        out = _doors(out, m.doors)
    if m.shoulder:
        out = _shoulder(out)
    return out


def _dolly_zoom(img: np.ndarray, strength: float) -> np.ndarray:
    """The centre holds its size while the surroundings are magnified."""
    h, w = img.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xs - w / 2.0, ys - h / 2.0
    r = np.sqrt(dx * dx + dy * dy) / (0.5 * math.hypot(w, h))
    f = 1.0 / (1.0 + strength * r * r)
    return cv2.remap(
        img, w / 2.0 + dx * f, h / 2.0 + dy * f, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )


def _tiny_planet(img: np.ndarray) -> np.ndarray:
    """The picture wrapped around a small sphere: its bottom (the ground) at
    the centre, its top (the sky) all around."""
    h, w = img.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xs - w / 2.0, ys - h / 2.0
    radius = np.sqrt(dx * dx + dy * dy) / (0.5 * min(w, h))
    theta = (np.arctan2(dy, dx) + math.pi) / (2 * math.pi)
    rho = 2.0 * np.arctan(radius * 0.9) / math.pi  # stereographic: 0 at the centre
    src_x = (theta * (w - 1)).astype(np.float32)
    src_y = ((1.0 - np.clip(rho, 0, 1)) * (h - 1)).astype(np.float32)
    return cv2.remap(img, src_x, src_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _doors(img: np.ndarray, opening: float) -> np.ndarray:
    """Brushed-steel doors sliding apart from the middle."""
    if opening >= 1.0:
        return img
    h, w = img.shape[:2]
    out = img.copy()
    half = round(w / 2.0 * (1.0 - opening))
    if half <= 0:
        return out
    grain = (150 + 30 * np.sin(np.linspace(0, 40, h))[:, None]).astype(np.float32)
    steel = np.repeat(grain, half, axis=1)
    panel = np.stack([steel, steel, steel * 1.04], axis=-1).clip(0, 255).astype(np.uint8)
    out[:, :half] = panel
    out[:, w - half :] = panel[:, ::-1]
    edge = max(1, w // 200)
    out[:, max(0, half - edge) : half] = 60
    out[:, w - half : min(w, w - half + edge)] = 60
    return out


def _shoulder(img: np.ndarray) -> np.ndarray:
    """A dark, out-of-focus shoulder in the lower-left foreground."""
    h, w = img.shape[:2]
    mask = np.zeros((h, w), np.float32)
    cv2.ellipse(
        mask, (int(w * 0.08), int(h * 1.02)), (int(w * 0.3), int(h * 0.45)), 0, 0, 360, 1, -1
    )
    cv2.ellipse(
        mask, (int(w * 0.12), int(h * 0.55)), (int(w * 0.09), int(h * 0.13)), 0, 0, 360, 1, -1
    )
    k = max(3, (w // 24) | 1)
    mask = cv2.GaussianBlur(mask, (k, k), 0)[..., None] * 0.92
    dark = np.array([22, 20, 24], np.float32)
    return (img.astype(np.float32) * (1 - mask) + dark * mask).astype(np.uint8)


def steer(
    frames: Iterator[np.ndarray], concepts: tuple[str, ...], count: int, seed: int
) -> Iterator[np.ndarray]:
    """`frames` (of `count`) through the camera the concepts describe."""
    span = max(1, count - 1)
    for index, frame in enumerate(frames):
        yield _cover(frame, move_at(concepts, min(1.0, index / span), index, seed))
