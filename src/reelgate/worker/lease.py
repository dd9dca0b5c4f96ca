"""Holding a claimed task: a heartbeat thread renews the lease and records
progress while a run works; once the lease is lost (the task was deleted or
cancelled, or this worker was presumed dead and the task handed to another)
every progress report raises `LeaseLost`, so the run stops and publishes
nothing: at most about a second after, the heartbeat being that often."""

from __future__ import annotations

import logging
import threading

from reelgate.domain.models import Task
from reelgate.engines.base import LeaseLost
from reelgate.store.tasks import TaskStore

log = logging.getLogger(__name__)


class Lease:
    """Renews the lease and records progress: every third of the lease, and at
    least every second so clients polling a task see it move."""

    def __init__(self, tasks: TaskStore, task: Task, lease_seconds: float) -> None:
        self.tasks = tasks
        self.task = task
        self.owner = task.lease_owner or ""
        self.lease_seconds = lease_seconds
        self.progress = 0.0
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{task.id[:8]}", daemon=True
        )

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def report(self, progress: float) -> None:
        """Record progress (it never goes back); raises LeaseLost once the task is not ours."""
        self.check()
        self.progress = max(self.progress, progress)

    def check(self) -> None:
        if self.lost.is_set():
            raise LeaseLost()

    def _run(self) -> None:
        while not self._stop.wait(min(self.lease_seconds / 3, 1.0)):
            try:
                alive = self.tasks.heartbeat(
                    self.task.id, self.owner, self.lease_seconds, self.progress
                )
            except Exception:
                log.exception("heartbeat failed for task %s", self.task.id)
                continue
            if not alive:
                self.lost.set()
                return
