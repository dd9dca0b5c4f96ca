"""Hostile inputs that pass validation and fail in the worker, and one
token's tasks out of reach of another in every dialect."""

from __future__ import annotations

import httpx
import lumaai
import pytest
from lumaai import LumaAI

from tests.conftest import Api, Peer, Server


def test_source_videos_are_probed_with_limits(tmp_path, peer: Peer) -> None:
    srv = Server(
        tmp_path / "data",
        env={"REELGATE_SOURCE_MAX_SECONDS": "6", "REELGATE_SOURCE_MAX_PIXELS": "600000"},
    ).start()
    try:
        api = Api(srv, srv.create_token("limits"))
        clip = api.post("/luma/videos", {"prompt": "nine seconds", "duration": "9s"}).json()
        too_long = api.post(
            "/luma/videos", {"action": "extend", "video_id": clip["video_id"], "prompt": "more"}
        )
        assert too_long.status_code == 400
        assert "limit is 6 s" in too_long.json()["error"]["message"]
        big = api.post("/luma/videos", {"prompt": "big", "resolution": "1080p"}).json()
        data = httpx.get(big["video_url"]).content
        huge = api.post(
            "/luma/videos",
            {
                "action": "extend",
                "prompt": "x",
                "video_url": peer.serve("/big.mp4", data, "video/mp4"),
            },
        )
        assert huge.status_code == 400 and "pixels" in huge.json()["error"]["message"]
    finally:
        srv.stop()


def test_no_dialect_reaches_another_tokens_task(
    server: Server, api: Api, other_api: Api, peer: Peer
) -> None:
    mine = api.post("/luma/videos", {"prompt": "mine alone"}).json()
    task_id, video_id = mine["task_id"], mine["video_id"]
    stranger = LumaAI(
        auth_token=other_api.client.headers["authorization"].split()[1],
        base_url=server.url + "/dream-machine/v1",
        max_retries=0,
    )
    # read
    assert other_api.retrieve(task_id).status_code == 404
    assert other_api.client.get(f"/luma/generations/{task_id}").status_code == 404
    assert (
        other_api.client.get(f"/luma/generations/{task_id}/download_video_url").status_code == 404
    )
    with pytest.raises(lumaai.NotFoundError):
        stranger.generations.get(task_id)
    assert task_id not in [g.id for g in stranger.generations.list(limit=100).generations]
    # extend, in each dialect, with a callback that must never fire
    hook = peer.url("/stolen")
    assert (
        other_api.post(
            "/luma/videos",
            {"action": "extend", "video_id": video_id, "prompt": "x", "callback_url": hook},
        ).status_code
        == 404
    )
    assert (
        other_api.client.post(
            f"/luma/generations/{task_id}/extend", json={"user_prompt": "x", "notify_hook": hook}
        ).status_code
        == 404
    )
    for frame in ("frame0", "frame1"):
        with pytest.raises(lumaai.NotFoundError):
            stranger.generations.create(
                model="ray-2",
                prompt="steal it",
                callback_url=hook,
                keyframes={frame: {"type": "generation", "id": task_id}},
            )
    # delete
    with pytest.raises(lumaai.NotFoundError):
        stranger.generations.delete(task_id)
    assert api.retrieve(task_id).json()["response"]["success"] is True, "still there"
    assert httpx.get(mine["video_url"]).status_code == 200
    assert not peer.wait_posts("/stolen", timeout=1)


def test_signed_asset_links_expire(tmp_path) -> None:
    srv = Server(tmp_path / "data", env={"REELGATE_ASSET_URL_TTL_SECONDS": "3"}).start()
    try:
        api = Api(srv, srv.create_token("signed"))
        body = api.post("/luma/videos", {"prompt": "short-lived link"}).json()
        url = body["video_url"]
        assert "expires=" in url and "signature=" in url
        assert httpx.get(url).status_code == 200
        bare = url.split("?")[0]
        assert httpx.get(bare).status_code == 403
        assert httpx.get(url[:-3] + "AAA").status_code == 403
        other_key = bare.replace("video.mp4", "thumbnail.jpg") + "?" + url.split("?")[1]
        assert httpx.get(other_key).status_code == 403, "a signature covers one file"
        extended = api.post(
            "/luma/videos",
            {"action": "extend", "video_url": url, "prompt": "while the link is valid"},
        )
        assert extended.status_code == 200, extended.text
        import time

        time.sleep(3.5)
        assert httpx.get(url).status_code == 403, "expired"
        fresh = api.retrieve(body["task_id"]).json()["response"]["video_url"]
        assert fresh != url and httpx.get(fresh).status_code == 200, "answers carry fresh links"
    finally:
        srv.stop()
