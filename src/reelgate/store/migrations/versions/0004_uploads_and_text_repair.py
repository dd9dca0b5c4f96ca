"""owned uploads; callback hosts; an index for recent throughput; repair
request echoes that could not be sent back

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

Earlier versions stored a request's fields as they came, so a lone UTF-16
surrogate, a NUL or `Infinity` could sit in `origin_request` and make every
answer that shows it fail. Such values are repaired in place (U+FFFD for a
lone surrogate, NULs dropped, non-finite numbers to null). Only rows whose
stored text holds such an escape are read, a few at a time (older versions
also kept whole data URIs there).
"""

from urllib.parse import urlsplit

import sqlalchemy as sa
from alembic import op

from reelgate.domain.text import repaired

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_tasks = sa.table("tasks", sa.column("id", sa.String), sa.column("origin_request", sa.JSON))
_callbacks = sa.table(
    "callbacks", sa.column("id", sa.String), sa.column("url", sa.Text), sa.column("host", sa.String)
)
_BROKEN = [
    *(f"\\u{lead}{x}" for lead in ("d", "D") for x in "89abcdefABCDEF"),
    "\\u0000",
    "NaN",
    "Infinity",
]
"""What a stored JSON text holds when it needs repair: a surrogate escape (a
lone one, or half of a pair, which then reads back unchanged), a NUL escape,
or a non-finite number (SQLite only; PostgreSQL's json never took them)."""


def _suspect_ids() -> list[str]:
    text = sa.cast(_tasks.c.origin_request, sa.Text)
    suspects = sa.or_(*(text.contains(p, autoescape=True) for p in _BROKEN))
    return list(op.get_bind().scalars(sa.select(_tasks.c.id).where(suspects)))


def _repair_requests() -> None:
    conn = op.get_bind()
    ids = _suspect_ids()
    for i in range(0, len(ids), 20):
        rows = conn.execute(
            sa.select(_tasks.c.id, _tasks.c.origin_request).where(_tasks.c.id.in_(ids[i : i + 20]))
        ).all()
        for task_id, request in rows:
            fixed = repaired(request)
            if fixed != request:
                conn.execute(
                    sa.update(_tasks).where(_tasks.c.id == task_id).values(origin_request=fixed)
                )


def _fill_callback_hosts() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(_callbacks.c.id, _callbacks.c.url)).all()
    for delivery_id, url in rows:
        try:
            host = (urlsplit(url).hostname or url).lower()[:255]
        except ValueError:
            host = url[:255]
        conn.execute(sa.update(_callbacks).where(_callbacks.c.id == delivery_id).values(host=host))


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
    with op.batch_alter_table("callbacks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("host", sa.String(length=255), nullable=True))
    _fill_callback_hosts()
    _repair_requests()


def downgrade() -> None:
    with op.batch_alter_table("callbacks", schema=None) as batch_op:
        batch_op.drop_column("host")
    op.drop_index("ix_tasks_finished", table_name="tasks")
    op.drop_index("ix_uploads_expires", table_name="uploads")
    op.drop_index("ix_uploads_owner_created", table_name="uploads")
    op.drop_table("uploads")
