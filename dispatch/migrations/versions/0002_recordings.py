"""Recordings of calls (issue 13): one row per publisher's file — its call, publisher and centre,
what it holds, where it is (relative to DATA_DIR/recordings), its size, duration and
sha256, when it started and ended, and when and why retention removed it.

Frozen: written from the model dispatch/recordings.py as of this revision; nothing of the
service is imported. Works on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "recording",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("participant", sa.String(length=40), nullable=False),
        sa.Column("centre_code", sa.String(), nullable=True),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("path", sa.String(length=300), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=200), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("removed_reason", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["call.id"]),
        sa.ForeignKeyConstraint(["centre_code"], ["centre.code"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("recording", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recording_call_id"), ["call_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_recording_centre_code"), ["centre_code"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("recording", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recording_centre_code"))
        batch_op.drop_index(batch_op.f("ix_recording_call_id"))
    op.drop_table("recording")
