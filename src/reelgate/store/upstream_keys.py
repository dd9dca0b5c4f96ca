"""Upstream API keys: which may be used now, and which key a new create takes.

Keys are known here only by fingerprint (the secret never reaches the
database). A key in flight is one that a running task has reserved, so the
per-key concurrency limit holds across every worker process sharing the
database; the creates-per-minute limit counts recorded creates. Choosing a key
and recording the choice happen in one write transaction (the key rows are
locked on PostgreSQL; SQLite serialises writers), so two workers cannot both
take the last free slot of a key.

A key rests after failing several times in a row. While every key rests that
way, one create at a time may probe the key that has rested longest, on a
growing backoff: a probe that goes through brings the key back at once, so a
short upstream outage does not keep tasks waiting for the whole cool-down.
A rest the upstream asked for (429 with Retry-After, 402/403) is never probed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from reelgate.domain.errors import NoUsableKey
from reelgate.domain.keys import fingerprint, label
from reelgate.domain.models import State
from reelgate.domain.retry import Backoff
from reelgate.domain.types import Reservation
from reelgate.store.db import Database
from reelgate.store.schema import TaskRow, UpstreamKeyRow, UpstreamSubmitRow
from reelgate.store.tasks import fenced_row

FOREVER = -1.0
"""`set_aside_until` of a key that stays out until an operator resets it (401)."""
FAILING = "failed "
"""How the reason of a rest that failures caused begins (the only rest probed)."""


@dataclass(frozen=True)
class KeyStatus:
    id: str
    label: str
    engine: str
    failures: int
    set_aside_until: float | None
    set_aside_reason: str | None
    last_error: str | None
    in_flight: int = 0

    @property
    def usable(self) -> bool:
        return self.set_aside_until is None or (
            self.set_aside_until != FOREVER and self.set_aside_until <= time.time()
        )

    @property
    def failing(self) -> bool:
        """Resting because it failed too often in a row (not because the
        upstream refused it or asked us to wait)."""
        return _failing(self.set_aside_until, self.set_aside_reason)


class UpstreamKeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def register(self, engine: str, secrets_: Sequence[str]) -> None:
        """Make sure every configured key has a row (idempotent, and safe when
        several processes start on one database at once)."""
        now = time.time()
        rows = [
            {
                "id": fingerprint(secret),
                "engine": engine,
                "label": label(secret),
                "failures": 0,
                "updated_at": now,
            }
            for secret in dict.fromkeys(secrets_)
        ]
        if not rows:
            return
        with self.db.write() as s:
            dialect = s.get_bind().dialect.name
            insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
            s.execute(insert(UpstreamKeyRow).values(rows).on_conflict_do_nothing())

    def reserve(
        self,
        task_id: str,
        lease_owner: str,
        key_ids: Sequence[str],
        *,
        max_in_flight: int,
        per_minute: int,
        probe: Backoff | None = None,
        failure_limit: int = 1,
    ) -> Reservation:
        """Reserve the least busy usable key for a task's create (fenced on the
        task's lease; a lost lease reserves nothing and says so).

        With `probe`, when every key rests and some rest only because they
        failed (`failure_limit` times or more in a row), the key that has rested
        longest is reserved for one create once `probe.delay(n)` has passed
        since its last failure or probe, n counting the failures past the
        limit (1 for the first probe), so probes grow apart while it keeps
        failing. Its reservation says "probe"."""
        now = time.time()
        with self.db.write() as s:
            rows = s.scalars(
                select(UpstreamKeyRow)
                .where(UpstreamKeyRow.id.in_(list(key_ids)))
                .order_by(UpstreamKeyRow.id)
                .with_for_update()
            ).all()
            s.execute(
                delete(UpstreamSubmitRow).where(
                    UpstreamSubmitRow.key_id.in_(list(key_ids)), UpstreamSubmitRow.at < now - 120
                )
            )
            statuses = [_status(r) for r in rows]
            usable = [k for k in statuses if k.usable]
            probing = False
            if not usable:
                resting = [
                    k.set_aside_until for k in statuses if k.set_aside_until not in (None, FOREVER)
                ]
                if not resting:
                    raise NoUsableKey(
                        "no usable upstream API key: "
                        + "; ".join(f"key {k.label} {k.set_aside_reason}" for k in statuses)
                        if statuses
                        else "no upstream API key is configured"
                    )
                next_at = min(resting)
                if probe is not None:
                    due: list[tuple[float, KeyStatus]] = []
                    for row, key in zip(rows, statuses, strict=True):
                        if not key.failing:
                            continue
                        # any success with it ends its rest: look again soon
                        next_at = min(next_at, now + probe.delay(1))
                        beyond = max(1, row.failures - failure_limit + 1)
                        probe_at = row.updated_at + probe.delay(beyond)
                        if probe_at <= now:
                            due.append((row.updated_at, key))
                        next_at = min(next_at, probe_at)
                    # One probe at a time across the keys: a key failed or was
                    # probed lately, so no other is probed until that settles.
                    latest = max(
                        (r.updated_at for r, k in zip(rows, statuses, strict=True) if k.failing),
                        default=0.0,
                    )
                    if latest + probe.delay(1) > now:
                        due = []
                        next_at = min(next_at, latest + probe.delay(1))
                    # the longest rested first; limits below still apply
                    usable = [key for _, key in sorted(due, key=lambda d: d[0])]
                    probing = bool(usable)
                if not probing:
                    return Reservation(
                        None,
                        max(0.5, next_at - now),
                        "every key is resting",
                    )
            best: tuple[int, int, str] | None = None
            wait = float("inf")  # a full key may free a slot any time: look again in 1 s
            for key in usable:
                in_flight = _in_flight(s, key.id, exclude=task_id)
                recent = sorted(
                    s.scalars(
                        select(UpstreamSubmitRow.at).where(
                            UpstreamSubmitRow.key_id == key.id, UpstreamSubmitRow.at >= now - 60
                        )
                    )
                )
                if in_flight >= max_in_flight:
                    wait = min(wait, 1.0)
                    continue
                if len(recent) >= per_minute:
                    wait = min(wait, max(0.2, recent[-per_minute] + 60 - now))
                    continue
                if best is None or (in_flight, len(recent)) < best[:2]:
                    best = (in_flight, len(recent), key.id)
                if probing:
                    break  # one probe, on the key that has rested longest
            if best is None:
                return Reservation(None, wait, "every usable key is at its limit")
            task = fenced_row(s, task_id, lease_owner)
            if task is None:
                return Reservation(None, 0.0, "lease lost")
            task.upstream_key = best[2]
            s.add(UpstreamSubmitRow(key_id=best[2], at=now))
            if probing:
                # the next probe waits from now: other workers see it under this lock
                next(r for r in rows if r.id == best[2]).updated_at = now
                return Reservation(best[2], 0.0, "probe")
            return Reservation(best[2])

    def succeeded(self, key_id: str) -> None:
        """A request with the key went through: its failure count starts again,
        and an expired rest or one that failures caused ends (a key set aside
        for good stays aside; a rest the upstream asked for is waited out)."""
        now = time.time()
        with self.db.write() as s:
            row = s.get(UpstreamKeyRow, key_id, with_for_update=True)
            if row is None or row.set_aside_until == FOREVER:
                return
            rested = row.set_aside_until is not None and (
                row.set_aside_until <= now or _failing(row.set_aside_until, row.set_aside_reason)
            )
            if row.failures or rested:
                row.failures = 0
                if rested:
                    row.set_aside_until = None
                    row.set_aside_reason = None
                row.updated_at = now

    def failed(self, key_id: str, error: str, *, limit: int, cooldown: float) -> bool:
        """Count a failure; past `limit` in a row the key rests for `cooldown`
        (from this failure, which a later probe also waits from). True when
        this failure set the key aside; a rest the upstream asked for, or one
        for good, is left as it is."""
        now = time.time()
        with self.db.write() as s:
            row = s.get(UpstreamKeyRow, key_id, with_for_update=True)
            if row is None:
                return False
            row.failures += 1
            row.last_error = error[:500]
            row.updated_at = now
            asked = (
                row.set_aside_until is not None
                and row.set_aside_until > now
                and not _failing(row.set_aside_until, row.set_aside_reason)
            )
            if row.failures >= limit and row.set_aside_until != FOREVER and not asked:
                row.set_aside_until = now + cooldown
                row.set_aside_reason = (
                    f"{FAILING}{row.failures} times in a row (last: {error[:200]})"
                )
                return True
            return False

    def set_aside(self, key_id: str, reason: str, until: float = FOREVER) -> None:
        """Stop using a key until `until` (or for good: a key the upstream refuses)."""
        with self.db.write() as s:
            row = s.get(UpstreamKeyRow, key_id, with_for_update=True)
            if row is None or row.set_aside_until == FOREVER:
                return
            row.set_aside_until = until
            row.set_aside_reason = reason
            row.last_error = reason
            row.updated_at = time.time()

    def reset(self, key_ids: Sequence[str] | None = None) -> int:
        """Put keys back in use (after an operator fixed them)."""
        with self.db.write() as s:
            rows = s.scalars(
                select(UpstreamKeyRow)
                if key_ids is None
                else select(UpstreamKeyRow).where(UpstreamKeyRow.id.in_(list(key_ids)))
            )
            count = 0
            for row in rows:
                row.failures, row.set_aside_until, row.set_aside_reason = 0, None, None
                row.updated_at = time.time()
                count += 1
            return count

    def statuses(self) -> list[KeyStatus]:
        with self.db.read() as s:
            return [
                _status(row, _in_flight(s, row.id))
                for row in s.scalars(
                    select(UpstreamKeyRow).order_by(UpstreamKeyRow.engine, UpstreamKeyRow.label)
                )
            ]


def _failing(set_aside_until: float | None, reason: str | None) -> bool:
    return (
        set_aside_until is not None
        and set_aside_until != FOREVER
        and (reason or "").startswith(FAILING)
    )


def _status(row: UpstreamKeyRow, in_flight: int = 0) -> KeyStatus:
    return KeyStatus(
        row.id,
        row.label,
        row.engine,
        row.failures,
        row.set_aside_until,
        row.set_aside_reason,
        row.last_error,
        in_flight,
    )


def _in_flight(s: Session, key_id: str, exclude: str | None = None) -> int:
    # running, or queued again (after a shutdown) with its generation still upstream
    query = (
        select(func.count())
        .select_from(TaskRow)
        .where(
            TaskRow.upstream_key == key_id,
            or_(
                TaskRow.state == State.RUNNING.value,
                and_(TaskRow.state == State.QUEUED.value, TaskRow.upstream_id.is_not(None)),
            ),
        )
    )
    if exclude:
        query = query.where(TaskRow.id != exclude)
    return int(s.scalar(query) or 0)
