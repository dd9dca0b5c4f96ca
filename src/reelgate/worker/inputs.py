"""Resolve a task's references (image URLs, source videos) into local data.

Our own assets are read from storage; everything else goes through the one
guarded client.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reelgate.config import Settings
from reelgate.domain.errors import InvalidInput
from reelgate.domain.models import Reference, RefRole, Task
from reelgate.engines.base import ImageReference
from reelgate.media.fetch import GuardedClient
from reelgate.media.images import decode_image, jpeg_bytes
from reelgate.media.probe import VideoInfo, probe_video, read_last_frame
from reelgate.storage.base import INPUTS_DIR, Storage, is_upload_key
from reelgate.store.tasks import TaskStore
from reelgate.store.uploads import UploadStore

SCRATCH = ".inputs"
"""Per run: copies of stored videos it reads, removed with the run's files."""


class InputError(InvalidInput):
    """An input cannot be used; the task fails with this message."""


@dataclass
class SourceVideo:
    path: Path
    info: VideoInfo
    last_frame: np.ndarray


class InputResolver:
    def __init__(
        self,
        tasks: TaskStore,
        storage: Storage,
        client: GuardedClient,
        settings: Settings,
        uploads: UploadStore,
    ) -> None:
        self.tasks = tasks
        self.storage = storage
        self.client = client
        self.settings = settings
        self.uploads = uploads

    def _key(self, ref: str, task_id: str) -> str | None:
        """The storage key behind a reference to our own asset: the task's own
        inputs by their path alone (their link may have expired, or the
        deployment's secret or address changed, since the task was made); any
        other asset only through a link that is valid now. An upload is
        only ever its owner's (checked at create, and again here, by the
        link's path: another host or an expired signature changes nothing)."""
        named = self.storage.key_in_path(ref)
        if named and is_upload_key(named):
            task = self.tasks.get(task_id)
            if task is None or self.uploads.owner(named) != task.owner_id:
                raise InputError("no such upload")
        return self.storage.input_key(ref, task_id) or self.storage.key_for_url(ref)

    def image(
        self, ref: str | None, what: str, task_id: str, size: tuple[int, int] | None = None
    ) -> np.ndarray | None:
        """The picture behind `ref`; with `size=(width, height)`, fitted to a
        frame of that size and decoded no larger than it needs, so an input's
        memory follows the output size, not the input's (at most one image is
        ever held at full size, and only while it is decoded)."""
        if not ref:
            return None
        key = self._key(ref, task_id)
        data = self.storage.read(key) if key else self.client.fetch(ref)
        try:
            return decode_image(data, self.settings.image_max_pixels, cover=size)
        except Exception as exc:
            raise InputError(f"{what}: {exc}") from exc

    def references(self, task: Task, size: tuple[int, int]) -> tuple[ImageReference, ...]:
        """A still's reference images, decoded no larger than the still: a
        character's at a portrait of the still's height (a person is taller
        than wide), the others at the still's own size."""
        height = size[1]
        portrait = (max(2, height * 3 // 4), height)
        return tuple(
            ImageReference(
                ref.role,
                self._reference_image(
                    ref, task.id, portrait if ref.role is RefRole.CHARACTER else size
                ),
                ref.weight,
            )
            for ref in task.references
        )

    def _reference_image(self, ref: Reference, task_id: str, size: tuple[int, int]) -> np.ndarray:
        image = self.image(ref.url, f"{ref.role.value} reference", task_id, size)
        if image is None:
            raise InputError(f"a {ref.role.value} reference has no URL")
        return image

    def shareable_image(self, ref: str | None, task_id: str, what: str) -> str | None:
        """A URL an upstream service can fetch the image from: the client's own
        http(s) URL as given (after the guarded client's address check), or a
        fresh link to our own asset (for data URIs that older versions kept
        in the task, to a checked JPEG stored with the task's inputs first).
        Our links expire once the upstream no longer needs them."""
        if not ref:
            return None
        ttl = self.settings.input_link_ttl_seconds
        key = self._key(ref, task_id)
        if key:
            return self.storage.url(key, ttl=ttl)
        if not ref.startswith("data:"):
            # The upstream fetches it, but it must not become a way to make the
            # upstream (perhaps a GPU box on our network) fetch private addresses.
            self.client.target(ref)
            return ref
        image = self.image(ref, what, task_id)
        assert image is not None
        # kept with the task, not the run: a queued upstream generation may
        # fetch it after this run was handed back; not derivable from any link
        stored = f"{task_id}/{INPUTS_DIR}/{uuid.uuid4().hex}.jpg"
        self.storage.write(stored, jpeg_bytes(image))
        return self.storage.url(stored, ttl=ttl)

    def shareable_video(self, ref: str | None, task_id: str) -> str | None:
        """A URL an upstream service can fetch the video from: a fresh link to
        our own asset (one that expires once the upstream no longer needs
        it), or the client's own http(s) URL as given, after the guarded
        client's address check (the upstream must not become a way to reach
        private addresses)."""
        if not ref:
            return None
        key = self._key(ref, task_id)
        if key:
            return self.storage.url(key, ttl=self.settings.input_link_ttl_seconds)
        self.client.target(ref)
        return ref

    def source_video(self, task: Task, workdir: Path) -> SourceVideo | None:
        """The video an extend continues (its last frame starts the new clip)."""
        path = self._source_path(task, workdir)
        return self._probe(path, "source video") if path else None

    def end_source_video(self, task: Task, workdir: Path) -> SourceVideo | None:
        """The video a reverse extend leads into (its first frame ends the new clip)."""
        if not task.end_source_task_id:
            return None
        return self._probe(self._task_video(task.end_source_task_id, workdir), "end video")

    def _probe(self, path: Path, what: str) -> SourceVideo:
        """Probe a source with limits, before decoding any more of it."""
        try:
            info = probe_video(path)
        except Exception as exc:
            raise InputError(f"{what}: {exc}") from exc
        if info.duration > self.settings.source_max_seconds:
            raise InputError(
                f"{what} is {info.duration:.1f} s long; the limit is "
                f"{self.settings.source_max_seconds:g} s"
            )
        if info.width * info.height > self.settings.source_max_pixels:
            raise InputError(
                f"{what} is {info.width}x{info.height}; the limit is "
                f"{self.settings.source_max_pixels:,} pixels a frame"
            )
        try:
            return SourceVideo(path, info, read_last_frame(path))
        except Exception as exc:
            raise InputError(f"{what}: {exc}") from exc

    def _task_video(self, task_id: str, workdir: Path) -> Path:
        """The video of one of our tasks as a local file (a copy in the
        run's `workdir` when the store is not a local disk)."""
        source = self.tasks.get(task_id)
        if source is None or source.result is None or source.result.video is None:
            raise InputError(f"source task {task_id} has no video")
        return self._stored_video(source.result.video.key, workdir)

    def _stored_video(self, key: str, workdir: Path) -> Path:
        try:
            return self.storage.local_file(key, workdir / SCRATCH)
        except FileNotFoundError:
            raise InputError("the source video's file is gone") from None

    def _source_path(self, task: Task, workdir: Path) -> Path | None:
        if task.source_task_id:
            return self._task_video(task.source_task_id, workdir)
        if task.source_video_url:
            key = self.storage.key_for_url(task.source_video_url)
            if key:
                return self._stored_video(key, workdir)
            path = workdir / "source.mp4"  # removed by the worker after rendering
            path.write_bytes(self.client.fetch(task.source_video_url))
            return path
        return None
