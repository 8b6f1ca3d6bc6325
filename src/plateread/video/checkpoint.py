"""Open tracks on disk: what a killed watcher (SIGKILL, power cut) would otherwise lose.

A watcher emits a vehicle only when its track ends, so a process killed while plates are in
view loses them. Once a second (and at once when a track ends) the watcher writes the event
each open track would make now; the next start takes them back (``PlateTracker.recover``): a
vehicle still in view continues its event under the same id, any other is emitted as it was
checkpointed. Event ids are unique in the store, so an event that was both emitted and
checkpointed before the kill is still stored once.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Sequence

from .events import VehicleEvent

log = logging.getLogger("plateread.video")


class TrackCheckpoint:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).expanduser()
        self._written: bytes | None = None   # what the file holds: an unchanged checkpoint is not rewritten

    def save(self, events: Sequence[VehicleEvent]) -> None:
        """Replaces the checkpoint atomically (write, fsync, rename): a kill mid-write leaves the
        previous one."""
        data = json.dumps([e.to_dict() for e in events], separators=(",", ":")).encode()
        if data == self._written:   # a quiet camera: no fsync a second for the same "[]"
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            self._written = data
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load(self) -> list[VehicleEvent]:
        """The checkpointed events; an unreadable checkpoint is reported and ignored."""
        try:
            return [VehicleEvent.from_dict(d) for d in json.loads(self.path.read_bytes())]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("checkpoint %s unreadable (%s); starting without it", self.path, exc)
            return []

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        self._written = None
