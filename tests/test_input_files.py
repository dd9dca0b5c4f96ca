"""Input images as files: a data URI is stored once and echoed as a short
link, uploads keep their real type, and assets are served safely (types,
Range errors, cache lifetimes)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from reelgate.store.schema import TaskRow
from reelgate.testing import Api, InProcess, decode_mp4, in_process, psnr, textured_image


def _data_uri(image: np.ndarray, fmt: str = "PNG", mime: str = "image/png") -> str:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt)
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.mark.slow
def test_a_data_uri_is_stored_once_and_echoed_as_a_link(app: InProcess, http: httpx.Client) -> None:
    api = Api(app, app.create_token("keyframes"))
    picture = textured_image(1280, 720, seed=3)
    grain = np.random.default_rng(0).integers(-8, 9, picture.shape)
    uri = _data_uri(np.clip(picture.astype(int) + grain, 0, 255).astype(np.uint8))
    assert len(uri) > 1_000_000
    created = api.client.post(
        "/dream-machine/v1/generations",
        json={"prompt": "from a still", "keyframes": {"frame0": {"type": "image", "url": uri}}},
    )
    assert created.status_code == 201, created.text
    generation = created.json()
    link = generation["request"]["keyframes"]["frame0"]["url"]
    assert link.startswith(app.url + "/assets/") and len(link) < 300
    stored = http.get(link)
    assert stored.status_code == 200 and stored.content == base64.b64decode(uri.split(",")[1])

    listed = api.client.get("/dream-machine/v1/generations")
    assert len(listed.content) < 10_000, "a list answer does not repeat the image"
    with app.runtime.db.read() as s:
        row = s.scalar(select(TaskRow).where(TaskRow.id == generation["id"]))
        assert row is not None
        assert len(json.dumps(row.origin_request)) < 2_000 and len(row.start_image or "") < 300

    item = api.wait_done(generation["id"])
    assert item["request"]["keyframes"]["frame0"]["url"] == link  # AceData's echo too
    video = decode_mp4(http.get(item["response"]["video_url"]).content)
    first = np.asarray(Image.fromarray(video.frames[0]))
    source = np.asarray(Image.fromarray(picture).resize(first.shape[1::-1]))
    assert psnr(first, source) > 25, "the video starts from the stored image"


@pytest.mark.parametrize(("fmt", "ext"), [("TIFF", "tif"), ("ICO", "ico"), ("BMP", "bmp")])
def test_uploads_of_other_formats_are_served_as_what_they_are(
    app: InProcess, http: httpx.Client, fmt: str, ext: str
) -> None:
    api = Api(app, app.create_token(f"upload-{ext}"))
    picture = textured_image(64, 48, seed=1)
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, format=fmt)
    uri = f"data:image/{ext};base64," + base64.b64encode(buf.getvalue()).decode()
    answer = api.post("/luma/generations/file_upload", {"url": uri})
    assert answer.status_code == 200, answer.text
    served = http.get(answer.json()["public_url"])
    assert served.status_code == 200
    kind = served.headers["content-type"]
    decoded = Image.open(io.BytesIO(served.content))
    assert kind == Image.MIME[decoded.format or ""], (kind, decoded.format)
    assert kind in ("image/png", "image/jpeg", "image/webp", "image/gif")
    assert served.headers["x-content-type-options"] == "nosniff"
    again = np.asarray(decoded.convert("RGB"))
    if fmt == "ICO":
        height, width = again.shape[:2]  # an icon keeps one of its sizes
        assert width >= 32 and abs(width / height - 4 / 3) < 0.1
    else:
        assert psnr(again, picture) > 40


def test_asset_range_errors_and_cache_lifetimes(tmp_path: Path) -> None:
    with in_process(tmp_path / "data", workers=0, asset_url_ttl_seconds=120) as signed:
        api = Api(signed, signed.create_token("ranges"))
        uri = _data_uri(textured_image(32, 32))
        link = api.post("/luma/generations/file_upload", {"url": uri}).json()["public_url"]
        http = signed.http()
        whole = http.get(link)
        assert whole.status_code == 200
        age = int(whole.headers["cache-control"].split("max-age=")[1].split(",")[0])
        assert 100 <= age <= 120 and "immutable" not in whole.headers["cache-control"]
        size = len(whole.content)
        part = http.get(link, headers={"range": "bytes=0-9"})
        assert part.status_code == 206 and part.content == whole.content[:10]
        outside = http.get(link, headers={"range": f"bytes={size + 10}-"})
        assert outside.status_code == 416
        assert outside.headers["content-range"] == f"bytes */{size}"
        assert "outside the file" in outside.json()["detail"]
        malformed = http.get(link, headers={"range": "pages=1-2"})
        assert malformed.status_code == 400 and "Range" in malformed.json()["detail"]


@pytest.mark.slow  # renders two clips
def test_an_input_is_read_by_its_own_task_only(tmp_path: Path) -> None:
    """A task reads its own inputs whatever became of their link (expired, or
    signed under a secret since changed); another token holding an expired
    link to them gets nothing."""
    with in_process(tmp_path / "data", workers=0) as app:
        alice = Api(app, app.create_token("alice"))
        mallory = Api(app, app.create_token("mallory"))
        uri = _data_uri(textured_image(320, 180, seed=5))
        task_id = alice.post(
            "/luma/videos", {"prompt": "mine", "start_image_url": uri, "async": True}
        )
        task_id = task_id.json()["task_id"]
        link = alice.retrieve(task_id).json()["request"]["start_image_url"]
        key = httpx.URL(link).path.removeprefix("/assets/")
        expired = f"{app.url}/assets/{key}?{app.runtime.storage.signer.query(key, -60)}"
        assert app.http().get(expired).status_code == 403
        stolen = mallory.post(
            "/luma/videos", {"prompt": "theirs", "start_image_url": expired, "async": True}
        ).json()["task_id"]
        with app.runtime.db.write() as s:  # as if the deployment's secret had changed
            row = s.get(TaskRow, task_id)
            assert row is not None
            row.start_image = link.replace("signature=", "signature=x")
        app.runtime.start_workers(1, lambda dialect, task, event: {})
        done = alice.wait_done(task_id)
        assert done["response"]["state"] == "completed", done
        refused = mallory.wait_done(stolen)
        assert refused["response"]["state"] == "failed", "another's expired link reads nothing"


def test_a_refused_create_leaves_no_input_files(tmp_path: Path) -> None:
    with in_process(tmp_path / "data", workers=0, rate_limit_per_minute=1) as app:
        api = Api(app, app.create_token("tidy"))
        good = _data_uri(textured_image(64, 64))
        broken = "data:image/png;base64," + base64.b64encode(b"\x89PNG not really").decode()
        refused = api.post(
            "/luma/videos",
            {"prompt": "x", "start_image_url": good, "end_image_url": broken, "async": True},
        )
        assert refused.status_code == 400 and "end image" in refused.json()["error"]["message"]
        assert api.post("/luma/videos", {"prompt": "ok", "async": True}).status_code == 200
        limited = api.post("/luma/videos", {"prompt": "y", "start_image_url": good, "async": True})
        assert limited.status_code == 429
        assets = app.runtime.settings.assets_dir
        assert not list(assets.glob("*/inputs/*")), "no input file without its task"
