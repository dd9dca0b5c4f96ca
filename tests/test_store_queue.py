"""The task table as a queue, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from reelgate.domain.models import Asset, FailureCode, State, TaskResult
from reelgate.store.callbacks import CallbackStore
from reelgate.store.db import Database
from reelgate.store.follow import FollowStore
from reelgate.store.tasks import TaskStore
from reelgate.store.tokens import TokenStore
from reelgate.testing import new_task


@pytest.fixture
def owner(db: Database) -> str:
    info, _ = TokenStore(db).create("owner")
    return info.id


def result_for(task_id: str) -> TaskResult:
    asset = Asset(key=f"{task_id}/run/video.mp4", width=960, height=544, content_type="video/mp4")
    return TaskResult(video=asset, thumbnail=asset, last_frame=asset)


def test_migrate_is_idempotent(db: Database) -> None:
    db.migrate()
    db.migrate()


def test_concurrent_claims_never_hand_out_a_task_twice(db: Database, owner: str) -> None:
    store = TaskStore(db)
    ids = {new_task(store, owner).id for _ in range(30)}
    claimed: list[str] = []
    lock = threading.Lock()

    def claimer() -> None:
        while True:
            task = store.claim(lease_seconds=60, max_attempts=3)
            if task is None:
                return
            with lock:
                claimed.append(task.id)

    threads = [threading.Thread(target=claimer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counter(claimed).most_common(1)[0][1] == 1
    assert set(claimed) == ids


def test_claim_takes_oldest_first_and_marks_running(db: Database, owner: str) -> None:
    store = TaskStore(db)
    first = new_task(store, owner)
    new_task(store, owner)
    task = store.claim(lease_seconds=60, max_attempts=3)
    assert task is not None and task.id == first.id
    assert task.state is State.RUNNING and task.attempts == 1 and task.lease_owner
    assert task.started_at is not None


def test_expired_lease_returns_task_to_the_queue(db: Database, owner: str) -> None:
    store = TaskStore(db)
    created = new_task(store, owner)
    first = store.claim(lease_seconds=0.2, max_attempts=3)
    assert first is not None
    assert store.claim(lease_seconds=0.2, max_attempts=3) is None  # lease still held
    time.sleep(0.3)
    second = store.claim(lease_seconds=60, max_attempts=3)
    assert second is not None and second.id == created.id
    assert second.attempts == 2 and second.lease_owner != first.lease_owner


def test_heartbeat_keeps_the_lease(db: Database, owner: str) -> None:
    store = TaskStore(db)
    new_task(store, owner)
    task = store.claim(lease_seconds=0.3, max_attempts=3)
    for _ in range(4):
        time.sleep(0.15)
        assert store.heartbeat(task.id, task.lease_owner, 0.3, progress=0.5)
    assert store.claim(lease_seconds=0.3, max_attempts=3) is None
    assert store.get(task.id).progress == pytest.approx(0.5)


def test_lease_expiring_past_max_attempts_fails_with_a_reason(db: Database, owner: str) -> None:
    store = TaskStore(db)
    created = new_task(store, owner)
    for _ in range(2):
        assert store.claim(lease_seconds=0.05, max_attempts=2) is not None
        time.sleep(0.1)
    assert store.claim(lease_seconds=0.05, max_attempts=2) is None
    task = store.get(created.id)
    assert task.state is State.FAILED
    assert task.failure_code is FailureCode.INTERNAL
    assert "stopped responding 2 times" in task.failure_reason


def test_a_superseded_worker_cannot_overwrite_the_result(db: Database, owner: str) -> None:
    store = TaskStore(db)
    new_task(store, owner)
    stale = store.claim(lease_seconds=0.05, max_attempts=3)
    time.sleep(0.1)
    fresh = store.claim(lease_seconds=60, max_attempts=3)
    assert not store.heartbeat(stale.id, stale.lease_owner, 60)
    assert store.complete(fresh.id, fresh.lease_owner, result_for(fresh.id))
    assert not store.complete(stale.id, stale.lease_owner, result_for("other"))
    assert not store.fail(stale.id, stale.lease_owner, "late failure")
    task = store.get(fresh.id)
    assert task.state is State.COMPLETED
    assert task.result.video.key == f"{fresh.id}/run/video.mp4"


def test_finishing_queues_the_callback_in_the_same_transaction(db: Database, owner: str) -> None:
    store, outbox = TaskStore(db), CallbackStore(db)
    with_cb = new_task(
        store, owner, callback_url="http://127.0.0.1:9/hook", callback_dialect="acedata"
    )
    new_task(store, owner)  # no callback
    for _ in range(2):
        task = store.claim(lease_seconds=60, max_attempts=3)
        store.complete(task.id, task.lease_owner, result_for(task.id))
    due = outbox.claim_due(limit=10, lease_seconds=30)
    assert [(d.task_id, d.event, d.url) for d in due] == [
        (with_cb.id, "completed", "http://127.0.0.1:9/hook")
    ]
    assert outbox.claim_due(limit=10, lease_seconds=30) == []  # leased
    outbox.record_attempt(due[0].id, ok=False, status=503, error="down", retry_at=time.time())
    again = outbox.claim_due(limit=10, lease_seconds=30)
    assert len(again) == 1 and again[0].attempts == 1
    outbox.record_attempt(again[0].id, ok=True, status=200, error=None, retry_at=None)
    [delivery] = outbox.for_task(with_cb.id)
    assert delivery.state == "delivered" and delivery.attempts == 2


def test_retry_later_requeues_with_backoff_then_gives_up(db: Database, owner: str) -> None:
    store = TaskStore(db)
    created = new_task(store, owner)
    task = store.claim(lease_seconds=60, max_attempts=2)
    assert store.retry_later(task.id, task.lease_owner, "boom", delay=0.2, max_attempts=2)
    assert store.claim(lease_seconds=60, max_attempts=2) is None  # not due yet
    time.sleep(0.25)
    task = store.claim(lease_seconds=60, max_attempts=2)
    assert task is not None and task.attempts == 2
    store.retry_later(task.id, task.lease_owner, "boom", delay=0, max_attempts=2)
    final = store.get(created.id)
    assert final.state is State.FAILED and "gave up after 2 attempts" in final.failure_reason


def test_tokens_are_hashed_and_owner_scoped(db: Database) -> None:
    tokens, store = TokenStore(db), TaskStore(db)
    alice, secret = tokens.create("alice")
    bob, _ = tokens.create("bob")
    assert tokens.authenticate(secret).id == alice.id
    assert tokens.authenticate(secret + "x") is None
    task = new_task(store, alice.id)
    assert store.get_owned(alice.id, task.id) is not None
    assert store.get_owned(bob.id, task.id) is None
    assert store.get_many_owned(bob.id, [task.id]) == []
    assert store.find_by_video_id(bob.id, task.video_id) is None
    assert tokens.revoke("alice") == 1
    assert tokens.authenticate(secret) is None
    from sqlalchemy import text

    with db.read() as s:
        stored = s.execute(text("SELECT token_hash FROM tokens")).scalars().all()
    assert secret not in stored


def test_a_task_handed_back_keeps_its_attempts_and_starts_once(db: Database, owner: str) -> None:
    """A worker that shuts down hands its task back: no attempt used up, and the
    next claim does not send the start callback again."""
    store, callbacks = TaskStore(db), CallbackStore(db)
    task = new_task(
        store,
        owner,
        callback_url="http://127.0.0.1:9/hook",
        callback_dialect="official",
        callback_on_start=True,
    )
    first = store.claim(lease_seconds=60, max_attempts=3)
    assert not store.release(task.id, "not-the-lease")  # fenced
    assert store.release(task.id, first.lease_owner)
    queued = store.get(task.id)
    assert (queued.state, queued.attempts) == (State.QUEUED, 0)
    second = store.claim(lease_seconds=60, max_attempts=3)
    assert second.id == task.id and second.attempts == 1
    assert [d.event for d in callbacks.for_task(task.id)] == ["running"]


def test_delete_returns_the_task_as_it_was(db: Database, owner: str) -> None:
    """Deleting reads the row under the same lock: an upstream id recorded a
    moment earlier is seen, so the generation can be cancelled."""
    store = TaskStore(db)
    task = new_task(store, owner, engine="luma")
    claimed = store.claim(lease_seconds=60, max_attempts=3)
    assert FollowStore(db).remember(task.id, claimed.lease_owner, "gen-9", "key", time.time())
    deleted = store.delete(task.id)
    assert deleted is not None and deleted.upstream_id == "gen-9"
    assert store.get(task.id) is None and store.delete(task.id) is None
    assert not FollowStore(db).remember(task.id, claimed.lease_owner, "gen-10", "key", 0.0)


def test_the_migrations_build_exactly_the_models_schema(db: Database) -> None:
    """Every table, column and index the models declare is made by a migration."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from reelgate.store.schema import Base

    with db.write_engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diffs == []
