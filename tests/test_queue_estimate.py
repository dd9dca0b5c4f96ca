"""Where a waiting task stands: its place in its worker pool's line and an
estimated wait from recent run times, as the generations dialect reports
them (`queue_state`, `estimate_wait_seconds`) and as a sync call that runs
out of time says them."""

from __future__ import annotations

from typing import Any

import pytest

from reelgate.domain.models import Asset, TaskResult
from reelgate.store.db import Database
from reelgate.store.queue import QueueStats
from reelgate.store.tasks import TaskStore
from reelgate.store.tokens import TokenStore
from reelgate.testing import Api, InProcess, in_process, new_task

# The line, read from the store (SQLite and PostgreSQL)


def _new_task(store: TaskStore, owner: str, engine: str) -> str:
    return new_task(store, owner, engine=engine).id


def test_positions_follow_claim_order_within_each_pool(db: Database) -> None:
    owner = TokenStore(db).create("owner")[0].id
    store, stats = TaskStore(db), QueueStats(db, cache_seconds=0)
    pools = {"preview": "render", "ltx": "render", "luma": "upstream"}
    ids = [
        _new_task(store, owner, engine) for engine in ("preview", "luma", "ltx", "luma", "preview")
    ]
    snap = stats.snapshot(ids, pools)
    assert snap.positions == {
        ids[0]: ("render", 1),
        ids[2]: ("render", 2),
        ids[4]: ("render", 3),
        ids[1]: ("upstream", 1),
        ids[3]: ("upstream", 2),
    }
    assert snap.running == {} and snap.finished == {}

    # A worker takes the oldest render task: it leaves the line, the rest move up.
    claimed = store.claim(lease_seconds=60, max_attempts=3, only=["preview", "ltx"])
    assert claimed is not None and claimed.id == ids[0]
    snap = stats.snapshot(ids, pools)
    assert snap.positions[ids[2]] == ("render", 1) and ids[0] not in snap.positions
    assert snap.running == {"render": 1}

    # Its run ends: it counts as history, with its run time.
    asset = Asset(key=f"{ids[0]}/v.mp4", width=960, height=544, content_type="video/mp4")
    assert claimed.lease_owner is not None
    store.complete(ids[0], claimed.lease_owner, TaskResult(asset, asset, asset))
    snap = stats.snapshot(ids, pools)
    count, seconds = snap.finished["render"]
    assert count == 1 and seconds >= 0 and snap.running == {}

    # A task whose worker died (lease expired) waits in line again, in creation order.
    claimed = store.claim(lease_seconds=-1, max_attempts=3, only=["luma"])
    assert claimed is not None and claimed.id == ids[1]
    snap = stats.snapshot(ids, pools)
    assert snap.positions[ids[1]] == ("upstream", 1) and snap.positions[ids[3]] == ("upstream", 2)


# What clients see


def _create(api: Api, prompt: str) -> dict[str, Any]:
    response = api.post("/luma/generations", {"user_prompt": prompt})
    assert response.status_code == 201, response.text
    return response.json()


def _get(api: Api, generation_id: str) -> dict[str, Any]:
    response = api.client.get(f"/luma/generations/{generation_id}")
    assert response.status_code == 200, response.text
    return response.json()


def _positions(api: Api, ids: list[str]) -> list[Any]:
    batch = api.post("/luma/tasks", {"ids": ids}).json()["data"]
    return [g["queue_state"] and g["queue_state"]["position"] for g in batch]


def test_queued_generations_report_their_place_in_line(tmp_path) -> None:
    with in_process(tmp_path / "data", workers=0) as app:
        api = Api(app, app.create_token("waiting"))
        created = [_create(api, f"clip {i}") for i in range(3)]
        assert [g["queue_state"] for g in created] == [
            {"position": 1, "ahead": 0},
            {"position": 2, "ahead": 1},
            {"position": 3, "ahead": 2},
        ]
        # Nothing has run yet: no history to estimate a wait from.
        assert [g["estimate_wait_seconds"] for g in created] == [None, None, None]
        ids = [g["id"] for g in created]
        assert _get(api, ids[2])["queue_state"] == {"position": 3, "ahead": 2}
        assert _positions(api, ids) == [1, 2, 3]

        # A worker (of another process, say) takes the oldest one.
        claimed = app.runtime.tasks.claim(lease_seconds=60, max_attempts=3)
        assert claimed is not None and claimed.id == ids[0]
        running = _get(api, ids[0])
        assert running["state"] == "processing"
        assert running["queue_state"] is None and running["estimate_wait_seconds"] is None
        assert _positions(api, ids) == [None, 1, 2]


@pytest.mark.slow
def test_estimated_wait_once_tasks_have_run(tmp_path) -> None:
    with in_process(tmp_path / "data", workers=1) as app:
        api = Api(app, app.create_token("history"))
        done = api.post("/luma/videos", {"prompt": "the first one"}).json()
        assert done["success"] is True, done
        app.runtime.stop_workers()  # the workers pause; new tasks wait

        queued = [_create(api, f"after {i}") for i in range(3)]
        assert [g["queue_state"]["position"] for g in queued] == [1, 2, 3]
        waits = [g["estimate_wait_seconds"] for g in queued]
        assert all(isinstance(w, int) and w >= 1 for w in waits), waits
        assert waits == sorted(waits), "further back waits no less"
        assert _get(api, queued[1]["id"])["estimate_wait_seconds"] == waits[1]

        finished = _get(api, done["task_id"])
        assert finished["state"] == "completed"
        assert finished["queue_state"] is None and finished["estimate_wait_seconds"] is None

        # A sync call that runs out of time says where its task stands.
        response = api.post("/luma/videos", {"prompt": "in a hurry", "timeout": 0.2})
        assert response.status_code == 504, response.text
        message = response.json()["error"]["message"]
        assert "number 4 in the queue, about " in message and " s from starting" in message
        assert response.json()["task_id"]


def test_sync_timeout_without_history_still_gives_the_place(app_idle: InProcess) -> None:
    api = Api(app_idle, app_idle.create_token("hurry"))
    _create(api, "ahead of you")
    response = api.post("/luma/videos", {"prompt": "in a hurry", "timeout": 0.1})
    assert response.status_code == 504, response.text
    message = response.json()["error"]["message"]
    assert "number 2 in the queue;" in message and "poll /luma/tasks" in message


@pytest.fixture
def app_idle(tmp_path) -> Any:
    with in_process(tmp_path / "data", workers=0) as app:
        yield app
