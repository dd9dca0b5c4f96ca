"""The worker loop: claim, run the task's engine, publish, finish.

One loop for every engine: a frame engine's run is in `render.py`, a file
engine's in `follow.py`. A lease (`lease.py`) is held while the run works;
if it is lost, nothing the run made is published. How an attempt ends is
decided here, once: a `TaskError` carries its failure code and whether
another attempt may help; anything else is an internal error, retried with
the one backoff policy until the attempts are used up.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from reelgate import logs
from reelgate.config import Settings
from reelgate.core.enhance import DetailEnhancer, Enhancer
from reelgate.domain.errors import TaskError, Unavailable
from reelgate.domain.models import FailureCode, State, Task, TaskResult
from reelgate.domain.retry import Backoff
from reelgate.engines.base import (
    UPSTREAM_THUMBNAIL,
    Engine,
    FileEngine,
    FrameEngine,
    LeaseLost,
    WorkerStopping,
)
from reelgate.metrics import NO_METRICS, Metrics
from reelgate.storage.base import Storage
from reelgate.store.follow import FollowStore
from reelgate.store.tasks import TaskStore
from reelgate.worker.follow import Follower
from reelgate.worker.inputs import SCRATCH, InputResolver
from reelgate.worker.lease import Lease
from reelgate.worker.render import FrameRunner

log = logging.getLogger(__name__)

SOURCE_FILE = "source.mp4"


class Stages:
    """Seconds spent in each named stage of an attempt, for the line a
    completed task logs (where the time between create and completed went)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - began

    def __str__(self) -> str:
        return ", ".join(f"{name} {seconds:.2f} s" for name, seconds in self.seconds.items())


