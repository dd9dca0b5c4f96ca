"""The AceData dialect end to end: the app with its workers in this process
(a real `reelgate serve` on loopback where a test needs a process), its
videos decoded frame by frame."""

from __future__ import annotations

import base64
import time

import httpx
import pytest

from reelgate.domain.models import frame_count, frame_size
from reelgate.media.images import cover_fit
from reelgate.testing import (
    Api,
    InProcess,
    Peer,
    Server,
    decode_mp4,
    png_bytes,
    psnr,
    textured_image,
)

W540, H540 = frame_size("16:9", "540p")
FRAMES_5S = frame_count("5s")


def fetch(http: httpx.Client, url: str) -> bytes:
    response = http.get(url, timeout=30)
    assert response.status_code == 200, url
    return response.content


@pytest.mark.slow  # over a second: the slow tier
def test_sync_text_request_returns_a_playable_mp4_of_the_promised_size(
    api: Api, http: httpx.Client
) -> None:
    response = api.post("/luma/videos", {"prompt": "Astronauts shuttle from space to volcano"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["state"] == "completed"
    assert body["prompt"] == "Astronauts shuttle from space to volcano"
    assert (body["video_width"], body["video_height"]) == (W540, H540)
    assert (body["thumbnail_width"], body["thumbnail_height"]) == (W540, H540)
    assert body["task_id"] != body["video_id"]
    video = decode_mp4(fetch(http, body["video_url"]))
    assert (video.width, video.height) == (W540, H540)
    assert len(video.frames) == FRAMES_5S
    assert video.fps == 24 and video.codec == "h264" and video.pix_fmt == "yuv420p"
    assert psnr(video.frames[0], video.frames[-1]) < 40, "the clip must move"
    thumb = http.get(body["thumbnail_url"])
    assert thumb.headers["content-type"] == "image/jpeg" and thumb.content[:2] == b"\xff\xd8"


@pytest.mark.slow  # over a second: the slow tier
def test_assets_support_range_requests(api: Api, http: httpx.Client) -> None:
    body = api.post("/luma/videos", {"prompt": "range check", "async": None}).json()
    full = fetch(http, body["video_url"])
    part = http.get(body["video_url"], headers={"range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["content-type"] == "video/mp4"
    assert part.content == full[100:200]
    assert full[4:8] == b"ftyp" and full.index(b"moov") < full.index(b"mdat"), "faststart"


@pytest.mark.slow  # over a second: the slow tier
def test_start_image_becomes_the_first_frame(api: Api, http: httpx.Client, peer: Peer) -> None:
    image = textured_image(800, 600, seed=3)
    url = peer.serve("/start.png", png_bytes(image), "image/png")
    body = api.post(
        "/luma/videos",
        {"prompt": "bring it to life", "start_image_url": url, "aspect_ratio": "1:1"},
    ).json()
    assert body["success"], body
    video = decode_mp4(fetch(http, body["video_url"]))
    w, h = frame_size("1:1", "540p")
    assert (video.width, video.height) == (w, h)
    assert psnr(video.frames[0], cover_fit(image, w, h)) >= 30


@pytest.mark.slow
def test_start_and_end_images_as_data_uri_and_legacy_image_urls(
    api: Api, http: httpx.Client
) -> None:
    start, end = textured_image(640, 360, seed=1), textured_image(640, 360, seed=2)
    uris = [
        f"data:image/png;base64,{base64.b64encode(png_bytes(i)).decode()}" for i in (start, end)
    ]
    body = api.post(
        "/luma/videos",
        {
            "prompt": "morph",
            "image_urls": uris,
            "model": "luma",
            "callback_url": None,
            "timeout": None,
        },
    ).json()
    assert body["success"], body
    video = decode_mp4(fetch(http, body["video_url"]))
    assert psnr(video.frames[0], cover_fit(start, W540, H540)) >= 30
    assert psnr(video.frames[-1], cover_fit(end, W540, H540)) >= 30


@pytest.mark.slow  # over a second: the slow tier
def test_async_callback_reaches_a_receiver_on_loopback(
    api: Api, http: httpx.Client, peer: Peer
) -> None:
    answer = api.post(
        "/luma/videos", {"prompt": "callback please", "callback_url": peer.url("/hook")}
    )
    assert answer.status_code == 200
    assert list(answer.json()) == ["task_id"]
    task_id = answer.json()["task_id"]
    [post] = peer.wait_posts("/hook")
    payload = post["json"]
    assert payload["task_id"] == task_id
    assert payload["success"] is True and payload["state"] == "completed"
    assert decode_mp4(fetch(http, payload["video_url"])).frames


@pytest.mark.slow
def test_callback_is_retried_until_the_receiver_accepts(api: Api, peer: Peer) -> None:
    peer.post_status = 503
    task_id = api.post(
        "/luma/videos", {"prompt": "retry", "callback_url": peer.url("/flaky")}
    ).json()["task_id"]
    assert len(peer.wait_posts("/flaky", count=2)) >= 2
    peer.post_status = 200
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        posts = peer.wait_posts("/flaky", count=1)
        if posts[-1]["status"] == 200:
            break
        time.sleep(0.1)
    assert posts[-1]["status"] == 200 and posts[-1]["json"]["task_id"] == task_id
    assert all(p["headers"]["webhook-id"] == posts[0]["headers"]["webhook-id"] for p in posts)


@pytest.mark.slow
def test_retrieve_and_retrieve_batch_shapes(api: Api) -> None:
    request = {"prompt": "retrieve me", "async": True, "aspect_ratio": "9:16"}
    task_id = api.post("/luma/videos", request).json()["task_id"]
    item = api.wait_done(task_id)
    assert item["id"] == task_id
    assert item["request"] == request
    assert isinstance(item["created_at"], float) and item["finished_at"] >= item["created_at"]
    response = item["response"]
    assert response["success"] is True and response["task_id"] == task_id
    assert (response["video_width"], response["video_height"]) == frame_size("9:16", "540p")
    assert item["data"]["state"] == "completed"

    other = api.post("/luma/videos", {"prompt": "second"}).json()["task_id"]
    batch = api.post(
        "/luma/tasks", {"ids": [task_id, other, "missing"], "action": "retrieve_batch"}
    ).json()
    assert batch["count"] == 2
    assert [i["id"] for i in batch["items"]] == [task_id, other]


@pytest.mark.slow
def test_unfinished_task_reads_processing_then_a_separate_worker_finishes_it(
    tmp_path, peer: Peer
) -> None:
    """`serve --workers 0` queues only; `reelgate worker` on the same database renders."""
    srv = Server(tmp_path / "data", workers=0).start()
    try:
        api = Api(srv, srv.create_token("solo"))
        task_id = api.post("/luma/videos", {"prompt": "later", "async": True}).json()["task_id"]
        item = api.retrieve(task_id).json()
        assert item["response"]["state"] == "processing"
        assert item["data"]["state"] == "processing"
        assert "success" not in item["response"], "unfinished must never read as success: false"
        assert item["finished_at"] is None
        import subprocess
        import sys

        worker = subprocess.Popen(
            [sys.executable, "-m", "reelgate.cli", "worker", "--log-level", "warning"], env=srv.env
        )
        try:
            done = api.wait_done(task_id, timeout=60)
        finally:
            worker.terminate()
            worker.wait(15)
        assert done["response"]["state"] == "completed"
    finally:
        srv.stop()


@pytest.mark.slow  # over a second: the slow tier
def test_a_token_cannot_see_another_tokens_task(api: Api, other_api: Api) -> None:
    body = api.post("/luma/videos", {"prompt": "mine"}).json()
    response = other_api.retrieve(body["task_id"])
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    batch = other_api.post("/luma/tasks", {"ids": [body["task_id"]], "action": "retrieve_batch"})
    assert batch.json() == {"items": [], "count": 0}
    extend = other_api.post(
        "/luma/videos", {"action": "extend", "video_id": body["video_id"], "prompt": "steal"}
    )
    assert extend.status_code == 404 and extend.json()["error"]["code"] == "not_found"


@pytest.mark.slow
def test_extend_by_video_id_and_by_url_appends_to_the_source(api: Api, http: httpx.Client) -> None:
    source = api.post("/luma/videos", {"prompt": "a river", "aspect_ratio": "4:3"}).json()
    src_video = decode_mp4(fetch(http, source["video_url"]))
    by_id = api.post(
        "/luma/videos",
        {
            "action": "extend",
            "video_id": source["video_id"],
            "video_url": "http://ignored.invalid/x.mp4",
            "prompt": "the river goes on",
        },
    ).json()
    assert by_id["success"], by_id
    extended = decode_mp4(fetch(http, by_id["video_url"]))
    assert (extended.width, extended.height) == (src_video.width, src_video.height)
    assert len(extended.frames) == len(src_video.frames) + FRAMES_5S
    assert extended.duration == pytest.approx(src_video.duration + FRAMES_5S / 24, abs=0.05)
    assert psnr(extended.frames[0], src_video.frames[0]) >= 30
    by_url = api.post(
        "/luma/videos", {"action": "extend", "video_url": source["video_url"], "prompt": "again"}
    ).json()
    assert by_url["success"], by_url
    assert (
        len(decode_mp4(fetch(http, by_url["video_url"])).frames)
        == len(src_video.frames) + FRAMES_5S
    )


@pytest.mark.slow
def test_extend_a_video_fetched_from_another_server(
    api: Api, http: httpx.Client, peer: Peer
) -> None:
    source = api.post("/luma/videos", {"prompt": "somewhere else", "aspect_ratio": "1:1"}).json()
    data = fetch(http, source["video_url"])
    url = peer.serve("/elsewhere.mp4", data, "video/mp4")
    body = api.post(
        "/luma/videos", {"action": "extend", "video_url": url, "prompt": "continued"}
    ).json()
    assert body["success"], body
    extended = decode_mp4(fetch(http, body["video_url"]))
    src = decode_mp4(data)
    assert len(extended.frames) == len(src.frames) + FRAMES_5S
    assert psnr(extended.frames[len(src.frames)], src.frames[-1]) >= 25, "continues the source"
    # The size of a URL's video is decided once, from the file, and the task
    # reports what it made (not the default 16:9 the request fell back on).
    shown = api.client.get(f"/luma/generations/{body['task_id']}").json()
    assert shown["request"]["aspect_ratio"] == "1:1"
    assert (shown["video"]["width"], shown["video"]["height"]) == (extended.width, extended.height)
    broken = peer.serve("/broken.mp4", b"\x00" * 1000, "video/mp4")
    failed = api.post("/luma/videos", {"action": "extend", "video_url": broken, "prompt": "x"})
    assert failed.status_code == 400 and "source video" in failed.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"prompt": "x", "aspect_ratio": "5:4"}, 400, "bad_request"),
        ({"prompt": "x", "action": "remix"}, 400, "bad_request"),
        ({"prompt": "x", "timeout": -1}, 400, "bad_request"),
        ({"prompt": "x", "loop": "sometimes"}, 400, "bad_request"),
        ({}, 400, "bad_request"),
        ({"action": "extend", "prompt": "x"}, 400, "bad_request"),
        ({"action": "extend", "video_id": "nope", "prompt": "x"}, 404, "not_found"),
        ({"prompt": "x", "callback_url": "ftp://example.com/hook"}, 400, "bad_request"),
        ({"prompt": "x", "resolution": "4k"}, 400, "bad_request"),
    ],
)
def test_bad_requests_get_the_acedata_error_envelope(api: Api, body, status, code) -> None:
    response = api.post("/luma/videos", body)
    assert response.status_code == status, response.text
    data = response.json()
    assert data["error"]["code"] == code and data["error"]["message"]
    assert data["trace_id"]


