"""Hostile inputs that pass validation and fail in the worker, and one
token's tasks out of reach of another in every dialect."""

from __future__ import annotations

import httpx
import lumaai
import pytest
from lumaai import LumaAI

from reelgate.testing import Api, InProcess, Peer, in_process


@pytest.mark.slow
def test_source_videos_are_probed_with_limits(tmp_path, peer: Peer) -> None:
    with in_process(
        tmp_path / "data", workers=1, source_max_seconds=6, source_max_pixels=600000
    ) as limited:
        api = Api(limited, limited.create_token("limits"))
        clip = api.post("/luma/videos", {"prompt": "nine seconds", "duration": "9s"}).json()
        too_long = api.post(
            "/luma/videos", {"action": "extend", "video_id": clip["video_id"], "prompt": "more"}
        )
        assert too_long.status_code == 400
        assert "limit is 6 s" in too_long.json()["error"]["message"]
        big = api.post("/luma/videos", {"prompt": "big", "resolution": "1080p"}).json()
        data = limited.http().get(big["video_url"]).content
        huge = api.post(
            "/luma/videos",
            {
                "action": "extend",
                "prompt": "x",
                "video_url": peer.serve("/big.mp4", data, "video/mp4"),
            },
        )
        assert huge.status_code == 400 and "pixels" in huge.json()["error"]["message"]


@pytest.mark.slow
def test_no_dialect_reaches_another_tokens_task(
    app: InProcess, http: httpx.Client, api: Api, other_api: Api, peer: Peer
) -> None:
    mine = api.post("/luma/videos", {"prompt": "mine alone"}).json()
    task_id, video_id = mine["task_id"], mine["video_id"]
    stranger = LumaAI(
        auth_token=other_api.client.headers["authorization"].split()[1],
        base_url=app.url + "/dream-machine/v1",
        http_client=app.http(),
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
    assert http.get(mine["video_url"]).status_code == 200
    assert not peer.wait_posts("/stolen", timeout=1)


@pytest.mark.slow  # waits for a link to expire
def test_signed_asset_links_expire(tmp_path) -> None:
    with in_process(tmp_path / "data", workers=1, asset_url_ttl_seconds=3) as signed:
        api = Api(signed, signed.create_token("signed"))
        http = signed.http()
        body = api.post("/luma/videos", {"prompt": "short-lived link"}).json()
        url = body["video_url"]
        assert "expires=" in url and "signature=" in url
        assert http.get(url).status_code == 200
        bare = url.split("?")[0]
        assert http.get(bare).status_code == 403
        assert http.get(url[:-3] + "AAA").status_code == 403
        other_key = bare.replace("video.mp4", "thumbnail.jpg") + "?" + url.split("?")[1]
        assert http.get(other_key).status_code == 403, "a signature covers one file"
        extended = api.post(
            "/luma/videos",
            {"action": "extend", "video_url": url, "prompt": "while the link is valid"},
        )
        assert extended.status_code == 200, extended.text
        import time

        time.sleep(3.5)
        assert http.get(url).status_code == 403, "expired"
        fresh = api.retrieve(body["task_id"]).json()["response"]["video_url"]
        assert fresh != url and http.get(fresh).status_code == 200, "answers carry fresh links"
