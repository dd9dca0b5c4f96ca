"""The same server on PostgreSQL, with a second worker process sharing the queue."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import create_engine, text

from reelgate.store.db import normalize_url
from reelgate.testing import Api, Server, decode_mp4

pytestmark = [pytest.mark.postgres, pytest.mark.slow]  # a server and a worker process


def test_server_and_separate_worker_share_a_postgresql_queue(tmp_path, postgres_url) -> None:
    engine = create_engine(normalize_url(postgres_url))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    srv = Server(tmp_path / "data", env={"REELGATE_DATABASE_URL": postgres_url}).start()
    worker = subprocess.Popen(
        [sys.executable, "-m", "reelgate.cli", "worker", "--log-level", "warning"], env=srv.env
    )
    try:
        api = Api(srv, srv.create_token("pg"))
        ids = [
            api.post("/luma/videos", {"prompt": f"clip {i}", "async": True}).json()["task_id"]
            for i in range(6)
        ]
        results = [api.wait_done(task_id)["response"] for task_id in ids]
        sync = api.post("/luma/videos", {"prompt": "sync on postgres"}).json()
    finally:
        worker.terminate()
        worker.wait(15)
        srv.stop()
    assert all(r["success"] for r in results), results
    assert sync["success"] is True
    with engine.connect() as conn:
        owners = conn.execute(
            text("SELECT count(DISTINCT lease_owner), max(attempts) FROM tasks")
        ).one()
    engine.dispose()
    assert owners[0] == 7 and owners[1] == 1, "each task ran exactly once"
    srv.start()
    try:
        import httpx

        assert decode_mp4(httpx.get(sync["video_url"], timeout=30).content).frames
    finally:
        srv.stop()
