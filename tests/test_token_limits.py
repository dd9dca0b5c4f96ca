"""Per-token limits kept with the token (`tokens.limits`): creates per minute,
tasks queued or running, tasks per day (429 with Retry-After), allowed
engines and models (403 naming them), and the queue priority the claim order
honours, aged so that a low-priority task is never passed over forever."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from reelgate.domain.types import TokenLimits
from reelgate.store.db import Database
from reelgate.store.queue import QueueStats
from reelgate.store.schema import TaskRow
from reelgate.store.tasks import TaskStore
from reelgate.store.tokens import TokenStore
from reelgate.store.usage import no_rate
from reelgate.testing import Api, InProcess, in_process, new_task

OFFICIAL = "/dream-machine/v1/generations"


@pytest.fixture(scope="module")
def idle_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    """No workers (tasks stay queued), the server's own limits off."""
    with in_process(tmp_path_factory.mktemp("limits") / "data", workers=0) as app:
        yield app


def limited(app: InProcess, name: str, limits: TokenLimits) -> Api:
    """A new token with these limits of its own."""
    info, secret = app.runtime.tokens.create(name)
    assert app.runtime.tokens.set_limits(info.id, limits) is not None
    return Api(app, secret)


def create(api: Api, prompt: str = "a quiet harbour") -> int:
    return api.post("/luma/videos", {"prompt": prompt, "async": True}).status_code


def test_creates_per_minute_of_the_token(idle_app: InProcess) -> None:
    api = limited(idle_app, "per-minute", TokenLimits(creates_per_minute=2))
    assert [create(api), create(api)] == [200, 200]
    refused = api.post("/luma/videos", {"prompt": "one too many", "async": True})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_requests"
    assert "more than 2 tasks and uploads per minute" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    other = Api(idle_app, idle_app.create_token("unlimited"))
    assert [create(other) for _ in range(3)] == [200] * 3, "the server's limit is off"


def test_tasks_queued_or_running_and_per_day(idle_app: InProcess) -> None:
    api = limited(idle_app, "active", TokenLimits(max_active=1))
    assert create(api) == 200
    refused = api.client.post(OFFICIAL, json={"model": "ray-2", "prompt": "second at once"})
    assert refused.status_code == 429 and refused.headers["retry-after"] == "5"
    assert "already has 1 tasks queued or running" in refused.json()["detail"]

    daily = limited(idle_app, "daily", TokenLimits(tasks_per_day=2))
    first = daily.post("/luma/generations", {"user_prompt": "one"}).json()["id"]
    assert daily.post(f"/luma/generations/{first}/cancel", {}).status_code == 200
    assert create(daily) == 200
    refused = daily.post("/luma/generations", {"user_prompt": "a third today"})
    assert refused.status_code == 429, "a cancelled task still counts toward the day"
    assert refused.json()["code"] == 429
    assert "created 2 tasks in the last 24 hours" in refused.json()["message"]
    assert 86_000 < int(refused.headers["retry-after"]) <= 86_400


def test_allowed_models_and_engines(idle_app: InProcess) -> None:
    models = limited(idle_app, "ray-2 only", TokenLimits(models=("ray-2",)))
    ok = models.client.post(OFFICIAL, json={"model": "ray-2", "prompt": "a lighthouse"})
    assert ok.status_code == 201, ok.text
    refused = models.client.post(OFFICIAL, json={"model": "ray-flash-2", "prompt": "a lighthouse"})
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        "this token may not use the model 'ray-flash-2' (it may use: ray-2)"
    )
    # a request naming no model is judged by the model its task would report
    unnamed = models.post("/luma/videos", {"prompt": "a lighthouse", "async": True})
    assert unnamed.status_code == 403 and unnamed.json()["error"]["code"] == "forbidden"
    assert "'reelgate-preview'" in unnamed.json()["error"]["message"]

    engines = limited(idle_app, "luma only", TokenLimits(engines=("luma",)))
    refused = engines.post("/luma/generations", {"user_prompt": "a lighthouse"})
    assert refused.status_code == 403 and refused.json()["code"] == 403
    assert refused.json()["message"] == (
        "this token may not use the engine 'preview' (it may use: luma)"
    )


