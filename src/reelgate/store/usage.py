"""A token's usage, read under a per-token lock.

Limits are checked and the new task or upload inserted in one transaction
that first locks the token's row: PostgreSQL then serialises a token's
creates (other tokens are not held up), and SQLite serialises every write
transaction anyway (`BEGIN IMMEDIATE`). So 100 concurrent creates against a
limit of 16 admit exactly 16.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reelgate.domain.models import State
from reelgate.domain.types import TokenLimits, TokenUsage
from reelgate.store.schema import TaskRow, TokenRow, UploadRow

WINDOW_SECONDS = 60.0
"""The rate limit's window: creates and uploads in the last minute."""
DAY_SECONDS = 86_400.0
"""The daily limit's window: tasks created in the last 24 hours."""


def locked_usage(s: Session, owner_id: str, now: float, *, lock: bool = True) -> TokenUsage:
    """The usage and the token's own limits, with the token's row locked for
    the rest of the transaction (`lock=False`: a quick look before expensive
    work, checked again locked)."""
    token = select(TokenRow.limits, TokenRow.revoked_at).where(TokenRow.id == owner_id)
    found = s.execute(token.with_for_update() if lock else token).first()
    limits, live = (found[0], found[1] is None) if found else (None, False)
    since = now - WINDOW_SECONDS
    task_times = s.scalars(
        select(TaskRow.created_at).where(TaskRow.owner_id == owner_id, TaskRow.created_at >= since)
    ).all()
    upload_times = s.scalars(
        select(UploadRow.created_at).where(
            UploadRow.owner_id == owner_id, UploadRow.created_at >= since
        )
    ).all()
    active = s.scalar(
        select(func.count())
        .select_from(TaskRow)
        .where(
            TaskRow.owner_id == owner_id,
            TaskRow.state.in_([State.QUEUED.value, State.RUNNING.value]),
        )
    )
    stored = s.scalar(
        select(func.coalesce(func.sum(UploadRow.size), 0)).where(
            UploadRow.owner_id == owner_id, UploadRow.expires_at > now
        )
    )
    day, day_oldest = s.execute(
        select(func.count(), func.min(TaskRow.created_at)).where(  # ix_tasks_owner_created
            TaskRow.owner_id == owner_id, TaskRow.created_at >= now - DAY_SECONDS
        )
    ).one()
    return TokenUsage(
        sorted([*task_times, *upload_times]),
        int(active or 0),
        int(stored or 0),
        day=int(day or 0),
        day_oldest=day_oldest,
        limits=TokenLimits.from_dict(limits),
        live=live,
    )
