"""Image uploads: fetched or decoded once, verified, stored, and usable as an
image reference in any dialect (their URLs resolve to local files)."""

from __future__ import annotations

import io
import uuid

from PIL import Image

from reelgate.domain.errors import InvalidRequest
from reelgate.media.errors import MediaError
from reelgate.media.fetch import FetchError, GuardedClient
from reelgate.media.images import decode_image
from reelgate.storage.local import LocalStorage

_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}


class Uploads:
    def __init__(self, storage: LocalStorage, client: GuardedClient, max_pixels: int) -> None:
        self.storage = storage
        self.client = client
        self.max_pixels = max_pixels

    def put_image(self, ref: str) -> tuple[str, str]:
        """Store the image behind a URL or data URI; returns (id, public URL)."""
        try:
            data = self.client.fetch(ref)
            decode_image(data, self.max_pixels)
        except (FetchError, MediaError) as exc:
            raise InvalidRequest(f"upload: {exc}") from exc
        with Image.open(io.BytesIO(data)) as img:
            ext = _EXTENSIONS.get(img.format or "", "png")
        upload_id = str(uuid.uuid4())
        key = f"uploads/{upload_id}.{ext}"
        self.storage.write(key, data)
        return upload_id, self.storage.url(key)
