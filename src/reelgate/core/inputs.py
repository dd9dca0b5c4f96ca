"""User images as files: uploads, and images a request carries inline.

A data URI in a request is stored once, beside its task, and the task (and
the request echoed back to the client) refers to it by a short link, so a
15 MB keyframe is not stored in the database or repeated in every answer.
Uploads belong to a token: they count against its rate limit and its
storage quota, and are removed when they expire.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from reelgate.core.limits import Limits
from reelgate.domain.errors import InvalidInput, InvalidRequest
from reelgate.media.fetch import GuardedClient, decode_data_uri
from reelgate.media.image_files import storable_image
from reelgate.storage.base import INPUTS_DIR, UPLOADS_DIR, Storage
from reelgate.store.uploads import UploadStore


def _storable(data: bytes, max_pixels: int, what: str) -> tuple[bytes, str]:
    try:
        return storable_image(data, max_pixels)
    except InvalidInput as exc:
        raise InvalidRequest(f"{what}: {exc.message}") from exc


class InlineInputs:
    def __init__(self, storage: Storage, max_bytes: int, max_pixels: int) -> None:
        self.storage = storage
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels

    def store(self, task_id: str, uri: str, what: str) -> str:
        """Store a data URI's image under the task; returns its link."""
        try:
            raw = decode_data_uri(uri, self.max_bytes)
        except InvalidInput as exc:
            raise InvalidRequest(f"{what}: {exc.message}") from exc
        data, ext = _storable(raw, self.max_pixels, what)
        key = f"{task_id}/{INPUTS_DIR}/{uuid.uuid4().hex}.{ext}"
        self.storage.write(key, data)
        return self.storage.url(key)


def echoed(request: dict[str, Any], links: dict[str, str]) -> dict[str, Any]:
    """The request as echoed back: each inline image (a data URI, or the bare
    Base64 some dialects accept) replaced by the link to its stored file."""
    by_content = dict(links)
    for uri, link in links.items():
        by_content[uri.partition(",")[2].strip()] = link

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return by_content.get(value.strip(), value) if len(value) > 64 else value
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(request) if links else request


class UploadService:
    def __init__(
        self,
        storage: Storage,
        client: GuardedClient,
        store: UploadStore,
        limits: Limits,
        max_pixels: int,
        lifetime: float,
    ) -> None:
        self.storage = storage
        self.client = client
        self.store = store
        self.limits = limits
        self.max_pixels = max_pixels
        self.lifetime = lifetime

    def put_image(self, owner_id: str, ref: str) -> tuple[str, str]:
        """Store the image behind a URL or data URI; returns (id, link)."""
        # before any fetch
        self.limits.admit_upload(self.store.usage(owner_id, self.limits.rate_window), 0)
        try:
            raw = self.client.fetch(ref)
        except InvalidInput as exc:
            raise InvalidRequest(f"upload: {exc.message}") from exc
        data, ext = _storable(raw, self.max_pixels, "upload")
        upload_id = str(uuid.uuid4())
        key = f"{UPLOADS_DIR}/{owner_id}/{upload_id}.{ext}"
        self.store.add(
            upload_id,
            owner_id,
            key,
            len(data),
            self.lifetime,
            admit=lambda usage: self.limits.admit_upload(usage, len(data)),
            window=self.limits.rate_window,
        )
        try:
            self.storage.write(key, data)
        except Exception:
            self.store.forget([upload_id])  # a row without a file would use up quota
            raise
        # The link lives as long as the upload (a longer one would only 404),
        # or less where the deployment makes every link expire sooner.
        ttl = max(1, int(self.lifetime))
        return upload_id, self.storage.url(key, ttl=min(ttl, self.storage.ttl or ttl))

    def sweep(self, batch: int = 500) -> int:
        """Remove expired uploads, files first (a file without a row is never
        served again; a row without a file would count against a quota)."""
        removed = 0
        while expired := self.store.expired(time.time(), batch):
            for _, key in expired:
                self.storage.delete(key)
            self.store.forget([upload_id for upload_id, _ in expired])
            removed += len(expired)
            if len(expired) < batch:
                break
        return removed
