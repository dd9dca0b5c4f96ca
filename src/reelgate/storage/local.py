"""Assets in a local directory, served by the app under `/assets/`: the
embedded default, for one machine (or several sharing one disk)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from reelgate.storage.base import INPUTS_DIR, Storage, UrlSigner, check_key

CHUNK = 1024 * 1024


class LocalStorage(Storage):
    def __init__(
        self, root: Path, public_base_url: str, signer: UrlSigner | None = None, ttl: int = 0
    ) -> None:
        super().__init__(public_base_url, signer, ttl)
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """The file for a key; refuses keys we never make (odd characters, too
        long) and keys that would leave the root."""
        candidate = (self.root / check_key(key)).resolve()
        if not candidate.is_relative_to(self.root) or candidate == self.root:
            raise ValueError(f"invalid asset key {key!r}")
        return candidate

    def exists(self, key: str) -> bool:
        try:
            return self.path(key).is_file()
        except ValueError:
            return False

    def size(self, key: str) -> int | None:
        path = self.path(key)
        return path.stat().st_size if path.is_file() else None

    def read(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def write(self, key: str, data: bytes) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        draft.write_bytes(data)
        draft.replace(path)  # readers never see half a file

    def put_file(self, key: str, path: Path) -> None:
        target = self.path(key)
        if target == path.resolve():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        draft = target.with_name(f".{target.name}.{os.getpid()}")
        shutil.copyfile(path, draft)
        draft.replace(target)

    def local_file(self, key: str, scratch: Path) -> Path:
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(key)
        return path

    def stream(self, key: str, start: int, end: int) -> Iterator[bytes]:
        f = self.path(key).open("rb")  # opened now: a missing file raises here
        f.seek(start)
        return self._chunks(f, end - start)

    @staticmethod
    def _chunks(f: BinaryIO, left: int) -> Iterator[bytes]:
        with f:
            while left > 0 and (chunk := f.read(min(CHUNK, left))):
                left -= len(chunk)
                yield chunk

    def list_keys(self, prefix: str) -> Iterator[str]:
        base = self.path(prefix)
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                yield path.relative_to(self.root).as_posix()

    def delete_keys(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.path(key).unlink(missing_ok=True)

    def delete_prefix(self, key_prefix: str) -> None:
        shutil.rmtree(self.path(key_prefix), ignore_errors=True)

    def workdir(self, run_key: str) -> Path:
        """The run's own directory: its files are rendered in place."""
        path = self.path(run_key)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def publish(self, run_key: str, workdir: Path, keys: Iterable[str]) -> None:
        """Nothing to do: the files were written where they are served from."""

    def drop_workdir(self, run_key: str, workdir: Path) -> None:
        """Nothing to do: a run that was not published is removed by prefix."""

    def prune_runs(self, task_id: str, keep: str) -> None:
        task_dir = self.path(task_id)
        if not task_dir.is_dir():
            return  # the task was deleted meanwhile
        for run_dir in task_dir.iterdir():
            if run_dir.name != INPUTS_DIR and f"{task_id}/{run_dir.name}" != keep:
                shutil.rmtree(run_dir, ignore_errors=True)
