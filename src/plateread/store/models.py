"""Tables of the read store. The Alembic migrations in ``migrations/`` must create exactly this schema
(tests/test_store.py compares them), so any change here needs a new revision there."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, MetaData, String,
                        Text, TypeDecorator, UniqueConstraint)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Fixed constraint names, so migrations can refer to them and SQLite batch mode can rebuild tables.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# 64-bit ids on PostgreSQL (a busy toll road outgrows 2**31 reads); SQLite needs plain INTEGER
# for its rowid alias to autoincrement.
BigId = BigInteger().with_variant(Integer(), "sqlite")
JsonDoc = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC in and out on every backend.

    SQLite has no time zone type and SQLAlchemy hands back naive values there; storing naive UTC
    keeps its text comparisons ordered and re-attaching UTC keeps callers from mixing naive and
    aware times. Naive input is refused: guessing a zone for a legal record is worse than failing.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: the store needs timezone-aware times")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime, dict[str, Any]: JsonDoc, list[Any]: JsonDoc}


class Camera(Base):
    """A named camera; reads refer to it by id so renaming or describing it touches one row."""

    __tablename__ = "cameras"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Read(Base):
    """One plate read: a fused vehicle event (kind 'event') or one plate in a still image ('image')."""

    __tablename__ = "reads"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    # unique: re-sending an event (a retry after a timeout) fails instead of counting the vehicle twice
    event_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    camera_id: Mapped[int | None] = mapped_column(ForeignKey("cameras.id", ondelete="SET NULL"))
    track_id: Mapped[int | None] = mapped_column(Integer)
    plate: Mapped[str] = mapped_column(String(32))
    score: Mapped[float] = mapped_column(Float)
    candidates: Mapped[list[Any]] = mapped_column(default=list)
    region: Mapped[str | None] = mapped_column(String(16))
    region_score: Mapped[float | None] = mapped_column(Float)
    box_xmin: Mapped[int | None] = mapped_column(Integer)
    box_ymin: Mapped[int | None] = mapped_column(Integer)
    box_xmax: Mapped[int | None] = mapped_column(Integer)
    box_ymax: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text, default="")
    first_seen: Mapped[dt.datetime]
    last_seen: Mapped[dt.datetime]
    frames: Mapped[int] = mapped_column(Integer, default=1)
    crop_path: Mapped[str | None] = mapped_column(String(96))
    frame_path: Mapped[str | None] = mapped_column(String(96))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # the plate's outline in the frame (TL, TR, BR, BL) when the detector gives it (revision 0002)
    corners: Mapped[list[Any] | None] = mapped_column(JsonDoc)

    __table_args__ = (
        Index(None, "plate"),
        Index(None, "camera_id", "first_seen"),
        Index(None, "first_seen"),
        Index(None, "last_seen"),   # retention deletes by it
    )


class WatchEntry(Base):
    """A plate to flag. ``fuzzy`` is the edit distance that still counts as a hit (0 = exact)."""

    __tablename__ = "watchlist"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plate: Mapped[str] = mapped_column(String(32), unique=True)
    fuzzy: Mapped[int] = mapped_column(Integer, default=0)
    label: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """A key for the HTTP API. Only the SHA-256 of the secret is kept: a copy of the database does
    not let anyone call the API. ``prefix`` (the secret's first characters) finds the row and tells
    tokens apart in listings; ``rate`` overrides the server's per-token request rate."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(8))
    secret_hash: Mapped[str] = mapped_column(String(64))
    rate: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None]

    __table_args__ = (Index(None, "prefix"),)


class ApiUsage(Base):
    """Successful API calls per token and calendar month (UTC), as Plate Recognizer counts them."""

    __tablename__ = "api_usage"

    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id", ondelete="CASCADE"), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)   # "2026-11"
    calls: Mapped[int] = mapped_column(Integer, default=0)


class OutboxMessage(Base):
    """An alert waiting for (or done with) one delivery target (revision 0003).

    Written in the transaction that stores its event, so an event is never stored without its
    alerts nor alerted without being stored; a delivery loop sends the pending rows and marks
    them. ``key`` is the alert's idempotency key, the same for every target and every retry, so
    a receiver can drop the duplicates at-least-once delivery brings.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(64))          # "webhook:NAME" or "mqtt"
    kind: Mapped[str] = mapped_column(String(16))            # "hit" (watchlist) or "event"
    camera: Mapped[str | None] = mapped_column(String(64))
    read_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("reads.id", ondelete="SET NULL"))
    payload: Mapped[dict[str, Any]] = mapped_column()
    state: Mapped[str] = mapped_column(String(12), default="pending")   # pending, delivered, dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[dt.datetime | None]

    __table_args__ = (
        UniqueConstraint("key", "target"),
        Index(None, "target", "state", "next_attempt_at"),   # the delivery loop's query
        Index(None, "created_at"),                           # retention and the alerts page
    )


class PrivacyLog(Base):
    """One line per export or erasure of everything stored about a plate (revision 0004).

    The plate itself is not kept (an erasure log that kept the plate would undo the erasure): only
    its SHA-256, so that a request can later be shown to have been carried out by
    someone who names the plate again.
    """

    __tablename__ = "privacy_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    action: Mapped[str] = mapped_column(String(8))           # "export" or "erase"
    plate_sha256: Mapped[str] = mapped_column(String(64))
    counts: Mapped[dict[str, Any]] = mapped_column()         # rows and files found / removed
    actor: Mapped[str | None] = mapped_column(String(64))    # who asked (CLI user, API token name)

    __table_args__ = (Index(None, "plate_sha256"),)