def test_auth_and_lookup_errors(app: InProcess, http: httpx.Client, api: Api) -> None:
    bad = http.post(
        "/luma/videos",
        json={"prompt": "x"},
        headers={"authorization": "Bearer rg_wrong"},
    )
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_token"
    none = http.post("/luma/tasks", json={"id": "x"})
    assert none.status_code == 401
    missing = api.retrieve("00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    no_id = api.post("/luma/tasks", {"action": "retrieve"})
    assert no_id.status_code == 400
    garbage = api.client.post(
        "/luma/videos", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert garbage.status_code == 400 and garbage.json()["error"]["code"] == "bad_request"
    revoked = app.cli("tokens", "create", "short-lived").strip()
    app.cli("tokens", "revoke", "short-lived")
    gone = http.post(
        "/luma/tasks", json={"id": "x"}, headers={"authorization": f"Bearer {revoked}"}
    )
    assert gone.status_code == 401


@pytest.mark.slow
def test_sync_timeout_answers_an_error_that_carries_the_task_id(api: Api) -> None:
    response = api.post("/luma/videos", {"prompt": "too slow", "timeout": 0, "duration": "9s"})
    assert response.status_code == 504
    data = response.json()
    assert data["error"]["code"] == "timeout" and data["task_id"]
    assert api.wait_done(data["task_id"])["response"]["success"] is True


def test_unusable_input_fails_the_task_with_a_clear_reason(api: Api, peer: Peer) -> None:
    url = peer.serve("/broken.png", b"this is not a png", "image/png")
    response = api.post("/luma/videos", {"prompt": "x", "start_image_url": url})
    assert response.status_code == 400
    data = response.json()
    message = data["error"]["message"]
    assert data["error"]["code"] == "bad_request" and "start image" in message
    assert "not a decodable image" in message
    assert "0x" not in message and "BytesIO" not in message, "no object reprs"
    item = api.retrieve(data["task_id"]).json()
    assert item["response"]["state"] == "failed" and item["response"]["success"] is False


@pytest.mark.slow
def test_enhancement_keeps_both_prompts(api: Api, app: InProcess) -> None:
    from reelgate.store.db import Database
    from reelgate.store.tasks import TaskStore

    plain = api.post(
        "/luma/videos", {"prompt": "a cat", "enhancement": False, "async": True}
    ).json()["task_id"]
    rich = api.post("/luma/videos", {"prompt": "a cat", "async": True}).json()["task_id"]
    done = api.wait_done(rich)  # a worker enhances the prompt, once, before rendering
    assert done["response"]["prompt"] == "a cat"
    api.wait_done(plain)
    db = Database(f"sqlite:///{app.data_dir / 'reelgate.db'}")
    try:
        store = TaskStore(db)
        assert store.get(plain).enhanced_prompt is None
        enhanced = store.get(rich).enhanced_prompt
        assert enhanced.startswith("a cat. ") and len(enhanced) > len("a cat") + 20
        assert store.get(rich).prompt == "a cat"
    finally:
        db.dispose()
    assert done["enhanced_prompt"] == enhanced


@pytest.mark.slow
def test_cli_generate_waits_and_prints_the_video_url(server: Server, tmp_path) -> None:
    image = tmp_path / "start.png"
    image.write_bytes(png_bytes(textured_image(320, 240, seed=9)))
    token = server.create_token("cli")
    out = server.cli(
        "generate",
        "a lighthouse at dusk",
        "--start-image",
        str(image),
        "--aspect-ratio",
        "3:4",
        "--wait",
        "--server",
        server.url,
        "--token",
        token,
    )
    url = out.strip().splitlines()[-1]
    video = decode_mp4(fetch(server.http(), url))
    assert (video.width, video.height) == frame_size("3:4", "540p")
