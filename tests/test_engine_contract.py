"""The engine plug-in point, seen from both sides: what an engine declares is
refused before anything is queued, and how an engine's attempt fails decides,
in one place, whether the task is retried and what its failure reads as."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from reelgate.config import Settings
from reelgate.core.service import TaskService
from reelgate.domain.errors import (
    InvalidInput,
    InvalidRequest,
    TaskError,
    TimedOut,
    Unavailable,
    UpstreamFailed,
)
from reelgate.domain.models import FailureCode, GenerationRequest, State
from reelgate.domain.retry import Backoff
from reelgate.engines.base import Capabilities, FrameEngine, Input, ProgressFn, RenderJob
from reelgate.media.fetch import GuardedClient
from reelgate.media.probe import probe_video
from reelgate.storage.local import LocalStorage
from reelgate.store.db import Database
from reelgate.store.follow import FollowStore
from reelgate.store.tasks import TaskStore
from reelgate.store.tokens import TokenStore
from reelgate.store.uploads import UploadStore
from reelgate.testing import new_task
from reelgate.worker.inputs import InputResolver
from reelgate.worker.runner import Worker


class Scripted(FrameEngine):
    """A frame engine whose first attempts fail as scripted, then render grey."""

    name = "scripted"
    capabilities = Capabilities(
        durations=("5s",), aspect_ratios=("16:9", "1:1"), inputs=frozenset({Input.TEXT})
    )

    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.attempts = 0

    def model_label(self, requested: str | None) -> str:
        return "scripted-1"

    def render(self, job: RenderJob, progress: ProgressFn) -> Iterator[np.ndarray]:
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)
        for _ in range(job.num_frames):
            yield np.full((job.height, job.width, 3), 128, np.uint8)


@pytest.fixture
def world(tmp_path: Path):
    settings = Settings(
        data_dir=tmp_path,
        retry_backoff_seconds=0,
        max_attempts=3,
        encoder_preset="ultrafast",
        default_resolution="540p",
        default_engine="scripted",
    )
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.migrate()
    owner, _ = TokenStore(db).create("owner")
    tasks = TaskStore(db)
    storage = LocalStorage(tmp_path / "assets", "http://127.0.0.1:9")
    client = GuardedClient(settings.fetch_limits)
    yield settings, db, owner.id, tasks, storage, client
    client.close()
    db.dispose()


def run_until_done(world, failures: list[Exception]):
    settings, db, owner, tasks, storage, client = world
    engine = Scripted(failures)
    worker = Worker(
        settings,
        tasks,
        storage,
        {"scripted": engine},
        InputResolver(tasks, storage, client, settings, UploadStore(db)),
        FollowStore(db),
    )
    task = new_task(tasks, owner, engine="scripted", model="scripted-1")
    for _ in range(10):
        if not worker.run_once():
            break
    return tasks.get(task.id), engine, storage


def test_a_retryable_failure_is_retried_and_the_next_attempt_completes(world) -> None:
    done, engine, storage = run_until_done(world, [Unavailable("the GPU is busy", retryable=True)])
    assert done.state is State.COMPLETED and done.attempts == 2 and engine.attempts == 2
    info = probe_video(storage.path(done.result.video.key))
    assert (info.width, info.height, info.frames) == (960, 544, 121)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (UpstreamFailed("the upstream generation failed: moderation"), FailureCode.UPSTREAM),
        (TimedOut("did not finish within 6 s"), FailureCode.TIMEOUT),
        (InvalidInput("start image: not an image"), FailureCode.INVALID_INPUT),
        (Unavailable("no usable upstream API key"), FailureCode.UNAVAILABLE),
    ],
)
def test_a_final_failure_fails_at_once_with_its_category(world, error, code) -> None:
    done, engine, _ = run_until_done(world, [error])
    assert done.state is State.FAILED and engine.attempts == 1
    assert done.failure_code is code and done.failure_reason == error.args[0]


def test_retries_stop_after_max_attempts_and_keep_the_category(world) -> None:
    failures: list[Exception] = [Unavailable("busy", retryable=True) for _ in range(5)]
    done, engine, _ = run_until_done(world, failures)
    assert done.state is State.FAILED and engine.attempts == 3
    assert done.failure_code is FailureCode.UNAVAILABLE
    assert done.failure_reason == "busy (gave up after 3 attempts)"


def test_an_unexpected_error_is_internal_and_retried(world) -> None:
    done, engine, _ = run_until_done(world, [RuntimeError("boom")])
    assert done.state is State.COMPLETED and engine.attempts == 2


def test_task_errors_carry_their_category() -> None:
    assert not TaskError("x").retryable and TaskError("x").code is FailureCode.INTERNAL
    assert Unavailable("x", retryable=True).retryable
    assert InvalidInput("x").code is FailureCode.INVALID_INPUT


def test_one_backoff_policy() -> None:
    policy = Backoff(2.0, cap=600.0)
    assert [policy.delay(n) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]
    assert policy.delay(10_000) == 600.0 and policy.next(500.0) == 600.0
    assert Backoff(2.0, 1.5, 30.0).next(2.0) == 3.0


@pytest.mark.parametrize(
    ("request_", "lacks"),
    [
        (GenerationRequest(prompt="long", duration="9s"), "duration 9s (it supports 5s)"),
        (GenerationRequest(prompt="tall", aspect_ratio="9:16"), "aspect ratio 9:16"),
        (GenerationRequest(prompt="looped", loop=True), "loops"),
        (GenerationRequest(start_image="data:image/png;base64,AAAA"), "start images"),
    ],
)
def test_the_service_refuses_what_the_engine_does_not_declare(world, request_, lacks) -> None:
    settings, _, owner, tasks, _, _ = world
    service = TaskService(settings, tasks, {"scripted": Scripted([])})
    with pytest.raises(InvalidRequest, match="the scripted engine does not support") as refused:
        service.create(owner, request_, origin="official", origin_request={})
    assert lacks in refused.value.message
    assert tasks.list_owned(owner, 10, 0) == ([], 0), "nothing is queued"
    accepted = service.create(
        owner, GenerationRequest(prompt="fine"), origin="official", origin_request={}
    )
    assert (accepted.engine, accepted.model) == ("scripted", "scripted-1")
