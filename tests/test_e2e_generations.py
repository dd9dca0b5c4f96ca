"""The /luma/generations gateway dialect end to end, against the app with
its workers in this process."""

from __future__ import annotations

import base64
import re
import time
from typing import Any

import httpx
import pytest

from reelgate.domain.models import frame_count, frame_size
from reelgate.media.images import cover_fit
from reelgate.testing import (
    Api,
    InProcess,
    Peer,
    decode_mp4,
    in_process,
    png_bytes,
    psnr,
    textured_image,
)

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def create(api: Api, body: dict[str, Any], **params: str) -> dict[str, Any]:
    response = api.client.post("/luma/generations", json=body, params=params)
    assert response.status_code == 201, response.text
    return response.json()


def wait(api: Api, generation_id: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        g = api.client.get(f"/luma/generations/{generation_id}").json()
        if g["state"] in ("completed", "failed"):
            return g
        time.sleep(0.2)
    raise AssertionError("did not finish")


def frames_of(http: httpx.Client, url: str):
    return decode_mp4(http.get(url, timeout=30).content).frames


@pytest.mark.slow  # over a second: the slow tier
def test_create_answers_the_web_style_object_then_completes(
    api: Api, http: httpx.Client, peer: Peer
) -> None:
    g = create(
        api,
        {
            "user_prompt": "cat dance",
            "aspect_ratio": "1:1",
            "notify_hook": peer.url("/hook"),
            "model_name": "ray-v2",
            "expand_prompt": None,
            "image_url": None,
        },
    )
    assert g["state"] == "pending" and g["prompt"] == "cat dance"
    assert ISO_Z.match(g["created_at"])
    for key in ("video", "video_raw", "liked", "thumbnail", "last_frame"):
        assert key in g and g[key] is None
    # Its place in line, unless a worker took it already (tests/test_queue_estimate.py).
    state = g["queue_state"]
    assert state is None or state["ahead"] == state["position"] - 1 >= 0
    assert "estimate_wait_seconds" in g
    assert g["batch_id"] == ""
    done = wait(api, g["id"])
    assert done["queue_state"] is None and done["estimate_wait_seconds"] is None
    w, h = frame_size("1:1", "540p")
    assert done["video"]["width"] == w and done["video"]["height"] == h
    assert done["video"]["download_url"] == done["video"]["url"]
    assert done["thumbnail"]["url"] == done["video"]["thumbnail"]
    assert done["last_frame"]["width"] == w
    assert done["request"] == {"prompt": "cat dance", "aspect_ratio": "1:1"}
    assert done["failure_reason"] is None
    assert len(frames_of(http, done["video"]["url"])) == frame_count("5s")
    [hook] = peer.wait_posts("/hook")
    assert hook["json"]["id"] == g["id"] and hook["json"]["state"] == "completed"
    assert hook["json"]["video"]["url"] == done["video"]["url"]
    url = api.client.get(f"/luma/generations/{g['id']}/download_video_url").json()
    assert url == {"url": done["video"]["url"]}


@pytest.mark.slow  # over a second: the slow tier
def test_wrapped_answer_per_request(api: Api) -> None:
    g = create(api, {"user_prompt": "wrapped please"}, format="wrapped")
    assert g["code"] == 200 and g["message"] == "success" and g["request_id"]
    answer = api.client.post(
        "/luma/generations",
        json={"user_prompt": "wrapped, traced"},
        params={"format": "wrapped"},
        headers={"x-request-id": "trace-4f1c2a9b"},
    )
    assert answer.json()["request_id"] == answer.headers["x-request-id"] == "trace-4f1c2a9b"
    data = g["data"]
    assert data["task_status"] == "pending" and isinstance(data["created_at"], int)
    assert data["updated_at"] >= data["created_at"]
    assert wait(api, data["task_id"])["state"] == "completed"


@pytest.mark.slow
def test_settings_take_effect(api: Api, app: InProcess, http: httpx.Client) -> None:
    g = create(
        api,
        {
            "user_prompt": "sea waves",
            "resolution": "720p",
            "duration": "9s",
            "aspect_ratio": "16:9",
            "loop": True,
            "expand_prompt": True,
        },
    )
    done = wait(api, g["id"], timeout=120)
    frames = frames_of(http, done["video"]["url"])
    assert len(frames) == frame_count("9s")
    assert frames[0].shape[:2][::-1] == frame_size("16:9", "720p")
    assert psnr(frames[-1], frames[0]) >= 30, "loop"
    from reelgate.store.db import Database
    from reelgate.store.tasks import TaskStore

    db = Database(f"sqlite:///{app.data_dir / 'reelgate.db'}")
    try:
        assert TaskStore(db).get(g["id"]).enhanced_prompt.startswith("sea waves. ")
    finally:
        db.dispose()


@pytest.mark.slow  # over a second: the slow tier
def test_images_as_url_data_uri_and_bare_base64(api: Api, http: httpx.Client, peer: Peer) -> None:
    start, end = textured_image(500, 500, seed=31), textured_image(500, 500, seed=32)
    bare = base64.b64encode(png_bytes(end)).decode()
    g = create(
        api,
        {
            "user_prompt": "two frames",
            "aspect_ratio": "1:1",
            "image_url": peer.serve("/s.png", png_bytes(start), "image/png"),
            "image_end_url": bare,
        },
    )
    frames = frames_of(http, wait(api, g["id"])["video"]["url"])
    w, h = frame_size("1:1", "540p")
    assert psnr(frames[0], cover_fit(start, w, h)) >= 30
    assert psnr(frames[-1], cover_fit(end, w, h)) >= 30


@pytest.mark.slow  # over a second: the slow tier
def test_file_upload_by_url_and_base64_is_usable_as_image_url(
    api: Api, http: httpx.Client, peer: Peer
) -> None:
    image = textured_image(400, 300, seed=33)
    by_url = api.post(
        "/luma/generations/file_upload",
        {"url": peer.serve("/u.png", png_bytes(image), "image/png")},
    ).json()
    assert set(by_url) == {"id", "presigned_url", "public_url"}
    fetched = http.get(by_url["public_url"])
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
    by_b64 = api.post(
        "/luma/generations/file_upload", {"url": base64.b64encode(png_bytes(image)).decode()}
    ).json()
    assert by_b64["id"] != by_url["id"]
    g = create(
        api, {"user_prompt": "uploaded", "image_url": by_b64["public_url"], "aspect_ratio": "4:3"}
    )
    frames = frames_of(http, wait(api, g["id"])["video"]["url"])
    assert psnr(frames[0], cover_fit(image, *frame_size("4:3", "540p"))) >= 30
    bad = api.post("/luma/generations/file_upload", {"url": base64.b64encode(b"x" * 64).decode()})
    assert bad.status_code == 400 and bad.json()["code"] == 400


@pytest.mark.slow
def test_extend_and_batch_query(api: Api, http: httpx.Client) -> None:
    source = wait(api, create(api, {"user_prompt": "a road"})["id"])
    src_frames = frames_of(http, source["video"]["url"])
    response = api.client.post(
        f"/luma/generations/{source['id']}/extend", json={"user_prompt": "the road goes on"}
    )
    assert response.status_code == 201
    ext = wait(api, response.json()["id"])
    assert len(frames_of(http, ext["video"]["url"])) == len(src_frames) + frame_count("5s")
    batch = api.post("/luma/tasks", {"ids": [source["id"], ext["id"], "nope"]}).json()
    assert batch["code"] == "success" and batch["message"] == ""
    assert [d["id"] for d in batch["data"]] == [source["id"], ext["id"]]
    assert batch["data"][1]["video"]["url"] == ext["video"]["url"]
    ace = api.post("/luma/tasks", {"ids": [source["id"]], "action": "retrieve_batch"}).json()
    assert ace["count"] == 1, "AceData shapes keep working on the same path"


def test_download_url_is_400_until_completed(tmp_path) -> None:
    with in_process(tmp_path / "data", workers=0) as idle:
        api = Api(idle, idle.create_token("nowork"))
        g = create(api, {"user_prompt": "never rendered"})
        response = api.client.get(f"/luma/generations/{g['id']}/download_video_url")
        assert response.status_code == 400
        assert "completed" in response.json()["message"]
        assert api.client.get(f"/luma/generations/{g['id']}").json()["state"] == "pending"


def test_wrapped_answers_by_deployment_setting(tmp_path) -> None:
    with in_process(tmp_path / "data", workers=0, generations_response="wrapped") as wrapped:
        api = Api(wrapped, wrapped.create_token("wrap"))
        assert create(api, {"user_prompt": "by default"})["code"] == 200
        assert create(api, {"user_prompt": "unless asked"}, format="plain")["state"] == "pending"


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("post", "/luma/generations", {}, 400),
        ("post", "/luma/generations", {"user_prompt": "x", "aspect_ratio": "2:1"}, 400),
        ("post", "/luma/generations", {"user_prompt": "x", "resolution": "8k"}, 400),
        ("post", "/luma/generations", {"user_prompt": "x", "image_url": "not base64!"}, 400),
        ("post", "/luma/generations", {"user_prompt": "x", "notify_hook": "mailto:a@b"}, 400),
        ("post", "/luma/generations", {"user_prompt": "x", "loop": "yes please"}, 400),
        ("post", "/luma/generations/missing/extend", {"user_prompt": "x"}, 404),
        ("get", "/luma/generations/missing", None, 404),
        ("get", "/luma/generations/missing/download_video_url", None, 404),
        ("post", "/luma/generations/file_upload", {}, 400),
    ],
)
def test_errors_have_one_shape(api: Api, method: str, path: str, body, status: int) -> None:
    response = api.client.request(method, path, json=body)
    assert response.status_code == status, response.text
    data = response.json()
    assert data["code"] == status and data["message"] and data["request_id"]


def test_unauthenticated_and_foreign_tasks(http: httpx.Client, api: Api, other_api: Api) -> None:
    response = http.post("/luma/generations", json={"user_prompt": "x"})
    assert response.status_code == 401 and response.json()["code"] == 401
    g = create(api, {"user_prompt": "private"})
    assert other_api.client.get(f"/luma/generations/{g['id']}").status_code == 404
    assert (
        other_api.client.post(
            f"/luma/generations/{g['id']}/extend", json={"user_prompt": "x"}
        ).status_code
        == 404
    )
    assert other_api.post("/luma/tasks", {"ids": [g["id"]]}).json()["data"] == []
