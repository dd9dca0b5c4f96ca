"""The luma engine against upstreams that cannot answer: a real refused
connection (nothing listens), driven through the engine's own entry point
with a follow context like the worker's."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from reelgate.domain.errors import Unavailable
from reelgate.engines.base import LeaseLost, UpstreamJob, WorkerStopping
from reelgate.engines.luma import LumaConfig, LumaEngine, unreachable_inputs
from reelgate.store.db import Database
from reelgate.store.follow import FollowStore
from reelgate.store.tasks import TaskStore
from reelgate.store.tokens import TokenStore
from reelgate.store.upstream_keys import UpstreamKeyStore
from reelgate.testing import new_task


class Context:
    """The worker's follow context, on a real task store."""

    def __init__(self, tasks: TaskStore, task_id: str, lease_owner: str) -> None:
        self.tasks, self.task_id, self.lease_owner = tasks, task_id, lease_owner
        self.follows = FollowStore(tasks.db)
        self.stopping = threading.Event()
        self.creates = 0
        self.create_times: list[float] = []

    def progress(self, value: float) -> None:
        pass

    def remember(self, upstream_id: str, key_id: str, submitted_at: float) -> None:
        if not self.follows.remember(
            self.task_id, self.lease_owner, upstream_id, key_id, submitted_at
        ):
            raise LeaseLost()

    def check(self) -> None:
        if self.stopping.is_set():
            raise WorkerStopping()

    async def wait(self, seconds: float) -> None:
        self.check()
        await asyncio.sleep(seconds)

    def count_unclear_create(self) -> int:
        return self.follows.count_unclear_create(self.task_id, self.lease_owner) or 0

    @contextmanager
    def uninterruptible(self) -> Iterator[None]:
        self.creates += 1
        self.create_times.append(time.monotonic())
        yield

    def deleted(self) -> bool:
        return self.tasks.get(self.task_id) is None


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: connections are refused


@pytest.fixture
def setup(tmp_path: Path):
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.migrate()
    owner, _ = TokenStore(db).create("o")
    tasks = TaskStore(db)
    new_task(tasks, owner.id, engine="luma")
    task = tasks.claim(lease_seconds=60, max_attempts=3)
    engine = LumaEngine(
        LumaConfig(
            base_url=f"http://127.0.0.1:{closed_port()}/dream-machine/v1",
            keys=["key-one-1234"],
            poll=0.05,
            poll_max=0.1,
            timeout=1.0,
            request_timeout=2.0,
        ),
        UpstreamKeyStore(db),
    )
    job = UpstreamJob(
        task_id=task.id,
        prompt="p",
        model="ray-2",
        aspect_ratio="16:9",
        resolution="540p",
        duration="5s",
        loop=False,
        workdir=tmp_path,
    )
    yield engine, job, Context(tasks, task.id, task.lease_owner), tasks
    db.dispose()


def test_refused_connections_wait_for_the_upstream_instead_of_giving_up(setup) -> None:
    """A refused connection proves nothing was created, so it does not count
    toward the cap on creates that may have cost a duplicate."""
    engine, job, ctx, tasks = setup
    with pytest.raises(Unavailable, match="in time"):
        engine.produce(job, ctx)
    assert ctx.creates > 3  # retried past the unclear-create cap
    task = tasks.get(job.task_id)
    assert task.upstream_id is None


def test_no_create_starts_once_the_worker_is_stopping(setup) -> None:
    engine, job, ctx, _tasks = setup
    ctx.stopping.set()
    started = time.monotonic()
    with pytest.raises(WorkerStopping):
        engine.produce(job, ctx)
    assert ctx.creates == 0 and time.monotonic() - started < 1


@pytest.mark.slow  # over a second: the slow tier
def test_a_key_resting_after_an_outage_is_tried_again_within_seconds(setup) -> None:
    """Two refused creates rest the only key for 300 s; the task keeps probing
    it on a growing backoff instead, so it would see the upstream come back."""
    engine, job, ctx, tasks = setup
    engine = LumaEngine(
        replace(engine.config, failure_limit=2, cooldown=300, key_probe=0.05, timeout=1.8),
        engine.keys,
    )
    with pytest.raises(Unavailable, match="in time"):
        engine.produce(job, ctx)
    assert ctx.creates >= 4  # two that rested the key, then probes
    gaps = [b - a for a, b in zip(ctx.create_times[2:], ctx.create_times[3:], strict=False)]
    assert all(gap < 1.5 for gap in gaps)  # not the cool-down
    [key] = UpstreamKeyStore(tasks.db).statuses()
    assert not key.usable and key.failures == ctx.creates  # each failed probe counted


OURS = "https://gw.example/assets/t1/inputs/start.png?expires=1&signature=abc"
THEIRS = "https://images.example/cat.png"


@pytest.mark.parametrize(
    ("reason", "sent", "blamed"),
    [
        # the official API does not say which keyframe it could not read
        ("Failed to read user input frames", [OURS], [OURS]),
        ("Failed to read user input frames", [OURS, THEIRS], [OURS, THEIRS]),
        # another reelgate names the link (shortened to 200 characters)
        (f"{OURS[:200]} answered HTTP 503", [OURS, THEIRS], [OURS]),
        (f"cannot fetch {THEIRS}: ConnectError", [OURS, THEIRS], [THEIRS]),
        ("cannot fetch https://elsewhere.example/x.png: ConnectError", [OURS], []),
        # not about fetching: never tried again for this
        ("Frame moderation failed", [OURS], []),
        (f"{OURS} is larger than 10485760 bytes", [OURS], []),
        ("Failed to read user input frames", [], []),
    ],
)
def test_which_inputs_a_failed_generation_could_not_fetch(
    reason: str, sent: list[str], blamed: list[str]
) -> None:
    """The worker makes a new generation only when every link blamed is its own."""
    assert unreachable_inputs(reason, sent) == blamed
