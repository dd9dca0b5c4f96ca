"""Tasks: the single source of truth and the work queue.

A worker claims a row atomically and holds it with a lease that it renews
while it runs. Every write a worker makes afterwards is fenced on its lease
token (`lease_owner`), so a worker whose lease expired and was taken over
can never overwrite the result of the run that replaced it. Finishing a task
and queueing its callback happen in one transaction.

On PostgreSQL every transaction that makes a task claimable notifies idle
workers, and every one that ends a task notifies waiting clients
(`notify.py`): the notification goes out at commit, with the change.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    String,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from reelgate.domain.models import (
    TERMINAL_STATES,
    FailureCode,
    Kind,
    Reference,
    State,
    Task,
    TaskResult,
    describe_size,
)
from reelgate.domain.reframe import Placement
from reelgate.domain.text import repaired
from reelgate.domain.types import Delivery, TokenUsage
from reelgate.store.callbacks import _delivery, host_of
from reelgate.store.db import Database
from reelgate.store.notify import task_done, work_queued
from reelgate.store.schema import CallbackRow, TaskRow, TokenRow
from reelgate.store.usage import Window, locked_usage

Admit = Callable[[TokenUsage], int]
"""Checks a token's usage before a task is added: raises to refuse it, else
returns the queue priority the task gets."""

CANCELLABLE = (State.QUEUED.value, State.RUNNING.value)
RETRYABLE = (State.FAILED.value, State.CANCELLED.value)


def claim_order(aging_seconds: float) -> tuple[ColumnElement[Any], ...]:
    """The order workers claim waiting tasks in, and so their place in line:
    the highest effective priority first, where a task's effective priority
    is its priority plus one level for every `aging_seconds` it has waited
    (`priority + (now - created_at) / aging_seconds`), then the oldest. The
    clock is the same for every task, so that is the order of `created_at -
    priority * aging_seconds`: a task of priority 1 goes as if created one
    aging period earlier. A low-priority task is never passed over forever:
    every task created more than (difference in priority) x `aging_seconds`
    after it waits behind it."""
    head_start = TaskRow.priority * literal(float(aging_seconds), Float())
    return ((TaskRow.created_at - head_start).asc(), TaskRow.created_at.asc(), TaskRow.id.asc())


DELIVERY_PREFIX = "delivery_"
"""Labels of the callback columns in `get_live`'s join (they share names
with the task's)."""


def _live_query(deliveries: bool) -> Select[Any]:
    """`TaskStore.get_live`'s statement, with `task_id` and `owner_id` bound
    at run time."""
    tokens, tasks = TokenRow.__table__, TaskRow.__table__
    task_id = bindparam("task_id", type_=String())
    owner_id = bindparam("owner_id", type_=String())
    query = (
        select(tokens.c.revoked_at.label("token_revoked_at"), *tasks.c)
        .select_from(tokens)
        .outerjoin(tasks, and_(tasks.c.id == task_id, tasks.c.owner_id == tokens.c.id))
        .where(tokens.c.id == owner_id)
    )
    if deliveries:
        callbacks = CallbackRow.__table__
        query = (
            query.add_columns(*(c.label(DELIVERY_PREFIX + c.name) for c in callbacks.c))
            .outerjoin(callbacks, callbacks.c.task_id == tasks.c.id)
            .order_by(callbacks.c.created_at)
        )
    return query


_LIVE, _LIVE_WITH_DELIVERIES = _live_query(False), _live_query(True)
_INSERT = insert(cast(Table, TaskRow.__table__))
"""A create's insert: a Core statement built once (no ORM object)."""


def _inserted_defaults(table: Table) -> dict[str, Any]:
    """What each column holds where a create gives it no value: its default,
    else null. Only plain values will do (`TaskStore.create` answers the row
    from them without reading it back)."""
    defaults: dict[str, Any] = {}
    for c in table.c:
        if c.default is not None and not isinstance(c.default, ScalarElementColumnDefault):
            raise TypeError(f"tasks.{c.key}: a create cannot know its default ({c.default!r})")
        defaults[c.key] = c.default.arg if c.default is not None else None
    return defaults


_INSERTED = _inserted_defaults(cast(Table, TaskRow.__table__))


