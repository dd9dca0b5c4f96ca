"""upstream generations on tasks, upstream key state, upstream creates

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("upstream_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("upstream_key", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("upstream_submitted_at", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("upstream_nudged_at", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("upstream_unclear_creates", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.create_index("ix_tasks_upstream_key", ["upstream_key", "state"], unique=False)
    op.create_table(
        "upstream_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("engine", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=32), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("set_aside_until", sa.Float(), nullable=True),
        sa.Column("set_aside_reason", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "upstream_submits",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_upstream_submits_key_at", "upstream_submits", ["key_id", "at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_upstream_submits_key_at", table_name="upstream_submits")
    op.drop_table("upstream_submits")
    op.drop_table("upstream_keys")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_upstream_key")
        batch_op.drop_column("upstream_unclear_creates")
        batch_op.drop_column("upstream_nudged_at")
        batch_op.drop_column("upstream_submitted_at")
        batch_op.drop_column("upstream_key")
        batch_op.drop_column("upstream_id")
