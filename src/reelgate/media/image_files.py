"""Images kept as files (uploads, inline inputs): checked whole without
keeping their pixels, web formats kept byte for byte, anything else
Pillow reads (TIFF, ICO, BMP...) converted to PNG so that every client and
upstream can read it and it is served with the type it really has."""

from __future__ import annotations

import io

from PIL import Image

from reelgate.media.images import check_image, decode_image

KEPT_AS_IS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif"}


def storable_image(data: bytes, max_pixels: int) -> tuple[bytes, str]:
    """(bytes to store, file extension) for untrusted image bytes; MediaError
    with a message fit for the client when they are not a whole, usable
    image (checked now, so a broken file is a 400 rather than a failed task)."""
    kept = KEPT_AS_IS.get(check_image(data, max_pixels))
    if kept:
        return data, kept
    out = io.BytesIO()
    Image.fromarray(decode_image(data, max_pixels)).save(out, "PNG")
    return out.getvalue(), "png"
