"""What every storage backend offers: keys, links and files.

Keys look like `<task id>/<run id>/video.mp4`: a run id per attempt means a
late, superseded worker can never overwrite the files of the run that won.
A task's inputs live beside its runs (`<task id>/inputs/...`), uploads
under `uploads/<owner id>/...`.

Links to assets are made here, once, for both backends: a link through the
API's `/assets/` route (signed with the deployment's secret where it must
expire), or, for an object store that clients can reach, a link straight to
the bucket (`S3Storage.url`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import mimetypes
import re
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qsl, urlencode, urlsplit

ASSET_ROUTE = "/assets"
INPUTS_DIR = "inputs"
"""Per task, beside its runs: inputs kept for as long as the task exists."""
UPLOADS_DIR = "uploads"
INPUT_LINK_TTL = 7 * 86_400
"""How long a link to an input lives unless asked for less."""
CONTENT_TYPES = {".mp4": "video/mp4", ".jpg": "image/jpeg", ".png": "image/png"}
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


def is_upload_key(key: str) -> bool:
    return key.startswith(UPLOADS_DIR + "/")


def check_key(key: str) -> str:
    """The key itself, if it is one we could have made: no odd characters,
    no `..`, not too long (so no backend is ever asked for another path)."""
    if len(key) > 512 or not _KEY.fullmatch(key) or ".." in key.split("/"):
        raise ValueError(f"invalid asset key {key[:80]!r}")
    return key


def content_type(key: str) -> str:
    suffix = PurePosixPath(key).suffix
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(key)[0] or "application/octet-stream"


def content_disposition(key: str) -> str:
    """Shown inline, saved under a name that says which task it came from."""
    parts = key.split("/")
    name = f"{parts[0]}-{parts[-1]}" if len(parts) > 1 else parts[0]
    return f'inline; filename="{name}"'


class Storage(ABC):
    """Where assets live. `ttl` > 0 signs every link to expire after that many
    seconds; 0 gives unguessable permanent links. Inputs and uploads are
    always signed."""

    def __init__(self, public_base_url: str, signer: UrlSigner | None = None, ttl: int = 0) -> None:
        self.public_base_url = public_base_url.rstrip("/")
        # Without the deployment's signer, links are signed with a key of
        # this process alone (they stop working when it ends).
        self.signer = signer or UrlSigner(secrets.token_bytes(32))
        self.ttl = ttl

    # Links

    @property
    def links_through_api(self) -> bool:
        """Whether links point at the API's `/assets/` route (and so need the
        deployment's public base URL to be right)."""
        return True

    def link_ttl(self, key: str, ttl: int | None) -> int:
        """Seconds the link to `key` lives (0: for ever), decided here once."""
        if ttl is not None:
            return ttl
        return self.ttl or (INPUT_LINK_TTL if self.always_signed(key) else 0)

    def url(self, key: str, ttl: int | None = None) -> str:
        """The link to an asset; `ttl` asks for one that expires then."""
        return self.proxy_url(key, ttl)

    def proxy_url(self, key: str, ttl: int | None = None) -> str:
        """A link through the API's `/assets/` route."""
        url = f"{self.public_base_url}{ASSET_ROUTE}/{key}"
        seconds = self.link_ttl(key, ttl)
        return f"{url}?{self.signer.query(key, seconds)}" if seconds else url

    @staticmethod
    def always_signed(key: str) -> bool:
        return is_input_key(key) or is_upload_key(key)

    def signed(self, key: str) -> bool:
        return bool(self.ttl) or self.always_signed(key)

    def link_valid(self, key: str, query: dict[str, str]) -> bool:
        """Whether a request for `key` may be served: a signed key needs a
        valid, unexpired signature; a signature on any key must be valid."""
        if not self.signed(key) and "signature" not in query:
            return True
        return self.signer.valid(key, query.get("expires"), query.get("signature"))

    def input_key(self, url: str, task_id: str) -> str | None:
        """The key of one of `task_id`'s own inputs behind a link to it, by
        its path alone (whatever the link's host, signature or expiry): for
        the task itself, which holds the link, never for a client's request."""
        key = self.key_in_path(url)
        if key is None or not key.startswith(f"{task_id}/{INPUTS_DIR}/"):
            return None
        return key if self.exists(key) else None

    def key_in_path(self, url: str) -> str | None:
        """The key a link of either form names, unchecked."""
        try:
            path = urlsplit(url).path
        except ValueError:
            return None
        prefix = f"{ASSET_ROUTE}/"
        if path.startswith(prefix):
            return self._checked(path.removeprefix(prefix))
        return self.direct_key(url)

    def key_for_url(self, url: str) -> str | None:
        """The key behind one of our own asset links that is valid now, so
        extending our own video reads the file instead of fetching it."""
        prefix = f"{self.public_base_url}{ASSET_ROUTE}/"
        if url.startswith(prefix):
            parts = urlsplit(url[len(prefix) :])
            key = self._checked(parts.path)
            if key is None or not self.link_valid(key, dict(parse_qsl(parts.query))):
                return None
        else:
            key = self.direct_key(url, verify=True)
            if key is None:
                return None
        return key if self.exists(key) else None

    def direct_key(self, url: str, verify: bool = False) -> str | None:
        """The key behind a link straight to the store (none for local files)."""
        return None

    @staticmethod
    def _checked(key: str) -> str | None:
        try:
            return check_key(key)
        except ValueError:
            return None

    # Files

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def size(self, key: str) -> int | None:
        """Bytes of the object, or None when there is none."""

    @abstractmethod
    def read(self, key: str) -> bytes:
        """A small object (an image) whole; raises FileNotFoundError."""

    @abstractmethod
    def write(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Store a local file under `key`, streamed."""

    @abstractmethod
    def local_file(self, key: str, scratch: Path) -> Path:
        """A local path holding the object: the file itself where it is one,
        else a copy streamed into `scratch` (the caller's to remove)."""

    @abstractmethod
    def stream(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes `start` to `end` (exclusive) of an object, in chunks; the
        object is opened before this returns (FileNotFoundError here)."""

    @abstractmethod
    def list_keys(self, prefix: str) -> Iterator[str]:
        """Every key under `prefix/`."""

    @abstractmethod
    def delete_keys(self, keys: Sequence[str]) -> None: ...

    def delete(self, key: str) -> None:
        self.delete_keys([check_key(key)])

    def delete_prefix(self, key_prefix: str) -> None:
        check_key(key_prefix)
        self.delete_keys(list(self.list_keys(key_prefix)))

    # A run's files

    @abstractmethod
    def workdir(self, run_key: str) -> Path:
        """A local directory to write a run's files into before they are published."""

    @abstractmethod
    def publish(self, run_key: str, workdir: Path, keys: Iterable[str]) -> None:
        """Make a run's files (`keys`, each under `run_key/`) readable by
        every process of the deployment."""

    @abstractmethod
    def drop_workdir(self, run_key: str, workdir: Path) -> None:
        """Remove what the run left locally (its published files stay)."""

    def prune_runs(self, task_id: str, keep: str) -> None:
        """Remove files of a task's other runs (left by crashed or superseded
        workers) once run `keep` has been published. The task's `inputs/`
        (images an upstream fetches, perhaps later) stay with the task."""
        check_key(task_id)
        stale = [
            key
            for key in self.list_keys(task_id)
            if key.split("/")[1] != INPUTS_DIR and not key.startswith(keep + "/")
        ]
        self.delete_keys(stale)
