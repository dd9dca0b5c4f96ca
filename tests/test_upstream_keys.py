"""The upstream key pool on SQLite and PostgreSQL: spreading creates over keys,
per-key limits, keys set aside and put back, fencing on the task's lease."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import update

from reelgate.domain.errors import NoUsableKey
from reelgate.domain.keys import fingerprint
from reelgate.domain.retry import Backoff
from reelgate.domain.types import Reservation
from reelgate.store.db import Database
from reelgate.store.follow import FollowStore
from reelgate.store.schema import UpstreamKeyRow
from reelgate.store.tasks import TaskStore
from reelgate.store.tokens import TokenStore
from reelgate.store.upstream_keys import UpstreamKeyStore
from reelgate.testing import new_task

KEYS = ["luma-key-aaaa-1111", "luma-key-bbbb-2222"]
A, B = (fingerprint(k) for k in KEYS)


@pytest.fixture
def tasks(db: Database) -> TaskStore:
    return TaskStore(db)


@pytest.fixture
def keys(db: Database) -> UpstreamKeyStore:
    store = UpstreamKeyStore(db)
    store.register("luma", KEYS)
    store.register("luma", KEYS)  # idempotent
    return store


@pytest.fixture
def running_task(db: Database, tasks: TaskStore):
    """Makes a luma task and claims it, as a follower would before a create."""
    owner, _ = TokenStore(db).create("owner")

    def make():
        new_task(tasks, owner.id, engine="luma")
        return tasks.claim(lease_seconds=60, max_attempts=3)

    return make


def reserve(keys: UpstreamKeyStore, task, max_in_flight: int = 10, per_minute: int = 20):
    return keys.reserve(
        task.id, task.lease_owner, [A, B], max_in_flight=max_in_flight, per_minute=per_minute
    )


def test_creates_spread_over_the_least_busy_key(keys, running_task) -> None:
    chosen = [reserve(keys, running_task()).key_id for _ in range(4)]
    assert sorted(chosen) == sorted([A, A, B, B])
    assert {s.id: s.in_flight for s in keys.statuses()} == {A: 2, B: 2}
    assert all(s.label.startswith("...") and len(s.label) == 7 for s in keys.statuses())


def test_concurrency_limit_per_key(tasks, keys, running_task) -> None:
    first, second, third = running_task(), running_task(), running_task()
    assert reserve(keys, first, max_in_flight=1).key_id
    assert reserve(keys, second, max_in_flight=1).key_id
    full = reserve(keys, third, max_in_flight=1)
    assert full.key_id is None and full.wait > 0 and "limit" in full.why
    # a finished task frees its key's slot
    tasks.fail(first.id, first.lease_owner, "done")
    assert reserve(keys, third, max_in_flight=1).key_id is not None


def test_creates_per_minute_per_key(tasks, keys, running_task) -> None:
    for _ in range(4):
        task = running_task()
        assert reserve(keys, task, per_minute=2).key_id
        tasks.fail(task.id, task.lease_owner, "done")  # in flight does not limit here
    blocked = reserve(keys, running_task(), per_minute=2)
    assert blocked.key_id is None
    assert 55 < blocked.wait <= 60  # until the oldest create leaves the minute


def test_a_refused_key_is_set_aside_for_good_and_reported(keys, running_task) -> None:
    keys.set_aside(A, "was refused by the upstream (HTTP 401: invalid token)")
    assert {reserve(keys, running_task()).key_id for _ in range(3)} == {B}
    keys.set_aside(B, "was refused by the upstream (HTTP 401: invalid token)")
    with pytest.raises(NoUsableKey, match="401"):
        reserve(keys, running_task())
    assert [s.usable for s in keys.statuses()] == [False, False]
    assert keys.reset() == 2
    assert reserve(keys, running_task()).key_id is not None


def test_a_success_does_not_bring_back_a_refused_key(keys, running_task) -> None:
    keys.failed(A, "HTTP 500", limit=5, cooldown=1)
    keys.set_aside(A, "was refused by the upstream (HTTP 401: invalid token)")
    keys.succeeded(A)
    assert {reserve(keys, running_task()).key_id for _ in range(2)} == {B}


def test_processes_starting_together_register_keys_once(database_url: str, db) -> None:
    import threading

    more = [f"luma-key-{i:04d}-xyz" for i in range(20)]
    errors: list[BaseException] = []

    def start() -> None:
        other = Database(database_url)
        try:
            UpstreamKeyStore(other).register("luma", more)
        except BaseException as exc:
            errors.append(exc)
        finally:
            other.dispose()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(UpstreamKeyStore(db).statuses()) == 20


@pytest.mark.slow  # runs the CLI in a process
def test_keys_never_show_in_settings_or_configuration_errors(tmp_path) -> None:
    import subprocess
    import sys

    from reelgate.config import Settings

    secret = "luma-secret-key-that-must-not-leak"
    settings = Settings(data_dir=tmp_path, luma_api_keys=f"{secret},another-key-0000")
    assert secret not in repr(settings) and secret not in str(settings.model_dump())
    assert settings.luma_api_keys[0].get_secret_value() == secret
    broken = subprocess.run(
        [sys.executable, "-m", "reelgate.cli", "upstream-keys"],
        capture_output=True,
        text=True,
        env={
            "REELGATE_LUMA_API_KEYS": f'["{secret}"',
            "REELGATE_DATA_DIR": str(tmp_path),
            "PATH": "",
        },
        timeout=60,
    )
    assert broken.returncode == 2
    assert "luma_api_keys" in broken.stderr and secret[:12] not in broken.stderr


def test_a_key_that_keeps_failing_rests_then_returns(keys, running_task) -> None:
    assert not keys.failed(A, "HTTP 500", limit=2, cooldown=0.3)
    keys.succeeded(A)  # a success clears the count
    assert not keys.failed(A, "HTTP 500", limit=2, cooldown=0.3)
    assert keys.failed(A, "HTTP 502", limit=2, cooldown=0.3)
    [status] = [s for s in keys.statuses() if s.id == A]
    assert not status.usable and "failed 2 times in a row" in status.set_aside_reason
    assert {reserve(keys, running_task()).key_id for _ in range(2)} == {B}
    time.sleep(0.35)
    assert A in {reserve(keys, running_task()).key_id for _ in range(3)}


def test_all_keys_resting_means_wait_not_fail(keys, running_task) -> None:
    for key in (A, B):
        keys.set_aside(
            key, "is rate limited by the upstream for 5 s (HTTP 429)", until=time.time() + 5
        )
    waiting = reserve(keys, running_task())
    assert waiting.key_id is None and 4 < waiting.wait <= 5


def test_reservation_is_fenced_on_the_lease(tasks, keys, running_task) -> None:
    task = running_task()
    lost = keys.reserve(task.id, "someone-else", [A, B], max_in_flight=10, per_minute=20)
    assert lost.key_id is None and lost.why == "lease lost"
    assert tasks.get(task.id).upstream_key is None
    assert FollowStore(tasks.db).remember(task.id, task.lease_owner, "gen-1", A, time.time())
    assert not FollowStore(tasks.db).remember(task.id, "someone-else", "gen-2", A, time.time())
    assert tasks.get(task.id).upstream_id == "gen-1"


def test_render_workers_and_upstream_followers_claim_separately(tasks, db) -> None:
    owner, _ = TokenStore(db).create("o2")
    new_task(tasks, owner.id, engine="luma")
    new_task(tasks, owner.id, engine="preview")
    render = tasks.claim(60, 3, exclude=["luma"])
    follow = tasks.claim(60, 3, only=["luma"])
    assert (render.engine, follow.engine) == ("preview", "luma")
    assert tasks.claim(60, 3, only=["luma"]) is None


# Probing keys that rest after failures

PROBE = Backoff(30.0, 2.0, 300)
"""Probes 30 s apart, doubling: a test moves a key's clock back instead of
sleeping, so a loaded machine cannot make a probe come due early."""


def probe(keys: UpstreamKeyStore, task, ids=(A,)):
    return keys.reserve(
        task.id,
        task.lease_owner,
        list(ids),
        max_in_flight=10,
        per_minute=20,
        probe=PROBE,
        failure_limit=2,
    )


def rest_after_failures(keys: UpstreamKeyStore, key: str) -> None:
    keys.failed(key, "ConnectError: connection refused", limit=2, cooldown=300)
    assert keys.failed(key, "ConnectError: connection refused", limit=2, cooldown=300)


def rested(keys: UpstreamKeyStore, key: str, seconds: float) -> None:
    """As if the key's last failure or probe were `seconds` further back."""
    with keys.db.write() as s:
        s.execute(
            update(UpstreamKeyRow)
            .where(UpstreamKeyRow.id == key)
            .values(updated_at=UpstreamKeyRow.updated_at - seconds)
        )


