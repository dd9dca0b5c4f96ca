"""Both storage backends keep the same promises: files round-trip (large
ones streamed in parts), links resolve back to their keys only while they
are valid, a run's files appear only once published, and no key can reach
outside its store. The S3 backend runs against a real SeaweedFS."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reelgate.storage.base import Storage, UrlSigner, check_key
from reelgate.storage.local import LocalStorage
from reelgate.storage.s3 import S3Storage
from reelgate.testing import SeaweedFS

BASE = "https://api.example"
SIGNER = UrlSigner(b"k" * 32)


def _s3(seaweed: SeaweedFS, tmp_path: Path, **options: object) -> S3Storage:
    return S3Storage(
        seaweed.storage_url(f"t-{uuid.uuid4().hex[:8]}"),
        tmp_path / "work",
        BASE,
        SIGNER,
        endpoint=seaweed.endpoint,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "local":
        yield LocalStorage(tmp_path / "assets", BASE, SIGNER)
    else:
        yield _s3(request.getfixturevalue("s3"), tmp_path)


def test_files_round_trip_and_large_ones_stream_in_parts(storage: Storage, tmp_path: Path) -> None:
    storage.write("task1/inputs/a.png", b"\x89PNG small")
    assert storage.read("task1/inputs/a.png") == b"\x89PNG small"
    assert storage.exists("task1/inputs/a.png") and storage.size("task1/inputs/a.png") == 10
    assert not storage.exists("task1/inputs/b.png") and storage.size("task1/inputs/b.png") is None

    big = os.urandom(20 * 1024 * 1024 + 123)  # several 8 MiB parts
    source = tmp_path / "big.mp4"
    source.write_bytes(big)
    storage.put_file("task1/run1/video.mp4", source)
    assert storage.size("task1/run1/video.mp4") == len(big)
    assert b"".join(storage.stream("task1/run1/video.mp4", 0, len(big))) == big
    middle = b"".join(storage.stream("task1/run1/video.mp4", 9_000_000, 9_000_100))
    assert middle == big[9_000_000:9_000_100]
    copy = storage.local_file("task1/run1/video.mp4", tmp_path / "scratch")
    assert copy.read_bytes() == big

    assert sorted(storage.list_keys("task1")) == ["task1/inputs/a.png", "task1/run1/video.mp4"]
    storage.delete("task1/inputs/a.png")
    assert not storage.exists("task1/inputs/a.png")
    storage.delete_prefix("task1")
    assert list(storage.list_keys("task1")) == []
    with pytest.raises(FileNotFoundError):
        storage.read("task1/run1/video.mp4")


def test_a_run_is_readable_only_once_published(storage: Storage) -> None:
    storage.write("task2/run0/video.mp4", b"a crashed run's file")
    storage.write("task2/inputs/frame.png", b"input")
    workdir = storage.workdir("task2/run1")
    for name in ("video.mp4", "thumbnail.jpg", "last_frame.jpg"):
        (workdir / name).write_bytes(name.encode())
    keys = [f"task2/run1/{n}" for n in ("video.mp4", "thumbnail.jpg", "last_frame.jpg")]
    storage.publish("task2/run1", workdir, keys)
    storage.drop_workdir("task2/run1", workdir)
    assert [storage.read(k) for k in keys] == [b"video.mp4", b"thumbnail.jpg", b"last_frame.jpg"]

    storage.prune_runs("task2", keep="task2/run1")
    assert sorted(storage.list_keys("task2")) == sorted([*keys, "task2/inputs/frame.png"])


def test_links_resolve_to_their_keys_only_while_valid(storage: Storage) -> None:
    storage.write("task3/run1/video.mp4", b"v")
    storage.write("task3/inputs/in.png", b"i")
    link = storage.url("task3/run1/video.mp4")
    assert storage.key_for_url(link) == "task3/run1/video.mp4"
    assert storage.input_key(storage.url("task3/inputs/in.png"), "task3") == "task3/inputs/in.png"
    assert storage.input_key(storage.url("task3/inputs/in.png"), "task4") is None
    assert storage.key_for_url(BASE + "/assets/task3/run1/nothing.mp4") is None
    expired = storage.proxy_url("task3/inputs/in.png", ttl=-10)
    assert storage.key_for_url(expired) is None
    forged = storage.proxy_url("task3/inputs/in.png").replace("signature=", "signature=x")
    assert storage.key_for_url(forged) is None


@pytest.mark.parametrize("key", ["../etc/passwd", "a/../../b", "/abs", "a//b", "x" * 600, "a\x00b"])
def test_no_key_reaches_outside_the_store(storage: Storage, key: str) -> None:
    with pytest.raises(ValueError):
        check_key(key)
    with pytest.raises(ValueError):
        storage.write(key, b"x")
    with pytest.raises(ValueError):
        storage.read(key)


@pytest.mark.slow
def test_direct_links_serve_type_disposition_and_range_then_expire(
    s3: SeaweedFS, tmp_path: Path
) -> None:
    storage = _s3(s3, tmp_path, ttl=2)
    storage.write("task5/run1/video.mp4", b"0123456789")
    link = storage.url("task5/run1/video.mp4")
    assert link.startswith(s3.endpoint) and "X-Amz-Signature" in link
    answer = httpx.get(link)
    assert answer.status_code == 200 and answer.content == b"0123456789"
    assert answer.headers["content-type"] == "video/mp4"
    assert answer.headers["content-disposition"] == 'inline; filename="task5-video.mp4"'
    part = httpx.get(link, headers={"range": "bytes=2-4"})
    assert part.status_code == 206 and part.content == b"234"
    assert storage.key_for_url(link) == "task5/run1/video.mp4"
    time.sleep(3)
    assert httpx.get(link).status_code == 403, "the bucket refuses an expired link"
    assert storage.key_for_url(link) is None


@pytest.mark.slow
def test_a_public_bucket_url_gives_permanent_links(s3: SeaweedFS, tmp_path: Path) -> None:
    storage = _s3(s3, tmp_path, public_url="https://cdn.example/media/")
    storage.write("task6/run1/video.mp4", b"v")
    storage.write("task6/inputs/in.png", b"i")
    assert storage.url("task6/run1/video.mp4") == "https://cdn.example/media/task6/run1/video.mp4"
    assert storage.key_for_url("https://cdn.example/media/task6/run1/video.mp4") == (
        "task6/run1/video.mp4"
    )
    # a user's input is never on a permanent public link
    assert "X-Amz-Signature" in storage.url("task6/inputs/in.png")


@pytest.mark.slow
def test_proxy_links_point_at_the_api(s3: SeaweedFS, tmp_path: Path) -> None:
    storage = _s3(s3, tmp_path, links="proxy")
    storage.write("task7/run1/video.mp4", b"v")
    link = storage.url("task7/run1/video.mp4")
    assert link == BASE + "/assets/task7/run1/video.mp4"
    assert storage.key_for_url(link) == "task7/run1/video.mp4"


@pytest.mark.slow
def test_only_links_the_store_accepts_read_its_objects(s3: SeaweedFS, tmp_path: Path) -> None:
    """A link that names one of our objects but was not signed by the store
    (a forged date, another host, a made-up signature) is not ours: the
    worker would fetch it like any URL, and the store refuses it."""
    storage = _s3(s3, tmp_path)
    storage.write("task8/inputs/secret.png", b"private input")
    good = storage.url("task8/inputs/secret.png")
    assert storage.key_for_url(good) == "task8/inputs/secret.png"
    forged = re.sub(r"X-Amz-Date=\w+", "X-Amz-Date=20991231T000000Z", good)
    assert storage.key_for_url(forged) is None
    made_up = re.sub(r"X-Amz-Signature=\w+", "X-Amz-Signature=" + "0" * 64, good)
    assert storage.key_for_url(made_up) is None
    elsewhere = good.replace(s3.endpoint, "http://attacker.example")
    assert storage.key_for_url(elsewhere) is None and storage.key_in_path(elsewhere) is None

    proxied = _s3(s3, tmp_path, links="proxy")
    assert proxied.key_in_path(good) is None, "with proxy links no bucket URL is ours"
    public = _s3(s3, tmp_path, public_url="https://cdn.example")
    assert public.key_for_url("https://cdn.example/task8/inputs/secret.png") is None


@pytest.mark.parametrize(
    "url", ["file://assets", "file:///", "file://host/srv/assets", "{data}", "{data}/.."]
)
def test_a_file_store_never_serves_the_data_directory(tmp_path: Path, url: str) -> None:
    from pydantic import ValidationError

    from reelgate.config import Settings

    data = tmp_path / "data"
    with pytest.raises(ValidationError, match="storage_url"):
        Settings(data_dir=data, storage_url=url.format(data="file://" + str(data)))
    ok = Settings(data_dir=data, storage_url=f"file://{tmp_path / 'assets'}")
    assert ok.assets_dir == tmp_path / "assets"
