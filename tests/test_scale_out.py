"""Several machines: an API-only process and two worker processes that
share nothing but PostgreSQL and an S3 bucket (SeaweedFS). Workers have no
public base URL and no disk in common with the API. A worker that is killed
loses its task to the other once its lease runs out; one that is stopped
hands its task back at once, without using up an attempt."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from reelgate.testing import Api, Peer, SeaweedFS, Server, decode_mp4, postgres_database

pytestmark = [pytest.mark.postgres, pytest.mark.slow]  # processes, killed and stopped

PG_ENV = "REELGATE_TEST_POSTGRES_URL"
LONG = {"resolution": "720p", "duration": "9s"}
"""A render that takes a few seconds, long enough to stop a worker in it."""


def _create(api: Api, prompt: str, **extra: Any) -> str:
    answer = api.client.post(
        "/dream-machine/v1/generations", json={"model": "ray-2", "prompt": prompt, **extra}
    )
    assert answer.status_code == 201, answer.text
    generation_id: str = answer.json()["id"]
    return generation_id


def _rows(url: str) -> dict[str, tuple[str, int]]:
    """Task id -> (state, attempts), read straight from the database."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT id, state, attempts FROM tasks").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def _wait(condition: Any, timeout: float, what: str) -> None:
    print(f"{time.monotonic():.1f} waiting for {what}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _completed_callback(peer: Peer, path: str, timeout: float = 60) -> dict[str, Any]:
    """The body of the callback that reports the generation completed."""
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        hooks = peer.wait_posts(path, count=seen + 1, timeout=deadline - time.monotonic())
        seen = len(hooks)
        for hook in hooks:
            if hook["json"]["state"] == "completed":
                body: dict[str, Any] = hook["json"]
                return body
    raise AssertionError("no callback reported the generation completed")


def test_api_and_workers_on_separate_machines(
    tmp_path: Path, seaweedfs: SeaweedFS, peer: Peer
) -> None:
    base = os.environ.get(PG_ENV) or pytest.skip(f"{PG_ENV} is not set")
    with postgres_database(base) as url:
        shared = {
            "REELGATE_DATABASE_URL": url,
            "REELGATE_STORAGE_URL": seaweedfs.storage_url(uuid.uuid4().hex[:8]),
            "REELGATE_WEBHOOK_SECRET": "whsec_" + "c2NhbGUtb3V0LXRlc3Qtc2VjcmV0LWZvci1ob29rcw==",
            **seaweedfs.env,
        }
        server = Server(tmp_path / "api", env=shared, workers=0).start()
        workers = [server.worker(tmp_path / f"worker-{i}") for i in range(2)]
        try:
            api = Api(server, server.create_token("scale"))

            # a task made on the API machine, rendered on a worker, linked to the bucket
            first = _create(api, "across machines", callback_url=peer.url("/hook"))
            item = api.wait_done(first, timeout=120)
            assert item["response"]["state"] == "completed", item
            generation = api.client.get(f"/dream-machine/v1/generations/{first}").json()
            video_url = generation["assets"]["video"]
            assert video_url.startswith(seaweedfs.endpoint), "links go straight to the bucket"
            assert decode_mp4(httpx.get(video_url).content).frames
            hook = _completed_callback(peer, "/hook")
            assert hook["assets"]["video"].startswith(seaweedfs.endpoint)

            # both workers busy, then one is killed: the other takes its task over
            ids = [_create(api, f"long {i}", **LONG) for i in range(2)]
            _wait(
                lambda: sum(s == "running" for s, _ in _rows(url).values()) == 2,
                60,
                "both workers to be rendering",
            )
            workers[0].kill()
            workers[0].wait(10)
            for task_id in ids:
                assert api.wait_done(task_id, timeout=120)["response"]["state"] == "completed"
            attempts = sorted(_rows(url)[task_id][1] for task_id in ids)
            assert attempts == [1, 2], "the killed worker's task ran once more, elsewhere"

            # a worker that is stopped hands its task back at once, attempt unused
            survivor = workers[1]
            stopped = _create(api, "stopped midway", **LONG)
            _wait(lambda: _rows(url)[stopped][0] == "running", 60, "the render to start")
            server.stop_worker(survivor, tmp_path / "worker-1")
            state, tries = _rows(url)[stopped]
            assert (state, tries) == ("queued", 0), "handed back, its attempt given back"
            workers.append(server.worker(tmp_path / "worker-2"))
            assert api.wait_done(stopped, timeout=120)["response"]["state"] == "completed"
            assert _rows(url)[stopped][1] == 1
        finally:
            for i, worker in enumerate(workers):
                if worker.poll() is None:
                    server.stop_worker(worker, tmp_path / f"worker-{i}")
            server.stop()
        logs = "".join(
            p.read_text(errors="replace") for p in tmp_path.rglob("*.log") if p.is_file()
        )
        assert seaweedfs.secret_key not in logs, "the store's secret is never logged"
