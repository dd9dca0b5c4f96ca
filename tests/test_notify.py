"""Push, not poll: on PostgreSQL a new task wakes an idle worker and a finished
one wakes a waiting client at once, whatever process made the change, even
after the listening connection was cut; a stopped worker hands its render
back at once; SQLite keeps working without notifications."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event, text

from reelgate.config import Settings
from reelgate.domain.models import FailureCode, State
from reelgate.engines.base import FrameEngine, ProgressFn, RenderJob
from reelgate.runtime import Runtime
from reelgate.store.db import Database
from reelgate.store.notify import (
    APPLICATION_NAME,
    CHANNELS,
    DONE_CHANNEL,
    WORK_CHANNEL,
    Listener,
)
from reelgate.store.tasks import TaskStore
from reelgate.store.tokens import TokenStore
from reelgate.store.usage import no_rate
from reelgate.testing import TEST_SETTINGS, Api, in_process, new_task

POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres)
LONG_POLL = 30.0
"""Polls so rare that anything sooner than this came from a notification."""
PROMPT = 3.0
"""What "at once" means here: well under the poll, with room for a busy machine."""


def _runtime(tmp_path: Path, database_url: str | None = None) -> Runtime:
    return Runtime(
        Settings(
            **{
                **TEST_SETTINGS,
                "data_dir": tmp_path / "data",
                "database_url": database_url,
                "poll_interval": LONG_POLL,
                "notify_poll_interval": LONG_POLL,
            }
        )
    )


def _until(condition: Any, timeout: float, what: str) -> float:
    """Seconds until `condition()` held; fails after `timeout`."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, f"{what} within {timeout} s"
        time.sleep(0.02)
    return time.monotonic() - start


def _other_process(database_url: str) -> TaskStore:
    """A store of its own, as another process would have: no in-process wake-ups."""
    return TaskStore(Database(database_url))


# What the store sends


Heard = Callable[[int], list[tuple[str, str]]]


@pytest.fixture
def heard(db: Database) -> Iterator[Heard]:
    """`heard(n)`: the next `n` notifications on both channels, as another
    process hears them (or none, for `n` 0, after a short wait)."""
    if db.is_sqlite:
        yield lambda n: []
        return
    import psycopg

    params = db.write_engine.dialect.create_connect_args(db.write_engine.url)[1]
    with psycopg.connect(**params, autocommit=True) as conn:
        for channel in CHANNELS:
            conn.execute(f"LISTEN {channel}")

        def take(n: int) -> list[tuple[str, str]]:
            notes = conn.notifies(timeout=5.0 if n else 0.2, stop_after=n or None)
            return [(note.channel, note.payload) for note in notes]

        yield take


@pytest.fixture
def owner(db: Database) -> str:
    return TokenStore(db).create("owner")[0].id


