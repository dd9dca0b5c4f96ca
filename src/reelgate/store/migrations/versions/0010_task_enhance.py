"""prompt enhancement in the worker: whether a task asked for it

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

Enhancement used to run when a task was created, so `enhanced_prompt` was
set or not from the start. Now a worker writes it once, before the first
render; `enhance` records that the client asked. Rows that already hold an
enhanced prompt keep it (and are not enhanced again).
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("enhance", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("enhance")