def test_a_key_resting_after_failures_is_probed_long_before_its_cooldown(
    keys, running_task
) -> None:
    rest_after_failures(keys, A)
    first, second = running_task(), running_task()
    waiting = probe(keys, first)
    assert waiting.key_id is None and 20 < waiting.wait <= 30  # not the 300 s cool-down
    rested(keys, A, 35)
    assert probe(keys, first) == Reservation(A, 0.0, "probe")
    held = probe(keys, second)  # one probe at a time
    assert held.key_id is None and 20 < held.wait <= 30
    assert not next(s for s in keys.statuses() if s.id == A).usable

    # The probe failed: the next one waits twice as long.
    assert keys.failed(A, "ConnectError: connection refused", limit=2, cooldown=300)
    rested(keys, A, 35)
    assert probe(keys, second).key_id is None
    rested(keys, A, 35)
    assert probe(keys, second) == Reservation(A, 0.0, "probe")

    # It went through: the key is back in use for every task, its count cleared.
    keys.succeeded(A)
    [status] = [s for s in keys.statuses() if s.id == A]
    assert status.usable and status.failures == 0 and status.set_aside_reason is None
    assert probe(keys, running_task()) == Reservation(A)


def test_the_key_that_rested_longest_is_probed_first(keys, running_task) -> None:
    rest_after_failures(keys, B)
    rest_after_failures(keys, A)
    rested(keys, B, 50)
    rested(keys, A, 40)
    assert probe(keys, running_task(), ids=(A, B)) == Reservation(B, 0.0, "probe")


