"""How the queue stands: where waiting tasks are in line, how many tasks are
running, and how long recent tasks took, per worker pool.

Workers claim the waiting tasks of the engines their pool serves in
`claim_order` (by priority, aged by waiting, then the oldest;
`TaskStore.claim`), so a task's place in line is its rank in that order
among the waiting tasks of its pool. A task waits while it is queued (also
while it waits out a retry's backoff: it is claimed in that order once
due) or while it is running under an expired lease (its worker died; another
worker takes it over).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, case, func, or_, select

from reelgate.domain.models import State
from reelgate.store.db import Database
from reelgate.store.schema import TaskRow
from reelgate.store.tasks import claim_order


@dataclass(frozen=True)
class QueueSnapshot:
    positions: dict[str, tuple[str, int]]
    """Task id -> (its pool, its place in line: 1 is claimed next), for the
    tasks asked about that are still waiting."""
    running: dict[str, int]
    """Pool -> tasks running under a live lease (the workers busy now)."""
    finished: dict[str, tuple[int, float]]
    """Pool -> tasks that finished within the window, and their run seconds in all."""


class QueueStats:
    def __init__(
        self,
        db: Database,
        window: float = 900.0,
        cache_seconds: float = 5.0,
        priority_aging_seconds: float = 60.0,
    ) -> None:
        """`window`: how far back finished tasks count; `cache_seconds`: how
        long this process reuses their totals (the only query here that reads
        beyond the waiting and running tasks); `priority_aging_seconds`: as
        the workers' `TaskStore` has it."""
        self.db = db
        self.order = claim_order(priority_aging_seconds)
        self.window = window
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._finished: tuple[float, dict[str, tuple[int, float]]] | None = None

    def snapshot(self, task_ids: Sequence[str], pools: Mapping[str, str]) -> QueueSnapshot:
        """The line as it stands for these tasks. `pools` maps an engine to
        the name of the worker pool that runs it; an engine not named there
        is a pool of its own."""
        now = time.time()
        pool = (
            case(dict(pools), value=TaskRow.engine, else_=TaskRow.engine)
            if pools
            else TaskRow.engine
        )
        waiting = and_(
            TaskRow.state.in_([State.QUEUED.value, State.RUNNING.value]),  # ix_tasks_queue
            or_(TaskRow.state == State.QUEUED.value, TaskRow.lease_expires_at < now),
        )
        line = (
            select(
                TaskRow.id,
                pool.label("pool"),
                func.row_number().over(partition_by=pool, order_by=self.order).label("position"),
            )
            .where(waiting)
            .subquery()
        )
        positions: dict[str, tuple[str, int]] = {}
        running: dict[str, int] = {}
        with self.db.read() as s:
            for i in range(0, len(task_ids), 500):
                chunk = list(task_ids[i : i + 500])
                for task_id, name, position in s.execute(
                    select(line.c.id, line.c.pool, line.c.position).where(line.c.id.in_(chunk))
                ):
                    positions[task_id] = (name, int(position))
            for engine, count in s.execute(
                select(TaskRow.engine, func.count())
                .where(TaskRow.state == State.RUNNING.value, TaskRow.lease_expires_at >= now)
                .group_by(TaskRow.engine)
            ):
                name = pools.get(engine, engine)
                running[name] = running.get(name, 0) + int(count)
        finished: dict[str, tuple[int, float]] = {}
        for engine, (count, seconds) in self._finished_by_engine(now).items():
            name = pools.get(engine, engine)
            before = finished.get(name, (0, 0.0))
            finished[name] = (before[0] + count, before[1] + seconds)
        return QueueSnapshot(positions, running, finished)

    def _finished_by_engine(self, now: float) -> dict[str, tuple[int, float]]:
        """Engine -> (tasks finished within the window, their run seconds in
        all), read at most once per `cache_seconds`."""
        with self._lock:
            if self._finished is not None and self._finished[0] > now:
                return self._finished[1]
        with self.db.read() as s:
            rows = s.execute(
                select(
                    TaskRow.engine,
                    func.count(),
                    func.sum(TaskRow.finished_at - TaskRow.started_at),
                )
                .where(TaskRow.finished_at >= now - self.window, TaskRow.started_at.is_not(None))
                .group_by(TaskRow.engine)
            ).all()
        totals = {engine: (int(count), float(seconds or 0.0)) for engine, count, seconds in rows}
        with self._lock:
            self._finished = (now + self.cache_seconds, totals)
        return totals