def test_each_change_that_matters_is_announced_at_commit(
    db: Database, heard: Heard, owner: str
) -> None:
    """New work and handed-back work name their engine; every way a task ends
    (finished, given up, deleted) names the task; a claim and a refused create
    say nothing. SQLite: the same changes, without any notification."""
    statements: list[str] = []
    event.listen(db.write_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    store = TaskStore(db)

    def check(*notes: tuple[str, str]) -> None:
        if not db.is_sqlite:
            assert heard(len(notes)) == list(notes)

    task = new_task(store, owner)
    check((WORK_CHANNEL, "preview"))
    for hand_back in (store.release, _retry_now(store)):
        claimed = store.claim(lease_seconds=60, max_attempts=3)
        assert claimed is not None and claimed.lease_owner
        check()
        assert hand_back(task.id, claimed.lease_owner)
        check((WORK_CHANNEL, "preview"))
    claimed = store.claim(lease_seconds=60, max_attempts=3)
    assert claimed is not None and claimed.lease_owner
    assert store.fail(task.id, claimed.lease_owner, "no good")
    check((DONE_CHANNEL, task.id))

    with pytest.raises(RuntimeError):
        new_task(store, owner, admit=_refuse, window=no_rate)
    check()
    doomed = new_task(store, owner)
    check((WORK_CHANNEL, "preview"))
    assert store.delete(doomed.id) is not None
    check((DONE_CHANNEL, doomed.id))

    abandoned = new_task(store, owner)
    check((WORK_CHANNEL, "preview"))
    assert store.claim(lease_seconds=-1, max_attempts=1) is not None  # its worker "died"
    assert store.claim(lease_seconds=60, max_attempts=1) is None
    check((DONE_CHANNEL, abandoned.id))
    gone = store.get(abandoned.id)
    assert gone is not None and gone.state is State.FAILED

    sent = [s for s in statements if "pg_notify" in s]
    assert (not sent) if db.is_sqlite else sent


def _retry_now(store: TaskStore) -> Callable[[str, str], bool]:
    return lambda task_id, owner: store.retry_later(task_id, owner, "flaky", 0, 3)


def _refuse(usage: Any) -> None:
    raise RuntimeError("over the limit")


# Workers and waiting clients wake at once


@pytest.mark.parametrize("database_url", [POSTGRES], indirect=True)
def test_an_idle_worker_takes_new_work_at_once(tmp_path: Path, database_url: str) -> None:
    runtime = _runtime(tmp_path, database_url)
    try:
        runtime.start_workers(1, lambda dialect, task, event: {})
        assert runtime.listener is not None
        _until(runtime.listener.connected.is_set, 10, "the listener connects")
        time.sleep(0.3)  # the worker has looked, found nothing and sleeps its long poll
        other = _other_process(database_url)
        task = new_task(other, runtime.tokens.create("owner")[0].id)
        took = _until(
            lambda: other.get(task.id).state is not State.QUEUED,  # type: ignore[union-attr]
            PROMPT,
            "a worker takes the task",
        )
        assert took < PROMPT < LONG_POLL
    finally:
        runtime.close()


@pytest.mark.slow  # waits out a 2 s backoff
@pytest.mark.parametrize("database_url", [POSTGRES], indirect=True)
def test_work_that_comes_due_by_time_alone_is_taken_on_time(
    tmp_path: Path, database_url: str
) -> None:
    """No notification says that a retry's backoff ended or that a dead
    worker's lease ran out: an idle worker wakes for those by their time,
    not at its next (long) poll."""
    runtime = _runtime(tmp_path, database_url)
    try:
        runtime.start_workers(1, lambda dialect, task, event: {})
        assert runtime.listener is not None
        _until(runtime.listener.connected.is_set, 10, "the listener connects")
        other = _other_process(database_url)
        owner = runtime.tokens.create("owner")[0].id
        backoff = new_task(other, owner)
        _until(
            lambda: other.get(backoff.id).state is State.RUNNING,  # type: ignore[union-attr]
            PROMPT,
            "the first try",
        )
        owner_of = other.get(backoff.id).lease_owner  # type: ignore[union-attr]
        # the attempt fails with a 2 s backoff (as the worker's own retry does)
        other.retry_later(backoff.id, owner_of or "", "flaky", 2.0, 3, FailureCode.INTERNAL)
        retried = _until(
            lambda: other.get(backoff.id).attempts == 2,  # type: ignore[union-attr]
            2.0 + PROMPT,
            "the retry is taken when its backoff ends",
        )
        assert retried < 2.0 + PROMPT < LONG_POLL
    finally:
        runtime.close()


@pytest.mark.slow  # over a second: the slow tier
@pytest.mark.parametrize("database_url", [POSTGRES], indirect=True)
def test_a_waiting_client_hears_of_a_task_finished_elsewhere(
    tmp_path: Path, database_url: str
) -> None:
    """`serve --workers 0`: a sync call waits while another process's worker
    takes the task and ends it."""
    with in_process(
        tmp_path / "data",
        workers=0,
        database_url=database_url,
        poll_interval=LONG_POLL,
        notify_poll_interval=LONG_POLL,
    ) as app:
        api = Api(app, app.create_token("waiter"))
        answers: list[Any] = []
        waiting = threading.Thread(
            target=lambda: answers.append(
                api.post("/luma/videos", {"prompt": "sync", "timeout": 20})
            )
        )
        waiting.start()
        other = _other_process(database_url)
        claimed = None

        def taken() -> bool:
            nonlocal claimed
            claimed = other.claim(lease_seconds=60, max_attempts=3)
            return claimed is not None

        _until(taken, 10, "the task is created")
        assert claimed is not None and claimed.lease_owner
        time.sleep(0.5)  # the client is waiting now
        started = time.monotonic()
        assert other.fail(claimed.id, claimed.lease_owner, "the other worker gave up")
        waiting.join(LONG_POLL)
        answered = time.monotonic() - started
    assert answers, "the sync call answered"
    assert answered < PROMPT, f"answered {answered:.1f} s after the task ended"
    body = answers[0].json()
    assert body["task_id"] == claimed.id
    assert "the other worker gave up" in body["error"]["message"]


@pytest.mark.parametrize("database_url", [POSTGRES], indirect=True)
def test_the_listener_reconnects_and_catches_up(db: Database) -> None:
    """Its connection cut (a database restart, a proxy's idle timeout), the
    listener connects again, says so (what was sent meanwhile is lost, so
    listeners look for work at once), and hears new work again."""
    listener = Listener.for_engine(db.write_engine)
    connects = itertools.count(1)
    connected: list[int] = []
    work = threading.Event()
    listener.on_connect(lambda: connected.append(next(connects)))
    listener.subscribe(WORK_CHANNEL, lambda engine: work.set())
    listener.start()
    try:
        _until(lambda: connected == [1], 10, "the listener connects")
        first = _listening_pid(db)
        with db.write() as s:
            s.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        _until(lambda: connected == [1, 2], 10, "the listener connects again")
        assert _listening_pid(db) not in (None, first)
        new_task(TaskStore(db), TokenStore(db).create("owner")[0].id)
        _until(work.is_set, PROMPT, "new work is heard after the reconnect")
    finally:
        listener.stop()
    assert not listener.connected.is_set()
    assert _listening_pid(db) is None, "a stopped listener leaves no connection"


def _listening_pid(db: Database) -> int | None:
    with db.read() as s:
        pid = s.scalar(
            text(
                "SELECT pid FROM pg_stat_activity "
                "WHERE application_name = :name AND datname = current_database()"
            ),
            {"name": APPLICATION_NAME},
        )
    return int(pid) if pid is not None else None


# A stopped worker hands its render back


class Stalling(FrameEngine):
    """Renders slowly for far longer than a test waits, reporting progress."""

    name = "stalling"

    def __init__(self) -> None:
        self.rendering = threading.Event()

    def model_label(self, requested: str | None) -> str:
        return "stalling"

    def render(self, job: RenderJob, progress: ProgressFn) -> Iterator[np.ndarray]:
        frame = np.zeros((job.height, job.width, 3), dtype=np.uint8)
        for i in range(2000):
            self.rendering.set()
            time.sleep(0.01)
            progress(min(1.0, i / job.num_frames))
            yield frame


def test_a_stopped_worker_hands_its_render_back_at_once(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    engine = Stalling()
    runtime.engines[engine.name] = engine
    try:
        owner = runtime.tokens.create("owner")[0].id
        task = new_task(runtime.tasks, owner, engine=engine.name)
        runtime.start_workers(1, lambda dialect, t, event: {})
        assert engine.rendering.wait(30), "the render started"
        started = time.monotonic()
        runtime.stop_workers(timeout=20)
        stopped = time.monotonic() - started
        back = runtime.tasks.get(task.id)
    finally:
        runtime.close()
    assert stopped < PROMPT, f"the worker took {stopped:.1f} s to stop"
    assert back is not None and back.state is State.QUEUED
    assert back.attempts == 0, "handing back is not a failed attempt"
    assert back.lease_owner is None


def test_sigterm_stops_reelgate_worker_and_hands_its_render_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`reelgate worker` (here in this process) stopped by SIGTERM, as by a
    deployment rolling: its render goes back to the queue at once."""
    import os
    import signal

    from typer.testing import CliRunner

    import reelgate.runtime
    from reelgate import cli

    engine = Stalling()
    build = reelgate.runtime.build_engines
    monkeypatch.setattr(
        reelgate.runtime, "build_engines", lambda *a: {**build(*a), engine.name: engine}
    )
    runtime = _runtime(tmp_path)
    task = new_task(runtime.tasks, runtime.tokens.create("owner")[0].id, engine=engine.name)
    runtime.close()
    sent: list[float] = []

    def stop_it() -> None:
        # SIGTERM goes out even if the render never starts, so a failure here
        # ends with the worker's output instead of a hang until the timeout
        engine.rendering.wait(60)
        if signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGTERM)

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    threading.Thread(target=stop_it, daemon=True).start()
    try:
        result = CliRunner().invoke(
            cli.app,
            ["worker", "--data-dir", str(tmp_path / "data")],
            env={f"REELGATE_{k.upper()}": v for k, v in TEST_SETTINGS.items()},
        )
        stopped = time.monotonic() - sent[0] if sent else None
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert result.exit_code == 0, result.output
    assert engine.rendering.is_set(), f"the render never started: {result.output}"
    assert stopped is not None and stopped < PROMPT, f"stopped after {stopped} s"
    db = Database(f"sqlite:///{tmp_path / 'data' / 'reelgate.db'}")
    back = TaskStore(db).get(task.id)
    db.dispose()
    assert back is not None and back.state is State.QUEUED and back.attempts == 0