def test_only_one_resting_key_is_probed_at_a_time(keys, running_task) -> None:
    """During an outage of the whole upstream, several resting keys do not
    each send a probe at once."""
    rest_after_failures(keys, B)
    rest_after_failures(keys, A)
    with keys.db.write() as s:  # both rested long enough for a 5 s probe delay
        s.execute(update(UpstreamKeyRow).values(updated_at=UpstreamKeyRow.updated_at - 10))
    slow = Backoff(5.0, 2.0, 300)
    got = [
        keys.reserve(
            (task := running_task()).id,
            task.lease_owner,
            [A, B],
            max_in_flight=10,
            per_minute=20,
            probe=slow,
            failure_limit=2,
        ).key_id
        for _ in range(4)
    ]
    assert got.count(None) == 3 and got.count(B) == 1


def test_rests_the_upstream_asked_for_are_not_probed(keys, running_task) -> None:
    rest_after_failures(keys, A)
    keys.set_aside(A, "is rate limited by the upstream for 5 s (HTTP 429)", time.time() + 5)
    keys.failed(A, "HTTP 502", limit=2, cooldown=300)  # does not cut the 429 short
    keys.succeeded(A)  # nor does a success
    rested(keys, A, 35)
    waiting = probe(keys, running_task())
    assert waiting.key_id is None and 4 < waiting.wait <= 5

    keys.set_aside(A, "was refused by the upstream (HTTP 401: invalid token)")
    rest_after_failures(keys, B)
    keys.set_aside(B, "was refused by the upstream (HTTP 401: invalid token)")
    with pytest.raises(NoUsableKey, match="401"):
        probe(keys, running_task(), ids=(A, B))


def test_workers_racing_for_a_probe_send_one(database_url: str, keys, running_task) -> None:
    import threading

    rest_after_failures(keys, A)
    tasks = [running_task() for _ in range(6)]
    rested(keys, A, 35)
    got: list[str | None] = []
    errors: list[BaseException] = []

    def worker(task) -> None:
        other = Database(database_url)
        try:
            got.append(probe(UpstreamKeyStore(other), task).key_id)
        except BaseException as exc:
            errors.append(exc)
        finally:
            other.dispose()

    threads = [threading.Thread(target=worker, args=(t,)) for t in tasks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert got.count(A) == 1 and got.count(None) == 5  # one probe, the rest wait
