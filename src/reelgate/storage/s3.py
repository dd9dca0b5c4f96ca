"""Assets in an S3-compatible object store (AWS S3, SeaweedFS, MinIO,
Garage, R2), shared by every process of a deployment.

Workers render into a local scratch directory and upload the finished files
(multipart for anything large, so no file is held whole in memory), with
the Content-Type and Content-Disposition a browser needs when it fetches
them straight from the bucket. Credentials and region come from the
standard `AWS_*` variables, read by the client (obstore) itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from collections.abc import Generator, Iterable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import obstore
from obstore.exceptions import BaseError as ObjectStoreError
from obstore.store import S3Store

from reelgate.domain.errors import StorageUnavailable
from reelgate.domain.processes import pid_alive
from reelgate.storage.base import (
    Storage,
    UrlSigner,
    check_key,
    content_disposition,
    content_type,
)

MAX_PRESIGN = 7 * 86_400
"""The longest a SigV4 presigned link may live."""
PART = 8 * 1024 * 1024
DELETE_BATCH = 1000
TRANSFER_TIMEOUT = 3600.0
"""A whole upload or download of a large file (a request's timeout covers
its body too); connecting still has to happen within seconds."""
_PROCESS_DIR = re.compile(r"p(\d+)")

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _guarded(operation: str) -> Generator[None]:
    """Store failures as `StorageUnavailable` with a message fit for a
    client: the operation and the kind of failure, nothing from the store's
    answer (it names the endpoint and bucket, and can echo credentials)."""
    try:
        yield
    except FileNotFoundError:
        raise
    except (ObjectStoreError, OSError) as exc:
        log.warning("object store: %s failed: %s", operation, exc.__class__.__name__)
        raise StorageUnavailable(
            f"the object store could not {operation} ({exc.__class__.__name__}); try again later"
        ) from None


def parse_storage_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of `s3://bucket/prefix`."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError("an S3 storage URL looks like s3://bucket/prefix")
    return parts.netloc, parts.path.strip("/")


class S3Storage(Storage):
    """`links`: "direct" answers with presigned links to the bucket (or links
    under `public_url` when the bucket or a CDN in front of it is public);
    "proxy" answers with links through the API's `/assets/` route, for
    buckets clients cannot reach."""

    def __init__(
        self,
        url: str,
        scratch: Path,
        public_base_url: str,
        signer: UrlSigner | None = None,
        ttl: int = 0,
        *,
        endpoint: str | None = None,
        public_url: str | None = None,
        links: str = "direct",
        timeout: float = 60.0,
    ) -> None:
        super().__init__(public_base_url, signer, ttl)
        self.bucket, self.prefix = parse_storage_url(url)
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        # Quick requests (heads, small objects, lists, deletes) and whole
        # transfers of large files get different deadlines.
        self.store = self._open(timeout)
        self.bulk = self._open(max(timeout, TRANSFER_TIMEOUT))
        self.scratch = _process_scratch(scratch)
        self.public_url = public_url.rstrip("/") if public_url else None
        self.links = links
        self._signed_base: tuple[str, str, str] | None = None

    def _open(self, timeout: float) -> S3Store:
        config: dict[str, Any] = {"bucket": self.bucket}
        if self.endpoint:
            config["endpoint"] = self.endpoint
            config["virtual_hosted_style_request"] = False
        return S3Store(
            prefix=self.prefix or None,
            client_options={
                "allow_http": bool(self.endpoint and self.endpoint.startswith("http://")),
                "timeout": f"{max(1, int(timeout * 1000))}ms",
                "connect_timeout": "10s",
            },
            retry_config={
                "max_retries": 3,
                "retry_timeout": timedelta(seconds=timeout),
                "backoff": {
                    "init_backoff": timedelta(milliseconds=100),
                    "max_backoff": timedelta(seconds=5),
                    "base": 2,
                },
            },
            **config,
        )

    # Links

    @property
    def links_through_api(self) -> bool:
        return self.links == "proxy"

    def url(self, key: str, ttl: int | None = None) -> str:
        if self.links == "proxy":
            return self.proxy_url(key, ttl)
        seconds = self.link_ttl(key, ttl)
        if self.public_url and not seconds:
            return f"{self.public_url}/{quote(key)}"
        seconds = min(seconds or MAX_PRESIGN, MAX_PRESIGN)
        with _guarded("sign a link"):
            return obstore.sign(self.store, "GET", key, timedelta(seconds=seconds))

    def _presigned_base(self) -> tuple[str, str, str]:
        """(scheme, host, path before the key) of the links this store signs."""
        if self._signed_base is None:
            with _guarded("sign a link"):
                probe = urlsplit(obstore.sign(self.store, "GET", "k", timedelta(seconds=60)))
            self._signed_base = (probe.scheme, probe.netloc, probe.path[:-1])
        return self._signed_base

    def direct_key(self, url: str, verify: bool = False) -> str | None:
        """The key behind a link straight to the bucket: a presigned link of
        exactly our store's form, or a permanent link under the public URL
        (never to an input or upload: those are not public). With `verify`,
        a presigned link counts only when the store itself accepts it (its
        signature and expiry are the store's to check)."""
        if self.links == "proxy":
            return None  # we never hand out such links: a client's URL is just a URL
        if self.public_url and url.startswith(self.public_url + "/"):
            key = self._checked(urlsplit(url[len(self.public_url) + 1 :]).path)
            return None if key is None or self.always_signed(key) else key
        try:
            parts = urlsplit(url)
        except ValueError:
            return None
        scheme, host, base = self._presigned_base()
        if (parts.scheme, parts.netloc) != (scheme, host) or not parts.path.startswith(base):
            return None
        if "X-Amz-Signature" not in parts.query:
            return None
        key = self._checked(parts.path[len(base) :])
        if key is None or not verify:
            return key
        return key if _store_accepts(url) else None

    # Files

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            with _guarded("read an object's size"):
                return dict(obstore.head(self.store, check_key(key)))
        except FileNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        try:
            return self._head(key) is not None
        except ValueError:
            return False

    def size(self, key: str) -> int | None:
        meta = self._head(key)
        return int(meta["size"]) if meta else None

    def read(self, key: str) -> bytes:
        with _guarded("read an object"):
            return bytes(obstore.get(self.store, check_key(key)).bytes())

    def _attributes(self, key: str) -> dict[str, str]:
        return {"Content-Type": content_type(key), "Content-Disposition": content_disposition(key)}

    def write(self, key: str, data: bytes) -> None:
        with _guarded("store an object"):
            obstore.put(self.store, check_key(key), data, attributes=self._attributes(key))

    def put_file(self, key: str, path: Path) -> None:
        with _guarded("store a file"), path.open("rb") as f:
            obstore.put(
                self.bulk,
                check_key(key),
                f,
                attributes=self._attributes(key),
                chunk_size=PART,
                max_concurrency=4,
            )

    def local_file(self, key: str, scratch: Path) -> Path:
        scratch.mkdir(parents=True, exist_ok=True)
        target = scratch / f"from-store-{key.replace('/', '-')}"
        with _guarded("read a file"), target.open("wb") as f:
            result = obstore.get(self.bulk, check_key(key))
            for chunk in result.stream(min_chunk_size=PART):
                f.write(chunk)
        return target

    def stream(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Opened here, so a missing object or a store that is down is an
        error before any answer starts; only the body streams later."""
        if end <= start:
            return iter(())
        with _guarded("read an object"):
            result = obstore.get(self.bulk, check_key(key), options={"range": (start, end)})
        return self._chunks(result.stream(min_chunk_size=1024 * 1024))

    @staticmethod
    def _chunks(chunks: Iterable[Any]) -> Iterator[bytes]:
        with _guarded("read an object"):
            for chunk in chunks:
                yield bytes(chunk)

    def list_keys(self, prefix: str) -> Iterator[str]:
        with _guarded("list objects"):
            for batch in obstore.list(self.store, check_key(prefix) + "/", chunk_size=1000):
                for meta in batch:
                    yield meta["path"]

    def delete_keys(self, keys: Sequence[str]) -> None:
        with _guarded("delete objects"):
            for i in range(0, len(keys), DELETE_BATCH):
                obstore.delete(self.store, [check_key(k) for k in keys[i : i + DELETE_BATCH]])

    # A run's files

    def workdir(self, run_key: str) -> Path:
        path = self.scratch / check_key(run_key)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def publish(self, run_key: str, workdir: Path, keys: Iterable[str]) -> None:
        for key in keys:
            name = key.removeprefix(run_key + "/")
            self.put_file(key, workdir / name)

    def drop_workdir(self, run_key: str, workdir: Path) -> None:
        shutil.rmtree(workdir, ignore_errors=True)
        with contextlib.suppress(OSError):  # the task's directory, if now empty
            workdir.parent.rmdir()


def _process_scratch(root: Path) -> Path:
    """This process's own scratch directory under `root`, after removing
    those of processes that are gone (killed mid-run, their files were never
    cleaned up). Only directories of this machine's processes live here."""
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    for entry in root.iterdir():
        match = _PROCESS_DIR.fullmatch(entry.name)
        if match and int(match.group(1)) != os.getpid() and not pid_alive(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
    mine = root / f"p{os.getpid()}"
    mine.mkdir(exist_ok=True)
    return mine


def _store_accepts(url: str) -> bool:
    """Whether the store serves a presigned link (a one-byte read): only
    then is it one we signed and still valid."""
    try:
        answer = httpx.get(url, headers={"range": "bytes=0-0"}, timeout=10.0)
    except httpx.HTTPError:
        return False
    return answer.status_code in (200, 206)
