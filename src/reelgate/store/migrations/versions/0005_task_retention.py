"""retention: when a task's files were deleted; uploads found by key

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10

A finished task's files are deleted `asset_retention_days` after it finished;
the row stays, with `expired_at`, so the task answers "expired" instead of
links to files that are gone. The index serves the collector's query (not
expired yet, finished before a cutoff) without reading the tasks it expired
before. Uploads are looked up by their key (whose upload a link names).
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expired_at", sa.Float(), nullable=True))
    op.create_index("ix_tasks_expirable", "tasks", ["expired_at", "finished_at"])
    op.create_index("ix_uploads_key", "uploads", ["key"])


def downgrade() -> None:
    op.drop_index("ix_uploads_key", table_name="uploads")
    op.drop_index("ix_tasks_expirable", table_name="tasks")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("expired_at")
