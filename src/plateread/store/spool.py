"""A local journal in front of the store, so that a database outage loses no read.

Every event goes to the journal first (one small file, fsynced, renamed into place) and a
background thread writes it to the database and only then deletes the file. While the
database is down or locked, files pile up and are written, in order, once it is back; files
left by a crash or a SIGKILL are written at the next start. Each row carries a unique key
(``event_id``), so a write whose answer was lost (committed, then the connection dropped) is
recognised when retried: nothing is stored twice.

Image reads (``serve``) are written at once when the database answers, so the client gets the
new ids; during an outage, and while older entries wait, they are journalled instead.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..types import ImageResult
from ..video.events import VehicleEvent
from .db import StoreError, StoreUnavailable, data_home, sqlite_file
from .store import OutboxEntry, Store

log = logging.getLogger("plateread.store")

ENV_SPOOL = "PLATEREAD_SPOOL"
FAILED = "failed"


def default_spool_dir(store: Store) -> Path:
    """$PLATEREAD_SPOOL, else beside a SQLite file, else per database in the data home: a journal
    must only ever be replayed into the database its records were meant for."""
    if os.environ.get(ENV_SPOOL):
        return Path(os.environ[ENV_SPOOL])
    db_file = sqlite_file(store.engine.url)
    if db_file is not None:
        return db_file.parent / "spool"
    return data_home() / "spool" / hashlib.sha256(store.label.encode()).hexdigest()[:16]


class Journal:
    """A folder of pending writes, one JSON file each, named so that they sort in arrival order.
    ``owner`` (the store's label) is written beside them; a journal of another store is refused."""

    def __init__(self, directory: str | os.PathLike[str], owner: str = "") -> None:
        self.dir = Path(directory).expanduser()
        self.dir.mkdir(parents=True, exist_ok=True)
        mark = self.dir / "STORE"
        if owner:
            if mark.is_file() and mark.read_text().strip() != owner:
                raise StoreError(f"spool {self.dir} holds writes for {mark.read_text().strip()}, "
                                 f"not for {owner}; give this store its own --spool")
            if not mark.is_file():
                mark.write_text(owner + "\n")
        self._lock = threading.Lock()
        self._seq = 0

    def append(self, record: dict[str, Any]) -> Path:
        data = json.dumps(record, separators=(",", ":")).encode()
        with self._lock:
            self._seq += 1
            name = f"{time.time_ns():020d}-{self._seq:06d}-{uuid.uuid4().hex[:8]}.json"
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())   # on disk before we say it is kept
            dest = self.dir / name
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(self.dir)
        return dest

    def entries(self) -> list[Path]:
        return sorted(p for p in self.dir.glob("*.json") if not p.name.startswith("."))

    def __len__(self) -> int:
        return len(self.entries())

    @staticmethod
    def load(path: Path) -> dict[str, Any]:
        return json.loads(path.read_bytes())

    def done(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def set_aside(self, path: Path, why: str) -> Path:
        """Moves a record the database refuses for good to ``failed/``, with the reason beside it,
        so that it neither blocks the queue nor disappears."""
        dest_dir = self.dir / FAILED
        dest_dir.mkdir(exist_ok=True)
        dest = dest_dir / path.name
        os.replace(path, dest)
        dest.with_suffix(".error").write_text(why + "\n")
        return dest

    def failed(self) -> list[Path]:
        d = self.dir / FAILED
        return sorted(d.glob("*.json")) if d.is_dir() else []


def _journalled(store: Store, plate: str, root: str | os.PathLike[str] | None
                ) -> Iterator[tuple[Path, dict[str, Any], list[dict[str, Any]]]]:
    """(file, record, its rows holding ``plate``) of each journalled record (waiting or set
    aside) of ``store`` that holds ``plate``."""
    from ..text import normalize_plate

    norm = normalize_plate(plate)
    base = Path(root if root is not None else default_spool_dir(store))
    for mark in base.glob("*/STORE"):
        if mark.read_text().strip() != store.label:
            continue
        for path in [*mark.parent.glob("*.json"), *(mark.parent / FAILED).glob("*.json")]:
            try:
                record = json.loads(path.read_bytes())
            except (OSError, ValueError):
                continue
            rows = [r for r in record.get("rows", []) if normalize_plate(str(r.get("plate") or "")) == norm]
            if rows:
                yield path, record, rows


def journalled_reads(store: Store, plate: str, root: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """The reads of ``plate`` still waiting in a journal of ``store`` (an outage, a crash, or set
    aside), as journalled: the right of access covers them too."""
    return [{**row, "journal": str(path)} for path, _record, rows in _journalled(store, plate, root) for row in rows]


def erase_from_journals(store: Store, plate: str, root: str | os.PathLike[str] | None = None) -> int:
    """Deletes the journalled records (waiting or set aside) of ``store`` that hold ``plate``, so
    an erasure during an outage is not undone when the database comes back; returns how many.
    A writer that took a record just before cannot be stopped here: erase again once the
    database answers (``reads --erase-plate`` is idempotent)."""
    n = 0
    for path, _record, _rows in list(_journalled(store, plate, root)):
        path.unlink(missing_ok=True)
        path.with_suffix(".error").unlink(missing_ok=True)
        n += 1
    return n


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclasses.dataclass
class SpoolStats:
    stored: int = 0            # records written to the database (direct or from the journal)
    journalled: int = 0        # records that went through the journal
    set_aside: int = 0         # records the database refused for good (in failed/)
    last_error: str | None = None
    outage_since: float | None = None   # wall time of the first failure of the current outage


OutboxFor = Callable[[VehicleEvent], Sequence[OutboxEntry]]


class SpooledWriter:
    """Writes events and image reads to ``store`` through a ``Journal`` in ``root``/``name`` (root:
    ``default_spool_dir``). Writers with different ``outbox_for`` need different names: a journal
    is drained only by the kind of writer that filled it.

    ``outbox_for(event)`` (optional) gives the alerts to write with each event; it runs when the
    event is written, so a watchlist that needs the database is consulted once it is back.
    ``start()`` runs the writer thread (and first writes what an earlier run left); ``close()``
    writes what it can within ``timeout`` and leaves the rest for the next start.
    """

    def __init__(self, store: Store, root: str | os.PathLike[str] | None = None, name: str = "main", *,
                 outbox_for: OutboxFor | None = None, retry_s: float = 0.5, max_retry_s: float = 5.0,
                 on_stored: Callable[[dict[str, Any], list[int]], None] | None = None) -> None:
        self.store = store
        self.journal = Journal(Path(root if root is not None else default_spool_dir(store)) / name, store.label)
        self.outbox_for = outbox_for
        self.on_stored = on_stored
        self.retry_s, self.max_retry_s = retry_s, max_retry_s
        self.stats = SpoolStats()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()   # one writer of the journal's head at a time

    # ---- in ------------------------------------------------------------------------------------

    def add_event(self, event: VehicleEvent) -> None:
        """Keeps the event (images saved, row journalled) and returns; it is written to the
        database by the writer thread. Raises StoreError for an event the store would refuse
        anyway (no plate, naive times), or when the journal cannot be written (disk full) and the
        database does not take the event directly either."""
        row = self.store.prepare_event(event)
        record = {"type": "event", "rows": [row], "event": event.to_dict(), "alerts": self.outbox_for is not None}
        try:
            self.journal.append(record)
        except OSError as exc:   # the spool's disk is full or gone: write through instead
            log.error("spool %s: %s; writing event %s straight to the store", self.journal.dir, exc, event.event_id)
            with self._lock:
                ids = self._write(record)
            self.stats.stored += 1
            if self.on_stored is not None:
                self.on_stored(record, ids)
            return
        self.stats.journalled += 1
        self._wake.set()

    def add_image_result(self, result: ImageResult, camera: str | None = None, image: np.ndarray | None = None,
                         *, seen: dt.datetime | None = None, keep_frame: bool = False) -> list[int] | None:
        """Stores one image's reads now and returns their ids; during an outage (or while earlier
        records wait) journals them and returns None: they will be stored, later."""
        rows = self.store.prepare_image(result, camera, image, seen=seen, keep_frame=keep_frame)
        if not rows:
            return []
        if not len(self.journal):
            try:
                ids = self.store.commit(rows, idempotent=True)
                self.stats.stored += 1
                return ids
            except StoreUnavailable as exc:
                self._outage(exc)
        self.journal.append({"type": "image", "rows": rows})
        self.stats.journalled += 1
        self._wake.set()
        return None

    # ---- out -----------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self.journal)

    def _outage(self, exc: BaseException) -> None:
        if self.stats.outage_since is None:
            self.stats.outage_since = time.time()
            log.warning("store %s unavailable (%s); reads are kept in %s until it is back",
                        self.store.label, exc, self.journal.dir)
        self.stats.last_error = str(exc)

    def drain(self) -> int:
        """Writes journalled records in order until the journal is empty or the database fails;
        returns how many are left."""
        with self._lock:
            for path in self.journal.entries():
                try:
                    record = self.journal.load(path)
                except FileNotFoundError:
                    continue
                except (OSError, ValueError) as exc:   # a torn file cannot come from append (rename)
                    self.journal.set_aside(path, f"unreadable: {exc}")
                    self.stats.set_aside += 1
                    continue
                try:
                    ids = self._write(record)
                except StoreUnavailable as exc:
                    self._outage(exc)
                    return len(self.journal)
                except StoreError as exc:
                    log.error("store refused a journalled %s for good (%s); kept in %s",
                              record.get("type"), exc, self.journal.dir / FAILED)
                    self.journal.set_aside(path, str(exc))
                    self.stats.set_aside += 1
                    continue
                self.journal.done(path)
                self.stats.stored += 1
                if self.stats.outage_since is not None:
                    log.warning("store %s is back after %.1f s", self.store.label,
                                time.time() - self.stats.outage_since)
                    self.stats.outage_since = None
                if self.on_stored is not None:
                    self.on_stored(record, ids)
        with self._idle:
            self._idle.notify_all()
        return len(self.journal)

    def _write(self, record: dict[str, Any]) -> list[int]:
        try:
            self.store.maybe_retain()   # the hourly retention a long-running writer owes
        except StoreError as exc:       # a failed purge must not hold up (or set aside) a read
            log.warning("retention: %s", exc)
        outbox: Sequence[OutboxEntry] = ()
        if record.get("alerts") and self.outbox_for is not None:
            try:
                outbox = self.outbox_for(VehicleEvent.from_dict(record["event"]))
            except StoreUnavailable:
                raise
            except StoreError as exc:
                raise StoreUnavailable(f"alerts: {exc}") from exc
        return self.store.commit(record["rows"], outbox, idempotent=True)

    def _run(self) -> None:
        wait = self.retry_s
        while not self._stop.is_set():
            self._wake.clear()
            left = self.drain()
            if left:
                self._stop.wait(wait)
                wait = min(wait * 2, self.max_retry_s)
            else:
                wait = self.retry_s
                self._wake.wait(1.0)

    def start(self) -> "SpooledWriter":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="plateread-spool", daemon=True)
            self._thread.start()
        return self

    def wait_empty(self, timeout: float) -> bool:
        """Waits until everything journalled is stored; False when ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        while self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with self._idle:
                self._idle.wait(min(left, 0.2))
            self._wake.set()
        return True

    def close(self, timeout: float = 5.0) -> int:
        """Stops the writer thread after one last try; returns how many records stay journalled
        (written at the next start)."""
        if self._thread is not None:
            self.wait_empty(timeout)
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout=max(1.0, timeout))
            self._thread = None
        else:
            self.drain()
        left = self.pending
        if left:
            log.warning("%d reads not yet in the store %s stay in %s for the next start",
                        left, self.store.label, self.journal.dir)
        return left

    def health(self) -> dict[str, Any]:
        s = self.stats
        return {"pending": self.pending, "stored": s.stored, "journalled": s.journalled,
                "set_aside": s.set_aside, "last_error": s.last_error,
                "outage_s": round(time.time() - s.outage_since, 1) if s.outage_since else None,
                "media_errors": self.store.media_errors, "last_media_error": self.store.last_media_error}
