"""reverse extend / interpolation sources and start callbacks

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("end_source_task_id", sa.String(length=36), nullable=True))
        batch_op.add_column(
            sa.Column("callback_on_start", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("callback_on_start")
        batch_op.drop_column("end_source_task_id")
