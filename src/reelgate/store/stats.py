"""What operators read from the database: the queue and the callback outbox
as they stand (for the gauges of `/metrics`, read at scrape time), and the
schema's revision (for `/readyz`).

Each read is one grouped query over an index (`ix_tasks_queue`,
`ix_callbacks_due`), touching only unfinished tasks and pending callbacks.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import func, select, text

from reelgate.domain.models import State
from reelgate.store.db import MIGRATIONS_DIR, Database
from reelgate.store.schema import CallbackRow, TaskRow

UNFINISHED = (State.QUEUED.value, State.RUNNING.value)


@dataclass(frozen=True)
class QueueDepth:
    state: str
    engine: str
    count: int
    oldest_age: float
    """Seconds since the oldest of them was created."""


@dataclass(frozen=True)
class Outbox:
    pending: int
    oldest_age: float
    """Seconds since the oldest pending callback was queued (0 when none is)."""


@functools.cache
def head_revision() -> str | None:
    """The newest migration this code knows."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()


class OpsStats:
    def __init__(self, db: Database) -> None:
        self.db = db

    def queue(self) -> list[QueueDepth]:
        """Unfinished tasks by state and engine."""
        now = time.time()
        with self.db.read() as s:
            rows = s.execute(
                select(TaskRow.state, TaskRow.engine, func.count(), func.min(TaskRow.created_at))
                .where(TaskRow.state.in_(UNFINISHED))
                .group_by(TaskRow.state, TaskRow.engine)
            ).all()
        return [
            QueueDepth(state, engine, int(count), max(0.0, now - float(oldest)))
            for state, engine, count, oldest in rows
        ]

    def outbox(self) -> Outbox:
        now = time.time()
        with self.db.read() as s:
            count, oldest = s.execute(
                select(func.count(), func.min(CallbackRow.created_at)).where(
                    CallbackRow.state == "pending"
                )
            ).one()
        return Outbox(int(count), max(0.0, now - float(oldest)) if oldest is not None else 0.0)

    def revision(self) -> str | None:
        """The schema's revision as the database records it (the query also
        says the database answers)."""
        with self.db.read() as s:
            return s.execute(text("SELECT version_num FROM alembic_version")).scalar()