class Worker:
    def __init__(
        self,
        settings: Settings,
        tasks: TaskStore,
        storage: Storage,
        engines: Mapping[str, Engine],
        inputs: InputResolver,
        follows: FollowStore,
        on_finished: Callable[[str], None] = lambda task_id: None,
        upstream_callback_url: Callable[[str], str | None] = lambda task_id: None,
        only: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
        poll_interval: Callable[[], float] | None = None,
        metrics: Metrics = NO_METRICS,
        pool: str = "render",
        enhancer: Enhancer | None = None,
    ) -> None:
        """`only`/`exclude`: which engines' tasks this worker claims.
        `poll_interval`: how long an idle worker sleeps before looking again
        unless woken (the runtime makes it longer while notifications arrive).
        `pool`: the name its busy slot counts under in `metrics`.
        `enhancer`: writes the prompts of tasks that ask for enhancement."""
        self.settings = settings
        self.enhancer = enhancer or DetailEnhancer()
        self.metrics = metrics
        self.pool = pool
        self.tasks = tasks
        self.storage = storage
        self.engines = engines
        self.on_finished = on_finished
        self.only = only
        self.exclude = exclude
        self.stopping = threading.Event()
        self.uninterruptible = threading.Event()
        """Set while an engine is in a step a shutdown must wait for (a paid
        create on the wire: abandoned, its generation would be neither
        followed nor deleted)."""
        self.poll_interval = poll_interval or (lambda: settings.poll_interval)
        self.backoff = Backoff(settings.retry_backoff_seconds)
        self.frames = FrameRunner(settings, inputs, lambda: self.stopping, metrics)
        self.follower = Follower(
            settings,
            tasks,
            follows,
            inputs,
            upstream_callback_url,
            lambda: self.stopping,
            self.uninterruptible,
        )

    def run(self, stop: threading.Event, wake: threading.Event) -> None:
        """Work until `stop` is set; sleep on `wake` (or the poll interval) when idle."""
        self.stopping = stop
        while not stop.is_set():
            try:
                worked = self.run_once()
            except Exception:
                log.exception("worker loop error")
                worked = False
            if not worked:
                wake.wait(self._idle_wait())
                wake.clear()

    def _idle_wait(self) -> float:
        """The poll interval, or less when a task becomes due sooner by time
        alone (notifications announce new work, not a backoff or a lease
        running out); looked up only where polls are far apart."""
        interval = self.poll_interval()
        if interval <= 1.0:
            return interval
        try:
            due = self.tasks.next_due(only=self.only, exclude=self.exclude)
        except Exception:
            return interval
        if due is None:
            return interval
        return min(interval, max(0.05, due - time.time() + 0.01))

    def run_once(self) -> bool:
        task = self.tasks.claim(
            self.settings.lease_seconds,
            self.settings.max_attempts,
            only=self.only,
            exclude=self.exclude,
        )
        if task is None:
            return False
        if self.stopping.is_set():
            self.tasks.release(task.id, task.lease_owner or "")
            return True
        with logs.bound(task_id=task.id), self.metrics.busy(self.pool):
            waited = time.time() - task.created_at if task.attempts == 1 else None
            self.metrics.task_claimed(task.engine, waited)
            log.info("task %s: attempt %d", task.id, task.attempts)
            self.process(task)
        return True

    def process(self, task: Task) -> None:
        run_key = f"{task.id}/{uuid.uuid4().hex[:12]}"
        workdir = self.storage.workdir(run_key)
        owner = task.lease_owner or ""
        started = time.monotonic()
        stages = Stages()
        stages.seconds["queued"] = max(0.0, time.time() - task.created_at)
        ended = "superseded"  # how the attempt ended (metrics.FINISHED and the rest)
        try:
            with Lease(self.tasks, task, self.settings.lease_seconds) as lease:
                with stages("enhance"):
                    task = self._enhanced(task, owner)
                with stages("render"):
                    result = self._run_engine(task, run_key, workdir, lease)
                # uploaded while the lease is held: a run that lost its task
                # stops here, before its files could be read by anyone
                with stages("publish"):
                    self.storage.publish(run_key, workdir, result.keys())
                lease.check()
            with stages("record"):
                completed = self.tasks.complete(task.id, owner, result)
            if completed:
                ended = "completed"
                log.info(
                    "task %s: completed %.2f s after it was created (%s)",
                    task.id,
                    time.time() - task.created_at,
                    stages,
                )
            else:
                log.warning("task %s: superseded by another run, discarding this one", task.id)
        except LeaseLost:
            ended = "lease_lost"
            log.warning("task %s: lease lost, discarding this run", task.id)
        except WorkerStopping:
            ended = "handed_back"
            log.info("task %s: shutting down, handing the task back", task.id)
            self.tasks.release(task.id, owner)
        except TaskError as exc:
            if exc.retryable:
                log.warning("task %s: attempt %d failed: %s", task.id, task.attempts, exc)
                ended = "retry" if self._retry(task, exc.message, exc.code) else ended
            elif self.tasks.fail(task.id, owner, exc.message, exc.code):
                ended = "failed"
        except Exception as exc:
            log.exception("task %s: attempt %d failed", task.id, task.attempts)
            reason = f"internal error: {exc.__class__.__name__}: {exc}"
            ended = "retry" if self._retry(task, reason, FailureCode.INTERNAL) else ended
        finally:
            (workdir / SOURCE_FILE).unlink(missing_ok=True)
            (workdir / UPSTREAM_THUMBNAIL).unlink(missing_ok=True)
            shutil.rmtree(workdir / SCRATCH, ignore_errors=True)
            self.storage.drop_workdir(run_key, workdir)
        latest = self.tasks.get(task.id)
        if ended == "retry" and latest is not None and latest.state is State.FAILED:
            ended = "failed"  # that was its last attempt
        code = latest.failure_code if latest is not None and ended == "failed" else None
        self.metrics.attempt_ended(task.engine, ended, time.monotonic() - started, code)
        if latest is not None and latest.state.terminal:
            self.on_finished(task.id)  # waiters first: cleaning up can wait or fail
        try:
            if latest is not None and self._published(latest, run_key):
                self.storage.prune_runs(task.id, keep=run_key)
            else:
                self.storage.delete_prefix(run_key)
        except Exception:  # left for retention or a later run's prune
            log.warning("task %s: could not remove the files of other runs", task.id)

    def _enhanced(self, task: Task, owner: str) -> Task:
        """The task with its enhanced prompt: the one an earlier attempt kept,
        else one written now (in the worker, so a create never waits for a
        language model) and kept for the attempts after this one."""
        if not task.enhance or task.enhanced_prompt is not None or not task.prompt:
            return task
        enhanced = self.enhancer.enhance(task.prompt)
        if not self.tasks.set_enhanced_prompt(task.id, owner, enhanced):
            latest = self.tasks.get(task.id)
            if latest is None or latest.lease_owner != owner:
                raise LeaseLost()
            enhanced = latest.enhanced_prompt or enhanced
        return replace(task, enhanced_prompt=enhanced)

    def _retry(self, task: Task, reason: str, code: FailureCode) -> bool:
        """Queue the next attempt after the backoff, or fail with `code` once
        the attempts are used up (false: the task is no longer this run's)."""
        return self.tasks.retry_later(
            task.id,
            task.lease_owner or "",
            reason,
            self.backoff.delay(task.attempts),
            self.settings.max_attempts,
            code,
        )

    @staticmethod
    def _published(task: Task, run_key: str) -> bool:
        return task.result is not None and task.result.main.key.startswith(run_key + "/")

    def _run_engine(self, task: Task, run_key: str, workdir: Path, lease: Lease) -> TaskResult:
        engine = self.engines.get(task.engine)
        if isinstance(engine, FrameEngine):
            return self.frames.run(task, engine, run_key, workdir, lease)
        if isinstance(engine, FileEngine):
            return self.follower.run(task, engine, run_key, workdir, lease)
        raise Unavailable(f"the {task.engine!r} engine is not enabled on this worker")
