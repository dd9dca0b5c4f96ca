"""Cancelling a task in each dialect: AceData's `cancel` action on
`/luma/tasks`, the generations dialect's `POST /luma/generations/{id}/cancel`
and the official `DELETE /generations/{id}`. The render stops (its one
worker is free for the next task at once), nothing is published, the
callback says so in the dialect's own terms, and a finished task cannot be
cancelled. The store fences a cancelled task against the worker that ran it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelgate.domain.models import Asset, State, TaskResult
from reelgate.store.db import Database
from reelgate.store.tasks import TaskStore
from reelgate.store.tokens import TokenStore
from reelgate.testing import Api, InProcess, Peer, Server, in_process, new_task, running

OFFICIAL = "/dream-machine/v1/generations"
LONG = {"resolution": "1080p", "duration": "9s"}
"""A clip long enough to be surely still rendering when it is cancelled."""


# What each dialect sends to create, cancel and read a task, and how it says
# a task was cancelled.


def acedata_create(api: Api, hook: str | None, **extra: Any) -> str:
    body = {"prompt": "a lighthouse in a storm", "async": True, **extra}
    if hook:
        body["callback_url"] = hook
    answer = api.post("/luma/videos", body)
    assert answer.status_code == 200, answer.text
    task_id: str = answer.json()["task_id"]
    return task_id


def acedata_cancel(api: Api, task_id: str) -> httpx.Response:
    return api.post("/luma/tasks", {"action": "cancel", "id": task_id})


def acedata_is_cancelled(result: dict[str, Any]) -> None:
    """A flat result (a callback, or a retrieve item's `response`)."""
    assert result["success"] is False and result["state"] == "failed"
    assert result["error"]["code"] == "cancelled"
    assert result["error"]["message"].startswith("cancelled by")


def generations_create(api: Api, hook: str | None, **extra: Any) -> str:
    body = {"user_prompt": "a lighthouse in a storm", **extra}
    if hook:
        body["notify_hook"] = hook
    answer = api.post("/luma/generations", body)
    assert answer.status_code == 201, answer.text
    task_id: str = answer.json()["id"]
    return task_id


def generations_cancel(api: Api, task_id: str) -> httpx.Response:
    return api.post(f"/luma/generations/{task_id}/cancel", {})


def generations_is_cancelled(obj: dict[str, Any]) -> None:
    assert obj["state"] == "failed" and obj["failure_code"] == "cancelled"
    assert obj["failure_reason"].startswith("cancelled by") and obj["video"] is None


def official_create(api: Api, hook: str | None, **extra: Any) -> str:
    body = {"model": "ray-2", "prompt": "a lighthouse in a storm", **extra}
    if hook:
        body["callback_url"] = hook
    answer = api.post(OFFICIAL, body)
    assert answer.status_code == 201, answer.text
    task_id: str = answer.json()["id"]
    return task_id


def official_cancel(api: Api, task_id: str) -> httpx.Response:
    return api.client.delete(f"{OFFICIAL}/{task_id}")


def official_is_cancelled(generation: dict[str, Any]) -> None:
    assert generation["state"] == "failed" and generation["assets"]["video"] is None
    assert generation["failure_reason"].startswith("cancelled by the client")


DIALECTS: dict[str, tuple[Callable[..., str], Callable[..., httpx.Response], Callable[..., None]]]
DIALECTS = {
    "acedata": (acedata_create, acedata_cancel, acedata_is_cancelled),
    "generations": (generations_create, generations_cancel, generations_is_cancelled),
    "official": (official_create, official_cancel, official_is_cancelled),
}


def cancel_answer_says_cancelled(dialect: str, answer: httpx.Response) -> None:
    """The answer to the cancel itself."""
    if dialect == "official":
        assert answer.status_code == 204, answer.text
        return
    assert answer.status_code == 200, answer.text
    if dialect == "acedata":
        acedata_is_cancelled(answer.json()["response"])
    else:
        generations_is_cancelled(answer.json())


def refused_as_finished(dialect: str, answer: httpx.Response, state: str) -> None:
    """A second cancel, in the dialect's error shape: 409 naming the state."""
    assert answer.status_code == 409, answer.text
    body = answer.json()
    if dialect == "acedata":
        assert body["success"] is False and body["error"]["code"] == "conflict"
        message = body["error"]["message"]
    else:
        assert body["code"] == 409 and body["data"] is None
        message = body["message"]
    assert f"is {state} already" in message and "only a queued or running task" in message


def read_state(api: Api, task_id: str) -> str:
    """The neutral state, read through the official dialect (any dialect's
    task reads there with the same token): dreaming is running."""
    state: str = api.client.get(f"{OFFICIAL}/{task_id}").json()["state"]
    return state


def wait_state(api: Api, task_id: str, states: set[str], timeout: float = 60) -> float:
    """Poll until the task is in one of `states`; the monotonic time it was seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if read_state(api, task_id) in states:
            return time.monotonic()
        time.sleep(0.02)
    raise AssertionError(f"task {task_id} never reached {states}")


# Fast: queued tasks on an app without workers (nothing starts them)


@pytest.fixture(scope="module")
def idle_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    with in_process(tmp_path_factory.mktemp("idle") / "data", workers=0) as app:
        yield app


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_cancel_a_queued_task_in_each_dialect(
    idle_app: InProcess, peer: Peer, dialect: str
) -> None:
    create, cancel, is_cancelled = DIALECTS[dialect]
    api = Api(idle_app, idle_app.create_token(f"queued-{dialect}"))
    task_id = create(api, peer.url("/hook"))

    answer = cancel(api, task_id)
    cancel_answer_says_cancelled(dialect, answer)
    (callback,) = peer.wait_posts("/hook", timeout=30)
    is_cancelled(callback["json"])
    generation = api.client.get(f"{OFFICIAL}/{task_id}")
    if dialect == "official":  # deleted: gone at once, as the official API's delete is
        assert generation.status_code == 404
        assert cancel(api, task_id).status_code == 404
        listed = api.client.get(OFFICIAL, params={"limit": 100}).json()["generations"]
        assert task_id not in [g["id"] for g in listed]
    else:
        assert generation.status_code == 200, "a cancelled task stays readable"
        official_is_cancelled(generation.json())
        refused_as_finished(dialect, cancel(api, task_id), "cancelled")
    assert cancel(api, "00000000-0000-0000-0000-000000000000").status_code == 404


def test_a_cancelled_task_is_fenced_against_the_worker_that_ran_it(db: Database) -> None:
    """The run's later writes (heartbeat, complete, fail) find no lease, so a
    cancelled task is never brought back; a finished one cannot be cancelled."""
    store = TaskStore(db)
    owner = TokenStore(db).create("owner")[0].id
    task = new_task(
        store, owner, callback_url="http://127.0.0.1:9/hook", callback_dialect="acedata"
    )
    claimed = store.claim(lease_seconds=60, max_attempts=3)
    assert claimed is not None and claimed.id == task.id and claimed.lease_owner
    cancelled = store.cancel(task.id, "cancelled by the client")
    assert cancelled is not None and cancelled.state is State.CANCELLED
    assert cancelled.finished_at is not None and cancelled.lease_owner is None

    lease = claimed.lease_owner
    assert not store.heartbeat(task.id, lease, 60, 0.5)
    asset = Asset(key=f"{task.id}/run/video.mp4", width=960, height=544, content_type="video/mp4")
    result = TaskResult(video=asset, thumbnail=asset, last_frame=asset)
    assert not store.complete(task.id, lease, result)
    assert not store.fail(task.id, lease, "too late")
    after = store.get(task.id)
    assert after is not None and after.state is State.CANCELLED and after.result is None
    assert after.failure_reason == "cancelled by the client"
    assert store.cancel(task.id, "again") is None, "a finished task is not cancelled twice"
    assert store.claim(lease_seconds=60, max_attempts=3) is None

    from reelgate.store.callbacks import CallbackStore

    (delivery,) = CallbackStore(db).for_tasks([task.id])[task.id]
    assert delivery.event == "cancelled"


# Slow: a render that is running, on an app with one worker


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    with in_process(tmp_path_factory.mktemp("one") / "data", workers=1) as app:
        yield app


def published_videos(app: InProcess, task_id: str) -> list[str]:
    return [k for k in app.runtime.storage.list_keys(task_id) if k.endswith(".mp4")]


@pytest.mark.slow
@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_cancel_a_running_render_in_each_dialect(
    one_worker: InProcess, peer: Peer, dialect: str
) -> None:
    create, cancel, is_cancelled = DIALECTS[dialect]
    api = Api(one_worker, one_worker.create_token(f"running-{dialect}"))
    task_id = create(api, peer.url("/hook"), **LONG)
    wait_state(api, task_id, {"dreaming"})
    time.sleep(0.3)  # well into its frames
    following = create(api, None)  # waits for the one worker

    asked = time.monotonic()
    answer = cancel(api, task_id)
    cancel_answer_says_cancelled(dialect, answer)
    if dialect == "official":  # deleted: gone at once; the row stays, hidden, for the callback
        assert api.client.get(f"{OFFICIAL}/{task_id}").status_code == 404
        hidden = one_worker.runtime.tasks.get(task_id)
        assert hidden is not None and hidden.state is State.CANCELLED
    else:
        official_is_cancelled(api.client.get(f"{OFFICIAL}/{task_id}").json())
    # The one worker took the next task: the render stopped within 2 s.
    started = wait_state(api, following, {"dreaming", "completed"}, timeout=10)
    assert started - asked < 2.0, f"the render went on for {started - asked:.2f} s"
    wait_state(api, following, {"completed"})

    assert published_videos(one_worker, task_id) == []
    after = one_worker.runtime.tasks.get(task_id)
    assert after is not None and after.state is State.CANCELLED, (
        "the stopped run did not bring it back"
    )
    posts = peer.wait_posts("/hook", count=2 if dialect == "official" else 1, timeout=30)
    is_cancelled(posts[-1]["json"])  # official: `dreaming` first, then this
    if dialect == "official":
        assert posts[0]["json"]["state"] == "dreaming"
        assert api.client.get(f"{OFFICIAL}/{task_id}").status_code == 404, "deleted"
        # DELETE of a completed generation deletes it, as before
        assert cancel(api, following).status_code == 204
        assert api.client.get(f"{OFFICIAL}/{following}").status_code == 404
    else:
        refused_as_finished(dialect, cancel(api, following), "completed")


@pytest.mark.slow
def test_a_sync_acedata_call_whose_task_is_cancelled_answers_409(one_worker: InProcess) -> None:
    """Someone else (the same token, or an operator) cancels the task a sync
    `/luma/videos` call is waiting for: the call ends at once, saying so."""
    import threading

    api = Api(one_worker, one_worker.create_token("sync"))
    answers: list[httpx.Response] = []
    waiter = threading.Thread(
        target=lambda: answers.append(api.post("/luma/videos", {"prompt": "sea", **LONG}))
    )
    waiter.start()
    deadline = time.monotonic() + 30
    task = None
    while task is None and time.monotonic() < deadline:
        owner = one_worker.runtime.tokens.authenticate(api.token)
        assert owner is not None
        tasks, _ = one_worker.runtime.service.list(owner.id, 1, 0)
        task = tasks[0] if tasks else None
        time.sleep(0.05)
    assert task is not None
    wait_state(api, task.id, {"dreaming"})
    assert acedata_cancel(api, task.id).status_code == 200
    waiter.join(10)
    (answer,) = answers
    assert answer.status_code == 409
    body = answer.json()
    assert body["error"]["code"] == "conflict" and body["task_id"] == task.id
    assert body["error"]["message"] == "cancelled by the client"


@pytest.mark.slow
def test_cancelling_a_luma_task_cancels_its_generation_upstream(tmp_path: Path, peer: Peer) -> None:
    """A gateway in front of another reelgate: cancelling the gateway's task
    cancels the upstream generation (the upstream's DELETE of a dreaming
    generation stops its render), and the gateway's follower lets it go."""
    with running(Server(tmp_path / "up" / "data", workers=1)) as upstream:
        key = upstream.create_token("gateway")
        with in_process(
            tmp_path / "down" / "data",
            workers=1,
            public_base_url=None,  # the upstream is polled, not given callback links
            default_engine="luma",
            luma_api_keys=key,
            luma_base_url=upstream.url + "/dream-machine/v1",
            luma_poll_seconds=0.2,
            luma_poll_max_seconds=1.0,
        ) as down:
            api = Api(down, down.create_token("app"))
            task_id = generations_create(api, peer.url("/hook"), **LONG)
            deadline = time.monotonic() + 60
            upstream_id = None
            while upstream_id is None and time.monotonic() < deadline:
                task = down.runtime.tasks.get(task_id)
                upstream_id = task.upstream_id if task else None
                time.sleep(0.05)
            assert upstream_id is not None, "the gateway never created upstream"
            up = Api(upstream, key)
            wait_state(up, upstream_id, {"dreaming"})

            generations_is_cancelled(generations_cancel(api, task_id).json())
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                seen = up.client.get(f"{OFFICIAL}/{upstream_id}")
                if seen.status_code == 404 or seen.json()["state"] == "failed":
                    break  # cancelled there (and then deleted by the follower)
                time.sleep(0.1)
            else:
                raise AssertionError("the upstream generation was not cancelled")
            (callback,) = peer.wait_posts("/hook", timeout=30)
            generations_is_cancelled(callback["json"])
            assert published_videos(down, task_id) == []


def test_a_deleted_unfinished_task_is_removed_once_its_callback_had_its_time(
    idle_app: InProcess, peer: Peer
) -> None:
    """Hidden at once; its row (and outbox) stays for the callback window,
    then the janitor's pass removes it."""
    api = Api(idle_app, idle_app.create_token("purge"))
    task_id = official_create(api, peer.url("/purged"))
    assert official_cancel(api, task_id).status_code == 204
    peer.wait_posts("/purged", timeout=30)
    rt = idle_app.runtime
    hidden = rt.tasks.get(task_id)
    assert hidden is not None and hidden.deleted_at is not None
    assert rt.retention.purge_deleted() == 0, "kept within the callback window"
    assert rt.retention.purge_deleted(now=hidden.deleted_at + rt.retention.deleted_grace + 1) >= 1
    assert rt.tasks.get(task_id) is None
