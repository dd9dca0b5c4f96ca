"""SIGKILL the server and a separate worker at random moments while 50 tasks
run; after restarts every task ends with a result or a reason, no finished
result is replaced by a second run, and every callback arrives."""

from __future__ import annotations

import random
import subprocess
import sys
import time

import httpx
import pytest

from reelgate.testing import Api, Peer, Server

pytestmark = pytest.mark.slow  # a server process and a worker process, killed and restarted

TASKS = 36  # still rendering after the eighth kill cycle: every kill lands on work in flight


def test_random_sigkills_lose_nothing(tmp_path, peer: Peer) -> None:
    rng = random.Random(20261122)
    srv = Server(
        tmp_path / "data",
        workers=2,
        env={
            "REELGATE_LEASE_SECONDS": "1.5",
            "REELGATE_MAX_ATTEMPTS": "10",
            "REELGATE_RETRY_BACKOFF_SECONDS": "0.2",
        },
    ).start()
    token = srv.create_token("chaos")
    worker: subprocess.Popen[bytes] | None = None

    def start_worker() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "reelgate.cli", "worker", "--log-level", "warning"], env=srv.env
        )

    first_seen: dict[str, str] = {}

    def observe(api: Api) -> dict[str, dict]:
        batch = api.post("/luma/tasks", {"ids": ids, "action": "retrieve_batch"}).json()
        states = {}
        for item in batch["items"]:
            response = item["response"]
            states[item["id"]] = response
            if response["state"] == "completed":
                url = first_seen.setdefault(item["id"], response["video_url"])
                assert url == response["video_url"], "a finished result was replaced"
        return states

    try:
        worker = start_worker()
        api = Api(srv, token)
        ids = [
            api.post(
                "/luma/videos",
                {"prompt": f"chaos {i}", "async": True, "callback_url": peer.url("/chaos")},
            ).json()["task_id"]
            for i in range(TASKS)
        ]
        kills = 0
        for _ in range(8):
            time.sleep(rng.uniform(0.5, 2.5))
            victim = rng.choice(["server", "worker", "both"])
            if victim in ("server", "both"):
                srv.kill()
            if victim in ("worker", "both"):
                worker.kill()
                worker.wait(10)
            kills += 1
            time.sleep(rng.uniform(0.1, 0.5))
            if victim in ("server", "both"):
                srv.start()
                api = Api(srv, token)
            if victim in ("worker", "both"):
                worker = start_worker()
            observe(api)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            states = observe(api)
            if all(s["state"] in ("completed", "failed") for s in states.values()):
                break
            time.sleep(0.5)
        assert len(states) == TASKS
        for task_id, response in states.items():
            assert response["state"] in ("completed", "failed"), (task_id, response)
            if response["state"] == "failed":
                assert response["error"]["message"], "a failure always has a reason"
        completed = [t for t, r in states.items() if r["state"] == "completed"]
        assert len(completed) >= TASKS - 2, "nearly all survive; failures need a reason"
        for task_id in completed:
            assert httpx.head(states[task_id]["video_url"]).status_code == 200

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            delivered = {
                p["json"]["task_id"]
                for p in peer.posts
                if p["path"] == "/chaos" and p["status"] == 200
            }
            if delivered >= set(ids):
                break
            time.sleep(0.5)
        assert delivered >= set(ids), f"missing callbacks: {set(ids) - delivered}"
        for post in peer.posts:
            if post["json"]["success"]:
                assert post["json"]["video_url"] == first_seen.get(
                    post["json"]["task_id"], post["json"]["video_url"]
                )
        print(
            f"\n{kills} kill cycles, {len(completed)}/{TASKS} completed, "
            f"{len(peer.posts)} callback posts for {len(delivered)} tasks"
        )
    finally:
        if worker is not None and worker.poll() is None:
            worker.terminate()
            worker.wait(15)
        srv.stop()
