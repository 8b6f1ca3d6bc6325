"""The ``Store``: reads in, reads out, retention and the watchlist, over any SQLAlchemy database."""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import os
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from sqlalchemy import Engine, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ..text import levenshtein, normalize_plate
from ..types import Box, Candidate, ImageResult, PlateRead
from ..video.events import VehicleEvent
from .db import (ENV_MEDIA, StoreError, StoreUnavailable, default_media_dir, describe, open_engine,
                 short_error, transient)
from .media import MediaStore
from .models import ApiToken, ApiUsage, Camera, OutboxMessage, PrivacyLog, Read, WatchEntry, utcnow
from .tokens import PREFIX_LEN, TokenInfo, hash_secret, new_secret, period_of, secret_matches

ENV_RETENTION = "PLATEREAD_RETENTION_DAYS"
KINDS = ("event", "image")
MAX_PLATE = 32
MEDIA_GRACE_S = 600.0       # files younger than this survive a purge: a writer may be about to commit them
RETAIN_EVERY_S = 3600.0     # how often a long-running writer re-applies the retention setting

_reads = Read.__table__
_cameras = Camera.__table__
_watch = WatchEntry.__table__
_tokens = ApiToken.__table__
_usage = ApiUsage.__table__
_outbox = OutboxMessage.__table__
_privacy = PrivacyLog.__table__
OUTBOX_STATES = ("pending", "delivered", "dead")
TIME_FIELDS = ("first_seen", "last_seen", "created_at")

log = logging.getLogger("plateread.store")


@dataclass(frozen=True)
class StoredRead:
    """A read as the database holds it; media paths are relative to the store's media folder."""

    id: int
    kind: str
    plate: str
    score: float
    camera: str | None
    first_seen: dt.datetime
    last_seen: dt.datetime
    frames: int
    candidates: tuple[Candidate, ...] = ()
    region: str | None = None
    region_score: float | None = None
    box: Box | None = None
    source: str = ""
    event_id: str | None = None
    track_id: int | None = None
    crop_path: str | None = None
    frame_path: str | None = None
    created_at: dt.datetime | None = None
    corners: tuple[tuple[float, float], ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "plate": self.plate, "score": round(float(self.score), 4),
            "camera": self.camera, "first_seen": self.first_seen.isoformat(), "last_seen": self.last_seen.isoformat(),
            "frames": self.frames, "candidates": [c.to_dict() for c in self.candidates], "region": self.region,
            "region_score": None if self.region_score is None else round(float(self.region_score), 4),
            "box": None if self.box is None else self.box.to_dict(), "source": self.source,
            "event_id": self.event_id, "track_id": self.track_id, "crop_path": self.crop_path,
            "frame_path": self.frame_path, "created_at": self.created_at.isoformat() if self.created_at else None,
            "corners": [list(c) for c in self.corners] if self.corners else None,
        }


@dataclass(frozen=True)
class WatchItem:
    plate: str
    fuzzy: int = 0
    label: str | None = None
    reason: str | None = None
    created_at: dt.datetime | None = None

    def matches(self, plate: str) -> bool:
        return levenshtein(self.plate, normalize_plate(plate), self.fuzzy) <= self.fuzzy

    def to_dict(self) -> dict[str, Any]:
        return {"plate": self.plate, "fuzzy": self.fuzzy, "label": self.label, "reason": self.reason,
                "created_at": self.created_at.isoformat() if self.created_at else None}


@dataclass
class AddReport:
    """What a batch did: ids stored, and (event id or index, why) for each input that was not."""

    ids: list[int] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class PurgeReport:
    reads: int
    files: int
    outbox: int = 0


@dataclass(frozen=True)
class OutboxEntry:
    """An alert to write with its event: for ``target``, idempotency ``key``, JSON ``payload``."""

    key: str
    target: str
    kind: str
    payload: dict[str, Any]
    camera: str | None = None


@dataclass(frozen=True)
class OutboxRow:
    """An outbox row as stored; ``read_id`` is the event's read (null once retention removed it)."""

    id: int
    key: str
    target: str
    kind: str
    camera: str | None
    read_id: int | None
    payload: dict[str, Any]
    state: str
    attempts: int
    next_attempt_at: dt.datetime
    last_error: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None

    def to_dict(self) -> dict[str, Any]:
        def iso(t: dt.datetime | None) -> str | None:
            return t.isoformat() if t else None

        return {"id": self.id, "key": self.key, "target": self.target, "kind": self.kind, "camera": self.camera,
                "read_id": self.read_id, "plate": self.payload.get("plate"), "state": self.state,
                "attempts": self.attempts, "next_attempt_at": iso(self.next_attempt_at),
                "last_error": self.last_error, "created_at": iso(self.created_at),
                "delivered_at": iso(self.delivered_at)}


