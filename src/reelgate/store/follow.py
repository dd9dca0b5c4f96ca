"""What a file engine's follower keeps on a task: the upstream job it
created, creates that may have reached the upstream, and callback nudges.

Writes are fenced on the follower's lease, like every worker write, so a
follower whose task was handed to another worker cannot overwrite it.
"""

from __future__ import annotations

import time
from typing import Any, cast

from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult

from reelgate.store.db import Database
from reelgate.store.schema import TaskRow
from reelgate.store.tasks import fenced_row


class FollowStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def remember(
        self, task_id: str, lease_owner: str, upstream_id: str, key_id: str, submitted_at: float
    ) -> bool:
        """Record the upstream job a run created, so a later attempt follows it
        instead of creating (and paying for) another. False: the lease is lost."""
        with self.db.write() as s:
            row = fenced_row(s, task_id, lease_owner)
            if row is None:
                return False
            row.upstream_id = upstream_id
            row.upstream_key = key_id
            row.upstream_submitted_at = submitted_at
            row.updated_at = time.time()
            return True

    def forget(self, task_id: str, lease_owner: str) -> bool:
        """Drop the upstream job a run followed (it failed in a way that a new
        create may not), so the next attempt creates another. False: the
        lease is lost."""
        with self.db.write() as s:
            row = fenced_row(s, task_id, lease_owner)
            if row is None:
                return False
            row.upstream_id = None
            row.upstream_key = None
            row.upstream_submitted_at = None
            row.updated_at = time.time()
            return True

    def count_unclear_create(self, task_id: str, lease_owner: str) -> int | None:
        """Count a create the upstream may have acted on; the new total, or
        None when the lease is lost. Kept on the task so restarts add up."""
        with self.db.write() as s:
            row = fenced_row(s, task_id, lease_owner)
            if row is None:
                return None
            row.upstream_unclear_creates = (row.upstream_unclear_creates or 0) + 1
            return row.upstream_unclear_creates

    def nudge(self, task_id: str) -> bool:
        """An upstream callback arrived: the worker following the task looks now."""
        with self.db.write() as s:
            result = s.execute(
                update(TaskRow).where(TaskRow.id == task_id).values(upstream_nudged_at=time.time())
            )
            return cast("CursorResult[Any]", result).rowcount == 1  # an UPDATE's result

    def nudged_at(self, task_id: str) -> float | None:
        with self.db.read() as s:
            return s.scalar(select(TaskRow.upstream_nudged_at).where(TaskRow.id == task_id))
