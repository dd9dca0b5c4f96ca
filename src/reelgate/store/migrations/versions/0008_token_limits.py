"""per-token limits and queue priority

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-14

`tokens.limits` is a token's own limits as JSON (`TokenLimits`: creates per
minute, tasks queued or running, tasks per day, allowed engines and models,
queue priority); null keeps the server's settings. `tasks.priority` is the
priority its token had when the task was created (0 for every existing
task, so the queue keeps its order).

No index is added: a claim sorts the runnable tasks, which `ix_tasks_queue`
already finds, by `created_at - priority * aging` (`store/tasks.py`), an
order that moves with the aging setting and so cannot be kept in an index.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("limits", sa.JSON(), nullable=True))
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("priority")
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.drop_column("limits")
