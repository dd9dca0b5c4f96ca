"""The whole app on an S3-compatible store (a real SeaweedFS): videos,
thumbnails, last frames, uploads and inline inputs all land in the bucket,
answers link straight to it, extending reads the source back from it, and
the `/assets/` route proxies it with Range for clients that cannot reach
the bucket. Nothing is left on the worker's disk."""

from __future__ import annotations

import base64
import io
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from reelgate.storage.s3 import S3Storage
from reelgate.testing import (
    Api,
    InProcess,
    SeaweedFS,
    decode_mp4,
    in_process,
    png_bytes,
    psnr,
    textured_image,
)

pytestmark = pytest.mark.slow


def _data_uri(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode()


def _files(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


def _create(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    answer = api.client.post("/dream-machine/v1/generations", json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def _done(api: Api, generation_id: str) -> dict[str, Any]:
    item = api.wait_done(generation_id)
    assert item["response"]["state"] == "completed", item
    generation: dict[str, Any] = api.client.get(
        f"/dream-machine/v1/generations/{generation_id}"
    ).json()
    return generation


def test_every_file_lives_in_the_bucket_and_links_go_straight_to_it(
    s3: SeaweedFS, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    with in_process(data, workers=1, storage_url=s3.storage_url(uuid.uuid4().hex[:8])) as app:
        assert isinstance(app.runtime.storage, S3Storage)
        api = Api(app, app.create_token("s3"))
        picture = textured_image(960, 540, seed=5)
        first = _create(
            api,
            {
                "prompt": "a still",
                "keyframes": {"frame0": {"type": "image", "url": _data_uri(picture)}},
            },
        )
        input_link = first["request"]["keyframes"]["frame0"]["url"]
        assert input_link.startswith(s3.endpoint), "the inline input went to the bucket"
        generation = _done(api, first["id"])
        assets = generation["assets"]
        for name in ("video", "image"):
            assert assets[name].startswith(s3.endpoint) and "X-Amz-Signature" in assets[name]
        fetched = httpx.get(assets["video"])
        assert fetched.headers["content-type"] == "video/mp4"
        assert f'filename="{first["id"]}-video.mp4"' in fetched.headers["content-disposition"]
        video = decode_mp4(fetched.content)
        start = np.asarray(Image.fromarray(picture).resize(video.frames[0].shape[1::-1]))
        assert psnr(video.frames[0], start) > 25, "the worker read the input back from the bucket"
        thumbnail = Image.open(io.BytesIO(httpx.get(assets["image"]).content))
        assert thumbnail.format == "JPEG" and thumbnail.size == video.frames[0].shape[1::-1]

        # extending reads the source video from the bucket
        second = _create(
            api,
            {
                "prompt": "and on",
                "keyframes": {"frame0": {"type": "generation", "id": first["id"]}},
            },
        )
        extended = decode_mp4(httpx.get(_done(api, second["id"])["assets"]["video"]).content)
        assert len(extended.frames) > len(video.frames)
        assert psnr(extended.frames[0], video.frames[0]) >= 30, "it starts with the source"

        # an upload goes to the bucket too
        upload = api.post("/luma/generations/file_upload", {"url": _data_uri(picture)}).json()
        assert upload["public_url"].startswith(s3.endpoint)
        assert httpx.get(upload["public_url"]).content[:4] == b"\x89PNG"
    assert _files(data / "assets") == [], "nothing was written to the local disk"
    assert _files(data / "work") == [], "the worker's scratch files were removed"


def test_the_assets_route_proxies_the_bucket_with_range(s3: SeaweedFS, tmp_path: Path) -> None:
    prefix = uuid.uuid4().hex[:8]
    with in_process(
        tmp_path / "data", workers=1, storage_url=s3.storage_url(prefix), asset_links="proxy"
    ) as app:
        api = Api(app, app.create_token("proxy"))
        http = app.http()
        created = _create(api, {"prompt": "proxied"})
        link = _done(api, created["id"])["assets"]["video"]
        assert link.startswith(InProcess.url + "/assets/")
        whole = http.get(link)
        assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
        assert whole.headers["accept-ranges"] == "bytes"
        assert len(decode_mp4(whole.content).frames) > 0
        size = len(whole.content)
        part = http.get(link, headers={"range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == whole.content[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{size}"
        tail = http.get(link, headers={"range": "bytes=-10"})
        assert tail.status_code == 206 and tail.content == whole.content[-10:]
        head = http.head(link)
        assert head.status_code == 200 and head.headers["content-length"] == str(size)
        assert head.content == b""
        outside = http.get(link, headers={"range": f"bytes={size + 5}-"})
        assert outside.status_code == 416
        assert http.get(link.replace("video.mp4", "nothing.mp4")).status_code == 404
