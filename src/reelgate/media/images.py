"""Still images: safe decoding of user uploads, fitting to a frame size, JPEG out."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from reelgate.media.errors import MediaError

DEFAULT_MAX_PIXELS = 40_000_000
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


def decode_image(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    cover: tuple[int, int] | None = None,
) -> np.ndarray:
    """Decode untrusted image bytes to RGB uint8 HxWx3.

    The pixel count is checked from the header *before* any pixel is decoded,
    so a tiny file claiming a huge canvas (a decompression bomb) costs nothing.
    EXIF orientation is applied because phones store portraits sideways and
    users expect the picture they saw; alpha is composited over black because
    video frames have no transparency.

    With `cover=(width, height)` the picture is the one a frame of that size
    shows (`cover_fit`: centre-cropped, scaled to exactly that size), decoded
    no larger than that needs: JPEGs are decoded scaled down (DCT scaling),
    other formats are box-reduced by a whole factor straight after decoding,
    then the centred window is resampled to the frame (Hamming filter) before
    it becomes an array. So a 40-megapixel input for a 720p frame exists at
    full size once and briefly (a JPEG never does), not as several copies,
    and the picture matches a full-size decode fitted by `cover_fit`.
    """
    try:
        _check_header(data, max_pixels)
        rgb = _decode(data, cover)
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaError(f"the image is too large to decode safely ({_why(exc)})") from exc
    except Exception as exc:  # Pillow raises many types for bad input
        raise MediaError(f"the file is not a decodable image ({_why(exc)})") from exc
    arr = np.asarray(rgb, dtype=np.uint8)
    del rgb
    if cover is not None:
        return cover_fit(arr, *cover)
    return np.ascontiguousarray(arr)


def check_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> str:
    """Verify that untrusted bytes are a whole, decodable image without
    keeping its pixels: every byte is decoded (a JPEG at 1/8 scale), and the
    image format's name (Pillow's, e.g. "PNG") is returned. MediaError with a
    message fit for the client otherwise."""
    decode_image(data, max_pixels, cover=(1, 1))
    with Image.open(io.BytesIO(data)) as img:
        return img.format or ""


# Modes Image.reduce averages correctly ("P" would average palette indices).
_REDUCIBLE = frozenset({"L", "LA", "RGB", "RGBA", "I", "F", "CMYK", "YCbCr"})
_REDUCING_GAP = 2
"""DCT scaling and whole-factor box reduction leave at least this factor to
the final filtered resample, so fine detail averages out instead of aliasing
and the steps together read like one fair downscale (Pillow's reducing_gap)."""
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _decode(data: bytes, cover: tuple[int, int] | None) -> Image.Image:
    """Upright RGB, reduced (when covering a frame) as soon as it is decoded.

    Only this function holds the full-size image, so it is freed on return.
    """
    img: Image.Image = Image.open(io.BytesIO(data))
    orientation = _orientation(img)
    if cover is None:
        img.load()
    else:
        # In the file's own orientation: rotations by 90 degrees swap the sides.
        fw, fh = cover if orientation < 5 else (cover[1], cover[0])
        if fw <= 0 or fh <= 0:
            raise ValueError(f"target size must be positive, got {fw}x{fh}")
        scale = min(img.width / fw, img.height / fh) / _REDUCING_GAP
        if scale >= 2 and img.format in ("JPEG", "MPO"):
            # Decoded scaled by 1/2, 1/4 or 1/8 (DCT scaling), keeping the gap.
            img.draft(None, (math.ceil(img.width / scale), math.ceil(img.height / scale)))
        img.load()
        steps = int(min(img.width / fw, img.height / fh) // _REDUCING_GAP)
        if steps >= 2:
            img = _reducible(img).reduce(steps)
    upright = _to_rgb(img)
    del img  # the full-size buffer goes now, not when the caller returns
    method = _TRANSPOSE.get(orientation)
    if method is not None:
        upright = upright.transpose(method)
    return upright if cover is None else _shrunk_to_cover(upright, *cover)


def _shrunk_to_cover(img: Image.Image, width: int, height: int) -> Image.Image:
    """The centred window cover_fit would take, area-averaged down to the
    frame in one step (no full-size array or crop copy on the way); an image
    smaller than the frame is left for cover_fit to enlarge."""
    x0, y0, cw, ch = _centre_window(img.width, img.height, width / height)
    if cw * ch <= width * height:
        return img
    box = (x0, y0, x0 + cw, y0 + ch)
    return img.resize((width, height), Image.Resampling.HAMMING, box=box, reducing_gap=None)


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation (1 when absent); a broken EXIF block must not
    reject a good picture."""
    try:
        value = img.getexif().get(ExifTags.Base.Orientation, 1)
        return value if isinstance(value, int) and value in range(1, 9) else 1
    except Exception:
        return 1


def _reducible(img: Image.Image) -> Image.Image:
    """The image in a mode whose pixels can be averaged (alpha kept, so that
    the reduction is premultiplied and compositing afterwards is exact)."""
    if img.mode in _REDUCIBLE:
        return img
    if img.mode.startswith("I;16"):
        return img.convert("I")
    if img.mode == "1":
        return img.convert("L")
    if img.mode in ("P", "PA"):
        alpha = img.mode == "PA" or "transparency" in img.info
        return img.convert("RGBA" if alpha else "RGB")
    return _to_rgb(img)


def _check_header(data: bytes, max_pixels: int) -> None:
    """Identify the format and size and verify structure without loading pixels.

    `verify()` leaves the image unusable, which is why decoding reopens it.
    """
    if not data:
        raise MediaError("the file is empty, not a decodable image")
    with Image.open(io.BytesIO(data)) as probe:
        width, height = probe.size
        if width <= 0 or height <= 0:
            raise MediaError("the file is not a decodable image (zero size)")
        if width * height > max_pixels:
            raise MediaError(
                f"the image is too large: {width}x{height} is {width * height:,} pixels,"
                f" the limit is {max_pixels:,}"
            )
        probe.verify()


def _to_rgb(img: Image.Image) -> Image.Image:
    """Flatten any Pillow mode to RGB; transparent areas become black."""
    if img.mode == "RGB":
        return img  # convert() would copy it
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale to 8 bits rather than clipping to white.
        arr = np.asarray(img, dtype=np.float64)
        peak = max(float(arr.max()), 1.0)
        scale = 255.0 / (65535.0 if peak > 255 else 255.0)
        grey = np.clip(arr * scale, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    return img.convert("RGB")


def _why(exc: Exception) -> str:
    """A short, traceback-free reason for the user-facing message: no object
    reprs (`<_io.BytesIO object at 0x...>`) and no file paths."""
    if isinstance(exc, UnidentifiedImageError):
        return "not a known image format"
    text = _REPR.sub("", str(exc))
    text = _PATH.sub("", text).strip(" :")
    return (text or type(exc).__name__)[:200]


_REPR = re.compile(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>")
_PATH = re.compile(r"""(?:^|\s)['"]?/[^\s'"]+['"]?""")


def cover_fit(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre-crop to the target aspect ratio, then resize to exactly width x height.

    "Cover" rather than letterbox: a generated clip must have no black bars
    the user did not ask for. INTER_AREA avoids aliasing (moire) when
    shrinking; INTER_CUBIC keeps edges sharper when enlarging.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"target size must be positive, got {width}x{height}")
    rgb = _as_rgb_array(img)
    cropped = _centre_crop(rgb, width / height)
    ch, cw = cropped.shape[:2]
    if (cw, ch) == (width, height):
        return np.ascontiguousarray(cropped).copy()
    shrinking = cw * ch > width * height
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    out = cv2.resize(np.ascontiguousarray(cropped), (width, height), interpolation=interp)
    return np.ascontiguousarray(out, dtype=np.uint8)


def _as_rgb_array(img: np.ndarray) -> np.ndarray:
    """Accept greyscale or RGBA arrays too, so callers need not normalise first."""
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"expected an HxWx3 image, got shape {arr.shape}")
    return arr[:, :, :3]


def _centre_crop(img: np.ndarray, aspect: float) -> np.ndarray:
    """The largest centred window of `img` with width/height == aspect."""
    h, w = img.shape[:2]
    x0, y0, cw, ch = _centre_window(w, h, aspect)
    return img[y0 : y0 + ch, x0 : x0 + cw]


def _centre_window(w: int, h: int, aspect: float) -> tuple[int, int, int, int]:
    """(x0, y0, width, height) of the largest centred window with that aspect."""
    if w / h > aspect:
        cw = max(1, min(w, round(h * aspect)))
        return (w - cw) // 2, 0, cw, h
    ch = max(1, min(h, round(w / aspect)))
    return 0, (h - ch) // 2, w, ch


def save_jpeg(frame: np.ndarray, path: Path | BinaryIO, quality: int = 90) -> None:
    """Write an RGB frame as a baseline JPEG (thumbnails, last frames).

    Baseline, 4:2:0 JPEG is what every client and browser displays.
    """
    arr = np.ascontiguousarray(_as_rgb_array(frame))
    target = path if not isinstance(path, (str, Path)) else Path(path)
    Image.fromarray(arr, "RGB").save(target, format="JPEG", quality=quality)


def jpeg_bytes(frame: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    save_jpeg(frame, buffer, quality)
    return buffer.getvalue()


def save_image(frame: np.ndarray, path: Path, image_format: str) -> None:
    """Save an RGB frame as `jpg` (quality 92) or `png` (lossless)."""
    img = Image.fromarray(_as_rgb_array(frame))
    if image_format == "png":
        img.save(path, format="PNG", optimize=False, compress_level=6)
    else:
        img.save(path, format="JPEG", quality=92, subsampling=0)


def warp_rgb(img: np.ndarray, warp: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Run an OpenCV warp (warpAffine, warpPerspective, remap) on an RGB
    image through an RGBA copy: OpenCV warps four channels in its vector code
    and three in a scalar path, so the detour is 2-3x faster at 720p."""
    rgba = cv2.cvtColor(img, cv2.COLOR_RGB2RGBA)
    return cv2.cvtColor(warp(rgba), cv2.COLOR_RGBA2RGB)
