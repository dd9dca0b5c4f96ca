"""owned uploads; an index for recent throughput; repair request echoes
that could not be sent back

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

Earlier versions stored a request's fields as they came, so a lone UTF-16
surrogate, a NUL or `Infinity` could sit in `origin_request` and make every
answer that shows it fail. Such values are repaired in place (U+FFFD for a
lone surrogate, NULs dropped, non-finite numbers to null).
"""

import sqlalchemy as sa
from alembic import op

from reelgate.domain.text import repaired

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_tasks = sa.table("tasks", sa.column("id", sa.String), sa.column("origin_request", sa.JSON))


def _repair_requests() -> None:
    conn = op.get_bind()
    text = sa.cast(_tasks.c.origin_request, sa.Text)
    suspects = sa.or_(text.like("%\\u%"), text.like("%Infinity%"), text.like("%NaN%"))
    last = ""
    while True:
        rows = conn.execute(
            sa.select(_tasks.c.id, _tasks.c.origin_request)
            .where(suspects, _tasks.c.id > last)
            .order_by(_tasks.c.id)
            .limit(500)
        ).all()
        if not rows:
            return
        for task_id, request in rows:
            fixed = repaired(request)
            if fixed != request:
                conn.execute(
                    sa.update(_tasks).where(_tasks.c.id == task_id).values(origin_request=fixed)
                )
        last = rows[-1][0]


def upgrade() -> None:
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["tokens.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_uploads_owner_created", "uploads", ["owner_id", "created_at"])
    op.create_index("ix_uploads_expires", "uploads", ["expires_at"])
    op.create_index("ix_tasks_finished", "tasks", ["finished_at"])
    _repair_requests()


def downgrade() -> None:
    op.drop_index("ix_tasks_finished", table_name="tasks")
    op.drop_index("ix_uploads_expires", table_name="uploads")
    op.drop_index("ix_uploads_owner_created", table_name="uploads")
    op.drop_table("uploads")
