"""concepts, negative prompts and modes: camera concepts a task was asked
for, what an audio generation leaves out, how far a modify may go

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

A list of concept keys (`pan_left`, `dolly_zoom`...), null for none: the
engine steers the camera by them on every attempt.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("concepts", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("negative_prompt", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("mode", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("mode")
        batch_op.drop_column("negative_prompt")
        batch_op.drop_column("concepts")