def _to_task(row: TaskRow) -> Task:
    return Task(
        id=row.id,
        video_id=row.video_id,
        owner_id=row.owner_id,
        origin=row.origin,
        kind=Kind(row.kind),
        prompt=row.prompt,
        enhanced_prompt=row.enhanced_prompt,
        enhance=bool(row.enhance),
        deleted_at=row.deleted_at,
        start_image=row.start_image,
        end_image=row.end_image,
        source_task_id=row.source_task_id,
        source_video_url=row.source_video_url,
        end_source_task_id=row.end_source_task_id,
        loop=row.loop,
        concepts=tuple(row.concepts or ()),
        negative_prompt=row.negative_prompt,
        mode=row.mode,
        references=tuple(Reference.from_dict(r) for r in row.refs or ()),
        image_format=row.image_format,
        placement=Placement.from_dict(row.placement) if row.placement else None,
        aspect_ratio=row.aspect_ratio,
        resolution=row.resolution,
        duration=row.duration,
        model=row.model,
        engine=row.engine,
        seed=row.seed,
        callback_url=row.callback_url,
        callback_dialect=row.callback_dialect,
        callback_on_start=bool(row.callback_on_start),
        origin_request=repaired(row.origin_request or {}),
        state=State(row.state),
        progress=row.progress,
        failure_reason=row.failure_reason,
        failure_code=FailureCode(row.failure_code) if row.failure_code else None,
        attempts=row.attempts,
        created_at=row.created_at,
        updated_at=row.updated_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        result=TaskResult.from_dict(row.result) if row.result else None,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        upstream_id=row.upstream_id,
        upstream_key=row.upstream_key,
        upstream_submitted_at=row.upstream_submitted_at,
        expired_at=row.expired_at,
        priority=row.priority or 0,
    )


def fenced_row(s: Session, task_id: str, lease_owner: str) -> TaskRow | None:
    """The task's row, locked, only while this lease still holds it: every
    write a worker makes after claiming goes through here."""
    return s.scalar(
        select(TaskRow)
        .where(
            TaskRow.id == task_id,
            TaskRow.lease_owner == lease_owner,
            TaskRow.state == State.RUNNING.value,
        )
        .with_for_update()
    )


