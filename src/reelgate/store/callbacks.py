"""The callback outbox: pending deliveries, claimed with a short lease so two
dispatchers never send the same attempt, and a record of every attempt."""

from __future__ import annotations

import time

from sqlalchemy import and_, or_, select

from reelgate.domain.types import Delivery
from reelgate.store.db import Database
from reelgate.store.schema import CallbackRow


def _delivery(row: CallbackRow) -> Delivery:
    return Delivery(
        row.id,
        row.task_id,
        row.url,
        row.dialect,
        row.event,
        row.state,
        row.attempts,
        row.last_status,
        row.last_error,
        row.created_at,
        row.delivered_at,
    )


class CallbackStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def claim_due(self, limit: int, lease_seconds: float) -> list[Delivery]:
        now = time.time()
        with self.db.write() as s:
            rows = s.scalars(
                select(CallbackRow)
                .where(
                    CallbackRow.state == "pending",
                    CallbackRow.next_attempt_at <= now,
                    or_(
                        CallbackRow.lease_expires_at.is_(None),
                        and_(CallbackRow.lease_expires_at < now),
                    ),
                )
                .order_by(CallbackRow.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                row.lease_expires_at = now + lease_seconds
            return [_delivery(r) for r in rows]

    def record_attempt(
        self,
        delivery_id: str,
        *,
        ok: bool,
        status: int | None,
        error: str | None,
        retry_at: float | None,
    ) -> None:
        """Record one attempt; `retry_at=None` after a failure means give up."""
        now = time.time()
        with self.db.write() as s:
            row = s.get(CallbackRow, delivery_id)
            if row is None:
                return
            row.attempts += 1
            row.last_status = status
            row.last_error = error
            row.lease_expires_at = None
            if ok:
                row.state = "delivered"
                row.delivered_at = now
            elif retry_at is None:
                row.state = "failed"
            else:
                row.next_attempt_at = retry_at

    def for_task(self, task_id: str) -> list[Delivery]:
        return self.for_tasks([task_id])[task_id]

    def for_tasks(self, task_ids: list[str]) -> dict[str, list[Delivery]]:
        """Deliveries of many tasks in one query, each task's oldest first."""
        found: dict[str, list[Delivery]] = {task_id: [] for task_id in task_ids}
        with self.db.read() as s:
            rows = s.scalars(
                select(CallbackRow)
                .where(CallbackRow.task_id.in_(task_ids))
                .order_by(CallbackRow.created_at)
            ).all()
            for row in rows:
                found[row.task_id].append(_delivery(row))
        return found