def _aware(value: dt.datetime, what: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise StoreError(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(dt.timezone.utc)


def _check_read(plate: str, score: float) -> str:
    norm = normalize_plate(plate) if isinstance(plate, str) else ""
    if not norm or len(norm) > MAX_PLATE:
        raise StoreError(f"plate {plate!r} is empty or longer than {MAX_PLATE} characters")
    if not isinstance(score, (int, float)) or not math.isfinite(score):
        raise StoreError(f"plate {plate!r}: score {score!r} is not a number")
    return norm


def _read_fields(r: VehicleEvent | PlateRead) -> dict[str, Any]:
    """The columns an event and a per-image read fill the same way."""
    b = r.box
    corners = getattr(r, "corners", None)  # events carry none
    return {"plate": _check_read(r.plate, r.score), "score": float(r.score),
            "candidates": [c.to_dict() for c in r.candidates], "region": r.region,
            "region_score": None if r.region_score is None else float(r.region_score),
            "box_xmin": b.xmin, "box_ymin": b.ymin, "box_xmax": b.xmax, "box_ymax": b.ymax,
            "corners": [[round(float(x), 1), round(float(y), 1)] for x, y in corners] if corners else None}


def _crop(image: np.ndarray, box: Box) -> np.ndarray | None:
    h, w = image.shape[:2]
    x0, y0, x1, y1 = max(0, box.xmin), max(0, box.ymin), min(w, box.xmax), min(h, box.ymax)
    return image[y0:y1, x0:x1] if x1 > x0 and y1 > y0 else None


class Store:
    """The database of reads. Each add commits on its own (or per batch), so a bad input never
    takes already-stored reads with it. Safe to share between threads: every call takes its own
    pooled connection."""

    def __init__(self, engine: Engine, media: MediaStore, *, retention_days: float | None = None,
                 label: str = "") -> None:
        self.engine = engine
        self.media = media
        self.retention_days = retention_days
        self.label = label or describe(engine.url)
        self._camera_ids: dict[str, int] = {}
        self._retained_at = -math.inf
        self.media_errors = 0
        self.last_media_error: str | None = None
        self._media_logged_at = -math.inf

    @classmethod
    def open(cls, url: str | None = None, media_dir: str | os.PathLike[str] | None = None, *,
             retention_days: float | None = None, migrate: bool = True) -> "Store":
        """Opens (creating and migrating as needed) the database at ``url`` — else $PLATEREAD_DB,
        else the per-user SQLite file — with media in ``media_dir``, $PLATEREAD_MEDIA, or next to
        the SQLite file. ``retention_days`` (or $PLATEREAD_RETENTION_DAYS) purges older reads now
        and then hourly while adding."""
        if retention_days is None and os.environ.get(ENV_RETENTION):
            try:
                retention_days = float(os.environ[ENV_RETENTION])
            except ValueError:
                raise StoreError(f"${ENV_RETENTION} must be a number of days") from None
        if retention_days is not None and retention_days < 0:
            raise StoreError("retention must be zero or more days")
        engine, url_obj = open_engine(url, migrate=migrate)
        media = MediaStore(media_dir or os.environ.get(ENV_MEDIA) or default_media_dir(url_obj))
        store = cls(engine, media, retention_days=retention_days, label=describe(url_obj))
        store.maybe_retain()
        return store

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.label!r}, media={str(self.media.root)!r})"

    @contextmanager
    def _db(self, what: str) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            cls = StoreUnavailable if transient(exc) else StoreError
            raise cls(f"{what}: {short_error(exc)}") from exc

    # ---- cameras -------------------------------------------------------------------------------

    def add_camera(self, name: str, description: str | None = None) -> int:
        """Creates the camera, or updates its description; returns its id."""
        cid = self._camera_id(name)
        assert cid is not None
        if description is not None:
            with self._db(f"camera {name!r}"), self.engine.begin() as conn:
                conn.execute(update(_cameras).where(_cameras.c.id == cid).values(description=description))
        return cid

    def cameras(self) -> list[dict[str, Any]]:
        q = (select(_cameras.c.name, _cameras.c.description, func.count(_reads.c.id).label("reads"))
             .select_from(_cameras.outerjoin(_reads)).group_by(_cameras.c.id).order_by(_cameras.c.name))
        with self._db("listing cameras"), self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def _camera_id(self, name: str | None) -> int | None:
        if not name:
            return None
        if name in self._camera_ids:
            return self._camera_ids[name]
        if len(name) > 64:
            raise StoreError(f"camera name {name[:20]!r}… is longer than 64 characters")
        find = select(_cameras.c.id).where(_cameras.c.name == name)
        with self._db(f"camera {name!r}"):
            with self.engine.connect() as conn:
                cid = conn.scalar(find)
            if cid is None:
                try:
                    with self.engine.begin() as conn:
                        cid = conn.execute(insert(_cameras).returning(_cameras.c.id), {"name": name}).scalar_one()
                except IntegrityError:  # another writer created it first
                    with self.engine.connect() as conn:
                        cid = conn.scalar(find)
        self._camera_ids[name] = int(cid)
        return int(cid)

    # ---- adding --------------------------------------------------------------------------------

    def _save_media(self, image: np.ndarray | None) -> str | None:
        """Saves an image, or returns None when the media disk fails (full, read-only): the read
        itself matters more than its picture, so it is still stored, and the failure is counted
        (``media_errors``, ``last_media_error``) and logged for the operator."""
        if image is None or not image.size:
            return None
        try:
            return self.media.save(image)
        except (OSError, ValueError) as exc:
            self.media_errors += 1
            self.last_media_error = f"{type(exc).__name__}: {exc}"
            now = time.monotonic()
            if now - self._media_logged_at > 60.0:  # one line a minute, not one per read
                self._media_logged_at = now
                log.error("media %s: cannot save images (%s); reads are stored without them",
                          self.media.root, self.last_media_error)
            return None

    def prepare_event(self, ev: VehicleEvent) -> dict[str, Any]:
        """The row of one event, JSON-ready and without touching the database (a spool keeps it
        across an outage): its images are saved now, the camera is by name, times are ISO text."""
        fields = _read_fields(ev)
        first, last = _aware(ev.first_seen, "first_seen"), _aware(ev.last_seen, "last_seen")
        if not ev.event_id:
            raise StoreError("an event needs an event_id")
        return {
            "kind": "event", "event_id": ev.event_id, "camera": ev.camera or None,
            "track_id": ev.track_id, **fields, "source": ev.source or "",
            "first_seen": first.isoformat(), "last_seen": last.isoformat(), "frames": int(ev.frames),
            "crop_path": self._save_media(ev.best_crop), "frame_path": self._save_media(ev.frame),
            "created_at": utcnow().isoformat(),
        }

    def prepare_image(self, result: ImageResult, camera: str | None = None, image: np.ndarray | None = None,
                      *, seen: dt.datetime | None = None, keep_frame: bool = False) -> list[dict[str, Any]]:
        """The rows of one image's reads, as ``prepare_event``. Each gets a unique key in
        ``event_id`` so that writing the same rows twice (a retry after a lost answer) stores them once."""
        if not result.ok or not result.results:
            return []
        when = (_aware(seen, "seen") if seen is not None else utcnow()).isoformat()
        frame = self._save_media(image) if keep_frame and image is not None else None
        rows = []
        for r in result.results:
            fields = _read_fields(r)
            crop = _crop(image, r.box) if image is not None else None
            rows.append({
                "kind": "image", "event_id": uuid.uuid4().hex, "camera": camera or None, "track_id": None,
                **fields, "source": result.image, "first_seen": when, "last_seen": when, "frames": 1,
                "created_at": utcnow().isoformat(), "crop_path": self._save_media(crop), "frame_path": frame,
            })
        return rows

    def _db_row(self, row: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in row.items() if k != "camera"}
        out["camera_id"] = self._camera_id(row.get("camera"))
        for k in TIME_FIELDS:
            if isinstance(out.get(k), str):
                out[k] = dt.datetime.fromisoformat(out[k])
        return out

    def commit(self, rows: Sequence[dict[str, Any]], outbox: Sequence[OutboxEntry] = (), *,
               idempotent: bool = False) -> list[int]:
        """Writes prepared rows, and ``outbox`` rows pointing at the first of them, in one
        transaction. ``idempotent``: rows whose key (``event_id``) is already stored are not an
        error but the earlier write; their ids are returned. Raises StoreUnavailable on an outage
        (retry later), StoreError when the rows themselves are refused."""
        if not rows:
            return []
        what = f"event {rows[0].get('event_id')}" if rows[0].get("kind") == "event" else f"image {rows[0].get('source')}"
        with self._db(what):
            db_rows = [self._db_row(r) for r in rows]
            try:
                with self.engine.begin() as conn:
                    ids = [int(i) for i in conn.execute(
                        insert(_reads).returning(_reads.c.id, sort_by_parameter_order=True), db_rows).scalars()]
                    if outbox:
                        now = utcnow()
                        conn.execute(insert(_outbox), [
                            {"key": o.key, "target": o.target, "kind": o.kind, "camera": o.camera,
                             "read_id": ids[0], "payload": o.payload, "state": "pending", "attempts": 0,
                             "next_attempt_at": now, "created_at": now} for o in outbox])
                    return ids
            except IntegrityError:
                if not idempotent:
                    raise
                keys = [r["event_id"] for r in db_rows]
                with self.engine.connect() as conn:
                    found = dict(conn.execute(select(_reads.c.event_id, _reads.c.id)
                                              .where(_reads.c.event_id.in_(keys))).all())
                if len(found) != len(keys):
                    raise
                return [int(found[k]) for k in keys]

    def add_event(self, event: VehicleEvent, *, outbox: Sequence[OutboxEntry] = ()) -> int:
        """Stores one vehicle event in its own transaction; raises StoreError (nothing stored) on failure.
        ``outbox`` rows (its alerts) are written in the same transaction, pointing at the new read."""
        self.maybe_retain()
        return self.commit([self.prepare_event(event)], outbox)[0]

    def add_events(self, events: Iterable[VehicleEvent], batch_size: int = 500) -> AddReport:
        """Stores events a batch per transaction (far faster than one by one); when a batch fails,
        its events are retried singly so one bad event costs only itself. Never raises for bad input."""
        self.maybe_retain()
        report = AddReport()
        batch: list[tuple[str, dict[str, Any]]] = []

        def flush() -> None:
            if not batch:
                return
            try:
                report.ids.extend(self.commit([row for _, row in batch]))
            except StoreError:
                for key, row in batch:
                    try:
                        report.ids.extend(self.commit([row]))
                    except StoreError as exc:
                        report.failed.append((key, str(exc)))
            batch.clear()

        for i, ev in enumerate(events):
            key = getattr(ev, "event_id", None) or f"#{i}"
            try:
                batch.append((key, self.prepare_event(ev)))
            except (StoreError, ValueError, AttributeError, TypeError, OSError) as exc:
                report.failed.append((key, str(exc)))
            if len(batch) >= batch_size:
                flush()
        flush()
        return report

    def add_image_result(self, result: ImageResult, camera: str | None = None, image: np.ndarray | None = None,
                         *, seen: dt.datetime | None = None, keep_frame: bool = False) -> list[int]:
        """Stores each plate of one image (one transaction for the image). With ``image`` (the BGR
        array the result came from) the plate crops are saved; ``keep_frame`` saves the whole image too."""
        rows = self.prepare_image(result, camera, image, seen=seen, keep_frame=keep_frame)
        if not rows:
            return []
        self.maybe_retain()
        return self.commit(rows)

    # ---- reading -------------------------------------------------------------------------------

    def query(self, plate: str | None = None, fuzzy: int = 0, camera: str | None = None,
              since: dt.datetime | None = None, until: dt.datetime | None = None, limit: int | None = 100,
              kind: str | None = None, *, offset: int = 0, after_id: int | None = None) -> list[StoredRead]:
        """Newest first. ``fuzzy`` N matches plates within edit distance N: SQL narrows by length
        (portable, uses no extension), Python computes the distance, so SQLite and PostgreSQL agree.
        ``since``/``until`` select reads whose sighting overlaps that interval. ``offset`` skips
        that many matches (paging); ``after_id`` keeps reads stored after that one (live feeds)."""
        if kind is not None and kind not in KINDS:
            raise StoreError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")
        if fuzzy < 0:
            raise StoreError("fuzzy distance must be zero or more")
        if offset < 0:
            raise StoreError("offset must be zero or more")
        q = (select(_reads, _cameras.c.name.label("camera_name"))
             .select_from(_reads.outerjoin(_cameras))
             .order_by(_reads.c.first_seen.desc(), _reads.c.id.desc()))
        norm = normalize_plate(plate) if plate else None
        if plate is not None and not norm:
            raise StoreError(f"plate {plate!r} has no letters or digits")
        if norm and fuzzy == 0:
            q = q.where(_reads.c.plate == norm)
        elif norm:
            q = q.where(func.length(_reads.c.plate).between(len(norm) - fuzzy, len(norm) + fuzzy))
        if camera is not None:
            q = q.where(_cameras.c.name == camera)
        if since is not None:
            q = q.where(_reads.c.last_seen >= _aware(since, "since"))
        if until is not None:
            q = q.where(_reads.c.first_seen <= _aware(until, "until"))
        if kind is not None:
            q = q.where(_reads.c.kind == kind)
        if after_id is not None:
            q = q.where(_reads.c.id > after_id)
        out: list[StoredRead] = []
        skip = offset if norm and fuzzy else 0
        with self._db("query"), self.engine.connect() as conn:
            if norm and fuzzy:
                rows: Iterable[Any] = conn.execution_options(yield_per=1000).execute(q)
            else:
                q = q.offset(offset) if offset else q
                rows = conn.execute(q.limit(limit) if limit is not None else q)
            for row in rows:
                if norm and fuzzy and levenshtein(norm, row.plate, fuzzy) > fuzzy:
                    continue
                if skip:
                    skip -= 1
                    continue
                out.append(_stored(row))
                if limit is not None and len(out) >= limit:
                    break
        return out

    def get(self, read_id: int) -> StoredRead | None:
        """One read by id, or None."""
        q = (select(_reads, _cameras.c.name.label("camera_name")).select_from(_reads.outerjoin(_cameras))
             .where(_reads.c.id == read_id))
        with self._db("read"), self.engine.connect() as conn:
            row = conn.execute(q).first()
        return _stored(row) if row is not None else None

    def last_id(self) -> int:
        """The newest read's id (0 when empty): where a live feed starts."""
        with self._db("read"), self.engine.connect() as conn:
            return int(conn.scalar(select(func.max(_reads.c.id))) or 0)

    def watch_hits(self, limit: int | None = 100, offset: int = 0, **filters: Any) -> list[StoredRead]:
        """Reads any watchlist entry matches, newest first: one indexed query per listed plate
        (with its own fuzzy distance) beats matching every read in Python."""
        end = None if limit is None else offset + limit
        found = {r.id: r for w in self.watchlist()
                 for r in self.query(plate=w.plate, fuzzy=w.fuzzy, limit=end, **filters)}
        ordered = sorted(found.values(), key=lambda r: (r.first_seen, r.id), reverse=True)
        return ordered[offset:end]

    def media_path(self, rel: str) -> Path:
        return self.media.path(rel)

    # ---- API tokens and usage ------------------------------------------------------------------

    def token_create(self, name: str, rate: float | None = None) -> tuple[TokenInfo, str]:
        """A new token named ``name``; returns it and its secret, which is not stored and cannot
        be shown again."""
        name = name.strip()
        if not name or len(name) > 64:
            raise StoreError("token name must be 1 to 64 characters")
        if rate is not None and not (math.isfinite(rate) and rate > 0):
            raise StoreError("token rate must be a positive number of requests per second")
        secret = new_secret()
        row = {"name": name, "prefix": secret[:PREFIX_LEN], "secret_hash": hash_secret(secret), "rate": rate,
               "created_at": utcnow(), "last_used_at": None}
        try:
            with self.engine.begin() as conn:
                tid = conn.execute(insert(_tokens).returning(_tokens.c.id), row).scalar_one()
        except IntegrityError:
            raise StoreError(f"a token named {name!r} exists already") from None
        except SQLAlchemyError as exc:
            raise StoreError(f"token {name!r}: {short_error(exc)}") from exc
        return TokenInfo(int(tid), name, row["prefix"], rate, row["created_at"]), secret

    def tokens(self) -> list[TokenInfo]:
        """Every token with its calls this month, by name."""
        month = period_of(utcnow())
        q = (select(_tokens, func.coalesce(_usage.c.calls, 0).label("calls"))
             .select_from(_tokens.outerjoin(_usage, (_usage.c.token_id == _tokens.c.id) & (_usage.c.period == month)))
             .order_by(_tokens.c.name))
        with self._db("tokens"), self.engine.connect() as conn:
            return [_token(r, int(r.calls)) for r in conn.execute(q)]

    def token(self, token_id: int) -> TokenInfo | None:
        """The token with this id, or None once it was revoked."""
        with self._db("tokens"), self.engine.connect() as conn:
            row = conn.execute(select(_tokens).where(_tokens.c.id == token_id)).first()
        return _token(row) if row is not None else None

    def token_revoke(self, name: str) -> bool:
        """Deletes the token (and its usage counts); False when there is none of that name."""
        with self._db("tokens"), self.engine.begin() as conn:
            return bool(conn.execute(delete(_tokens).where(_tokens.c.name == name)).rowcount)

    def token_check(self, secret: str) -> TokenInfo | None:
        """The token whose secret this is, or None. The prefix only narrows the rows; the hash is
        compared in constant time, and a miss does the same work as a wrong secret."""
        if not isinstance(secret, str) or len(secret) < PREFIX_LEN:
            secret_matches(secret if isinstance(secret, str) else "", None)
            return None
        with self._db("tokens"), self.engine.connect() as conn:
            rows = conn.execute(select(_tokens).where(_tokens.c.prefix == secret[:PREFIX_LEN])).all()
        if not rows:
            secret_matches(secret, None)
        hit = None
        for r in rows:  # every row with the prefix is compared, whichever matches
            if secret_matches(secret, r.secret_hash):
                hit = r
        return _token(hit) if hit is not None else None

    def count_call(self, token_id: int, when: dt.datetime | None = None, n: int = 1) -> int:
        """Adds ``n`` calls to the token's month and returns that month's count."""
        when = when or utcnow()
        key = (_usage.c.token_id == token_id) & (_usage.c.period == period_of(when))
        with self._db("usage"):
            for attempt in (0, 1):  # a concurrent first call of the month may insert the row first
                try:
                    with self.engine.begin() as conn:
                        if not conn.execute(update(_usage).where(key).values(calls=_usage.c.calls + n)).rowcount:
                            conn.execute(insert(_usage).values(token_id=token_id, period=period_of(when), calls=n))
                        conn.execute(update(_tokens).where(_tokens.c.id == token_id).values(last_used_at=when))
                        return int(conn.scalar(select(_usage.c.calls).where(key)) or 0)
                except IntegrityError:
                    if attempt:
                        raise
        return 0  # pragma: no cover - the loop returns or raises

    def calls(self, token_id: int, when: dt.datetime | None = None) -> int:
        """The token's calls in ``when``'s month (default: this month)."""
        key = (_usage.c.token_id == token_id) & (_usage.c.period == period_of(when or utcnow()))
        with self._db("usage"), self.engine.connect() as conn:
            return int(conn.scalar(select(_usage.c.calls).where(key)) or 0)

    # ---- retention -----------------------------------------------------------------------------

    def maybe_retain(self) -> None:
        """Applies ``retention_days`` if it was not applied in the last hour (writers call it)."""
        if self.retention_days is None or time.monotonic() - self._retained_at < RETAIN_EVERY_S:
            return
        self._retained_at = time.monotonic()
        self.purge(self.retention_days)

    def purge(self, older_than_days: float, *, now: dt.datetime | None = None, sweep: bool = True,
              grace_s: float = MEDIA_GRACE_S) -> PurgeReport:
        """Deletes reads last seen more than ``older_than_days`` ago and the media no read uses any
        more (images shared with a newer read stay). ``sweep`` also removes files no read ever
        committed (left by failed inserts); files younger than ``grace_s`` are always spared."""
        if older_than_days < 0:
            raise StoreError("older-than must be zero or more days")
        cutoff = (_aware(now, "now") if now else utcnow()) - dt.timedelta(days=older_than_days)
        old = _reads.c.last_seen < cutoff
        with self._db("purge"), self.engine.begin() as conn:
            paths = {p for row in conn.execute(select(_reads.c.crop_path, _reads.c.frame_path).where(old))
                     for p in row if p}
            n_reads = conn.execute(delete(_reads).where(old)).rowcount or 0
        with self._db("purge"), self.engine.connect() as conn:
            if sweep:
                candidates = set(self.media.files())
            else:
                candidates = paths
            used = self._referenced(conn, candidates)
        n_files = self.media.delete(sorted(candidates - used), older_than_s=grace_s)
        with self._db("purge"), self.engine.begin() as conn:   # alerts carry plates too
            n_outbox = conn.execute(delete(_outbox).where(_outbox.c.created_at < cutoff)).rowcount or 0
        return PurgeReport(n_reads, n_files, n_outbox)

    @staticmethod
    def _referenced(conn: Any, paths: set[str], chunk: int = 500) -> set[str]:
        found: set[str] = set()
        items = sorted(paths)
        for i in range(0, len(items), chunk):
            part = items[i:i + chunk]
            q = select(_reads.c.crop_path, _reads.c.frame_path).where(
                or_(_reads.c.crop_path.in_(part), _reads.c.frame_path.in_(part)))
            found.update(p for row in conn.execute(q) for p in row if p)
        return found & paths

    # ---- watchlist -----------------------------------------------------------------------------

    def watchlist_add(self, plate: str, fuzzy: int = 0, label: str | None = None,
                      reason: str | None = None) -> WatchItem:
        """Adds the plate, or updates its fuzzy distance, label and reason when already listed."""
        norm = normalize_plate(plate)
        if not norm or len(norm) > MAX_PLATE:
            raise StoreError(f"watchlist plate {plate!r} is empty or too long")
        if fuzzy < 0:
            raise StoreError("fuzzy distance must be zero or more")
        values = {"fuzzy": fuzzy, "label": label, "reason": reason}
        with self._db(f"watchlist {norm}"), self.engine.begin() as conn:
            done = conn.execute(update(_watch).where(_watch.c.plate == norm).values(**values)).rowcount
            if not done:
                conn.execute(insert(_watch).values(plate=norm, created_at=utcnow(), **values))
        return next(w for w in self.watchlist() if w.plate == norm)

    def watchlist_remove(self, plate: str) -> bool:
        with self._db("watchlist"), self.engine.begin() as conn:
            return bool(conn.execute(delete(_watch).where(_watch.c.plate == normalize_plate(plate))).rowcount)

    def watchlist(self) -> list[WatchItem]:
        with self._db("watchlist"), self.engine.connect() as conn:
            rows = conn.execute(select(_watch).order_by(_watch.c.plate))
            return [WatchItem(r.plate, r.fuzzy, r.label, r.reason, r.created_at) for r in rows]

    def watchlist_match(self, plate: str, items: Sequence[WatchItem] | None = None) -> list[WatchItem]:
        """Watchlist entries this plate hits; pass ``items`` to match many plates against one load."""
        return [w for w in (self.watchlist() if items is None else items) if w.matches(plate)]


    # ---- privacy: everything about one plate (right of access, right of erasure) ---------------

    def _plate_data(self, conn: Any, norm: str) -> tuple[list[StoredRead], list[Any], list[WatchItem]]:
        """Reads of exactly ``norm``, outbox rows about them (or naming the plate after their read
        was purged), and its watchlist entry."""
        reads = [_stored(r) for r in conn.execute(
            select(_reads, _cameras.c.name.label("camera_name")).select_from(_reads.outerjoin(_cameras))
            .where(_reads.c.plate == norm).order_by(_reads.c.id))]
        ids = {r.id for r in reads}
        alerts = [r for r in conn.execute(select(_outbox).order_by(_outbox.c.id))
                  if r.read_id in ids or normalize_plate(str((r.payload or {}).get("plate", ""))) == norm]
        watch = [WatchItem(r.plate, r.fuzzy, r.label, r.reason, r.created_at)
                 for r in conn.execute(select(_watch).where(_watch.c.plate == norm))]
        return reads, alerts, watch

    def _log_privacy(self, conn: Any, action: str, norm: str, counts: dict[str, int], actor: str | None) -> None:
        conn.execute(insert(_privacy).values(at=utcnow(), action=action, counts=counts, actor=actor,
                                             plate_sha256=hashlib.sha256(norm.encode()).hexdigest()))

    def _plate_norm(self, plate: str) -> str:
        norm = normalize_plate(plate)
        if not norm or len(norm) > MAX_PLATE:
            raise StoreError(f"plate {plate!r} is empty or too long")
        return norm

    def export_plate(self, plate: str, *, actor: str | None = None) -> dict[str, Any]:
        """Everything stored about ``plate`` (exact, after normalising): reads and events, the alerts
        sent about them, its watchlist entry and the media files' paths. Logged in ``privacy_log``."""
        norm = self._plate_norm(plate)
        with self._db("export"), self.engine.begin() as conn:
            reads, alerts, watch = self._plate_data(conn, norm)
            media = sorted({p for r in reads for p in (r.crop_path, r.frame_path) if p})
            counts = {"reads": len(reads), "alerts": len(alerts), "watchlist": len(watch), "media": len(media)}
            self._log_privacy(conn, "export", norm, counts, actor)
        return {"plate": norm, "exported_at": utcnow().isoformat(), "counts": counts,
                "reads": [r.to_dict() for r in reads],
                "alerts": [_outbox_row(a).to_dict() | {"payload": a.payload} for a in alerts],
                "watchlist": [w.to_dict() for w in watch],
                "media": [{"path": p, "exists": self.media_path(p).is_file()} for p in media]}

    def erase_plate(self, plate: str, *, actor: str | None = None) -> dict[str, int]:
        """Deletes everything ``export_plate`` finds (media files no other read uses included), in
        one transaction, and logs the counts. Returns them."""
        norm = self._plate_norm(plate)
        with self._db("erase"), self.engine.begin() as conn:
            reads, alerts, watch = self._plate_data(conn, norm)
            ids = [r.id for r in reads]
            paths = {p for r in reads for p in (r.crop_path, r.frame_path) if p}
            for i in range(0, len(alerts), 500):
                conn.execute(delete(_outbox).where(_outbox.c.id.in_([a.id for a in alerts[i:i + 500]])))
            for i in range(0, len(ids), 500):
                conn.execute(delete(_reads).where(_reads.c.id.in_(ids[i:i + 500])))
            conn.execute(delete(_watch).where(_watch.c.plate == norm))
            shared = self._referenced(conn, paths)   # a frame another plate's read still shows
            counts = {"reads": len(ids), "alerts": len(alerts), "watchlist": len(watch),
                      "media": len(paths - shared)}
            self._log_privacy(conn, "erase", norm, counts, actor)
        counts["media"] = self.media.delete(sorted(paths - shared))
        return counts

    def privacy_log(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest exports and erasures (the plate only as its SHA-256)."""
        with self._db("privacy log"), self.engine.connect() as conn:
            rows = conn.execute(select(_privacy).order_by(_privacy.c.id.desc()).limit(limit))
            return [{"at": r.at.isoformat(), "action": r.action, "plate_sha256": r.plate_sha256,
                     "counts": r.counts, "actor": r.actor} for r in rows]

    # ---- alert outbox --------------------------------------------------------------------------

    def outbox_due(self, target: str, limit: int = 50, now: dt.datetime | None = None) -> list[OutboxRow]:
        """The target's pending rows whose next attempt is due, oldest first."""
        q = (select(_outbox).where((_outbox.c.target == target) & (_outbox.c.state == "pending")
                                   & (_outbox.c.next_attempt_at <= (now or utcnow())))
             .order_by(_outbox.c.id).limit(limit))
        with self._db("outbox"), self.engine.connect() as conn:
            return [_outbox_row(r) for r in conn.execute(q)]

    def outbox_next_due(self, target: str) -> dt.datetime | None:
        """When the target's earliest pending row is due (None: nothing pending)."""
        q = select(func.min(_outbox.c.next_attempt_at)).where(
            (_outbox.c.target == target) & (_outbox.c.state == "pending"))
        with self._db("outbox"), self.engine.connect() as conn:
            value = conn.execute(q).scalar()
        if value is not None and value.tzinfo is None:   # an aggregate skips the column type on SQLite
            value = dt.datetime.fromisoformat(str(value)).replace(tzinfo=dt.timezone.utc)
        return value

    def outbox_delivered(self, row_id: int, when: dt.datetime | None = None) -> None:
        with self._db("outbox"), self.engine.begin() as conn:
            conn.execute(update(_outbox).where(_outbox.c.id == row_id).values(
                state="delivered", attempts=_outbox.c.attempts + 1, delivered_at=when or utcnow(), last_error=None))

    def outbox_failed(self, row_id: int, error: str, next_attempt_at: dt.datetime, *, dead: bool = False) -> None:
        """Counts a failed attempt; ``dead`` gives the row up (shown as such, never retried)."""
        with self._db("outbox"), self.engine.begin() as conn:
            conn.execute(update(_outbox).where(_outbox.c.id == row_id).values(
                state="dead" if dead else "pending", attempts=_outbox.c.attempts + 1,
                next_attempt_at=_aware(next_attempt_at, "next_attempt_at"), last_error=error[:500]))

    def outbox_retry(self, row_id: int) -> bool:
        """Puts a row (dead or waiting) back in line for an attempt now."""
        with self._db("outbox"), self.engine.begin() as conn:
            return bool(conn.execute(update(_outbox).where((_outbox.c.id == row_id) & (_outbox.c.state != "delivered"))
                                     .values(state="pending", next_attempt_at=utcnow())).rowcount)

    def outbox(self, limit: int = 100, offset: int = 0, *, state: str | None = None,
               target: str | None = None) -> list[OutboxRow]:
        """Outbox rows, newest first (the dashboard's alerts page, the API)."""
        if state is not None and state not in OUTBOX_STATES:
            raise StoreError(f"unknown state {state!r}; choose from {', '.join(OUTBOX_STATES)}")
        q = select(_outbox).order_by(_outbox.c.id.desc()).limit(limit).offset(offset)
        if state is not None:
            q = q.where(_outbox.c.state == state)
        if target is not None:
            q = q.where(_outbox.c.target == target)
        with self._db("outbox"), self.engine.connect() as conn:
            return [_outbox_row(r) for r in conn.execute(q)]

    def outbox_counts(self) -> dict[tuple[str, str], int]:
        """Rows per (target, state)."""
        q = select(_outbox.c.target, _outbox.c.state, func.count()).group_by(_outbox.c.target, _outbox.c.state)
        with self._db("outbox"), self.engine.connect() as conn:
            return {(t, st): int(n) for t, st, n in conn.execute(q)}


def _outbox_row(r: Any) -> OutboxRow:
    return OutboxRow(int(r.id), r.key, r.target, r.kind, r.camera, r.read_id, dict(r.payload or {}), r.state,
                     int(r.attempts), r.next_attempt_at, r.last_error, r.created_at, r.delivered_at)


def _token(row: Any, calls: int = 0) -> TokenInfo:
    return TokenInfo(int(row.id), row.name, row.prefix, row.rate, row.created_at, row.last_used_at, calls)


def _stored(row: Any) -> StoredRead:
    box = None if row.box_xmin is None else Box(row.box_xmin, row.box_ymin, row.box_xmax, row.box_ymax)
    cands = tuple(Candidate(c["plate"], c["score"]) for c in (row.candidates or []))
    return StoredRead(
        id=row.id, kind=row.kind, plate=row.plate, score=row.score, camera=row.camera_name,
        first_seen=row.first_seen, last_seen=row.last_seen, frames=row.frames, candidates=cands,
        region=row.region, region_score=row.region_score, box=box, source=row.source, event_id=row.event_id,
        track_id=row.track_id, crop_path=row.crop_path, frame_path=row.frame_path, created_at=row.created_at,
        corners=tuple((float(x), float(y)) for x, y in row.corners) if row.corners else None)