def _queue_callback(session: Session, row: TaskRow, event: str, now: float) -> None:
    if not row.callback_url:
        return
    session.add(
        CallbackRow(
            id=str(uuid.uuid4()),
            task_id=row.id,
            url=row.callback_url,
            host=host_of(row.callback_url),
            dialect=row.callback_dialect or row.origin,
            event=event,
            state="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )


class TaskStore:
    def __init__(self, db: Database, priority_aging_seconds: float = 60.0) -> None:
        """`priority_aging_seconds`: how fast a waiting task's priority grows
        (`claim_order`)."""
        self.db = db
        self.order = claim_order(priority_aging_seconds)

    # Creating and reading

    def create(
        self, admit: Admit | None = None, window: Window | None = None, **fields: Any
    ) -> Task:
        """Insert a queued task. `admit` sees the owner's usage (`window`: the
        recent creates its rate check needs), read under the owner's lock in
        the same transaction, and raises to refuse or answers the task's
        queue priority. A field given as None takes its column's default."""
        unknown = fields.keys() - _INSERTED.keys()
        if unknown:
            raise TypeError(f"tasks have no columns {sorted(unknown)}")
        fields = {k: v for k, v in fields.items() if v is not None or _INSERTED[k] is None}
        assert admit is None or window is not None, "an admitted create says what it reads"
        if admit is not None and window is not None and self.db.is_sqlite:
            # SQLite has one writer at a time: a token past its limits is
            # refused by a read first, so hammering it holds up no one's writes.
            admit(self.usage(fields["owner_id"], window))
        with self.db.write() as s:
            now = time.time()
            if admit is not None and window is not None:
                fields["priority"] = admit(locked_usage(s, fields["owner_id"], now, window))
            values = dict(
                id=fields.pop("id", None) or str(uuid.uuid4()),
                video_id=fields.pop("video_id", None) or str(uuid.uuid4()),
                state=State.QUEUED.value,
                progress=0.0,
                attempts=0,
                not_before=now,
                created_at=now,
                updated_at=now,
                **fields,
            )
            s.connection().execute(_INSERT, values)
            work_queued(s, values["engine"])
            return _to_task(cast(TaskRow, SimpleNamespace(**(_INSERTED | values))))

    def usage(self, owner_id: str, window: Window) -> TokenUsage:
        """A token's usage now, unlocked: a first check before expensive work."""
        with self.db.read() as s:
            return locked_usage(s, owner_id, time.time(), window, lock=False)

    def get(self, task_id: str) -> Task | None:
        with self.db.read() as s:
            row = s.get(TaskRow, task_id)
            return _to_task(row) if row else None

    def get_owned(self, owner_id: str, task_id: str) -> Task | None:
        """A task only if this token owns it: another token's task reads as
        absent, and so does one its client deleted."""
        task = self.get(task_id)
        return task if task and task.owner_id == owner_id and task.deleted_at is None else None

    def get_live(
        self, owner_id: str, task_id: str, *, deliveries: bool = False
    ) -> tuple[bool, Task | None, list[Delivery]]:
        """In one statement: whether the owner's token is live (exists and is
        not revoked), the task if that token owns it (another token's task
        reads as absent), and with `deliveries` its callback deliveries,
        oldest first.

        Every retrieve and get runs it, so it is a Core statement built once
        (`_live_query`): rows, not ORM objects, and no statement to build per
        call."""
        query = _LIVE_WITH_DELIVERIES if deliveries else _LIVE
        rows = self.db.rows(query, {"task_id": task_id, "owner_id": owner_id})
        if not rows:
            return False, None, []
        first = rows[0]
        live = first.token_revoked_at is None
        if first.id is None or first.deleted_at is not None:
            return live, None, []  # not this token's, or deleted by its client: absent
        found = [
            _delivery(r, DELIVERY_PREFIX)
            for r in rows
            if deliveries and getattr(r, DELIVERY_PREFIX + "id") is not None
        ]
        # a Core row carries the task's columns under the ORM's attribute names
        return live, _to_task(cast(TaskRow, first)), found

    def get_many_owned(self, owner_id: str, task_ids: Sequence[str]) -> list[Task]:
        if not task_ids:
            return []
        with self.db.read() as s:
            rows = s.scalars(
                select(TaskRow).where(
                    TaskRow.id.in_(list(task_ids)),
                    TaskRow.owner_id == owner_id,
                    TaskRow.deleted_at.is_(None),
                )
            ).all()
            by_id = {r.id: _to_task(r) for r in rows}
        return [by_id[i] for i in task_ids if i in by_id]

    def find_by_video_id(self, owner_id: str, video_id: str) -> Task | None:
        with self.db.read() as s:
            row = s.scalar(
                select(TaskRow).where(
                    TaskRow.video_id == video_id,
                    TaskRow.owner_id == owner_id,
                    TaskRow.deleted_at.is_(None),
                )
            )
            return _to_task(row) if row else None

    def list_owned(
        self, owner_id: str, limit: int, offset: int, *, expired: bool = True
    ) -> tuple[list[Task], int]:
        """A page of a token's tasks, newest first, and how many it has in all
        (`expired=False`: only tasks whose files are still kept)."""
        owned = and_(TaskRow.owner_id == owner_id, TaskRow.deleted_at.is_(None))
        if not expired:
            owned = and_(owned, TaskRow.expired_at.is_(None))
        with self.db.read() as s:
            rows = s.scalars(
                select(TaskRow)
                .where(owned)
                .order_by(TaskRow.created_at.desc(), TaskRow.id)
                .limit(limit)
                .offset(offset)
            ).all()
            total = s.scalar(select(func.count()).select_from(TaskRow).where(owned))
            return [_to_task(r) for r in rows], int(total or 0)

    def delete(self, task_id: str) -> Task | None:
        """Remove a task and its outbox entries; a worker still running it
        finds its lease gone and discards its work. Returns the task as it was
        when deleted (read under the same lock, so an upstream id recorded a
        moment earlier is seen), or None if it did not exist."""
        with self.db.write() as s:
            row = s.scalar(select(TaskRow).where(TaskRow.id == task_id).with_for_update())
            if row is None:
                return None
            task = _to_task(row)
            s.execute(delete(CallbackRow).where(CallbackRow.task_id == task_id))
            s.execute(delete(TaskRow).where(TaskRow.id == task_id))
            task_done(s, task_id)  # a client waiting on it stops waiting
            return task

    def purge_deleted(self, before: float, limit: int = 200) -> list[str]:
        """Remove tasks their clients deleted before `before` (with their
        outbox entries); the ids of those that went."""
        with self.db.write() as s:
            ids = list(
                s.scalars(
                    select(TaskRow.id)
                    .where(TaskRow.deleted_at.is_not(None), TaskRow.deleted_at < before)
                    .limit(limit)
                )
            )
            if ids:
                s.execute(delete(CallbackRow).where(CallbackRow.task_id.in_(ids)))
                s.execute(delete(TaskRow).where(TaskRow.id.in_(ids)))
            return ids

    def search(
        self,
        *,
        states: Sequence[str] = (),
        engines: Sequence[str] = (),
        owners: Sequence[str] | None = None,
        created_before: float | None = None,
        limit: int = 50,
    ) -> list[Task]:
        """Every token's tasks, newest first, for operators: in these states,
        of these engines, of these tokens (None: any), created before a time."""
        query = select(TaskRow)
        if states:
            query = query.where(TaskRow.state.in_(list(states)))
        if engines:
            query = query.where(TaskRow.engine.in_(list(engines)))
        if owners is not None:
            query = query.where(TaskRow.owner_id.in_(list(owners)))
        if created_before is not None:
            query = query.where(TaskRow.created_at < created_before)
        with self.db.read() as s:
            rows = s.scalars(query.order_by(TaskRow.created_at.desc(), TaskRow.id).limit(limit))
            return [_to_task(r) for r in rows]

    def cancel(self, task_id: str, reason: str, *, hide: bool = False) -> Task | None:
        """End a queued or running task as cancelled, its callback queued in
        the same transaction. Its lease goes with it: the worker running it
        finds that out at its next heartbeat (within a second) and stops at
        its next progress report, publishing nothing; whatever it would write
        afterwards is fenced out (every worker write needs its lease on a
        running task). The task as cancelled, or None when it is missing or
        already finished. `hide`: its client deleted it, so it reads as
        absent from this commit on (`purge_deleted` removes it later)."""
        now = time.time()
        with self.db.write() as s:
            row = s.scalar(
                select(TaskRow)
                .where(TaskRow.id == task_id, TaskRow.state.in_(CANCELLABLE))
                .with_for_update()
            )
            if row is None:
                return None
            row.lease_owner = None
            if hide:
                row.deleted_at = now
            self._finish(s, row, State.CANCELLED, now, failure_reason=reason, failure_code=None)
            s.flush()
            return _to_task(row)

    def requeue(self, task_id: str) -> Task | None:
        """Put a failed or cancelled task back in the queue as if new: its
        attempts, progress, failure and upstream generation (which ended with
        it) cleared, in its old place in line (by when it was created). None
        when it is missing, not failed or cancelled, its files expired, or
        its client deleted it."""
        now = time.time()
        with self.db.write() as s:
            row = s.scalar(
                select(TaskRow)
                .where(
                    TaskRow.id == task_id,
                    TaskRow.state.in_(RETRYABLE),
                    TaskRow.expired_at.is_(None),
                    TaskRow.deleted_at.is_(None),
                )
                .with_for_update()
            )
            if row is None:
                return None
            for column in (
                "failure_reason",
                "failure_code",
                "lease_owner",
                "lease_expires_at",
                "started_at",
                "finished_at",
                "result",
                "upstream_id",
                "upstream_key",
                "upstream_submitted_at",
                "upstream_nudged_at",
            ):
                setattr(row, column, None)
            row.state = State.QUEUED.value
            row.progress = 0.0
            row.attempts = 0
            row.upstream_unclear_creates = 0
            row.not_before = now
            row.updated_at = now
            work_queued(s, row.engine)
            s.flush()
            return _to_task(row)

    def terminal_among(self, task_ids: Iterable[str]) -> list[str]:
        """Which of these tasks are finished: one query for every waiting client."""
        ids = list(task_ids)
        done: list[str] = []
        terminal = [state.value for state in TERMINAL_STATES]
        with self.db.read() as s:
            for i in range(0, len(ids), 500):
                done.extend(
                    s.scalars(
                        select(TaskRow.id).where(
                            TaskRow.id.in_(ids[i : i + 500]), TaskRow.state.in_(terminal)
                        )
                    )
                )
        return done

    # Retention

    def expirable(self, cutoff: float, limit: int = 200) -> list[str]:
        """Ids of tasks that finished before `cutoff` and whose files are still
        kept, oldest first. A task that a queued or running task continues
        (extend, reverse extend, interpolate) waits until that one is done."""
        later = aliased(TaskRow)  # the tasks that may continue one of these
        unfinished = [State.QUEUED.value, State.RUNNING.value]
        continued = (
            select(column).where(later.state.in_(unfinished), column.is_not(None))
            for column in (later.source_task_id, later.end_source_task_id)
        )
        with self.db.read() as s:
            return list(
                s.scalars(
                    select(TaskRow.id)
                    .where(
                        TaskRow.expired_at.is_(None),
                        TaskRow.finished_at < cutoff,
                        TaskRow.state.in_([state.value for state in TERMINAL_STATES]),
                        *(TaskRow.id.not_in(ids) for ids in continued),
                    )
                    .order_by(TaskRow.finished_at, TaskRow.id)
                    .limit(limit)
                )
            )

    def mark_expired(self, task_ids: Sequence[str], now: float | None = None) -> int:
        """Record that these tasks' files are deleted; returns how many were
        not marked before (another collector may have marked some already)."""
        if not task_ids:
            return 0
        with self.db.write() as s:
            result = s.execute(
                update(TaskRow)
                .where(TaskRow.id.in_(list(task_ids)), TaskRow.expired_at.is_(None))
                .values(expired_at=time.time() if now is None else now)
            )
            return cast("CursorResult[Any]", result).rowcount

    # The queue

    def claim(
        self,
        lease_seconds: float,
        max_attempts: int,
        *,
        only: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
    ) -> Task | None:
        """Take the first runnable task in `claim_order` (by priority, aged by
        waiting, then the oldest): queued and due, or running with an
        expired lease (its worker died). Tasks that have used up their attempts
        fail with a reason instead of running again. `only`/`exclude` pick
        engines, so render workers and upstream followers keep separate pools."""
        now = time.time()
        with self.db.write() as s:
            self._fail_exhausted(s, now, max_attempts)
            runnable = or_(
                and_(TaskRow.state == State.QUEUED.value, TaskRow.not_before <= now),
                and_(TaskRow.state == State.RUNNING.value, TaskRow.lease_expires_at < now),
            )
            if only is not None:
                runnable = and_(runnable, TaskRow.engine.in_(list(only)))
            if exclude:
                runnable = and_(runnable, TaskRow.engine.not_in(list(exclude)))
            row = s.scalar(
                select(TaskRow)
                .where(runnable)
                .order_by(*self.order)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if row is None:
                return None
            row.state = State.RUNNING.value
            row.lease_owner = uuid.uuid4().hex
            row.lease_expires_at = now + lease_seconds
            row.attempts += 1
            if row.callback_on_start and row.started_at is None:  # once, whatever the attempt
                _queue_callback(s, row, State.RUNNING.value, now)
            row.started_at = row.started_at or now
            row.updated_at = now
            s.flush()
            return _to_task(row)

    def next_due(
        self, *, only: Sequence[str] | None = None, exclude: Sequence[str] = ()
    ) -> float | None:
        """When the next task of these engines becomes claimable by time
        alone (a retry's backoff ends, a dead worker's lease runs out),
        which no notification announces; None when none will."""
        due = case(
            (TaskRow.state == State.QUEUED.value, TaskRow.not_before),
            else_=TaskRow.lease_expires_at,
        )
        query = select(func.min(due)).where(
            TaskRow.state.in_([State.QUEUED.value, State.RUNNING.value])
        )
        if only is not None:
            query = query.where(TaskRow.engine.in_(list(only)))
        if exclude:
            query = query.where(TaskRow.engine.not_in(list(exclude)))
        with self.db.read() as s:
            value = s.scalar(query)
        return float(value) if value is not None else None

    def _fail_exhausted(self, s: Session, now: float, max_attempts: int) -> None:
        rows = s.scalars(
            select(TaskRow)
            .where(
                TaskRow.state == State.RUNNING.value,
                TaskRow.lease_expires_at < now,
                TaskRow.attempts >= max_attempts,
            )
            .with_for_update(skip_locked=True)
        ).all()
        for row in rows:
            self._finish(
                s,
                row,
                State.FAILED,
                now,
                failure_reason=(
                    f"the worker running this task stopped responding {row.attempts} times; "
                    "giving up"
                ),
                failure_code=FailureCode.INTERNAL.value,
            )

    def heartbeat(
        self, task_id: str, lease_owner: str, lease_seconds: float, progress: float | None = None
    ) -> bool:
        """Extend the lease (and record progress). False: the lease was lost."""
        now = time.time()
        values: dict[str, Any] = {"lease_expires_at": now + lease_seconds, "updated_at": now}
        if progress is not None:
            values["progress"] = max(0.0, min(1.0, progress))
        with self.db.write() as s:
            result = s.execute(
                update(TaskRow)
                .where(
                    TaskRow.id == task_id,
                    TaskRow.lease_owner == lease_owner,
                    TaskRow.state == State.RUNNING.value,
                )
                .values(**values)
            )
            return cast("CursorResult[Any]", result).rowcount == 1  # an UPDATE's result

    def set_enhanced_prompt(self, task_id: str, lease_owner: str, prompt: str) -> bool:
        """Keep the enhanced prompt a run made, once: only while the run holds
        the task, and only if no run kept one before (retries reuse it)."""
        with self.db.write() as s:
            result = s.execute(
                update(TaskRow)
                .where(
                    TaskRow.id == task_id,
                    TaskRow.lease_owner == lease_owner,
                    TaskRow.state == State.RUNNING.value,
                    TaskRow.enhanced_prompt.is_(None),
                )
                .values(enhanced_prompt=prompt, updated_at=time.time())
            )
            return cast("CursorResult[Any]", result).rowcount == 1

    def complete(self, task_id: str, lease_owner: str, result: TaskResult) -> bool:
        """Finish with a result. The task's aspect ratio and resolution become
        those of the video it made (an extend keeps its source's size, which
        only the worker knows for a video given by URL)."""
        aspect_ratio, resolution = describe_size(result.main.width, result.main.height)
        return self._finish_fenced(
            task_id,
            lease_owner,
            State.COMPLETED,
            result=result.to_dict(),
            progress=1.0,
            aspect_ratio=aspect_ratio,
            resolution=resolution,
        )

    def fail(
        self,
        task_id: str,
        lease_owner: str,
        reason: str,
        code: FailureCode = FailureCode.INVALID_INPUT,
    ) -> bool:
        return self._finish_fenced(
            task_id, lease_owner, State.FAILED, failure_reason=reason, failure_code=code.value
        )

    def release(self, task_id: str, lease_owner: str) -> bool:
        """Hand a task back to the queue without using up an attempt (its
        worker is shutting down, through no fault of the task)."""
        now = time.time()
        with self.db.write() as s:
            row = fenced_row(s, task_id, lease_owner)
            if row is None:
                return False
            row.state = State.QUEUED.value
            row.lease_owner = None
            row.lease_expires_at = None
            row.attempts = max(0, row.attempts - 1)
            row.not_before = now
            row.updated_at = now
            work_queued(s, row.engine)
            return True

    def retry_later(
        self,
        task_id: str,
        lease_owner: str,
        reason: str,
        delay: float,
        max_attempts: int,
        code: FailureCode = FailureCode.INTERNAL,
    ) -> bool:
        """Put a task that hit a transient error back in the queue, or fail it
        with `code` when its attempts are used up."""
        now = time.time()
        with self.db.write() as s:
            row = fenced_row(s, task_id, lease_owner)
            if row is None:
                return False
            if row.attempts >= max_attempts:
                self._finish(
                    s,
                    row,
                    State.FAILED,
                    now,
                    failure_reason=f"{reason} (gave up after {row.attempts} attempts)",
                    failure_code=code.value,
                )
                return True
            row.state = State.QUEUED.value
            row.lease_owner = None
            row.lease_expires_at = None
            row.not_before = now + delay
            row.failure_reason = reason
            row.updated_at = now
            work_queued(s, row.engine)
            return True

    def _finish_fenced(self, task_id: str, lease_owner: str, state: State, **values: Any) -> bool:
        now = time.time()
        with self.db.write() as s:
            row = fenced_row(s, task_id, lease_owner)
            if row is None:
                return False
            self._finish(s, row, state, now, **values)
            return True

    @staticmethod
    def _finish(s: Session, row: TaskRow, state: State, now: float, **values: Any) -> None:
        row.state = state.value
        row.finished_at = now
        row.updated_at = now
        row.lease_expires_at = None
        for key, value in values.items():
            setattr(row, key, value)
        if state is State.COMPLETED:
            row.failure_reason = None
            row.failure_code = None
        _queue_callback(s, row, state.value, now)
        task_done(s, row.id)
