"""A token's usage, read under a per-token lock.

Limits are checked and the new task or upload inserted in one transaction
that first locks the token's row: PostgreSQL then serialises a token's
creates (other tokens are not held up), and SQLite serialises every write
transaction anyway (`BEGIN IMMEDIATE`). So 100 concurrent creates against a
limit of 16 admit exactly 16.

Every create reads it, so its statements are Core statements built once
(bound parameters, no ORM objects): the token's row (locked), then the
counts in one statement, then only as many of the newest creates of the
last minute as the rate limit looks at (`Window`). The counts are a
statement of their own, after the lock: on PostgreSQL a statement sees what
was committed when it began, so counts read in the locking statement could
miss the task of the create it waited for.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Integer, String, bindparam, func, select, union_all
from sqlalchemy.orm import Session

from reelgate.domain.models import State
from reelgate.domain.types import TokenLimits, TokenUsage
from reelgate.store.schema import TaskRow, TokenRow, UploadRow

WINDOW_SECONDS = 60.0
"""The rate limit's window: creates and uploads in the last minute."""
DAY_SECONDS = 86_400.0
"""The daily limit's window: tasks created in the last 24 hours."""

Window = Callable[[TokenLimits], int]
"""Given a token's own limits, how many of its newest creates and uploads of
the last minute a limits check needs to see (its per-minute limit in force;
0: none, the rate is not limited). `core/limits.py` answers it."""


def no_rate(limits: TokenLimits) -> int:
    """The `Window` of a check that looks at no rate."""
    return 0


_OWNER = bindparam("owner_id", type_=String())
_TOKEN = select(TokenRow.limits, TokenRow.revoked_at).where(TokenRow.id == _OWNER)
_TOKEN_LOCKED = _TOKEN.with_for_update()
_LIVE_STATES = [State.QUEUED.value, State.RUNNING.value]
_COUNTS = select(
    select(func.count())
    .select_from(TaskRow)
    .where(TaskRow.owner_id == _OWNER, TaskRow.state.in_(_LIVE_STATES))  # ix_tasks_owner_state
    .scalar_subquery()
    .label("active"),
    select(func.coalesce(func.sum(UploadRow.size), 0))
    .where(UploadRow.owner_id == _OWNER, UploadRow.expires_at > bindparam("now"))
    .scalar_subquery()
    .label("stored"),
    select(func.count())
    .select_from(TaskRow)
    .where(TaskRow.owner_id == _OWNER, TaskRow.created_at >= bindparam("day_since"))
    .scalar_subquery()
    .label("day"),
    select(func.min(TaskRow.created_at))  # ix_tasks_owner_created
    .where(TaskRow.owner_id == _OWNER, TaskRow.created_at >= bindparam("day_since"))
    .scalar_subquery()
    .label("day_oldest"),
)
_CREATED = union_all(
    select(TaskRow.created_at.label("at")).where(
        TaskRow.owner_id == _OWNER, TaskRow.created_at >= bindparam("since")
    ),
    select(UploadRow.created_at.label("at")).where(
        UploadRow.owner_id == _OWNER, UploadRow.created_at >= bindparam("since")
    ),
).subquery()
_RECENT = (
    select(_CREATED.c.at)
    .order_by(_CREATED.c.at.desc())
    .limit(bindparam("newest", type_=Integer, literal_execute=True))
)


def locked_usage(
    s: Session, owner_id: str, now: float, window: Window, *, lock: bool = True
) -> TokenUsage:
    """The usage and the token's own limits, with the token's row locked for
    the rest of the transaction (`lock=False`: a quick look before expensive
    work, checked again locked). `recent` holds the newest creates of the
    last minute, as many as `window` asks for."""
    found = s.execute(_TOKEN_LOCKED if lock else _TOKEN, {"owner_id": owner_id}).first()
    limits = TokenLimits.from_dict(found[0] if found else None)
    day_since = now - DAY_SECONDS
    active, stored, day, day_oldest = s.execute(
        _COUNTS, {"owner_id": owner_id, "now": now, "day_since": day_since}
    ).one()
    newest = window(limits)
    recent = (
        sorted(
            s.scalars(
                _RECENT,
                {"owner_id": owner_id, "since": now - WINDOW_SECONDS, "newest": newest},
            ).all()
        )
        if newest > 0
        else []
    )
    return TokenUsage(
        recent,
        int(active or 0),
        int(stored or 0),
        day=int(day or 0),
        day_oldest=day_oldest,
        limits=limits,
        live=found is not None and found[1] is None,
    )
