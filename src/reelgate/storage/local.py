"""Assets in a local directory, served by the app under `/assets/`.

Keys look like `<task id>/<run id>/video.mp4`: a run id per attempt means a
late, superseded worker can never overwrite the files of the run that won.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

ASSET_ROUTE = "/assets"
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")


class LocalStorage:
    def __init__(self, root: Path, public_base_url: str) -> None:
        self.root = root.resolve()
        self.public_base_url = public_base_url.rstrip("/")
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """The file for a key; refuses keys we never make (odd characters, too
        long) and keys that would leave the root."""
        if len(key) > 512 or not _KEY.fullmatch(key):
            raise ValueError(f"invalid asset key {key[:80]!r}")
        candidate = (self.root / key).resolve()
        if not candidate.is_relative_to(self.root) or candidate == self.root:
            raise ValueError(f"invalid asset key {key!r}")
        return candidate

    def url(self, key: str) -> str:
        return f"{self.public_base_url}{ASSET_ROUTE}/{key}"

    def workdir(self, key_prefix: str) -> Path:
        """A directory to write a run's files into before they are published."""
        path = self.path(key_prefix)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write(self, key: str, data: bytes) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def delete_prefix(self, key_prefix: str) -> None:
        shutil.rmtree(self.path(key_prefix), ignore_errors=True)

    def prune_runs(self, task_id: str, keep: str) -> None:
        """Remove files of a task's other runs (left by crashed or superseded
        workers) once run `keep` has been published."""
        for run_dir in self.path(task_id).iterdir():
            if f"{task_id}/{run_dir.name}" != keep:
                shutil.rmtree(run_dir, ignore_errors=True)

    def key_for_url(self, url: str) -> str | None:
        """The key behind one of our own asset URLs, so extending our own
        video reads the file instead of fetching it over HTTP."""
        prefix = f"{self.public_base_url}{ASSET_ROUTE}/"
        if url.startswith(prefix):
            key = urlsplit(url[len(prefix):]).path
        else:
            return None
        try:
            return key if self.path(key).is_file() else None
        except ValueError:
            return None
