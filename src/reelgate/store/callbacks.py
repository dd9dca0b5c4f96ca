"""The callback outbox: pending deliveries, claimed with a short lease so two
dispatchers never send the same attempt, and a record of every attempt."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Row, Select, and_, exists, or_, select, update
from sqlalchemy.orm import aliased

from reelgate.domain.types import Delivery
from reelgate.store.db import Database
from reelgate.store.schema import CallbackRow, TaskRow

Admit = Callable[[Delivery, str | None], bool]
"""(delivery, its task's owner token id or None) -> claim it now? A delivery
refused stays due, unleased, for a later claim."""

PAGE = 100
SCAN_LIMIT = 2000
"""Due deliveries one claim looks at, at most, while `admit` refuses them."""


def host_of(url: str) -> str:
    """The host a callback's share is counted on; a URL too broken to have one
    counts on its own (its delivery then fails like any other, and is retried)."""
    try:
        return (urlsplit(url).hostname or url).lower()[:255]
    except ValueError:
        return url[:255]


@dataclass(frozen=True)
class Busy:
    """What a claim passes over in the query itself: tokens and hosts at their
    share, tasks with a delivery in flight. However many deliveries one token
    has due, the others' are still found."""

    owners: frozenset[str] = frozenset()
    hosts: frozenset[str] = frozenset()
    tasks: frozenset[str] = frozenset()


DELIVERY_FIELDS = tuple(f.name for f in fields(Delivery))
"""The callback row's columns a `Delivery` carries, in its order."""


def _delivery(row: CallbackRow | Row[Any], prefix: str = "") -> Delivery:
    """A delivery from a callback row, or from a Core row that carries its
    columns under `prefix` (a join that also selects the task's columns)."""
    return Delivery(*(getattr(row, prefix + name) for name in DELIVERY_FIELDS))


class CallbackStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def claim_due(
        self,
        limit: int,
        lease_seconds: float,
        admit: Admit | None = None,
        busy: Busy = Busy(),
    ) -> list[Delivery]:
        """Lease up to `limit` due deliveries, oldest first, among those `admit`
        accepts (it is asked in that order, so it can keep count) and `busy`
        does not rule out. Refused ones are skipped, not leased. A delivery
        waits while an older one of its task is pending, so each task's
        callbacks arrive in order, whichever dispatcher sends them."""
        now = time.time()
        claimed: list[Delivery] = []
        if limit <= 0:
            return claimed
        after: tuple[float, str] | None = None
        with self.db.write() as s:
            for _ in range(SCAN_LIMIT // PAGE):
                page = s.execute(self._due_page(now, after, busy)).all()
                for row, owner in page:
                    delivery = _delivery(row)
                    if admit is None or admit(delivery, owner):
                        row.lease_expires_at = now + lease_seconds
                        claimed.append(delivery)
                        if len(claimed) == limit:
                            return claimed
                if len(page) < PAGE:
                    break
                last = page[-1][0]
                after = (last.next_attempt_at, last.id)
        return claimed

    @staticmethod
    def _due_page(
        now: float, after: tuple[float, str] | None, busy: Busy
    ) -> Select[CallbackRow, str]:
        """One page of due, unleased deliveries with their owners, after `after`
        in (next attempt, id) order."""
        query = (
            select(CallbackRow, TaskRow.owner_id)
            .outerjoin(TaskRow, TaskRow.id == CallbackRow.task_id)
            .where(
                CallbackRow.state == "pending",
                CallbackRow.next_attempt_at <= now,
                or_(CallbackRow.lease_expires_at.is_(None), CallbackRow.lease_expires_at < now),
            )
            .order_by(CallbackRow.next_attempt_at, CallbackRow.id)
            .limit(PAGE)
            .with_for_update(skip_locked=True, of=CallbackRow)
        )
        older = aliased(CallbackRow)
        query = query.where(
            ~exists().where(
                older.task_id == CallbackRow.task_id,
                older.state == "pending",
                or_(
                    older.created_at < CallbackRow.created_at,
                    and_(older.created_at == CallbackRow.created_at, older.id < CallbackRow.id),
                ),
            )
        )
        if busy.tasks:
            query = query.where(CallbackRow.task_id.not_in(busy.tasks))
        if busy.hosts:
            query = query.where(CallbackRow.host.not_in(busy.hosts))
        if busy.owners:
            query = query.where(
                or_(TaskRow.owner_id.is_(None), TaskRow.owner_id.not_in(busy.owners))
            )
        if after is not None:
            at, delivery_id = after
            query = query.where(
                or_(
                    CallbackRow.next_attempt_at > at,
                    and_(CallbackRow.next_attempt_at == at, CallbackRow.id > delivery_id),
                )
            )
        return query

    def release(self, delivery_ids: list[str]) -> None:
        """Hand leased deliveries back unsent (a dispatcher stopping), so they go
        out at once from the next dispatcher instead of after the lease."""
        if not delivery_ids:
            return
        with self.db.write() as s:
            s.execute(
                update(CallbackRow)
                .where(CallbackRow.id.in_(delivery_ids), CallbackRow.state == "pending")
                .values(lease_expires_at=None)
            )

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
