"""The privacy log: one row per export or erasure of everything stored about one plate.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

Plain SQLAlchemy types, like the earlier revisions, so later model changes cannot rewrite this step.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("plate_sha256", sa.String(length=64), nullable=False),
        sa.Column("counts", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_log")),
    )
    op.create_index(op.f("ix_privacy_log_plate_sha256"), "privacy_log", ["plate_sha256"])


def downgrade() -> None:
    op.drop_index(op.f("ix_privacy_log_plate_sha256"), table_name="privacy_log")
    op.drop_table("privacy_log")
