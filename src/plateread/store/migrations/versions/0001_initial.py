"""Initial schema: cameras, reads, watchlist.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Written against plain SQLAlchemy types (not the package's models) so that later model changes
cannot silently rewrite history; tests compare the migrated schema with the models.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _time(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "cameras",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=True),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cameras")),
        sa.UniqueConstraint("name", name=op.f("uq_cameras_name")),
    )
    op.create_table(
        "watchlist",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plate", sa.String(length=32), nullable=False),
        sa.Column("fuzzy", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_watchlist")),
        sa.UniqueConstraint("plate", name=op.f("uq_watchlist_plate")),
    )
    op.create_table(
        "reads",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=True),
        sa.Column("camera_id", sa.Integer(), nullable=True),
        sa.Column("track_id", sa.Integer(), nullable=True),
        sa.Column("plate", sa.String(length=32), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("candidates", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=True),
        sa.Column("region_score", sa.Float(), nullable=True),
        sa.Column("box_xmin", sa.Integer(), nullable=True),
        sa.Column("box_ymin", sa.Integer(), nullable=True),
        sa.Column("box_xmax", sa.Integer(), nullable=True),
        sa.Column("box_ymax", sa.Integer(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        _time("first_seen"),
        _time("last_seen"),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("crop_path", sa.String(length=96), nullable=True),
        sa.Column("frame_path", sa.String(length=96), nullable=True),
        _time("created_at"),
        sa.ForeignKeyConstraint(["camera_id"], ["cameras.id"], name=op.f("fk_reads_camera_id_cameras"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reads")),
        sa.UniqueConstraint("event_id", name=op.f("uq_reads_event_id")),
    )
    op.create_index(op.f("ix_reads_plate"), "reads", ["plate"])
    op.create_index(op.f("ix_reads_camera_id_first_seen"), "reads", ["camera_id", "first_seen"])
    op.create_index(op.f("ix_reads_first_seen"), "reads", ["first_seen"])
    op.create_index(op.f("ix_reads_last_seen"), "reads", ["last_seen"])


def downgrade() -> None:
    op.drop_table("reads")
    op.drop_table("watchlist")
    op.drop_table("cameras")
