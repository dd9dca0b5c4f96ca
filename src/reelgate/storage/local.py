"""Assets in a local directory, served by the app under `/assets/`.

Keys look like `<task id>/<run id>/video.mp4`: a run id per attempt means a
late, superseded worker can never overwrite the files of the run that won.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import shutil
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

ASSET_ROUTE = "/assets"
INPUTS_DIR = "inputs"
"""Per task, beside its runs: inputs kept for as long as the task exists."""
INPUT_LINK_TTL = 7 * 86_400
"""How long a link to an input lives unless asked for less."""
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")


class UrlSigner:
    """Links that expire: `?expires=<unix>&signature=<HMAC of key and expiry>`."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def _signature(self, key: str, expires: int) -> str:
        mac = hmac.new(self.secret, f"{key}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def query(self, key: str, ttl: int) -> str:
        expires = int(time.time()) + ttl
        return urlencode({"expires": expires, "signature": self._signature(key, expires)})

    def valid(self, key: str, expires: str | None, signature: str | None) -> bool:
        """Whether we issued this link and it has not expired."""
        if not expires or not signature or not expires.isdigit() or len(expires) > 12:
            return False
        if int(expires) < time.time():
            return False
        return hmac.compare_digest(self._signature(key, int(expires)), signature)


def expires_in(query: dict[str, str]) -> int | None:
    """Seconds a signed link has left (None for a link that does not expire)."""
    expires = query.get("expires", "")
    if not expires.isdigit() or len(expires) > 12:
        return None
    return max(0, int(expires) - int(time.time()))


def is_input_key(key: str) -> bool:
    """A user's input kept with its task: served only through a signed link."""
    parts = key.split("/")
    return len(parts) > 2 and parts[1] == INPUTS_DIR


class LocalStorage:
    """`ttl` > 0 signs every link to expire after that many seconds; 0 gives
    unguessable permanent links. Inputs (`is_input_key`) are always signed."""

    def __init__(
        self, root: Path, public_base_url: str, signer: UrlSigner | None = None, ttl: int = 0
    ) -> None:
        self.root = root.resolve()
        self.public_base_url = public_base_url.rstrip("/")
        # Without the deployment's signer, links are signed with a key of
        # this process alone (they stop working when it ends).
        self.signer = signer or UrlSigner(secrets.token_bytes(32))
        self.ttl = ttl
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

    def url(self, key: str, ttl: int | None = None) -> str:
        """The link to an asset; `ttl` asks for a signed link that expires then
        (an input's link is always signed, for `INPUT_LINK_TTL` by default)."""
        url = f"{self.public_base_url}{ASSET_ROUTE}/{key}"
        if ttl is None:
            ttl = self.ttl or (INPUT_LINK_TTL if is_input_key(key) else 0)
        return f"{url}?{self.signer.query(key, ttl)}" if ttl else url

    def signed(self, key: str) -> bool:
        return bool(self.ttl) or is_input_key(key)

    def link_valid(self, key: str, query: dict[str, str]) -> bool:
        """Whether a request for `key` may be served: a signed key needs a
        valid, unexpired signature; a signature on any key must be valid."""
        if not self.signed(key) and "signature" not in query:
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

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def delete_prefix(self, key_prefix: str) -> None:
        shutil.rmtree(self.path(key_prefix), ignore_errors=True)

    def prune_runs(self, task_id: str, keep: str) -> None:
        """Remove files of a task's other runs (left by crashed or superseded
        workers) once run `keep` has been published. The task's `inputs/`
        (images an upstream fetches, perhaps later) stay with the task."""
        for run_dir in self.path(task_id).iterdir():
            if run_dir.name != INPUTS_DIR and f"{task_id}/{run_dir.name}" != keep:
                shutil.rmtree(run_dir, ignore_errors=True)

    def input_key(self, url: str, task_id: str) -> str | None:
        """The key of one of `task_id`'s own inputs behind a link to it, by
        its path alone (whatever the link's host, signature or expiry): for
        the task itself, which holds the link, never for a client's request."""
        try:
            path = urlsplit(url).path
        except ValueError:
            return None
        prefix = f"{ASSET_ROUTE}/{task_id}/{INPUTS_DIR}/"
        if not path.startswith(prefix):
            return None
        key = path.removeprefix(f"{ASSET_ROUTE}/")
        try:
            return key if self.path(key).is_file() else None
        except ValueError:
            return None

    def key_for_url(self, url: str) -> str | None:
        """The key behind one of our own asset URLs with a valid link, so
        extending our own video reads the file instead of fetching it."""
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
