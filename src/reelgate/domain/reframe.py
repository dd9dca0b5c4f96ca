"""Reframing: where a picture goes on a canvas of a new aspect ratio.

The official reframe calls place the source (an image or every frame of a
video) on a larger canvas of the requested aspect ratio and have the engine
fill the rest. Where it goes is decided here, once, for every engine:

1. The content's size: `x_end - x_start` by `y_end - y_start` when the client
   gives a box, else `resized_width` by `resized_height`, else the source's
   own size. When only one side is given, the other follows the source's
   aspect ratio.
2. The canvas: the smallest one of the requested aspect ratio that holds the
   content.
3. The position: `x_start`/`y_start`, else `grid_position_x`/`grid_position_y`,
   else centred; kept inside the canvas.
4. The output: the canvas scaled down (content and position with it) so that
   its short side is no longer than the source's, nor than 1080 pixels, so a
   reframe never makes a larger picture class than it was given, nor one
   beyond 1080p (a 1080p 16:9 clip reframed to 9:16 is 1080x1920, the clip
   a 1080x608 band inside it). Sides are even
   (the H.264 encoder needs them, and images follow the same rule).

All values are in pixels of the canvas before that final scaling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

MAX_SIDE = 8192
"""The largest value a placement field may hold."""
MAX_SHORT_SIDE = 1080
"""The longest short side a reframe makes (1080p)."""


class PlacementError(ValueError):
    """A placement that cannot be used (the message says why)."""


@dataclass(frozen=True)
class Placement:
    """The client's placement fields, in neutral names (all optional)."""

    grid_x: int | None = None
    grid_y: int | None = None
    x_start: int | None = None
    x_end: int | None = None
    y_start: int | None = None
    y_end: int | None = None
    resized_width: int | None = None
    resized_height: int | None = None

    def check(self) -> None:
        """Raise PlacementError for values no source could make sense of."""
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and not 0 <= value <= MAX_SIDE:
                raise PlacementError(f"{f.name} must be between 0 and {MAX_SIDE}, got {value}")
        for start, end, axis in (
            (self.x_start, self.x_end, "x"),
            (self.y_start, self.y_end, "y"),
        ):
            if start is not None and end is not None and end <= start:
                raise PlacementError(f"{axis}_end must be greater than {axis}_start")
        for name in ("resized_width", "resized_height"):
            if getattr(self, name) == 0:
                raise PlacementError(f"{name} must be at least 1")
        for start, end, axis in (
            (self.x_start, self.x_end, "x"),
            (self.y_start, self.y_end, "y"),
        ):
            if (start is None) != (end is None):
                raise PlacementError(f"give both {axis}_start and {axis}_end, or neither")

    def to_dict(self) -> dict[str, int]:
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Placement:
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})


@dataclass(frozen=True)
class Layout:
    """A canvas of `width` x `height` with the source drawn, resized to
    `content_width` x `content_height`, with its top-left corner at (x, y)."""

    width: int
    height: int
    x: int
    y: int
    content_width: int
    content_height: int


def _content_size(width: int, height: int, p: Placement) -> tuple[float, float]:
    box_w = p.x_end - p.x_start if p.x_end is not None and p.x_start is not None else None
    box_h = p.y_end - p.y_start if p.y_end is not None and p.y_start is not None else None
    w = box_w if box_w is not None else p.resized_width
    h = box_h if box_h is not None else p.resized_height
    if w is not None and h is not None:
        return float(w), float(h)
    if w is not None:
        return float(w), w * height / width
    if h is not None:
        return h * width / height, float(h)
    return float(width), float(height)


def _position(start: int | None, grid: int | None, free: float) -> float:
    chosen = start if start is not None else grid
    return free / 2 if chosen is None else min(float(chosen), free)


def layout(width: int, height: int, ratio: tuple[int, int], placement: Placement) -> Layout:
    """Where a `width` x `height` source goes on a canvas of `ratio` (a, b)."""
    placement.check()
    if width < 1 or height < 1:
        raise PlacementError(f"the source has no pixels ({width}x{height})")
    a, b = ratio
    cw, ch = _content_size(width, height, placement)
    if cw < 1 or ch < 1:
        raise PlacementError("the placed source would be less than one pixel")
    canvas_w, canvas_h = max(cw, ch * a / b), max(ch, cw * b / a)
    x = _position(placement.x_start, placement.grid_x, canvas_w - cw)
    y = _position(placement.y_start, placement.grid_y, canvas_h - ch)
    scale = min(1.0, min(width, height, MAX_SHORT_SIDE) / min(canvas_w, canvas_h))

    def side(value: float) -> int:
        return max(2, math.floor(value * scale / 2 + 0.5) * 2)

    out_w, out_h = side(canvas_w), side(canvas_h)
    content_w = min(out_w, max(1, round(cw * scale)))
    content_h = min(out_h, max(1, round(ch * scale)))
    return Layout(
        width=out_w,
        height=out_h,
        x=min(out_w - content_w, round(x * scale)),
        y=min(out_h - content_h, round(y * scale)),
        content_width=content_w,
        content_height=content_h,
    )
