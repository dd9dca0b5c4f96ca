"""image generations and reframes: reference images, an image's format,
where a reframe places its source

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

`refs` is a list of {role, url, weight} (null for none); `placement` the
reframe placement fields the client gave (null: centred). Results of image
tasks keep an `image` asset instead of `video` and `last_frame`; the result
column is JSON already, so no rows change.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refs", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("image_format", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("placement", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("placement")
        batch_op.drop_column("image_format")
        batch_op.drop_column("refs")
