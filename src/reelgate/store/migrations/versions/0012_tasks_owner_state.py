"""an index of a token's tasks by state

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

Every create counts the token's queued and running tasks (its active-task
limit). With only `ix_tasks_owner_created` that count read every task the
token ever made, so a long-lived token's creates grew slower with its
history; `ix_tasks_owner_state` reads only its live ones.
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tasks_owner_state", "tasks", ["owner_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_tasks_owner_state", table_name="tasks")
