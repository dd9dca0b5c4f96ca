"""Assets in a local directory, served by the app under `/assets/`.

Keys look like `<task id>/<run id>/video.mp4`: a run id per attempt means a
late, superseded worker can never overwrite the files of the run that won.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import shutil
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

ASSET_ROUTE = "/assets"
INPUTS_DIR = "inputs"
"""Per task, beside its runs: inputs kept for as long as the task exists."""
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")


class UrlSigner:
    """Asset links that expire: `?expires=<unix>&signature=<HMAC of key and
    expiry>`, for deployments that want more than unguessable paths."""

    def __init__(self, secret: bytes, ttl_seconds: int) -> None:
        self.secret = secret
        self.ttl = ttl_seconds

    def _signature(self, key: str, expires: int) -> str:
        mac = hmac.new(self.secret, f"{key}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def query(self, key: str) -> str:
        expires = int(time.time()) + self.ttl
        return urlencode({"expires": expires, "signature": self._signature(key, expires)})

    def valid(self, key: str, expires: str | None, signature: str | None) -> bool:
        if not expires or not signature or not expires.isdigit() or len(expires) > 12:
            return False
        if int(expires) < time.time():
            return False
        return hmac.compare_digest(self._signature(key, int(expires)), signature)


class LocalStorage:
    def __init__(self, root: Path, public_base_url: str, signer: UrlSigner | None = None) -> None:
        self.root = root.resolve()
        self.public_base_url = public_base_url.rstrip("/")
        self.signer = signer
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
        url = f"{self.public_base_url}{ASSET_ROUTE}/{key}"
        return f"{url}?{self.signer.query(key)}" if self.signer else url

    def link_valid(self, key: str, query: dict[str, str]) -> bool:
        """Whether a request for `key` may be served (always, when unsigned)."""
        if self.signer is None:
            return True
        return self.signer.valid(key, query.get("expires"), query.get("signature"))

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
        workers) once run `keep` has been published. The task's `inputs/`
        (images an upstream fetches, perhaps later) stay with the task."""
        for run_dir in self.path(task_id).iterdir():
            if run_dir.name != INPUTS_DIR and f"{task_id}/{run_dir.name}" != keep:
                shutil.rmtree(run_dir, ignore_errors=True)

    def key_for_url(self, url: str) -> str | None:
        """The key behind one of our own asset URLs, so extending our own
        video reads the file instead of fetching it over HTTP."""
        prefix = f"{self.public_base_url}{ASSET_ROUTE}/"
        if not url.startswith(prefix):
            return None
        parts = urlsplit(url[len(prefix) :])
        key = parts.path
        if not self.link_valid(key, dict(parse_qsl(parts.query))):
            return None
        try:
            return key if self.path(key).is_file() else None
        except ValueError:
            return None
