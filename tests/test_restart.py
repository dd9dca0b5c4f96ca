"""A server killed in the middle of a task finishes that task after a restart."""

from __future__ import annotations

import time

import httpx
import pytest

from reelgate.domain.models import frame_count, frame_size
from reelgate.store.db import Database
from reelgate.store.tasks import TaskStore
from reelgate.testing import Api, Peer, Server, decode_mp4

pytestmark = pytest.mark.slow  # a server process, killed and restarted


def test_killed_server_finishes_the_task_after_restart(tmp_path, peer: Peer) -> None:
    srv = Server(tmp_path / "data", env={"REELGATE_LEASE_SECONDS": "2"})
    srv.env["REELGATE_PUBLIC_BASE_URL"] = f"http://localhost:{srv.port}"
    srv.start()
    try:
        api = Api(srv, srv.create_token("crash"))
        task_id = api.post(
            "/luma/videos",
            {
                "prompt": "a long slow pan over mountains",
                "resolution": "1080p",
                "duration": "9s",
                "callback_url": peer.url("/done"),
            },
        ).json()["task_id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            response = api.retrieve(task_id).json()["response"]
            if response.get("progress", 0) > 0.05:
                break
            time.sleep(0.05)
        assert response["state"] == "processing" and response["progress"] > 0.05
        srv.kill()

        srv.start()
        done = api.wait_done(task_id, timeout=120)
    finally:
        srv.stop()

    response = done["response"]
    assert response["success"] is True
    assert response["video_url"].startswith(f"http://localhost:{srv.port}/assets/")
    db = Database(f"sqlite:///{srv.data_dir / 'reelgate.db'}")
    try:
        task = TaskStore(db).get(task_id)
    finally:
        db.dispose()
    assert task.attempts == 2
    run_dirs = [p for p in (srv.data_dir / "assets" / task_id).iterdir()]
    assert len(run_dirs) == 1, "the killed run's partial files must not be published"

    srv.start()  # to fetch the video
    try:
        video = decode_mp4(httpx.get(response["video_url"], timeout=60).content)
    finally:
        srv.stop()
    assert (video.width, video.height) == frame_size("16:9", "1080p")
    assert len(video.frames) == frame_count("9s")
    posts = peer.wait_posts("/done")
    assert posts and posts[0]["json"]["task_id"] == task_id and posts[0]["json"]["success"]