def test_a_high_priority_tokens_later_task_is_claimed_first(idle_app: InProcess) -> None:
    """Through the API: a task gets its token's priority when it is created."""
    low = Api(idle_app, idle_app.create_token("low"))
    high = limited(idle_app, "high", TokenLimits(priority=5))
    tasks = idle_app.runtime.tasks
    while tasks.claim(60, 3) is not None:  # the tests before left tasks queued
        pass
    early = low.post("/luma/generations", {"user_prompt": "early but low"}).json()["id"]
    late = high.post("/luma/generations", {"user_prompt": "late but high"}).json()["id"]
    assert high.client.get(f"/luma/generations/{late}").json()["queue_state"]["position"] == 1
    assert low.client.get(f"/luma/generations/{early}").json()["queue_state"]["position"] == 2
    first, second = tasks.claim(60, 3), tasks.claim(60, 3)
    assert first is not None and first.id == late and first.priority == 5
    assert second is not None and second.id == early and second.priority == 0


def _created(db: Database, task_id: str, at: float) -> None:
    with db.write() as s:
        s.execute(update(TaskRow).where(TaskRow.id == task_id).values(created_at=at))


def test_claim_order_ages_priority(db: Database) -> None:
    """On SQLite and PostgreSQL: priority first, but a task gains a level per
    minute waited, so an old enough low-priority task goes before a newer
    high-priority one; the queue's positions follow the same order."""
    store = TaskStore(db, priority_aging_seconds=60)
    stats = QueueStats(db, cache_seconds=0, priority_aging_seconds=60)
    owner = TokenStore(db).create("owner")[0].id
    now = time.time()
    # effective rank = created_at - priority * 60 (smaller goes first)
    waited_long = new_task(store, owner, priority=0)  # 400 s ago: now - 400
    urgent = new_task(store, owner, priority=5)  # now: now - 300
    waited_some = new_task(store, owner, priority=0)  # 200 s ago: now - 200
    equal_older = new_task(store, owner, priority=2)  # 90 s ago: now - 210
    _created(db, waited_long.id, now - 400)
    _created(db, urgent.id, now)
    _created(db, waited_some.id, now - 200)
    _created(db, equal_older.id, now - 90)
    expected = [waited_long.id, urgent.id, equal_older.id, waited_some.id]

    snapshot = stats.snapshot(expected, {"preview": "render"})
    assert [snapshot.positions[i][1] for i in expected] == [1, 2, 3, 4]
    claimed = [store.claim(60, 3) for _ in expected]
    assert [t.id for t in claimed if t is not None] == expected
    assert store.claim(60, 3) is None


def test_usage_reads_the_day_and_the_tokens_own_limits(db: Database) -> None:
    """On SQLite and PostgreSQL: what the limits are checked against, read
    with the token's row locked in the inserting transaction."""
    tokens, store = TokenStore(db), TaskStore(db)
    owner = tokens.create("counted")[0].id
    limits = TokenLimits(tasks_per_day=3, models=("ray-2",), priority=-1)
    assert tokens.set_limits(owner, limits) is not None
    now = time.time()
    old, recent = new_task(store, owner), new_task(store, owner)
    _created(db, old.id, now - 90_000)  # more than a day ago
    _created(db, recent.id, now - 3_600)
    new_task(store, owner)

    usage = store.usage(owner, lambda limits: 10)
    assert usage.limits == limits and usage.active == 3
    assert usage.day == 2 and usage.day_oldest == pytest.approx(now - 3_600)
    assert len(usage.recent) == 1, "created in the last minute"
    more = [new_task(store, owner).created_at for _ in range(3)]
    newest = store.usage(owner, lambda limits: 2).recent
    assert newest == sorted(more)[-2:], "only as many of the newest as the rate check needs"
    assert store.usage(owner, no_rate).recent == []
    (info,) = tokens.find("counted")
    assert info.limits == limits
    assert tokens.set_limits(owner, TokenLimits()) is not None
    assert (
        tokens.find(owner)[0].limits == TokenLimits()
        and store.usage(owner, no_rate).limits == TokenLimits()
    )
