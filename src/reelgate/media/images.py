"""Still images: safe decoding of user uploads, fitting to a frame size, JPEG out."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from reelgate.media.errors import MediaError

DEFAULT_MAX_PIXELS = 40_000_000
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode untrusted image bytes to RGB uint8 HxWx3.

    The pixel count is checked from the header *before* any pixel is decoded,
    so a tiny file claiming a huge canvas (a decompression bomb) costs nothing.
    EXIF orientation is applied because phones store portraits sideways and
    users expect the picture they saw; alpha is composited over black because
    video frames have no transparency.
    """
    try:
        _check_header(data, max_pixels)
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            rgb = _to_rgb(_upright(img))
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaError(f"the image is too large to decode safely ({_why(exc)})") from exc
    except Exception as exc:  # Pillow raises many types for bad input
        raise MediaError(f"the file is not a decodable image ({_why(exc)})") from exc
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


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


def _upright(img: Image.Image) -> Image.Image:
    """Apply EXIF orientation; a broken EXIF block must not reject a good picture."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception:
        return img


def _to_rgb(img: Image.Image) -> Image.Image:
    """Flatten any Pillow mode to RGB; transparent areas become black."""
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
    """A short, traceback-free reason for the user-facing message."""
    text = str(exc).strip() or type(exc).__name__
    return text[:200]


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
    if w / h > aspect:
        cw = max(1, min(w, round(h * aspect)))
        x0 = (w - cw) // 2
        return img[:, x0 : x0 + cw]
    ch = max(1, min(h, round(w / aspect)))
    y0 = (h - ch) // 2
    return img[y0 : y0 + ch, :]


def save_jpeg(frame: np.ndarray, path: Path, quality: int = 90) -> None:
    """Write an RGB frame as a baseline JPEG (thumbnails, last frames).

    Baseline, 4:2:0 JPEG is what every client and browser displays.
    """
    arr = np.ascontiguousarray(_as_rgb_array(frame))
    Image.fromarray(arr, "RGB").save(Path(path), format="JPEG", quality=quality)
