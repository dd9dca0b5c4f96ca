"""Retention: the one routine that removes files nobody may use any more.

A finished task's files are deleted `asset_retention_days` after it finished
and the task is marked expired (it then answers "expired" in every dialect,
never links to files that are gone); expired uploads are removed with their
rows (`UploadService.sweep`). Files go first, then the mark, in batches: a
collector that stops half-way leaves tasks that the next run finishes, never
a task marked expired whose files stay. Deleting is idempotent and marking
is conditional, so several processes may collect at once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from reelgate.core.inputs import UploadService
from reelgate.storage.base import Storage
from reelgate.store.tasks import TaskStore

log = logging.getLogger(__name__)

DAY = 86_400.0


@dataclass(frozen=True)
class Collected:
    """What one collection removed."""

    tasks: int
    """Tasks whose files were deleted and that this run marked expired."""
    uploads: int
    """Expired uploads removed (file and row)."""


class Retention:
    def __init__(
        self,
        tasks: TaskStore,
        storage: Storage,
        uploads: UploadService,
        retention_days: float,
        batch: int = 200,
        deleted_grace: float = DAY,
    ) -> None:
        """`retention_days` 0 keeps tasks' files for ever (uploads still expire).
        `deleted_grace`: how long the row of a task its client deleted
        unfinished stays (hidden) for its cancel callback to be delivered."""
        self.tasks = tasks
        self.storage = storage
        self.uploads = uploads
        self.retention_days = retention_days
        self.batch = batch
        self.deleted_grace = deleted_grace
        self.last_run: float | None = None
        """When `expire_tasks` last finished (None: not yet in this process)."""

    def collect(self, now: float | None = None) -> Collected:
        """Remove expired tasks' files and expired uploads, once (and the
        rows of deleted tasks whose callbacks had their time)."""
        collected = Collected(tasks=self.expire_tasks(now), uploads=self.uploads.sweep())
        self.purge_deleted(now)
        return collected

    def purge_deleted(self, now: float | None = None) -> int:
        """Remove the hidden rows of tasks their clients deleted unfinished,
        once their cancel callbacks had `deleted_grace` to be delivered."""
        before = (time.time() if now is None else now) - self.deleted_grace
        removed = 0
        while ids := self.tasks.purge_deleted(before, self.batch):
            for task_id in ids:  # anything written after the delete went
                self.storage.delete_prefix(task_id)
            removed += len(ids)
            if len(ids) < self.batch:
                break
        return removed

    def expire_tasks(self, now: float | None = None) -> int:
        """Delete the files of tasks that finished `retention_days` before
        `now` and mark them expired; returns how many this run marked."""
        if self.retention_days <= 0:
            self.last_run = time.time()
            return 0
        cutoff = (time.time() if now is None else now) - self.retention_days * DAY
        marked = 0
        while task_ids := self.tasks.expirable(cutoff, self.batch):
            for task_id in task_ids:
                self.storage.delete_prefix(task_id)
            marked += self.tasks.mark_expired(task_ids)
            if len(task_ids) < self.batch:
                break
        if marked:
            log.info("retention: deleted the files of %d expired task(s)", marked)
        self.last_run = time.time()
        return marked
