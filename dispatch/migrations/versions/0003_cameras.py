"""Cameras (issue 13): RTSP cameras a centre owns — a name, the centre, the address
without credentials, the credentials encrypted (dispatch/cameras.py), and who changed
it last.

Frozen: written from the model dispatch/cameras.py as of this revision; nothing of the
service is imported. Works on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "camera",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("centre_code", sa.String(), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("secret", sa.String(length=2000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["centre_code"], ["centre.code"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("camera", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_camera_centre_code"), ["centre_code"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("camera", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_camera_centre_code"))
    op.drop_table("camera")
