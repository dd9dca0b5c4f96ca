"""deleted, not yet removed: an unfinished task a client deleted

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

The official `DELETE` of a queued or running generation cancels it and hides
it at once (it reads as absent from then on), but its row stays until its
cancel callback has had its time to be delivered; the janitor removes it
then. `deleted_at` is when the client deleted it (null: not deleted).
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deleted_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("deleted_at")
